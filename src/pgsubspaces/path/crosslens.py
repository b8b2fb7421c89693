"""The cross-lens of one run: the Hessian's top-k eigenspaces of the actor against the policy path just after
each checkpoint (docs/crosslens.md; columns CROSSLENS_COLUMNS).

    python -m pgsubspaces.path.crosslens --run RUN.h5 --eigen E1.h5 E2.h5 ... --out CSV --settings JSON
    python -m pgsubspaces.path.crosslens merge RUN1.csv RUN2.csv ... --out CSV

JSON holds every setting (none has a default here): {"window_snapshots": 40, "ranks": [1, 2, 4, 8],
"ks": [1, 10, 100]}. At each checkpoint t with an eigen file the window is the next ``window_snapshots``
snapshots of ``/actor_path``; their displacements from theta_t give the path's own top-r directions P_r and
the window's end displacement Delta. Rows: the overlap of V_k with P_r, and the share of Delta in V_k and in P_r.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from pgsubspaces import h5io
from pgsubspaces.analysis.eigen import FORMAT as EIGEN_FORMAT
from pgsubspaces.analysis.eigen import FORMAT_VERSION as EIGEN_VERSION
from pgsubspaces.atomic import atomic_path
from pgsubspaces.export.runfile import RunFile, RunFileError
from pgsubspaces.path.columns import CROSSLENS_COLUMNS
from pgsubspaces.path.svd import temporal_svd
from pgsubspaces.tables.metrics import subspace_fraction
from pgsubspaces.tables.tables import merge

log = logging.getLogger("pgsubspaces.path.crosslens")

HESSIANS = ("precise", "minibatch")
MEASURES = ("overlap", "hessian_fraction", "path_fraction")


@dataclass(frozen=True)
class CrossLensSettings:
    """The cross-lens's settings (config section ``crosslens``; the schema holds their defaults).

    Attributes:
        window_snapshots: path snapshots after the checkpoint that form its window (fewer where the path ends).
        ranks: the path's directions r compared, each capped at the window's rank.
        ks: the Hessian's subspace dimensions k, each capped at the eigen file's k.
    """

    window_snapshots: int
    ranks: tuple[int, ...]
    ks: tuple[int, ...]

    @classmethod
    def from_json(cls, text: str) -> CrossLensSettings:
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"crosslens settings are not JSON ({error}): {text!r}") from None
        if not isinstance(values, dict):
            raise ValueError(f"crosslens settings must be a JSON object, got {text!r}")
        return cls.from_dict(values)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CrossLensSettings:
        names = tuple(cls.__dataclass_fields__)
        missing, unknown = [n for n in names if n not in values], sorted(set(values) - set(names))
        if missing or unknown:
            raise ValueError(
                f"crosslens settings: missing {missing}, unknown {unknown}; expected exactly {list(names)}"
            )

        def count(key: str, value: Any, least: int) -> int:
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"crosslens setting '{key}' holds {value!r}; expected an integer >= {least}")
            return value

        def levels(key: str) -> tuple[int, ...]:
            value = values[key]
            if not isinstance(value, list) or not value:
                raise ValueError(f"crosslens setting '{key}' = {value!r}; expected a non-empty list of integers >= 1")
            found = tuple(count(key, item, 1) for item in value)
            if len(set(found)) != len(found):
                raise ValueError(f"crosslens setting '{key}' = {value!r} repeats a level")
            return tuple(sorted(found))

        return cls(count("window_snapshots", values["window_snapshots"], 2), levels("ranks"), levels("ks"))


# -- the measures ----------------------------------------------------------------------------------------


def subspace_overlap(first: np.ndarray, second: np.ndarray) -> float:
    """||V^T P||_F^2 / min(k, r) for (n, k) and (n, r) orthonormal columns: 1 when the smaller space lies in
    the larger, max(k, r) / n on average for a uniformly random one (docs/crosslens.md)."""
    first, second = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if first.ndim != 2 or second.ndim != 2 or first.shape[0] != second.shape[0]:
        raise ValueError(f"subspaces of shapes {first.shape} and {second.shape}; expected (n, k) and (n, r)")
    return float(np.sum((first.T @ second) ** 2) / min(first.shape[1], second.shape[1]))


def overlap_chance(k: int, r: int, n: int) -> float:
    """E[overlap] of a fixed k-space and a uniformly random r-space in R^n: (k r / n) / min(k, r)."""
    return k * r / (n * min(k, r))


class Window(NamedTuple):
    """The path just after a checkpoint, relative to it.

    Attributes:
        directions: (m, rank): the right singular vectors of D = [theta_{s_j} - theta_t]_j, singular values
            descending; P_r is the first r columns.
        rank: the numerical rank of D (numpy's matrix_rank tolerance).
        end: (m,): Delta = theta_{s_W} - theta_t, the last row of D.
    """

    directions: np.ndarray
    rank: int
    end: np.ndarray


def path_window(theta: np.ndarray, snapshots: np.ndarray) -> Window:
    """The displacements of ``snapshots`` (W, m) from ``theta`` (m,), in float64, and their uncentred SVD."""
    displacements = np.asarray(snapshots, dtype=np.float64) - np.asarray(theta, dtype=np.float64)
    svd = temporal_svd(displacements)
    tolerance = svd.s[0] * max(displacements.shape) * np.finfo(np.float64).eps
    rank = int(np.count_nonzero(svd.s > tolerance))
    return Window(svd.vt[:rank].T, rank, displacements[-1])


def window_indices(updates: np.ndarray, actor_updates: int, size: int) -> np.ndarray:
    """The first ``size`` snapshots recorded after the checkpoint: path updates > its actor updates."""
    return np.nonzero(np.asarray(updates) > actor_updates)[0][:size]


def capped(levels: Sequence[int], cap: int) -> list[int]:
    """Each level capped at ``cap``, without repeats, ascending."""
    return sorted({min(level, cap) for level in levels})


# -- the files -------------------------------------------------------------------------------------------


class ActorEigen(NamedTuple):
    """The actor's eigenvectors (float64, (n, k)) and subspace bounds (k,) per Hessian kind of one eigen file."""

    path: Path
    step: int
    subspace_tol: float
    vectors: dict[str, np.ndarray]
    bounds: dict[str, np.ndarray]


def file_identity(attrs: dict[str, Any]) -> tuple[str, str, int]:
    """(algo, task, seed) as the tables write them: '' for a missing task, -1 for a missing seed."""
    seed = attrs.get("seed")
    return str(attrs.get("algo", "")), str(attrs.get("task", "")), int(seed) if seed is not None else -1


def read_actor_eigen(path: Path, identity: tuple[str, str, int], n_params: int, run_path: Path) -> ActorEigen:
    """The actor's part of an eigen file of the run ``identity`` whose actor has ``n_params`` parameters."""
    with h5io.open_h5(path, "eigen file", EIGEN_FORMAT, EIGEN_VERSION) as f:
        with h5io.reading(path, "the root attributes 'algo', 'task', 'seed', 'step', 'subspace_tol'"):
            attrs = dict(f.attrs)
            step, subspace_tol = int(attrs["step"]), float(attrs["subspace_tol"])
        found = file_identity(attrs)
        if found != identity:
            raise RunFileError(
                f"{path}: an eigen file of the run (algo, task, seed) = {found}, not of {run_path}, which is {identity}"
            )
        with h5io.reading(path, "the group '/actor'"):
            hessians = [h for h in HESSIANS if f"actor/{h}/eigenvectors" in f]
        if not hessians:
            raise RunFileError(f"{path}: no '/actor/precise/eigenvectors' nor '/actor/minibatch/eigenvectors'")
        vectors, bounds = {}, {}
        for hessian in hessians:
            vectors[hessian] = h5io.read(f, f"actor/{hessian}/eigenvectors", path).astype(np.float64)
            bounds[hessian] = h5io.read(f, f"actor/{hessian}/subspace_bounds", path).astype(np.float64)
            shape = vectors[hessian].shape
            if len(shape) != 2 or shape[0] != n_params or bounds[hessian].shape != (shape[1],):
                raise RunFileError(
                    f"{path}: '/actor/{hessian}/eigenvectors' has shape {shape} with {bounds[hessian].shape[0]} "
                    f"subspace bounds; expected ({n_params}, k) and k: the actor of {run_path} ('/layout/actor' and "
                    f"'/actor_path') has {n_params} parameters, so these eigenvectors are of another network"
                )
    return ActorEigen(path, step, subspace_tol, vectors, bounds)


class Checkpoint(NamedTuple):
    """A checkpoint's actor theta_t and its window of the path: snapshots (W, m), their updates and env steps."""

    step: int
    actor_updates: int
    theta: np.ndarray
    snapshots: np.ndarray
    updates: np.ndarray


class RunPath:
    """The run file's path clock and actor layout; the snapshots are read per window (a long path of a large
    actor does not fit in memory at once)."""

    def __init__(self, run: RunFile):
        self.run, self.path = run, run.path
        self.identity = file_identity(run.attrs)
        self.n_params = run.layout("actor").size
        try:
            run._get("actor_path/params")
        except RunFileError:
            raise RunFileError(
                f"{self.path}: no '/actor_path' (train with actor_path.every_updates > 0 to record one)"
            ) from None
        self.updates = run._read("actor_path/updates").astype(np.int64)
        if np.any(np.diff(self.updates) <= 0):
            raise RunFileError(f"{self.path}: '/actor_path/updates' is not strictly increasing")
        shape = run._get("actor_path/params").shape
        if shape != (len(self.updates), self.n_params):
            raise RunFileError(
                f"{self.path}: '/actor_path/params' has shape {shape} with {len(self.updates)} updates; expected "
                f"({len(self.updates)}, {self.n_params}) (the actor's layout)"
            )

    def checkpoint(self, step: int, size: int, eigen_path: Path) -> Checkpoint:
        if step not in set(self.run.steps.tolist()):
            raise RunFileError(f"{eigen_path}: step {step} is not a checkpoint of {self.path}")
        attrs = self.run.checkpoint_attrs(step)
        if "actor_updates" not in attrs:
            raise RunFileError(
                f"{self.path}: checkpoint step {step} has no attribute 'actor_updates' (the '/actor_path' clock)"
            )
        actor_updates = int(attrs["actor_updates"])
        index = window_indices(self.updates, actor_updates, size)
        snapshots = np.zeros((0, self.n_params), dtype=np.float32)
        if index.size:
            snapshots = self.run._read("actor_path/params", np.s_[index[0] : index[-1] + 1])
            bad = np.count_nonzero(~np.isfinite(snapshots))
            if bad:
                raise RunFileError(f"{self.path}: '/actor_path/params' holds {bad} NaN or inf values after step {step}")
        theta = self.run.vector(step, "actor")
        return Checkpoint(step, actor_updates, theta, snapshots, self.updates[index])


# -- the rows --------------------------------------------------------------------------------------------


def checkpoint_rows(
    identity: tuple[str, str, int], checkpoint: Checkpoint, eigen: ActorEigen, settings: CrossLensSettings
) -> Iterator[tuple]:
    """Every row of one checkpoint: overlap and hessian_fraction per Hessian kind, then path_fraction."""
    size = len(checkpoint.snapshots)
    if size < 2:
        log.warning(
            "%s: checkpoint step %d: %d path snapshot(s) after its %d actor updates, fewer than 2; skipped",
            eigen.path, checkpoint.step, size, checkpoint.actor_updates,
        )  # fmt: skip
        return
    window = path_window(checkpoint.theta, checkpoint.snapshots)
    if window.rank == 0:
        log.warning("%s: checkpoint step %d: the actor does not move in its window; skipped", eigen.path,
                    checkpoint.step)  # fmt: skip
        return
    if size < settings.window_snapshots:
        log.info("checkpoint step %d: the path ends %d snapshots after it (window %d)", checkpoint.step, size,
                 settings.window_snapshots)  # fmt: skip
    moved = bool(np.any(window.end != 0))
    if not moved:
        log.warning("checkpoint step %d: the window ends where it starts (Delta = 0): no fractions", checkpoint.step)
    n = len(checkpoint.theta)
    ranks = capped(settings.ranks, window.rank)
    key = (*identity, checkpoint.step)
    for hessian, vectors in eigen.vectors.items():
        for k in capped(settings.ks, vectors.shape[1]):
            basis, bound = vectors[:, :k], float(eigen.bounds[hessian][k - 1])
            accuracy = (bound, bound <= eigen.subspace_tol)
            for r in ranks:
                value = subspace_overlap(basis, window.directions[:, :r])
                yield (*key, hessian, "overlap", k, r, n, size, value, overlap_chance(k, r, n), *accuracy)
            if moved:
                value = subspace_fraction(basis, window.end)
                yield (*key, hessian, "hessian_fraction", k, None, n, size, value, k / n, *accuracy)
    if moved:
        for r in ranks:
            value = subspace_fraction(window.directions[:, :r], window.end)
            yield (*key, None, "path_fraction", None, r, n, size, value, r / n, 0.0, True)


def crosslens_rows(run_path: Path, eigen_paths: Sequence[Path], settings: CrossLensSettings) -> list[tuple]:
    """The rows of one run, checkpoints ascending."""
    with RunFile(run_path) as run:
        path = RunPath(run)
        eigens = sorted(
            (read_actor_eigen(p, path.identity, path.n_params, run_path) for p in eigen_paths), key=lambda e: e.step
        )
        for first, second in zip(eigens, eigens[1:]):
            if first.step == second.step:
                raise RunFileError(f"{second.path}: a second eigen file of step {first.step} (also {first.path})")
        rows = []
        for eigen in eigens:
            checkpoint = path.checkpoint(eigen.step, settings.window_snapshots, eigen.path)
            rows += checkpoint_rows(path.identity, checkpoint, eigen, settings)
    log.info("%s: %d rows from %d eigen files", run_path, len(rows), len(eigens))
    return rows


def write_rows(out: Path, rows: Sequence[tuple]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp, open(tmp, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(CROSSLENS_COLUMNS)
        writer.writerows(rows)


def merge_crosslens(paths: Sequence[Path], out: Path) -> None:
    """Concatenate per-run crosslens.csv files (one header); each must have the documented columns."""
    header = ",".join(CROSSLENS_COLUMNS)
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such crosslens table")
        with open(path) as stream:
            found = stream.readline().strip()
        if found != header:
            raise ValueError(f"{path}: header {found!r}; expected {header!r} (docs/crosslens.md)")
    out.parent.mkdir(parents=True, exist_ok=True)
    merge(list(paths), out)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    if argv[:1] == ["merge"]:
        parser.add_argument("tables", nargs="+", type=Path, help="per-run crosslens.csv files")
        parser.add_argument("--out", required=True, type=Path)
        args = parser.parse_args(argv[1:])
        try:
            merge_crosslens(args.tables, args.out)
        except (FileNotFoundError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(1) from None
        return
    parser.add_argument("--run", required=True, type=Path, help="a run file with /actor_path")
    parser.add_argument("--eigen", required=True, nargs="+", type=Path, help="the run's eigen files")
    parser.add_argument("--out", required=True, type=Path, help="the CSV")
    parser.add_argument("--settings", required=True, help="JSON: " + ", ".join(CrossLensSettings.__dataclass_fields__))
    args = parser.parse_args(argv)
    try:
        settings = CrossLensSettings.from_json(args.settings)
    except ValueError as error:
        parser.error(str(error))
    with h5io.exit_on_file_errors():
        write_rows(args.out, crosslens_rows(args.run, args.eigen, settings))


if __name__ == "__main__":
    main()
