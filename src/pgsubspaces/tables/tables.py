"""Tidy CSV tables of one run from its run file and eigen files (columns documented in docs/tables.md).

    python -m pgsubspaces.tables run --run RUN.h5 --eigen E0.h5 E1.h5 ... --out-dir DIR [--t1 0 ...] [--analysis JSON]
    python -m pgsubspaces.tables merge RUN_DIR ... --out-dir DIR
    python -m pgsubspaces.tables finding-ii results/<experiment>/tables/<variant>/fractions.csv
    python -m pgsubspaces.tables path-findings PATH_TABLES_DIR [--out CSV]

Writes fractions.csv, overlaps.csv, phases.csv, curves.csv and spectra.csv for the run; ``merge`` concatenates
the per-run tables of an experiment. Every fraction and overlap carries a bound on its error from the
eigensolver (``subspace_bound``; docs/eigen-accuracy.md) and whether that is within ``analysis.subspace_tol``.
"""

from __future__ import annotations

import argparse
import csv
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from pgsubspaces import h5io
from pgsubspaces.atomic import atomic_path
from pgsubspaces.config import AnalysisSpec
from pgsubspaces.export.runfile import RunFile
from pgsubspaces.tables.metrics import (
    Phases,
    combined_eigenvectors,
    combined_order,
    random_subspace_fraction,
    subspace_fraction,
    subspace_overlap,
    training_phases,
)

log = logging.getLogger("pgsubspaces.tables")

TABLES = {
    "fractions": (
        "algo",
        "task",
        "seed",
        "step",
        "phase",
        "net",
        "gradient",
        "hessian",
        "k",
        "n_params",
        "fraction",
        "chance",
        "random_control",
        "subspace_bound",
        "resolved",
        "resumed_from",
    ),
    "overlaps": (
        "algo",
        "task",
        "seed",
        "net",
        "k",
        "n_params",
        "t1",
        "t2",
        "overlap",
        "chance",
        "subspace_bound",
        "resolved",
        "resumed_from",
    ),
    "phases": ("algo", "task", "seed", "end_initial", "start_convergence", "n_initial", "n_training", "n_convergence"),
    "curves": ("algo", "task", "seed", "curve", "step", "value", "resumed_from"),
    "spectra": ("algo", "task", "seed", "step", "net", "hessian", "kind", "index", "eigenvalue"),
}


def write_table(path: Path, name: str, rows: Iterable[Sequence]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(TABLES[name])
        writer.writerows(rows)


class EigenFile:
    """The arrays of one eigen file that the tables need, read once."""

    def __init__(self, path: Path):
        nets, hessians = ("actor", "critic"), ("precise", "minibatch")
        with h5io.open_h5(path, "eigen file", "pgsubspaces-eigen", h5io.FORMATS["pgsubspaces-eigen"]) as f:

            def read(key: str) -> np.ndarray:
                return h5io.read(f, key, path)

            with h5io.reading(path, "the root attributes 'step', 'subspace_tol'"):
                self.step, self.subspace_tol = int(f.attrs["step"]), float(f.attrs["subspace_tol"])
            self.values = {(net, h): read(f"{net}/{h}/eigenvalues") for net in nets for h in hessians}
            self.vectors = {(net, h): read(f"{net}/{h}/eigenvectors") for net in nets for h in hessians}
            self.bounds = {(net, h): read(f"{net}/{h}/subspace_bounds") for net in nets for h in hessians}
            self.gradient = {net: read(f"{net}/precise/gradient") for net in nets}
            self.gradients = {net: read(f"{net}/minibatch/gradients") for net in nets}
            with h5io.reading(path, "the eigen file's groups"):
                full = [net for net in nets if "all_eigenvalues" in f[f"{net}/precise"]]
            self.all_values = {net: read(f"{net}/precise/all_eigenvalues") for net in full}

    def subspace(self, net: str, hessian: str, k: int) -> np.ndarray:
        if net != "combined":
            return self.vectors[net, hessian][:, :k]
        return combined_eigenvectors(
            self.values["actor", hessian],
            self.vectors["actor", hessian],
            self.values["critic", hessian],
            self.vectors["critic", hessian],
            k,
        )[1]

    def subspace_bound(self, net: str, hessian: str, k: int) -> float:
        """The bound on sin of the largest principal angle between the computed and the true top-k subspace.
        Combined: the larger of its actor and critic parts' bounds (the merge order taken as right)."""
        if net != "combined":
            return float(self.bounds[net, hessian][k - 1])
        order = combined_order(self.values["actor", hessian], self.values["critic", hessian], k)
        counts = {part: sum(net == part for net, _ in order) for part in ("actor", "critic")}
        return max((float(self.bounds[part, hessian][j - 1]) for part, j in counts.items() if j > 0), default=0.0)

    def gradients_of(self, net: str, kind: str) -> np.ndarray:
        """Precise gradient (1, n) or mini-batch gradients (m, n); combined = [actor; critic]."""
        if net == "combined":
            return np.concatenate([self.gradients_of("actor", kind), self.gradients_of("critic", kind)], axis=1)
        return np.atleast_2d(self.gradient[net] if kind == "precise" else self.gradients[net])


def control_rng(control_seed: int, run_seed: int, step: int) -> np.random.Generator:
    """The random-subspace control's generator of one checkpoint: seeded by (tables seed, run seed, step),
    so it does not depend on which other checkpoints a run has."""
    return np.random.default_rng([control_seed, max(run_seed, 0), step])


def fraction_rows(identity: tuple, eigen: EigenFile, k_levels: Sequence[int], phase: str, rng: np.random.Generator):
    for net in ("actor", "critic", "combined"):
        for hessian in ("precise", "minibatch"):
            available = eigen.vectors[("actor" if net == "combined" else net), hessian].shape[1]
            for k in (k for k in k_levels if k <= available):
                basis = eigen.subspace(net, hessian, k)
                bound = eigen.subspace_bound(net, hessian, k)
                for gradient in ("precise", "minibatch"):
                    g = eigen.gradients_of(net, gradient)
                    n = g.shape[1]
                    yield (
                        *identity,
                        eigen.step,
                        phase,
                        net,
                        gradient,
                        hessian,
                        k,
                        n,
                        subspace_fraction(basis, g),
                        k / n,
                        random_subspace_fraction(g, k, rng),
                        bound,
                        bound <= eigen.subspace_tol,
                    )


def overlap_rows(identity: tuple, eigens: list[EigenFile], k_levels: Sequence[int], t1_levels: Sequence[int]):
    """S_overlap(t1, t2) for t2 >= t1; its bound is the sum of both subspaces' bounds (docs/eigen-accuracy.md)."""
    by_step = {e.step: e for e in eigens}
    for net in ("actor", "critic", "combined"):
        for t1 in (t for t in t1_levels if t in by_step):
            first = by_step[t1]
            available = first.vectors[("actor" if net == "combined" else net), "precise"].shape[1]
            for k in (k for k in k_levels if k <= available):
                v1 = first.subspace(net, "precise", k)
                n = v1.shape[0]
                for t2 in sorted(s for s in by_step if s >= t1):
                    second = by_step[t2]
                    if t2 == t1:
                        overlap, bound = 1.0, 0.0
                    else:
                        overlap = subspace_overlap(v1, second.subspace(net, "precise", k))
                        bound = min(
                            1.0, first.subspace_bound(net, "precise", k) + second.subspace_bound(net, "precise", k)
                        )
                    resolved = bound <= min(first.subspace_tol, second.subspace_tol)
                    yield (*identity, net, k, n, t1, t2, overlap, k / n, bound, resolved)


def run_phases(run_path: Path, curves: dict[str, np.ndarray], spec: AnalysisSpec) -> Phases | None:
    """The paper's phases of the run's training-return curve, or None (fewer than two points)."""
    steps = curves.get("rollouts/step", np.zeros(0))
    if len(steps) < 2:
        log.warning("%s: fewer than two training-return points, no phases", run_path)
        return None
    return training_phases(
        steps, curves["rollouts/mean_return"], spec.smoothing_steps, spec.training_threshold, spec.convergence_threshold
    )


def curve_rows(identity: tuple, curves: dict[str, np.ndarray]) -> list[tuple]:
    rows = []
    for name, key in (("eval", "eval/mean_return"), ("train", "rollouts/mean_return")):
        steps = curves.get(key.split("/")[0] + "/step", np.zeros(0))
        rows += [(*identity, name, int(s), float(v)) for s, v in zip(steps, curves.get(key, []))]
    return rows


def spectrum_rows(identity: tuple, eigens: list[EigenFile], spectrum_paths: Sequence[Path]) -> list[tuple]:
    rows = []
    for eigen in eigens:
        for net in ("actor", "critic"):
            for hessian in ("precise", "minibatch"):
                if hessian == "precise" and net in eigen.all_values:
                    values, kind = eigen.all_values[net], "all"
                else:
                    values, kind = eigen.values[net, hessian], "top_k"
                rows += [(*identity, eigen.step, net, hessian, kind, i, float(v)) for i, v in enumerate(values)]
    for path in spectrum_paths:
        step, spectra = read_spectrum(path)
        for net, values in spectra.items():
            rows += [(*identity, step, net, "precise", "all", i, float(v)) for i, v in enumerate(values)]
    return rows


def resumed_from(run: RunFile) -> str:
    """The steps the run's training resumed from, ';'-joined ('' for an uninterrupted training or a zip).

    A resumed training does not equal an uninterrupted one of the same seed after the step it resumed
    from (README, "Resumed runs"), so its rows say so.
    """
    summary = run.config("training", None) or {}
    steps = summary.get("resumes")
    if steps is None:  # run files of before the record of every resume: only the last one is known
        steps = [] if summary.get("resumed_from") is None else [summary["resumed_from"]]
    return ";".join(str(int(step)) for step in steps)


def _with(rows: Iterable[tuple], value) -> Iterable[tuple]:
    return (row + (value,) for row in rows)


def make_tables(
    run_path: Path,
    eigen_paths: Sequence[Path],
    out_dir: Path,
    spec: AnalysisSpec,
    t1_levels: Sequence[int],
    spectrum_paths: Sequence[Path] = (),
) -> None:
    """The five tables of one run, written atomically into ``out_dir``; ``spectrum_paths``: full spectra."""
    eigens = sorted((EigenFile(p) for p in eigen_paths), key=lambda e: e.step)
    with RunFile(run_path) as run:
        identity = (run.algo, str(run.attrs.get("task", "")), int(run.attrs.get("seed", -1)))
        curves = run.curves()
        resumed = resumed_from(run)
    phases = run_phases(run_path, curves, spec)
    phase_of = phases.of if phases is not None else (lambda step: "")
    fractions = (
        row
        for eigen in eigens
        for row in fraction_rows(
            identity,
            eigen,
            spec.k_levels,
            phase_of(eigen.step),
            control_rng(spec.control_seed, identity[2], eigen.step),
        )
    )
    write_table(out_dir / "fractions.csv", "fractions", _with(fractions, resumed))
    overlaps = overlap_rows(identity, eigens, spec.k_levels, t1_levels)
    write_table(out_dir / "overlaps.csv", "overlaps", _with(overlaps, resumed))
    write_table(out_dir / "curves.csv", "curves", _with(curve_rows(identity, curves), resumed))
    phase_rows = []
    if phases is not None:
        counts = [sum(phases.of(e.step) == p for e in eigens) for p in ("initial", "training", "convergence")]
        phase_rows.append((*identity, phases.end_initial, phases.start_convergence, *counts))
    write_table(out_dir / "phases.csv", "phases", phase_rows)
    write_table(out_dir / "spectra.csv", "spectra", spectrum_rows(identity, eigens, spectrum_paths))


def read_spectrum(path: Path) -> tuple[int, dict[str, np.ndarray]]:
    """The step and every eigenvalue per network of a spectrum file (``pgsubspaces.analysis.spectrum``)."""
    with h5io.open_h5(path, "spectrum file", "pgsubspaces-spectrum", h5io.FORMATS["pgsubspaces-spectrum"]) as f:
        return int(f.attrs["step"]), {net: h5io.read(f, f"{net}/eigenvalues", path) for net in ("actor", "critic")}


def finding_ii(fractions_csv: Path):
    """The paper's finding (ii) per checkpoint: S_frac at the largest k, precise gradient in the precise
    Hessian's subspace, against the chance level k/n. A DataFrame with a boolean column ``holds``."""
    import pandas as pd

    fractions = pd.read_csv(fractions_csv)
    rows = fractions[(fractions.gradient == "precise") & (fractions.hessian == "precise")]
    rows = rows[rows.k == rows.groupby(["algo", "task", "net"]).k.transform("max")]
    rows = rows[["algo", "task", "seed", "step", "net", "k", "n_params", "fraction", "chance", "random_control"]]
    return rows.assign(holds=rows.fraction > rows.chance).reset_index(drop=True)


def merge(paths: Sequence[Path], out: Path) -> None:
    """Concatenate CSV tables with one header."""
    with atomic_path(out) as tmp, open(tmp, "w", newline="") as target:
        for index, path in enumerate(paths):
            with open(path) as source:
                header = source.readline()
                if index == 0:
                    target.write(header)
                target.write(source.read())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run")
    run.add_argument("--run", required=True, type=Path)
    run.add_argument("--eigen", required=True, nargs="+", type=Path)
    run.add_argument("--out-dir", required=True, type=Path)
    run.add_argument("--t1", type=int, nargs="*", default=[], help="overlap references t1 (those with an eigen file)")
    run.add_argument("--analysis", help="analysis settings as JSON (config.AnalysisSpec fields); default the schema's")
    run.add_argument("--spectra", nargs="*", type=Path, default=[], help="full-spectrum files of the run")
    together = commands.add_parser("merge", help="concatenate the tables of several runs")
    together.add_argument("runs", nargs="+", type=Path, help="per-run table folders")
    together.add_argument("--out-dir", required=True, type=Path)
    check = commands.add_parser("finding-ii", help="S_frac > k/n at the largest k for every checkpoint?")
    check.add_argument("fractions", type=Path, help="a fractions.csv (per run or merged)")
    path = commands.add_parser("path-findings", help="the policy-path paper's four phenomena, per run")
    path.add_argument("tables", type=Path, help="a folder of path tables (python -m pgsubspaces.path.lens)")
    path.add_argument("--out", type=Path, help="the CSV of verdicts and numbers; default TABLES/path_findings.csv")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.command == "path-findings":
        from pgsubspaces.path.findings import path_findings, report

        findings = path_findings(args.tables)
        with atomic_path(args.out or args.tables / "path_findings.csv") as tmp:
            findings.to_csv(tmp, index=False)
        print(report(findings))
        return
    if args.command == "finding-ii":
        rows = finding_ii(args.fractions)
        summary = rows.groupby(["algo", "task", "net"]).agg(
            checkpoints=("holds", "size"),
            holds=("holds", "sum"),
            min_fraction=("fraction", "min"),
            chance=("chance", "max"),
        )
        print(summary.to_string())
        failed = rows[~rows.holds]
        if len(failed):
            print(f"\nfinding (ii) fails at {len(failed)} checkpoints:\n{failed.to_string(index=False)}")
            raise SystemExit(1)
        print(f"\nfinding (ii) holds at all {len(rows)} checkpoints (precise gradient, precise Hessian, k = largest)")
        return
    if args.command == "run":
        spec = AnalysisSpec.from_json(args.analysis)
        with h5io.exit_on_file_errors():
            make_tables(args.run, args.eigen, args.out_dir, spec, args.t1, args.spectra)
    else:
        for name in TABLES:
            merge([folder / f"{name}.csv" for folder in args.runs], args.out_dir / f"{name}.csv")


if __name__ == "__main__":
    main()
