"""PPTB's cost: seconds per PPTB step against the buffer size, and its overhead on a real SB3 training.

    .venv/bin/python benchmarks/pptb_step.py [--m 100000] [--sizes 250 500 1000 2000] [--steps 3000]

Part 1 times `pptb_parameters` (the float64 Gram, its eigensolve and θ' = Bᵀ w) on a random walk of n rows of
m float32 parameters, against a thin SVD of the same matrix (torch.linalg.svd, float32 and float64) measured in
the same run: the ratios are what to read, not the seconds (a shared machine). Part 2 trains SAC on Pendulum
with and without the callback (same seed, the paper's t_s = 25, t_p = 1000 scaled down to t_p = 250, k = 2000)
and prints the overhead as a ratio of wall time. Writes results/pptb_step.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import torch as th

from pgsubspaces.train.pptb import PPTB, pptb_parameters

RESULTS = Path(__file__).parent / "results" / "pptb_step.json"


def best_of(function, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def step_rows(m: int, sizes: list[int]) -> list[dict]:
    rows = []
    generator = th.Generator().manual_seed(0)
    for n in sizes:
        path = th.randn(m, generator=generator) + 1e-3 * th.cumsum(th.randn(n, m, generator=generator), 0)
        row = {"n": n, "m": m, "megabytes": n * m * 4 / 1e6}
        row["pptb_step_s"] = best_of(lambda: pptb_parameters(path, r_t=16, r_b=2, p_b=0.1))  # noqa: B023
        row["svd32_s"] = best_of(lambda: th.linalg.svd(path, full_matrices=False), repeats=1)  # noqa: B023
        row["svd64_s"] = best_of(lambda: th.linalg.svd(path.double(), full_matrices=False), repeats=1)  # noqa: B023
        row["svd64_over_pptb"] = row["svd64_s"] / row["pptb_step_s"]
        print(
            f"n = {n:5d}, m = {m}: PPTB step {row['pptb_step_s']:.2f} s; thin SVD float32 {row['svd32_s']:.2f} s, "
            f"float64 {row['svd64_s']:.2f} s ({row['svd64_over_pptb']:.1f}x the PPTB step)",
            flush=True,
        )
        rows.append(row)
    return rows


def overhead_row(steps: int) -> dict:
    from stable_baselines3 import SAC

    def run(callback):
        model = SAC("MlpPolicy", "Pendulum-v1", learning_starts=100, seed=0, device="cpu")
        start = time.perf_counter()
        model.learn(steps, callback=callback)
        return time.perf_counter() - start

    plain = run(None)
    pptb = PPTB(r_t=16, p_b=0.1, t_s=25, t_p=250, buffer_size=2000)
    with_pptb = run(pptb)
    row = {"steps": steps, "plain_s": plain, "pptb_s": with_pptb, "ratio": with_pptb / plain,
           "pptb_steps": len(pptb.history), "seconds_in_pptb": sum(r["seconds"] for r in pptb.history)}  # fmt: skip
    print(
        f"SAC Pendulum {steps} steps ([256, 256] actor, {row['pptb_steps']} PPTB steps): plain {plain:.1f} s, "
        f"with PPTB {with_pptb:.1f} s, ratio {row['ratio']:.3f}",
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--m", type=int, default=100_000, help="parameters (the paper: about 1e5)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[250, 500, 1000, 2000], help="buffer rows n")
    parser.add_argument("--steps", type=int, default=3000, help="SAC training steps for the overhead row")
    args = parser.parse_args()
    th.set_num_threads(min(2, os.cpu_count() or 1))
    environment: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "load_before": os.getloadavg(),
        "cpu": platform.processor() or platform.machine(),
        "threads": th.get_num_threads(),
        "torch": th.__version__,
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
    }
    result = {"environment": environment, "steps": step_rows(args.m, args.sizes), "overhead": overhead_row(args.steps)}
    environment["load_after"] = os.getloadavg()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1))
    load = environment["load_before"][0], environment["load_after"][0]
    print(f"wrote {RESULTS} (load {load[0]:.2f} before, {load[1]:.2f} after)")


if __name__ == "__main__":
    main()
