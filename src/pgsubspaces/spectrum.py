"""Every eigenvalue of the precise actor and critic Hessians of one checkpoint (paper Fig. 1).

    python -m pgsubspaces.spectrum --run RUN.h5 --data DATA.h5 --out SPECTRUM.h5 [--max-parameters 10000]

The top-k solvers keep only k eigenvalues; the histogram of Fig. 1 needs all n, so the Hessian is built
explicitly (n Hessian-vector products, then eigh in float64). n^2 memory and n matvecs: only for small
networks, and a network above ``max_parameters`` is refused before any product is computed.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import h5py
import torch as th

from pgsubspaces.analysis_data import analysis_attrs, run_identity
from pgsubspaces.atomic import atomic_path
from pgsubspaces.eigen import (
    DTYPES,
    _loss,
    _tensors,
    loss_settings,
    operator_options,
    operator_parser,
    read_batches,
    resolve_device,
)
from pgsubspaces.hessian import HessianOperator
from pgsubspaces.parameters import NETS
from pgsubspaces.runfile import RunFile

log = logging.getLogger("pgsubspaces.spectrum")

FORMAT = "pgsubspaces-spectrum"
FORMAT_VERSION = 1


def full_spectrum(
    run_path: Path,
    data_path: Path,
    out: Path,
    *,
    max_parameters: int = 10_000,
    samples: int | None = None,
    dtype: str = "float32",
    device: str = "auto",
    chunk_size: int = 16384,
    memory_budget: float = 0.3e9,
    variant: str = "corrected",
    workers: int = 1,
) -> None:
    """All eigenvalues (descending) of both networks' precise Hessians, written atomically to ``out``.

    ``samples``: use only the first that many samples of the precise set (an explicit Hessian costs n
    products; the default config trades samples for time), None for all.
    """
    torch_dtype, torch_device = DTYPES[dtype], resolve_device(device)
    with RunFile(run_path) as run:
        step, precise, _, _ = read_batches(run, data_path)
        precise = {key: value[:samples] for key, value in precise.items()}
        settings = loss_settings(run, step)
        batch = _tensors(precise, torch_device, torch_dtype)
        losses = {net: _loss(run, step, net, batch, settings, variant, torch_device, torch_dtype) for net in NETS}
        for net, loss in losses.items():
            n = loss.layout.size
            if n > max_parameters:
                raise ValueError(
                    f"{run_path}: the {net} has {n} parameters, above max_parameters = {max_parameters} for an "
                    f"explicit Hessian ({n}^2 entries, {n} Hessian-vector products); raise "
                    "figures.spectrum.max_parameters or leave this task out of figures.spectrum.tasks"
                )
        with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
            f.attrs.update({**analysis_attrs(FORMAT, FORMAT_VERSION, run, step, variant), "dtype": dtype})
            f.attrs["samples"] = len(next(iter(precise.values())))
            f.attrs.update(run_identity(run))
            for net, loss in losses.items():
                started = time.time()
                operator = HessianOperator(loss, loss.theta0(), chunk_size, memory_budget, workers)
                values = th.linalg.eigvalsh(operator.dense().double()).flip(0).cpu().numpy()
                f.create_dataset(f"{net}/eigenvalues", data=values)
                f[net].attrs.update({"n_samples": loss.n_samples, "seconds": time.time() - started})
                log.info("step %d %s: %d eigenvalues in %.0f s", step, net, len(values), time.time() - started)


def main(argv: list[str] | None = None) -> None:
    parser = operator_parser(__doc__)
    parser.add_argument("--max-parameters", type=int, default=10_000)
    parser.add_argument("--samples", type=int, help="the first that many precise samples (default all)")
    args = parser.parse_args(argv)
    options = operator_options(args)
    full_spectrum(args.run, args.data, args.out, max_parameters=args.max_parameters, samples=args.samples, **options)


if __name__ == "__main__":
    main()
