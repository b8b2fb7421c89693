"""Per checkpoint: top-k Hessian eigenpairs of the actor and critic losses, and their gradients.

    python -m pgsubspaces.analysis.eigen --run RUN.h5 --data DATA.h5 --out EIGEN.h5 [--analysis '{"k": 20}']

For each network it writes the eigenpairs of the precise Hessian (the precise set) and of the mini-batch
Hessian (the concatenated mini-batches), the precise gradient and every mini-batch gradient (PPO advantages
normalised per mini-batch, as SB3 trains), with per-eigenpair residuals and convergence, the gaps and the
bounds on each top-j subspace (docs/eigen-accuracy.md), matvec counts, seconds and device. ``--analysis``
holds analysis settings as JSON (``config.AnalysisSpec`` fields); the rest take the schema's defaults.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import h5py
import numpy as np
import torch as th

from pgsubspaces import h5io
from pgsubspaces.analysis.checkpoint_losses import (
    DTYPES,
    Batches,
    checkpoint_loss,
    graph_budget_bytes,
    read_batches,
    resolve_device,
    to_tensors,
)
from pgsubspaces.analysis.data import analysis_attrs, run_identity
from pgsubspaces.analysis.eigensolvers import SOLVERS, EigenResult, arpack, explicit, lanczos
from pgsubspaces.analysis.hessian import HessianOperator
from pgsubspaces.config import AnalysisSpec
from pgsubspaces.export.runfile import RunFile
from pgsubspaces.faults import injected
from pgsubspaces.train.parameters import NETS

log = logging.getLogger("pgsubspaces.analysis.eigen")

FORMAT = "pgsubspaces-eigen"
FORMAT_VERSION = h5io.FORMATS[FORMAT]  # 2: per-eigenpair convergence, gaps, subspace bounds, guard eigenpairs;
# 3: checksummed (h5io)


def solve(operator: HessianOperator, spec: AnalysisSpec, seed: int) -> EigenResult:
    """The top-k eigenpairs of ``operator`` with the spec's solver, worked towards resolving the top-j
    subspace of every level of ``spec.eigen_levels`` (k is capped below the parameter count)."""
    k = min(spec.k, operator.n - 1)
    levels = tuple(level for level in spec.eigen_levels if level < k) + (k,)
    guard = max(min(spec.guard_eigenpairs, operator.n - 1 - k), 0)
    accuracy = {"subspace_tol": spec.subspace_tol, "levels": levels}
    if spec.solver == "explicit":
        return explicit(operator.dense(), k, tol=spec.tol, guard=guard, **accuracy)
    solver = {"arpack": arpack, "lanczos": lanczos}.get(spec.solver)
    if solver is None:
        raise ValueError(f"unknown solver {spec.solver!r}; expected one of {SOLVERS}")
    return solver(
        operator.matvec,
        operator.n,
        k,
        spec.tol,
        operator.dtype,
        operator.device,
        guard=guard,
        max_matvecs=spec.max_matvecs,
        seed=seed,
        **accuracy,
    )


def _write_result(group: h5py.Group, result: EigenResult, operator: HessianOperator) -> None:
    h5io.create_dataset(group, "eigenvalues", result.eigenvalues)
    h5io.create_dataset(group, "eigenvectors", result.eigenvectors.cpu().numpy())
    for name in ("residuals", "converged", "gaps", "subspace_bounds", "guard_eigenvalues", "guard_residuals"):
        h5io.create_dataset(group, name, getattr(result, name))
    if result.all_eigenvalues is not None:
        h5io.create_dataset(group, "all_eigenvalues", result.all_eigenvalues)
    group.attrs.update(
        {
            "solver": result.solver,
            "n_matvecs": result.n_matvecs,
            "seconds": result.seconds,
            "max_relative_residual": result.max_relative_residual,
            "stop_reason": result.stop_reason,
            "subspace_tol": result.subspace_tol,
            "levels": np.asarray(result.levels, dtype=np.int64),
            "unresolved_levels": np.asarray(result.unresolved_levels(), dtype=np.int64),
            "n_samples": operator.loss.n_samples,
            "cached_chunks": operator.cached_chunks,
            "n_chunks": len(operator.chunks),
        }
    )


def _log_result(step: int, net: str, name: str, result: EigenResult) -> None:
    log.info(
        "step %d %s %s: %d eigenpairs, %d matvecs, %.1f s, max rel. residual %.2g, stop: %s",
        step,
        net,
        name,
        len(result.eigenvalues),
        result.n_matvecs,
        result.seconds,
        result.max_relative_residual,
        result.stop_reason,
    )
    unresolved = result.unresolved_levels()
    if unresolved:
        bounds = ", ".join(f"k={j}: {result.subspace_bounds[j - 1]:.2g}" for j in unresolved)
        log.warning(
            "step %d %s %s: top-k subspace NOT resolved to subspace_tol %g at %s (%s); tables mark these values",
            step,
            net,
            name,
            result.subspace_tol,
            bounds,
            result.stop_reason,
        )


def minibatch_gradients(run: RunFile, batches: Batches, net: str, variant: str, device, dtype: th.dtype) -> np.ndarray:
    """The gradient of each mini-batch's own loss (PPO: advantages normalised per mini-batch), (m, n)."""
    gradients = []
    for batch in batches.minibatches():
        loss = checkpoint_loss(run, batches.step, net, to_tensors(batch, device, dtype), variant, device, dtype)
        theta = loss.theta0().requires_grad_(True)
        gradients.append(th.autograd.grad(loss.loss(theta), theta)[0].detach().cpu().numpy())
    return np.stack(gradients)


def _root_attrs(run: RunFile, batches: Batches, spec: AnalysisSpec, device: th.device, data_path: Path) -> dict:
    return {
        **analysis_attrs(FORMAT, FORMAT_VERSION, run, batches.step, spec.variant),
        **run_identity(run),
        "k": spec.k,
        "solver": spec.solver,
        "tol": spec.tol,
        "subspace_tol": spec.subspace_tol,
        "dtype": spec.dtype,
        "device": str(device),
        "sample_seed": batches.seed,
        "data_file": str(data_path),
        "analysis": spec.stage_json("eigen"),
    }


def analyse(run_path: Path, data_path: Path, out: Path, spec: AnalysisSpec, workers: int = 1) -> None:
    """Eigenpairs and gradients of one checkpoint's actor and critic losses, written atomically to ``out``.

    ``workers``: threads for the Hessian-vector products (``HessianOperator``); the CLI passes ``--threads``.
    """
    dtype, device = DTYPES[spec.dtype], resolve_device(spec.device)
    budget = graph_budget_bytes(spec.memory_budget_gb, device)
    started = time.time()
    with RunFile(run_path) as run:
        batches = read_batches(run, data_path)
        step = batches.step
        if injected("eigen", f"{run.algo}/{run.attrs.get('task', '')}/seed{run.attrs.get('seed', '')}", step):
            raise RuntimeError(f"{out}: injected failure (PGSUBSPACES_INJECT_FAULT, tests only)")
        unresolved = []
        with h5io.write_h5(out) as f:
            f.attrs.update(_root_attrs(run, batches, spec, device, data_path))
            for net in NETS:
                for name, batch in (("precise", batches.precise), ("minibatch", batches.minibatch)):
                    loss = checkpoint_loss(
                        run, step, net, to_tensors(batch, device, dtype), spec.variant, device, dtype
                    )
                    operator = HessianOperator(loss, loss.theta0(), spec.chunk_size, budget, workers)
                    result = solve(operator, spec, batches.seed)
                    group = f.create_group(f"{net}/{name}")
                    _write_result(group, result, operator)
                    if name == "precise":
                        h5io.create_dataset(group, "gradient", operator.gradient().cpu().numpy())
                    _log_result(step, net, name, result)
                    unresolved += [f"{net}/{name} k={j}" for j in result.unresolved_levels()]
                gradients = minibatch_gradients(run, batches, net, spec.variant, device, dtype)
                h5io.create_dataset(f, f"{net}/minibatch/gradients", gradients)
            f.attrs["resolved"] = not unresolved
            f.attrs["unresolved"] = ", ".join(unresolved)
            f.attrs["seconds"] = time.time() - started
    log.info(
        "wrote %s in %.0f s%s", out, time.time() - started, f"; unresolved: {', '.join(unresolved)}" * bool(unresolved)
    )


def operator_parser(doc: str) -> argparse.ArgumentParser:
    """The command line shared by the stages that build Hessian operators of a checkpoint (eigen, spectrum)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, type=Path)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument(
        "--analysis", help="analysis settings as JSON (config.AnalysisSpec fields); default the schema's"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads, and the operator's chunk workers")
    return parser


def parse_operator_args(doc: str, argv: list[str] | None) -> tuple[argparse.Namespace, AnalysisSpec]:
    """Parsed arguments and the resolved spec; also sets up logging and torch's threads."""
    args = operator_parser(doc).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    th.set_num_threads(args.threads)
    return args, AnalysisSpec.from_json(args.analysis)


def main(argv: list[str] | None = None) -> None:
    args, spec = parse_operator_args(__doc__, argv)
    with h5io.exit_on_file_errors():
        analyse(args.run, args.data, args.out, spec, workers=args.threads)


if __name__ == "__main__":
    main()
