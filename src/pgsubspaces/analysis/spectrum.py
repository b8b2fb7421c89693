"""Every eigenvalue of the precise actor and critic Hessians of one checkpoint (paper Fig. 1).

    python -m pgsubspaces.analysis.spectrum --run RUN.h5 --data DATA.h5 --out SPECTRUM.h5 [--analysis JSON]

The top-k solvers keep only k eigenvalues; the histogram of Fig. 1 needs all n, so the Hessian is built
explicitly (n Hessian-vector products, then eigh in float64). n^2 memory and n matvecs: only for small
networks, and a network above ``spectrum_max_parameters`` is refused before any product is computed.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch as th

from pgsubspaces import h5io
from pgsubspaces.analysis.checkpoint_losses import (
    DTYPES,
    checkpoint_loss,
    graph_budget_bytes,
    read_batches,
    resolve_device,
    to_tensors,
)
from pgsubspaces.analysis.data import analysis_attrs, run_identity
from pgsubspaces.analysis.eigen import parse_operator_args
from pgsubspaces.analysis.hessian import HessianOperator
from pgsubspaces.config import AnalysisSpec
from pgsubspaces.export.runfile import RunFile
from pgsubspaces.train.parameters import NETS

log = logging.getLogger("pgsubspaces.analysis.spectrum")

FORMAT = "pgsubspaces-spectrum"
FORMAT_VERSION = h5io.FORMATS[FORMAT]  # 2: checksummed (h5io)


def full_spectrum(run_path: Path, data_path: Path, out: Path, spec: AnalysisSpec, workers: int = 1) -> None:
    """All eigenvalues (descending) of both networks' precise Hessians, written atomically to ``out``.

    ``spec.spectrum_samples``: use only the first that many samples of the precise set (an explicit Hessian
    costs n products; the default config trades samples for time), None for all.
    """
    dtype, device = DTYPES[spec.dtype], resolve_device(spec.device)
    with RunFile(run_path) as run:
        batches = read_batches(run, data_path)
        step = batches.step
        precise = {key: value[: spec.spectrum_samples] for key, value in batches.precise.items()}
        batch = to_tensors(precise, device, dtype)
        losses = {net: checkpoint_loss(run, step, net, batch, spec.variant, device, dtype) for net in NETS}
        for net, loss in losses.items():
            n = loss.layout.size
            if n > spec.spectrum_max_parameters:
                raise ValueError(
                    f"{run_path}: the {net} has {n} parameters, above figures.spectrum.max_parameters = "
                    f"{spec.spectrum_max_parameters} for an explicit Hessian ({n}^2 entries, {n} Hessian-vector "
                    "products); raise it or leave this task out of figures.spectrum.tasks"
                )
        budget = graph_budget_bytes(spec.memory_budget_gb, device)
        with h5io.write_h5(out) as f:
            f.attrs.update({**analysis_attrs(FORMAT, FORMAT_VERSION, run, step, spec.variant), "dtype": spec.dtype})
            f.attrs["samples"] = len(next(iter(precise.values())))
            f.attrs["analysis"] = spec.stage_json("spectrum")
            f.attrs.update(run_identity(run))
            for net, loss in losses.items():
                started = time.time()
                operator = HessianOperator(loss, loss.theta0(), spec.chunk_size, budget, workers)
                values = th.linalg.eigvalsh(operator.dense().double()).flip(0).cpu().numpy()
                h5io.create_dataset(f, f"{net}/eigenvalues", values)
                f[net].attrs.update({"n_samples": loss.n_samples, "seconds": time.time() - started})
                log.info("step %d %s: %d eigenvalues in %.0f s", step, net, len(values), time.time() - started)


def main(argv: list[str] | None = None) -> None:
    args, spec = parse_operator_args(__doc__, argv)
    with h5io.exit_on_file_errors():
        full_spectrum(args.run, args.data, args.out, spec, workers=args.threads)


if __name__ == "__main__":
    main()
