"""The policy-path lens of one run: tidy CSV tables of its actor path (columns in docs/path.md).

    python -m pgsubspaces.path.lens --run RUN.h5 --out-dir DIR --settings JSON
    python -m pgsubspaces.path.lens merge RUN_DIR ... --out-dir DIR

JSON holds every setting (none has a default here): {"periods": 3, "betas": [0.5, ..., 0.99], "components": 8,
"detour_top_fraction": 0.8, "histogram_bins": 40}. Writes the tables of PATH_TABLES into DIR; ``merge``
concatenates the per-run tables of several runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from pgsubspaces import h5io
from pgsubspaces.atomic import atomic_path
from pgsubspaces.export.runfile import RunFile, RunFileError
from pgsubspaces.path.columns import PATH_TABLES, QUANTILES, STATS
from pgsubspaces.path.layers import Layer, actor_layers
from pgsubspaces.path.metrics import (
    Period,
    accumulated_change,
    barely_moving,
    component_stats,
    detour_selection,
    final_change,
    gini,
    oriented_svd,
    periods,
    ratio,
)
from pgsubspaces.path.svd import information, major_dimensionality
from pgsubspaces.tables.tables import curve_rows, merge

log = logging.getLogger("pgsubspaces.path.lens")

# Fig. 1's detour histogram ends at this quantile of the layer's detour ratios; larger ones (and infinite
# ones) are counted in its last bin, as the paper clips extreme detours for display
DETOUR_CLIP_QUANTILE = 0.99


@dataclass(frozen=True)
class PathSettings:
    """The lens's settings (the config schema holds their defaults).

    Attributes:
        periods: how many consecutive periods the path is cut into (the paper: 3).
        betas: the information levels of D(beta), each in (0, 1].
        components: how many SVD components are reported per layer and period (and drawn in Fig. 2b).
        detour_top_fraction: detour ratios only of the parameters in this upper fraction by apc (0.8).
        histogram_bins: bins of Fig. 1's histograms.
    """

    periods: int
    betas: tuple[float, ...]
    components: int
    detour_top_fraction: float
    histogram_bins: int

    @classmethod
    def from_json(cls, text: str) -> PathSettings:
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"path settings are not JSON ({error}): {text!r}") from None
        if not isinstance(values, dict):
            raise ValueError(f"path settings must be a JSON object, got {text!r}")
        return cls.from_dict(values)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PathSettings:
        names = tuple(cls.__dataclass_fields__)
        missing, unknown = [n for n in names if n not in values], sorted(set(values) - set(names))
        if missing or unknown:
            raise ValueError(f"path settings: missing {missing}, unknown {unknown}; expected exactly {list(names)}")

        def integer(key: str) -> int:
            value = values[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"path setting '{key}' = {value!r}; expected an integer >= 1")
            return value

        def fraction(key: str, value: Any) -> float:
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
                raise ValueError(f"path setting '{key}' holds {value!r}; expected a number in (0, 1]")
            return float(value)

        betas = values["betas"]
        if not isinstance(betas, list) or not betas:
            raise ValueError(f"path setting 'betas' = {betas!r}; expected a non-empty list of numbers in (0, 1]")
        return cls(
            periods=integer("periods"),
            betas=tuple(fraction("betas", b) for b in betas),
            components=integer("components"),
            detour_top_fraction=fraction("detour_top_fraction", values["detour_top_fraction"]),
            histogram_bins=integer("histogram_bins"),
        )


class ActorPath(NamedTuple):
    """``/actor_path`` of a run file with the run's identity and the actor's layers."""

    identity: tuple[str, str, int]
    updates: np.ndarray
    env_steps: np.ndarray
    params: np.ndarray
    layers: list[Layer]
    curves: dict[str, np.ndarray]


def read_actor_path(path: Path) -> ActorPath:
    """The recorded path; a clear error if the run has none or it does not match the actor's layout."""
    with RunFile(path) as run:
        identity = (run.algo, str(run.attrs.get("task", "")), int(run.attrs.get("seed", -1)))
        layout = run.layout("actor")
        try:
            layers = actor_layers(layout)
        except ValueError as error:
            raise RunFileError(f"{path}: /layout/actor: {error}") from None
        if not _has(run, "actor_path/params"):
            raise RunFileError(f"{path}: no '/actor_path' (train with actor_path.every_updates > 0 to record one)")
        updates, env_steps = run._read("actor_path/updates"), run._read("actor_path/env_steps")
        params = run._read("actor_path/params")
        curves = run.curves()
    if params.shape != (len(updates), layout.size) or len(env_steps) != len(updates):
        raise RunFileError(
            f"{path}: '/actor_path/params' has shape {params.shape} with {len(updates)} updates and "
            f"{len(env_steps)} env_steps; expected ({len(updates)}, {layout.size}) (the actor's layout)"
        )
    bad = np.count_nonzero(~np.isfinite(params))
    if bad:
        raise RunFileError(f"{path}: '/actor_path/params' holds {bad} NaN or inf values (a diverged training)")
    return ActorPath(identity, updates.astype(np.int64), env_steps.astype(np.int64), params, layers, curves)


def _has(run: RunFile, key: str) -> bool:
    try:
        run._get(key)
    except RunFileError:
        return False
    return True


def _summary(values: np.ndarray) -> list[float]:
    if values.size == 0:
        return [float("nan")] * len(STATS)
    return [float(values.mean()), *map(float, np.quantile(values, QUANTILES)), float(values.max())]


def histogram(values: np.ndarray, bins: int, log_bins: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """(edges, counts, how many values were clipped into the last bin) of Fig. 1.

    apc: linear bins from 0 to the largest value. Detour: log-spaced bins from the smallest finite ratio to
    the DETOUR_CLIP_QUANTILE quantile of the finite ones; larger and infinite ratios go into the last bin."""
    if log_bins:
        finite = values[np.isfinite(values)]
        low = float(finite.min())
        high = max(float(np.quantile(finite, DETOUR_CLIP_QUANTILE)), low * (1 + 1e-6))
        edges = np.geomspace(low, high, bins + 1)
    else:
        high = float(values.max())
        edges = np.linspace(0.0, high if high > 0 else 1.0, bins + 1)
    clipped = int(np.count_nonzero(values > edges[-1]))
    counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)
    return edges, counts, clipped


def _hist_rows(key: tuple, quantity: str, values: np.ndarray, bins: int) -> Iterator[tuple]:
    edges, counts, clipped = histogram(values, bins, log_bins=quantity == "detour")
    cdf = np.cumsum(counts) / values.size
    for i, count in enumerate(counts):
        yield (*key, quantity, i, float(edges[i]), float(edges[i + 1]), int(count),
               clipped if i == bins - 1 else 0, float(cdf[i]), int(values.size))  # fmt: skip


def layer_period_rows(key: tuple, block: np.ndarray, settings: PathSettings) -> dict[str, list[tuple]]:
    """The per-parameter and SVD rows of one layer in one period; ``key`` = (algo, task, seed, layer, period)."""
    rows: dict[str, list[tuple]] = {"parameter_stats": [], "parameter_hist": [], "dimensionality": [], "components": []}
    n, m = block.shape
    apc, fpc = accumulated_change(block), final_change(block)
    detours = ratio(apc, fpc)[detour_selection(apc, settings.detour_top_fraction)]
    finite = detours[np.isfinite(detours)]
    share, threshold = barely_moving(apc)
    rows["parameter_stats"].append(
        (*key, m, n, *_summary(apc), *_summary(fpc), finite.size, detours.size - finite.size, *_summary(finite),
         share, threshold, gini(apc))
    )  # fmt: skip
    rows["parameter_hist"] += _hist_rows(key, "apc", apc, settings.histogram_bins)
    if finite.size:
        rows["parameter_hist"] += _hist_rows(key, "detour", detours, settings.histogram_bins)
    svd = oriented_svd(block)
    d = len(svd.s)
    if svd.s.sum() > 0:
        dims = major_dimensionality(svd.s, settings.betas)
        rows["dimensionality"] += [(*key, n, m, d, b, int(D), D / d) for b, D in zip(settings.betas, dims)]
        a = information(svd.s)
        stats = component_stats(svd.u[:, : settings.components])
        for k in range(min(settings.components, d)):
            rows["components"].append(
                (*key, k + 1, float(svd.s[k]), float(a[k]), float(stats.apc[k]), float(stats.final_change[k]),
                 float(stats.detour[k]))
            )  # fmt: skip
    return rows


def path_tables(path: ActorPath, settings: PathSettings) -> dict[str, pd.DataFrame]:
    """Every table of PATH_TABLES for one run."""
    rows: dict[str, list[tuple]] = {name: [] for name in PATH_TABLES}
    spans: list[Period] = periods(len(path.updates), settings.periods)
    for span in spans:
        rows["path_periods"].append(
            (*path.identity, span.label, span.first, span.last, span.last - span.first + 1,
             int(path.updates[span.first]), int(path.updates[span.last]), int(path.env_steps[span.first]),
             int(path.env_steps[span.last]))
        )  # fmt: skip
    for layer in path.layers:
        rows["path_layers"].append((*path.identity, layer.name, ";".join(layer.parameters), layer.index.size))
        columns = np.asarray(path.params[:, layer.index], dtype=np.float64)
        for span in spans:
            block = columns[span.first : span.last + 1]
            for name, new in layer_period_rows((*path.identity, layer.name, span.label), block, settings).items():
                rows[name] += new
        svd = oriented_svd(columns)
        u = svd.u[:, : settings.components] if svd.s.sum() > 0 else svd.u[:, :0]  # a path of zeros has no directions
        for k in range(u.shape[1]):
            rows["component_curves"] += [
                (*path.identity, layer.name, k + 1, i, int(update), int(step), float(value))
                for i, (update, step, value) in enumerate(zip(path.updates, path.env_steps, u[:, k]))
            ]
    rows["path_returns"] = curve_rows(path.identity, path.curves)
    return {name: pd.DataFrame(rows[name], columns=columns) for name, columns in PATH_TABLES.items()}


def write_tables(tables: dict[str, pd.DataFrame], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        with atomic_path(out_dir / f"{name}.csv") as tmp:
            frame.to_csv(tmp, index=False)


def make_path_tables(run_path: Path, out_dir: Path, settings: PathSettings) -> None:
    path = read_actor_path(run_path)
    try:
        periods(len(path.updates), settings.periods)
    except ValueError as error:
        raise RunFileError(f"{run_path}: '/actor_path': {error} (path setting 'periods')") from None
    log.info("%s: %d snapshots of %d actor parameters", run_path, *path.params.shape)
    write_tables(path_tables(path, settings), out_dir)


def merge_path_tables(run_dirs: Sequence[Path], out_dir: Path) -> None:
    """Concatenate the per-run tables (one header each)."""
    for name in PATH_TABLES:
        missing = [d for d in run_dirs if not (d / f"{name}.csv").exists()]
        if missing:
            raise FileNotFoundError(f"no {name}.csv in {', '.join(map(str, missing))}")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in PATH_TABLES:
        merge([d / f"{name}.csv" for d in run_dirs], out_dir / f"{name}.csv")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    if argv[:1] == ["merge"]:
        parser.add_argument("runs", nargs="+", type=Path, help="per-run table folders")
        parser.add_argument("--out-dir", required=True, type=Path)
        args = parser.parse_args(argv[1:])
        merge_path_tables(args.runs, args.out_dir)
        return
    parser.add_argument("--run", required=True, type=Path, help="a run file with /actor_path")
    parser.add_argument("--out-dir", required=True, type=Path)
    parser.add_argument("--settings", required=True, help="JSON: " + ", ".join(PathSettings.__dataclass_fields__))
    args = parser.parse_args(argv)
    try:
        settings = PathSettings.from_json(args.settings)
    except ValueError as error:
        parser.error(str(error))
    with h5io.exit_on_file_errors():
        make_path_tables(args.run, args.out_dir, settings)


if __name__ == "__main__":
    main()
