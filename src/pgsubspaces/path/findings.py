"""The policy-path paper's four phenomena as numbers, per run, from the path tables (docs/path.md).

Each phenomenon has a stated criterion (the thresholds below) and a verdict; the numbers behind it are kept
with it, so a reader can apply another threshold. Only the MLP layers (``layer1`` ...) take part; the output
layer is the last of them.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

# 1.1: the paper's "10-40 % of the layer-2 and output-layer parameters barely move"
BARELY_SHARE = 0.10
# 1.2: "severe detours": the median moved parameter travels at least twice its net change, the top 1 % a
# hundred times (the paper reports ratios in the hundreds)
DETOUR_MEDIAN, DETOUR_Q99 = 2.0, 100.0
# 2.1: a flat spectrum (all singular values equal) has D(beta)/d ~ beta; "concentrated" is at most half that,
# averaged over the settings' betas
CONCENTRATION = 0.5
# 2.2: u_{*,1} "almost monotone": its detour ratio at most this; "detour rising with k": Spearman at least this
MONOTONE_DETOUR, RISING_SPEARMAN = 1.5, 0.5

COLUMNS = ("algo", "task", "seed", "phenomenon", "criterion", "holds", "layer", "period", "measure", "value")
RUN = ["algo", "task", "seed"]


def _mlp_layers(names) -> list[str]:
    layers = sorted({n for n in names if re.fullmatch(r"layer\d+", str(n))}, key=lambda n: int(n[5:]))
    if not layers:
        raise ValueError(f"no MLP layer (layer1, ...) among the tables' layers {sorted(set(names))}")
    return layers


def spearman(x, y) -> float:
    """Spearman's rank correlation (average ranks for ties; nan if either is constant)."""
    rx, ry = pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy()
    if np.ptp(rx) == 0 or np.ptp(ry) == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def _verdict(run: tuple, phenomenon: str, criterion: str, holds: bool, numbers: list[tuple]) -> list[tuple]:
    return [(*run, phenomenon, criterion, bool(holds), *n) for n in numbers]


def run_findings(run: tuple, stats: pd.DataFrame, dims: pd.DataFrame, components: pd.DataFrame) -> list[tuple]:
    """The rows of COLUMNS for one run's tables (period ``all`` unless a period is named)."""
    layers = _mlp_layers(stats.layer)
    rows: list[tuple] = []
    whole = stats[stats.period == "all"].set_index("layer")

    later = [layer for layer in layers if layer != "layer1"] or layers
    numbers = [(layer, "all", m, float(whole.loc[layer, m])) for layer in layers for m in ("barely_moving", "apc_gini")]
    rows += _verdict(
        run, "1.1 apc very unequal",
        f"barely_moving >= {BARELY_SHARE} in {', '.join(later)} (share of parameters with apc <= 0.1 x the "
        "layer's median)", all(whole.loc[layer, "barely_moving"] >= BARELY_SHARE for layer in later), numbers,
    )  # fmt: skip

    measures = ("detour_q50", "detour_q95", "detour_q99", "detour_max")
    numbers = [(layer, "all", m, float(whole.loc[layer, m])) for layer in layers for m in measures]
    severe = all(
        whole.loc[layer, "detour_q50"] >= DETOUR_MEDIAN and whole.loc[layer, "detour_q99"] >= DETOUR_Q99
        for layer in layers
    )
    rows += _verdict(
        run, "1.2 severe detours",
        f"detour median >= {DETOUR_MEDIAN} and 99th percentile >= {DETOUR_Q99} in every MLP layer", severe, numbers,
    )  # fmt: skip

    dims = dims[dims.layer.isin(layers)]
    ratio = dims.groupby(["layer", "period"]).D_over_d.mean()
    flat = CONCENTRATION * float(dims.beta.drop_duplicates().mean())
    numbers = [(layer, period, "mean_D_over_d", float(v)) for (layer, period), v in ratio.items()]
    rows += _verdict(
        run, "2.1 information in few directions",
        f"mean over betas of D(beta)/d <= {flat:.3g} ({CONCENTRATION} x the mean beta, a flat spectrum's) in "
        "every MLP layer and period", bool((ratio <= flat).all()), numbers,
    )  # fmt: skip
    whole_ratio = ratio.xs("all", level="period")
    if "layer2" in whole_ratio and len(layers) > 1:
        rows += _verdict(
            run, "2.1 more so in layer 2", "mean D(beta)/d of layer2 (period all) below every other MLP layer's",
            all(whole_ratio["layer2"] < whole_ratio[layer] for layer in layers if layer != "layer2"),
            [(layer, "all", "mean_D_over_d", float(whole_ratio[layer])) for layer in layers],
        )  # fmt: skip
    split = sorted((p for p in ratio.index.get_level_values("period").unique() if p != "all"), key=lambda p: int(p[1:]))
    if len(split) > 1:
        first, last = split[0], split[-1]
        rows += _verdict(
            run, "2.1 more so later", f"mean D(beta)/d in {last} below {first} in every MLP layer",
            all(ratio[layer, last] < ratio[layer, first] for layer in layers),
            [(layer, p, "mean_D_over_d", float(ratio[layer, p])) for layer in layers for p in (first, last)],
        )  # fmt: skip

    comps = components[(components.period == "all") & components.layer.isin(layers)]
    monotone, rising, shape, order = True, True, [], []
    for layer in layers:
        own = comps[comps.layer == layer].sort_values("k")
        first, others = own.detour.iloc[0], own.detour.iloc[1:]
        rho = spearman(own.k, own.detour)
        monotone &= bool(first <= MONOTONE_DETOUR and (others > first).all())
        rising &= bool(rho >= RISING_SPEARMAN)
        shape += [(layer, "all", "detour_k1", float(first)), (layer, "all", "min_detour_k>=2", float(others.min()))]
        order += [(layer, "all", "spearman_detour_k", rho), (layer, "all", "components", float(len(own)))]
    rows += _verdict(
        run, "2.2 u1 almost monotone",
        f"detour of u_1 <= {MONOTONE_DETOUR} and below every other component's, in every MLP layer", monotone, shape,
    )  # fmt: skip
    rows += _verdict(
        run, "2.2 detour rises with k",
        f"Spearman(detour, k) >= {RISING_SPEARMAN} over the reported components, in every MLP layer", rising, order,
    )  # fmt: skip
    return rows


def _of_run(frame: pd.DataFrame, run: tuple) -> pd.DataFrame:
    return frame[(frame.algo == run[0]) & (frame.task == run[1]) & (frame.seed == run[2])]


def path_findings(tables_dir: Path) -> pd.DataFrame:
    """Every run's phenomena from ``parameter_stats.csv``, ``dimensionality.csv``, ``components.csv``."""
    frames = {}
    for name in ("parameter_stats", "dimensionality", "components"):
        path = Path(tables_dir) / f"{name}.csv"
        if not path.exists():
            raise FileNotFoundError(f"no {name}.csv in {tables_dir}; run python -m pgsubspaces.path.lens first")
        frames[name] = pd.read_csv(path)
    rows = []
    for run, stats in frames["parameter_stats"].groupby(RUN):
        dims, comps = (_of_run(frames[name], run) for name in ("dimensionality", "components"))
        rows += run_findings(run, stats, dims, comps)
    return pd.DataFrame(rows, columns=COLUMNS)


def report(findings: pd.DataFrame) -> str:
    """The verdicts and their numbers as text, run by run."""
    lines = []
    for run, own in findings.groupby(RUN, sort=False):
        lines.append(f"{run[0]} {run[1]} seed {run[2]}")
        for phenomenon, rows in own.groupby("phenomenon", sort=False):
            verdict = "holds" if rows.holds.iloc[0] else "does not hold"
            lines.append(f"  {phenomenon}: {verdict}  [{rows.criterion.iloc[0]}]")
            for (layer, period), cell in rows.groupby(["layer", "period"], sort=False):
                values = ", ".join(f"{m} = {v:.4g}" for m, v in zip(cell.measure, cell.value))
                lines.append(f"      {layer} {period}: {values}")
    return "\n".join(lines)
