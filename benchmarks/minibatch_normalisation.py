"""How much the PPO (mini-batch gradient, mini-batch Hessian) fraction moves with the Hessian's advantage
normalisation (docs/tables.md, "The (mini-batch gradient, mini-batch Hessian) pair").

The paper's definition (kept by the workflow): the mini-batch Hessian normalises the advantages over the
whole rollout, while each mini-batch gradient normalises over its own mini-batch. The alternative: the
Hessian of the size-weighted mean of the per-mini-batch losses, each normalised over its own mini-batch.

    python benchmarks/minibatch_normalisation.py results/default ppo/Pendulum/seed0 [--k 50] [--steps ...]

For each checkpoint: the fraction both ways at k, their difference, and the overlap of the two top-k
subspaces. Reads the experiment's run, data and eigen files; solves with the eigen file's settings.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import h5py
import numpy as np
import torch as th

from pgsubspaces.analysis.checkpoint_losses import DTYPES, graph_budget_bytes, read_batches, resolve_device, to_tensors
from pgsubspaces.analysis.eigen import solve
from pgsubspaces.analysis.hessian import HessianOperator
from pgsubspaces.analysis.losses import make_loss, normalized
from pgsubspaces.config import AnalysisSpec
from pgsubspaces.export.runfile import RunFile, build_policy
from pgsubspaces.tables.metrics import subspace_fraction, subspace_overlap


def per_minibatch_normalised(batch: dict[str, np.ndarray], offsets: np.ndarray) -> dict[str, np.ndarray]:
    advantages = th.as_tensor(batch["advantages"], dtype=th.float64)
    parts = [normalized(advantages[a:b]) for a, b in zip(offsets, offsets[1:])]
    return {**batch, "advantages": th.cat(parts).numpy().astype(batch["advantages"].dtype)}


def compare(run_path: Path, data_path: Path, eigen_path: Path, k: int | None) -> dict[str, float]:
    with h5py.File(eigen_path, "r") as f:
        spec = AnalysisSpec.from_json(f.attrs["analysis"])
        gradients = f["actor/minibatch/gradients"][()]
        paper_vectors = f["actor/minibatch/eigenvectors"][()]
    k = k or paper_vectors.shape[1]
    dtype, device = DTYPES[spec.dtype], resolve_device(spec.device)
    with RunFile(run_path) as run:
        batches = read_batches(run, data_path)
        batch = per_minibatch_normalised(batches.minibatch, batches.offsets)
        settings = {**run.config("hyperparameters"), "normalize_advantage": False}
        policy = build_policy(run, batches.step).to(device=device, dtype=dtype)
        loss = make_loss("ppo", "actor", policy, to_tensors(batch, device, dtype), settings, spec.variant)
    operator = HessianOperator(loss, loss.theta0(), spec.chunk_size, graph_budget_bytes(spec.memory_budget_gb, device))
    alternative = solve(operator, spec, batches.seed).eigenvectors.cpu().numpy()
    paper = subspace_fraction(paper_vectors[:, :k], gradients)
    other = subspace_fraction(alternative[:, :k], gradients)
    return {
        "step": batches.step,
        "k": k,
        "paper": paper,
        "per_minibatch": other,
        "difference": other - paper,
        "overlap": subspace_overlap(paper_vectors[:, :k], alternative[:, :k]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="results/<experiment>")
    parser.add_argument("run", help="a PPO run id, e.g. ppo/Pendulum/seed0")
    parser.add_argument("--variant", default="corrected")
    parser.add_argument("--k", type=int, help="subspace dimension (default: the eigen files' k)")
    parser.add_argument("--steps", type=int, nargs="*", help="checkpoints (default: every eigen file)")
    args = parser.parse_args()
    th.set_num_threads(1)
    eigen_dir = args.results / "eigen" / args.variant / args.run
    paths = sorted(eigen_dir.glob("step*.h5"))
    if args.steps:
        paths = [p for p in paths if int(p.stem[4:]) in args.steps]
    rows = []
    for eigen_path in paths:
        data_path = args.results / "data" / args.variant / args.run / eigen_path.name
        row = compare(args.results / "runs" / f"{args.run}.h5", data_path, eigen_path, args.k)
        rows.append(row)
        print(json.dumps(row))
    differences = np.array([row["difference"] for row in rows])
    print(
        f"{len(rows)} checkpoints: per-mini-batch minus paper fraction mean {differences.mean():+.4f}, "
        f"max |difference| {np.abs(differences).max():.4f}; subspace overlap min {min(r['overlap'] for r in rows):.3f}"
    )


if __name__ == "__main__":
    main()
