"""What the checksums cost: size and write/read time of a typical run file and eigen file, written plainly
(HDF5 defaults, contiguous datasets: the workflow before format run 2 / eigen 3) and checksummed
(``pgsubspaces.h5io``: fletcher32 chunks, 1.10 format, sealed attributes).

    .venv/bin/python benchmarks/h5_checksums.py [--repeats 5]

The run file goes through the real ``write_run_file`` (``h5io`` swapped for plain h5py for the baseline);
the data are synthetic at the paper's sizes: Walker2d (obs 17, act 6), 64x64 networks, 22 checkpoints
(0, 10k, every 50k to 1M), evaluation every 10k, 2,000 episodes; the SAC run with a 300k-transition replay
stream. The eigen file has the eigen stage's layout at k = 100 (eigenvectors n x 100, 32 mini-batch
gradients) for the same networks. Read: every dataset in full; for the checksummed file also ``RunFile``'s
open (which checks the seal). Prints a table; numbers vary with the disk cache, so each is the median.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import h5py
import numpy as np

from pgsubspaces import h5io
from pgsubspaces.export.runfile import CheckpointData, RunFile, write_run_file
from pgsubspaces.train.parameters import ParameterLayout


@contextlib.contextmanager
def plain_writer():
    """``h5io`` replaced by plain h5py (the pre-checksum writers)."""
    saved = h5io.write_h5, h5io.create_dataset

    @contextlib.contextmanager
    def write_h5(path):
        with h5py.File(path, "w") as f:
            yield f

    def create_dataset(group, name, data, **kwargs):
        array = np.asarray(data)
        if array.dtype.kind in "UO":
            array = array.astype(h5py.string_dtype())
        return group.create_dataset(name, data=array, **kwargs)

    h5io.write_h5, h5io.create_dataset = write_h5, create_dataset
    try:
        yield
    finally:
        h5io.write_h5, h5io.create_dataset = saved


def mlp_layout(sizes: list[int], prefix: str) -> ParameterLayout:
    names, shapes = [], []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        names += [f"{prefix}.{i}.weight", f"{prefix}.{i}.bias"]
        shapes += [(b, a), (b,)]
    offsets = np.concatenate([[0], np.cumsum([int(np.prod(s)) for s in shapes])]).tolist()
    return ParameterLayout(tuple(names), tuple(shapes), tuple(offsets))


def write_run(path: Path, algo: str, rng) -> None:
    obs, act = 17, 6
    layouts = {"actor": mlp_layout([obs, 64, 64, act], "actor"), "critic": mlp_layout([obs + act, 64, 64, 1], "q")}
    if algo == "sac":
        layouts["critic_target"] = layouts["critic"]
    steps = [0, 10_000, *range(50_000, 1_000_001, 50_000)]
    checkpoints = [
        CheckpointData(
            step,
            {net: rng.standard_normal(layout.size).astype(np.float32) for net, layout in layouts.items()},
            {"n_updates": step // 64, **({"replay_end": step, "ent_coef": 0.1} if algo == "sac" else {})},
        )
        for step in steps
    ]
    curves = {f"eval/{k}": rng.standard_normal(101) for k in ("step", "mean_return", "std_return", "mean_length")}
    curves |= {f"episodes/{k}": rng.standard_normal(2000) for k in ("step", "return", "length")}
    replay = None
    if algo == "sac":
        n = 300_000
        replay = {
            "observations": rng.standard_normal((n, obs)).astype(np.float32),
            "next_observations": rng.standard_normal((n, obs)).astype(np.float32),
            "actions": rng.uniform(-1, 1, (n, act)).astype(np.float32),
            "rewards": rng.standard_normal(n).astype(np.float32),
            "dones": rng.random(n) < 0.001,
            "timeouts": rng.random(n) < 0.001,
            "buffer_size": 1_000_000,
        }
    box = gym.spaces.Box(-np.inf, np.inf, (obs,), np.float32)
    write_run_file(
        path,
        identity={"algo": algo, "task": "Walker2d", "env_id": "Walker2d-v5", "seed": 0, "source": "benchmark"},
        config={"hyperparameters": {"gamma": 0.99}, "policy": {"net_arch": [64, 64]}, "spec": {"note": "x" * 2000}},
        observation_space=box,
        action_space=gym.spaces.Box(-1, 1, (act,), np.float32),
        layouts=layouts,
        checkpoints=checkpoints,
        curves=curves,
        replay=replay,
    )


def write_eigen(path: Path, rng) -> None:
    with h5io.write_h5(path) as f:
        f.attrs.update({"format": "pgsubspaces-eigen", "format_version": 3, "analysis": json.dumps({"k": 100})})
        for net, n in (("actor", 5702), ("critic", 5825)):
            for hessian in ("precise", "minibatch"):
                group = f.create_group(f"{net}/{hessian}")
                h5io.create_dataset(group, "eigenvalues", rng.standard_normal(100))
                h5io.create_dataset(group, "eigenvectors", rng.standard_normal((n, 100)).astype(np.float32))
                for name in ("residuals", "gaps", "subspace_bounds"):
                    h5io.create_dataset(group, name, rng.random(100))
                h5io.create_dataset(group, "converged", np.ones(100, bool))
                group.attrs.update({"solver": "lanczos", "n_matvecs": 900, "stop_reason": "resolved"})
            h5io.create_dataset(f, f"{net}/precise/gradient", rng.standard_normal(n).astype(np.float32))
            h5io.create_dataset(f, f"{net}/minibatch/gradients", rng.standard_normal((32, n)).astype(np.float32))


def read_all(path: Path) -> None:
    datasets = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda _, obj: datasets.append(obj) if isinstance(obj, h5py.Dataset) else None)
        for dataset in datasets:
            dataset[()]


def timed(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, writer in (
            ("PPO run file", lambda p: write_run(p, "ppo", np.random.default_rng(0))),
            ("SAC run file (300k replay)", lambda p: write_run(p, "sac", np.random.default_rng(0))),
            ("eigen file (k = 100)", lambda p: write_eigen(p, np.random.default_rng(0))),
        ):
            result = {}
            for mode in ("plain", "checksummed"):
                path = Path(tmp) / f"{mode}.h5"
                with plain_writer() if mode == "plain" else contextlib.nullcontext():
                    write = timed(lambda: writer(path), args.repeats)  # noqa: B023
                read = timed(lambda: read_all(path), args.repeats)  # noqa: B023
                result[mode] = (path.stat().st_size, write, read)
                if mode == "checksummed":
                    h5io.verify_file(path)
                    if "run" in name:
                        result["open"] = timed(lambda: RunFile(path).close(), args.repeats)  # noqa: B023
            rows.append((name, result))
    print(
        f"{'file':28} {'size plain':>12} {'checksummed':>12} {'write plain':>12} {'checksummed':>12} "
        f"{'read plain':>11} {'checksummed':>12} {'RunFile open':>13}"
    )
    for name, r in rows:
        (s0, w0, r0), (s1, w1, r1) = r["plain"], r["checksummed"]
        opened = f"{r['open'] * 1e3:10.1f} ms" if "open" in r else ""
        print(
            f"{name:28} {s0 / 1e6:9.2f} MB {s1 / 1e6:6.2f} MB {100 * (s1 / s0 - 1):+4.1f}% "
            f"{w0 * 1e3:9.0f} ms {w1 * 1e3:6.0f} ms {100 * (w1 / w0 - 1):+4.0f}% "
            f"{r0 * 1e3:8.0f} ms {r1 * 1e3:6.0f} ms {100 * (r1 / r0 - 1):+4.0f}% {opened}"
        )


if __name__ == "__main__":
    main()
