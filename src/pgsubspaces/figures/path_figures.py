"""The policy-path paper's Figs. 1, 2a and 2b, from the path lens's tables, and its reconstruction tables
(Tables 3-8) as a figure (docs/path.md).

Each draws the MLP layers (``layer1`` ...); the log-std parameters (``extra``) are in the tables only. One
run per (task, algorithm): the lowest seed in the tables, except Fig. 2a, which averages D(beta) over seeds.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from matplotlib.ticker import NullFormatter

from pgsubspaces.figures.style import ALGO_COLORS, ALGO_LABELS, OKABE_ITO, band, grid
from pgsubspaces.path.columns import PATH_TABLES, RECONSTRUCTION

# the tables each figure reads (the figure rule's inputs); without them a figure says so instead
FIGURE_TABLES = {
    "path_fig1": ("parameter_hist",),
    "path_fig2a": ("dimensionality",),
    "path_fig2b": ("component_curves", "components", "path_returns", "path_periods"),
    "path_table_reconstruction": ("reconstruction",),
}
_COLUMNS = {**PATH_TABLES, "reconstruction": RECONSTRUCTION}
REQUIRED = {name: _COLUMNS[name] for names in FIGURE_TABLES.values() for name in names}
ALGO_ORDER = ("ppo", "sac", "td3")
CURVES = 4  # Fig. 2b draws u_{*,k} for k = 1..CURVES, as the paper
WHOLE_PATH = "all"


def _algo_label(algo: str) -> str:
    return ALGO_LABELS.get(algo, algo.upper())


def _algo_color(algo: str) -> str:
    return ALGO_COLORS.get(algo, OKABE_ITO[2])


def _runs(frame: pd.DataFrame) -> list[tuple[str, str, int]]:
    """(task, algo, lowest seed) per task and algorithm, tasks sorted, algorithms PPO, SAC, TD3, others."""
    keys = frame[["task", "algo"]].drop_duplicates()
    rank = {algo: i for i, algo in enumerate(ALGO_ORDER)}
    pairs = sorted(map(tuple, keys.to_numpy()), key=lambda p: (str(p[0]), rank.get(p[1], len(rank)), p[1]))
    return [(t, a, int(frame[(frame.task == t) & (frame.algo == a)].seed.min())) for t, a in pairs]


def _mlp_layers(frame: pd.DataFrame) -> list[str]:
    return sorted((n for n in frame.layer.unique() if re.fullmatch(r"layer\d+", str(n))), key=lambda n: int(n[5:]))


def _layer_label(layer: str) -> str:
    return f"layer {layer[5:]}"


def _period_labels(labels) -> dict[str, str]:
    """p1, p2, p3 as the paper's early, middle, late; other counts as 'period i'; 'all' as the whole path."""
    split = sorted((p for p in labels if p != WHOLE_PATH), key=lambda p: int(p[1:]))
    names = ("early", "middle", "late") if len(split) == 3 else [f"period {p[1:]}" for p in split]
    return {**dict(zip(split, names)), WHOLE_PATH: "whole path"}


def _of(frame: pd.DataFrame, task: str, algo: str, seed: int | None = None) -> pd.DataFrame:
    rows = frame[(frame.task == task) & (frame.algo == algo)]
    return rows if seed is None else rows[rows.seed == seed]


def parameter_histograms(tables, **_):
    """Fig. 1: per MLP layer, the histogram of Delta_apc (linear bins) and of the detour ratio (log bins; the
    parameters in the upper detour_top_fraction by apc; the last bin holds the clipped extremes), each with its
    CDF (right axis), over the whole path; two rows per run (lowest seed of each task and algorithm)."""
    hist = tables["parameter_hist"]
    hist = hist[hist.period == WHOLE_PATH]
    runs, layers = _runs(hist), _mlp_layers(hist)
    fig, axes = grid(2 * len(runs), len(layers), height_to_width=0.55)
    for row, (task, algo, seed) in enumerate(runs):
        own = _of(hist, task, algo, seed)
        for col, layer in enumerate(layers):
            for offset, quantity, label in ((0, "apc", r"$\Delta_\mathrm{apc}$"), (1, "detour", "detour ratio")):
                ax = axes[2 * row + offset, col]
                bins = own[(own.layer == layer) & (own.quantity == quantity)].sort_values("bin")
                ax.set_title(f"{task} {_algo_label(algo)} (seed {seed}), {_layer_label(layer)}", fontsize=6)
                if bins.empty:
                    ax.text(0.5, 0.5, "no parameter moved", ha="center", va="center", transform=ax.transAxes)
                    continue
                ax.bar(bins.left, bins["count"], width=bins.right - bins.left, align="edge", color=_algo_color(algo))
                if quantity == "detour":
                    ax.set_xscale("log")
                    ax.xaxis.set_minor_formatter(NullFormatter())  # narrow ranges: labels of 2x10^0 ... overlap
                clipped = int(bins.clipped.sum())
                if clipped:
                    ax.text(0.98, 0.6, f"{clipped} clipped\ninto the last bin", ha="right", fontsize=5,
                            transform=ax.transAxes)  # fmt: skip
                ax.set_xlabel(label)
                ax.set_ylabel("parameters")
                cdf = ax.twinx()
                cdf.plot(np.r_[bins.left.iloc[0], bins.right], np.r_[0.0, bins.cdf], color="0.2", linewidth=0.9)
                cdf.set_ylim(0, 1.02)
                cdf.spines["right"].set_visible(True)
                cdf.grid(False)
                cdf.set_ylabel("CDF")
    return fig


def dimensionality_curves(tables, **_):
    """Fig. 2a: D(beta) against beta per MLP layer, one line per period (mean and std over seeds)."""
    dims = tables["dimensionality"]
    runs, layers = _runs(dims), _mlp_layers(dims)
    names = _period_labels(dims.period.unique())
    fig, axes = grid(len(runs), len(layers), height_to_width=0.75)
    for row, (task, algo, _seed) in enumerate(runs):
        own = _of(dims, task, algo)
        for ax, layer in zip(axes[row], layers):
            here = own[own.layer == layer]
            for color, (period, name) in zip(OKABE_ITO, names.items()):
                stats = here[here.period == period].groupby("beta").D.agg(["mean", lambda v: float(np.std(v))])
                stats.columns = ["mean", "std"]
                style = {"linestyle": "--", "color": "0.3"} if period == WHOLE_PATH else {"color": color}
                band(ax, stats.index.to_numpy(), stats["mean"], stats["std"], marker=".", label=name, **style)
            seeds = here.seed.nunique()
            ax.set_title(f"{task} {_algo_label(algo)}, {_layer_label(layer)} ({seeds} seed{'s' * (seeds > 1)})")
            ax.set_xlabel(r"$\beta$")
            ax.set_ylabel(r"$D(\beta)$")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncols=len(names), frameon=False)
    return fig


def component_curves(tables, **_):
    """Fig. 2b per run (lowest seed): the evaluation return with the periods' borders; the coordinates
    u_{*,k} (k = 1..CURVES) of the whole path's temporal SVD per MLP layer against actor updates (PPO's
    parameters move between its env steps: against those its curves would be steps); each
    component's detour ratio and final change |u_{n,k} - u_{1,k}| against k (sign convention: docs/path.md)."""
    curves, comps = tables["component_curves"], tables["components"]
    returns, spans = tables["path_returns"], tables["path_periods"]
    comps = comps[comps.period == WHOLE_PATH]
    runs, layers = _runs(curves), _mlp_layers(curves)
    ncols = max(3, len(layers))
    fig, axes = grid(2 * len(runs), ncols, height_to_width=0.7)
    for row, (task, algo, seed) in enumerate(runs):
        top, bottom = axes[2 * row], axes[2 * row + 1]
        title = f"{task} {_algo_label(algo)} (seed {seed})"
        evaluation = _of(returns, task, algo, seed)
        evaluation = evaluation[evaluation.curve == "eval"].sort_values("step")
        top[0].plot(evaluation.step, evaluation.value, marker=".", color=_algo_color(algo))
        own_spans = _of(spans, task, algo, seed)
        for step in own_spans[own_spans.period != WHOLE_PATH].first_env_step.iloc[1:]:
            top[0].axvline(step, color="0.5", linestyle=":", linewidth=0.8)
        top[0].set(title=f"{title}: evaluation return", xlabel="env steps", ylabel="return")
        own = _of(comps, task, algo, seed)
        for color, layer in zip(OKABE_ITO, layers):
            here = own[own.layer == layer].sort_values("k")
            top[1].plot(here.k, here.detour, marker="o", markersize=3, color=color, label=_layer_label(layer))
            top[2].plot(here.k, here.final_change, marker="o", markersize=3, color=color, label=_layer_label(layer))
        top[1].set(title="detour ratio of $u_{*,k}$", xlabel="k", ylabel="detour ratio", yscale="log")
        top[2].set(title="final change $|u_{n,k} - u_{1,k}|$", xlabel="k", ylabel="final change")
        top[2].legend(frameon=False, fontsize=6)
        for ax in top[3:]:
            ax.set_axis_off()
        own_curves = _of(curves, task, algo, seed)
        for ax, layer in zip(bottom, layers):
            here = own_curves[own_curves.layer == layer]
            for color, k in zip(OKABE_ITO, range(1, CURVES + 1)):
                line = here[here.k == k].sort_values("snapshot")
                ax.plot(line.actor_updates, line.u, color=color, linewidth=0.9, label=f"$u_{{*,{k}}}$")
            ax.set(title=f"{_layer_label(layer)}: path coordinates", xlabel="actor updates", ylabel="$u_{i,k}$")
        for ax in bottom[len(layers) :]:
            ax.set_axis_off()
    fig.legend(*axes[1, 0].get_legend_handles_labels(), loc="outside lower center", ncols=CURVES, frameon=False)
    return fig


# the reconstruction tables' columns (Tables 3-8 of the policy-path paper), over the period's policies
RECONSTRUCTION_HEADER = ("ΔR mean ± std", "|ΔR| mean ± std", "max ΔR", "min ΔR")


def _number(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{value:.4g}"


def _mean_std(mean: float, std: float) -> str:
    """'mean ± std'; the mean alone where the std is undefined (a single policy)."""
    return _number(mean) if pd.isna(std) else f"{_number(mean)} ± {_number(std)}"


def reconstruction_cells(rows: pd.DataFrame) -> list[list[str]]:
    """The text of one table panel, a row per rank r (ascending): the columns of RECONSTRUCTION_HEADER."""
    return [
        [_mean_std(row.delta_mean, row.delta_std), _mean_std(row.abs_delta_mean, row.abs_delta_std),
         _number(row.delta_max), _number(row.delta_min)]
        for row in rows.sort_values("r").itertuples()
    ]  # fmt: skip


def reconstruction_tables(tables, **_):
    """Tables 3-8: per run (lowest seed of each task and algorithm) and period, a table with a row per rank r
    of Delta R = return(rebuilt) - return(original) over the period's evaluated policies (sample std)."""
    rec = tables["reconstruction"]
    rec = rec[rec.level == "period"]
    runs = _runs(rec)
    split = sorted((p for p in rec.period.unique() if p != WHOLE_PATH), key=lambda p: int(p[1:]))
    names = _period_labels(split)
    panels = [(run, period) for run in runs for period in split]
    most = max((len(_of(rec, *run)[lambda f, p=period: f.period == p]) for run, period in panels), default=1)
    fig, axes = grid(max(len(panels), 1), 1, height_to_width=(most + 3) * 0.15 / 5.5)
    for ax, ((task, algo, seed), period) in zip(axes[:, 0], panels):
        here = _of(rec, task, algo, seed)
        here = here[here.period == period].sort_values("r")
        ax.set_axis_off()
        first = here.iloc[0]
        ax.set_title(
            f"{task} {_algo_label(algo)} (seed {seed}), {names[period]} (d = {int(first.d)}): "
            f"{int(first.n_policies)} policies x {int(first.episodes)} episode{'s' * bool(first.episodes > 1)}, "
            f"mean original return {_number(first.return_original_mean)}",
            fontsize=7,
        )
        table = ax.table(
            cellText=reconstruction_cells(here), rowLabels=[f"r = {int(r)}" for r in here.r],
            colLabels=RECONSTRUCTION_HEADER, bbox=(0.0, 0.0, 1.0, 0.86), cellLoc="center",
        )  # fmt: skip
        table.auto_set_font_size(False)
        table.set_fontsize(6)
    return fig


FIGURES = {
    "path_fig1": (parameter_histograms, {}),
    "path_fig2a": (dimensionality_curves, {}),
    "path_fig2b": (component_curves, {}),
    "path_table_reconstruction": (reconstruction_tables, {}),
}
CAPTIONS = {
    "path_fig1": "Policy path, Fig. 1: per MLP layer of the actor, the histogram of each parameter's accumulated "
    "change Delta_apc along the whole recorded path, and of its detour ratio Delta_apc / Delta_fpc (only the "
    "parameters in the upper detour_top_fraction by Delta_apc; log bins, the extreme ratios clipped into the "
    "last bin), with their CDFs; the lowest seed of each task and algorithm.",
    "path_fig2a": "Policy path, Fig. 2a: the major dimensionality D(beta) of the uncentred temporal SVD of each "
    "MLP layer's path, per period of the path (and the whole path, dashed); mean and std over seeds.",
    "path_fig2b": "Policy path, Fig. 2b: the evaluation return (dotted: the periods' borders), the path's "
    "coordinates u_k (column k of U) in its first SVD directions per MLP layer against actor updates (signs: "
    "u_{n,k} >= u_{1,k}), and each component's detour ratio and final change against k; the lowest seed of each "
    "task and algorithm.",
    "path_table_reconstruction": "Policy path, Tables 3-8: the policies of each period rebuilt from the first r "
    "directions of the period's uncentred temporal SVD; Delta R = return(rebuilt) - return(original), both "
    "deterministic on the same episode seeds; mean and sample std of Delta R and of its absolute value, max and "
    "min over the period's evaluated policies; the lowest seed of each task and algorithm.",
}
