"""Per checkpoint: top-k Hessian eigenpairs of the actor and critic losses, and their gradients.

    python -m pgsubspaces.eigen --run RUN.h5 --data DATA.h5 --out EIGEN.h5 [--k 100] [--solver lanczos]

For each network it writes the eigenpairs of the precise Hessian (the precise set) and of the mini-batch
Hessian (the concatenated mini-batches), the precise gradient and every mini-batch gradient (PPO advantages
normalised per mini-batch, as SB3 trains), with residuals, matvec counts, seconds and device.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch as th

from pgsubspaces.analysis_data import FORMAT as DATA_FORMAT
from pgsubspaces.analysis_data import analysis_attrs, run_identity
from pgsubspaces.atomic import atomic_path
from pgsubspaces.eigensolvers import SOLVERS, EigenResult, arpack, explicit, lanczos
from pgsubspaces.faults import injected
from pgsubspaces.hessian import HessianOperator
from pgsubspaces.losses import FlatLoss, make_loss
from pgsubspaces.parameters import NETS
from pgsubspaces.runfile import RunFile, RunFileError, build_policy

log = logging.getLogger("pgsubspaces.eigen")

FORMAT = "pgsubspaces-eigen"
FORMAT_VERSION = 1
DTYPES = {"float32": th.float32, "float64": th.float64}


def resolve_device(device: str) -> th.device:
    if device == "auto":
        return th.device("cuda" if th.cuda.is_available() else "cpu")
    return th.device(device)


def read_batches(run: RunFile, data_path: Path) -> tuple[int, dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    """The checkpoint step, the precise set, the concatenated mini-batches and their offsets (numpy arrays)."""
    try:
        f = h5py.File(data_path, "r")
    except OSError as error:
        raise RunFileError(f"{data_path}: not a readable HDF5 file, corrupt or truncated ({error})") from None
    with f:
        if f.attrs.get("format") != DATA_FORMAT:
            raise RunFileError(
                f"{data_path}: attribute 'format' is {f.attrs.get('format')!r}, expected {DATA_FORMAT!r}"
            )
        try:
            precise = {key: value[()] for key, value in f["precise"].items() if isinstance(value, h5py.Dataset)}
            minibatch = {key: value[()] for key, value in f["minibatch"].items()}
            source = dict(f["precise"].attrs)
            if "transitions" in f["precise"]:
                transitions = {key: value[()] for key, value in f["precise/transitions"].items()}
            else:
                transitions = None
        except (KeyError, OSError) as error:
            raise RunFileError(f"{data_path}: cannot read the analysis data ({error}); rerun the data rule") from None
        step = int(f.attrs["step"])
    offsets = minibatch.pop("batch_offsets")
    if run.algo == "sac":
        transitions = transitions if transitions is not None else run.replay(step)
        if source.get("kind") == "replay" and len(transitions["rewards"]) != len(precise["actor_noise"]):
            raise RunFileError(
                f"{data_path}: noise for {len(precise['actor_noise'])} samples, replay has "
                f"{len(transitions['rewards'])}: the data belongs to another run file"
            )
        indices = minibatch.pop("indices")
        minibatch.update({key: value[indices] for key, value in transitions.items()})
        precise.update(transitions)
    return step, precise, minibatch, offsets


def _tensors(
    batch: dict[str, np.ndarray], device, dtype, start: int = 0, stop: int | None = None
) -> dict[str, th.Tensor]:
    out = {}
    for key, value in batch.items():
        tensor = th.as_tensor(value[start:stop], device=device)
        out[key] = tensor.to(dtype) if tensor.is_floating_point() else tensor
    return out


def loss_settings(run: RunFile, step: int) -> dict[str, Any]:
    """The hyperparameters the losses need, with SAC's entropy coefficient at this checkpoint."""
    settings: dict[str, Any] = dict(run.config("hyperparameters"))
    if run.algo == "sac":
        settings["ent_coef_value"] = float(run.checkpoint_attrs(step)["ent_coef"])
    return settings


def _loss(run: RunFile, step: int, net: str, batch, settings, variant, device, dtype) -> FlatLoss:
    policy = build_policy(run, step).to(device=device, dtype=dtype)
    return make_loss(run.algo, net, policy, batch, settings, variant)


def solve(
    operator: HessianOperator,
    solver: str,
    k: int,
    tol: float,
    max_matvecs: int | None,
    subspace_tol: float = 0.1,  # interim: the schema's analysis.subspace_tol and analysis.guard_eigenpairs
    guard: int = 5,  # are to replace these two defaults (eigensolvers' API has none)
) -> EigenResult:
    k = min(k, operator.n - 1)
    accuracy = {"subspace_tol": subspace_tol, "guard": guard}
    if solver == "explicit":
        return explicit(operator.dense(), k, tol=tol, **accuracy)
    if solver == "arpack":
        return arpack(
            operator.matvec, operator.n, k, tol, operator.dtype, operator.device, max_matvecs=max_matvecs, **accuracy
        )
    if solver == "lanczos":
        return lanczos(
            operator.matvec, operator.n, k, tol, operator.dtype, operator.device, max_matvecs=max_matvecs, **accuracy
        )
    raise ValueError(f"unknown solver {solver!r}; expected one of {SOLVERS}")


def _write_result(group: h5py.Group, result: EigenResult, operator: HessianOperator) -> None:
    group.create_dataset("eigenvalues", data=result.eigenvalues)
    group.create_dataset("eigenvectors", data=result.eigenvectors.cpu().numpy())
    group.create_dataset("residuals", data=result.residuals)
    if result.all_eigenvalues is not None:
        group.create_dataset("all_eigenvalues", data=result.all_eigenvalues)
    group.attrs.update(
        {
            "solver": result.solver,
            "n_matvecs": result.n_matvecs,
            "seconds": result.seconds,
            "max_relative_residual": result.max_relative_residual,
            "n_samples": operator.loss.n_samples,
            "cached_chunks": operator.cached_chunks,
            "n_chunks": len(operator.chunks),
        }
    )


def analyse(
    run_path: Path,
    data_path: Path,
    out: Path,
    *,
    k: int = 100,
    solver: str = "lanczos",
    tol: float = 1e-4,
    dtype: str = "float32",
    device: str = "auto",
    chunk_size: int = 16384,
    memory_budget: float = 0.3e9,
    variant: str = "corrected",
    max_matvecs: int | None = None,
    workers: int = 1,
) -> None:
    """Eigenpairs and gradients of one checkpoint's actor and critic losses, written atomically to ``out``.

    ``workers``: threads for the Hessian-vector products (``HessianOperator``); the CLI passes ``--threads``.
    """
    torch_dtype, torch_device = DTYPES[dtype], resolve_device(device)
    started = time.time()
    with RunFile(run_path) as run:
        step, precise, minibatch, offsets = read_batches(run, data_path)
        if injected("eigen", f"{run.algo}/{run.attrs.get('task', '')}/seed{run.attrs.get('seed', '')}", step):
            raise RuntimeError(f"{out}: injected failure (PGSUBSPACES_INJECT_FAULT, tests only)")
        settings = loss_settings(run, step)
        with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
            f.attrs.update(
                {
                    **analysis_attrs(FORMAT, FORMAT_VERSION, run, step, variant),
                    "k": k,
                    "solver": solver,
                    "tol": tol,
                    "dtype": dtype,
                    "device": str(torch_device),
                    "data_file": str(data_path),
                    "settings": json.dumps(
                        {"chunk_size": chunk_size, "memory_budget": memory_budget, "max_matvecs": max_matvecs}
                    ),
                }
            )
            f.attrs.update(run_identity(run))
            for net in NETS:
                for name, batch in (("precise", precise), ("minibatch", minibatch)):
                    loss = _loss(
                        run,
                        step,
                        net,
                        _tensors(batch, torch_device, torch_dtype),
                        settings,
                        variant,
                        torch_device,
                        torch_dtype,
                    )
                    operator = HessianOperator(loss, loss.theta0(), chunk_size, memory_budget, workers)
                    result = solve(operator, solver, k, tol, max_matvecs)
                    group = f.create_group(f"{net}/{name}")
                    _write_result(group, result, operator)
                    if name == "precise":
                        group.create_dataset("gradient", data=operator.gradient().cpu().numpy())
                    log.info(
                        "step %d %s %s: %d eigenpairs, %d matvecs, %.1f s, max rel. residual %.2g",
                        step,
                        net,
                        name,
                        len(result.eigenvalues),
                        result.n_matvecs,
                        result.seconds,
                        result.max_relative_residual,
                    )
                gradients = []
                for start, stop in zip(offsets, offsets[1:]):
                    loss = _loss(
                        run,
                        step,
                        net,
                        _tensors(minibatch, torch_device, torch_dtype, start, stop),
                        settings,
                        variant,
                        torch_device,
                        torch_dtype,
                    )
                    theta = loss.theta0().requires_grad_(True)
                    gradients.append(th.autograd.grad(loss.loss(theta), theta)[0].detach().cpu().numpy())
                f.create_dataset(f"{net}/minibatch/gradients", data=np.stack(gradients))
            f.attrs["seconds"] = time.time() - started
    log.info("wrote %s in %.0f s", out, time.time() - started)


def operator_parser(doc: str) -> argparse.ArgumentParser:
    """The command line shared by the stages that build Hessian operators of a checkpoint (eigen, spectrum)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, type=Path)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--chunk-size", type=int, default=16384)
    parser.add_argument("--memory-budget-gb", type=float, default=0.3)
    parser.add_argument("--variant", default="corrected")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, and the operator's chunk workers")
    return parser


def operator_options(args: argparse.Namespace) -> dict[str, Any]:
    """Parse-result to keyword arguments; also sets up logging and torch's threads."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    th.set_num_threads(args.threads)
    return {
        "dtype": args.dtype,
        "device": args.device,
        "chunk_size": args.chunk_size,
        "memory_budget": args.memory_budget_gb * 1e9,
        "variant": args.variant,
        "workers": args.threads,
    }


def main(argv: list[str] | None = None) -> None:
    parser = operator_parser(__doc__)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--solver", choices=SOLVERS, default="lanczos")
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--max-matvecs", type=int)
    args = parser.parse_args(argv)
    options = operator_options(args)
    analyse(
        args.run,
        args.data,
        args.out,
        k=args.k,
        solver=args.solver,
        tol=args.tol,
        max_matvecs=args.max_matvecs,
        **options,
    )


if __name__ == "__main__":
    main()
