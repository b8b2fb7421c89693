"""The cross-lens figures, ``crosslens_<algo>``, from crosslens.csv (docs/crosslens.md).

Per task (columns), the precise Hessian: row 1 the overlap of its top-k eigenspace V_k with the path's top-r
directions P_r against the checkpoint step, one line per k with r the largest rank <= k (the smallest rank where
none is), so that overlap 1 means the path's directions lie inside the Hessian's subspace; row 2 the share of
the window's end displacement that V_k (solid) and P_r (dash-dotted) hold. Mean and std over seeds, each chance
level dashed in its line's colour, hollow markers where a seed's subspace is not resolved.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.lines import Line2D

from pgsubspaces.figures.style import ALGO_LABELS, CHANCE, OKABE_ITO, grid
from pgsubspaces.path.columns import CROSSLENS_COLUMNS

ALGOS = ("ppo", "sac", "td3")
HESSIAN = "precise"  # the figures draw the precise Hessian; the table also holds the mini-batch one
# the tables each figure reads (the figure rule's inputs); without them a figure says so instead
FIGURE_TABLES = {f"crosslens_{algo}": ("crosslens",) for algo in ALGOS}
REQUIRED = {"crosslens": CROSSLENS_COLUMNS}


def _algo_label(algo: str) -> str:
    return ALGO_LABELS.get(algo, algo.upper())


def overlap_pairs(ks, ranks) -> list[tuple[int, int]]:
    """(k, r) per k drawn in row 1: r the largest rank <= k, else the smallest rank."""
    ranks = sorted(int(r) for r in ranks)
    return [(int(k), max((r for r in ranks if r <= k), default=ranks[0])) for k in sorted(ks)]


def _chance(ax, frame: pd.DataFrame, color) -> None:
    from pgsubspaces.figures.figures import CHANCE_GID

    for level in frame.chance.unique():
        ax.axhline(level, gid=CHANCE_GID, **{**CHANCE, "color": color})


def _line(ax, frame: pd.DataFrame, color, **kwargs) -> bool:
    """Seed mean and std of ``value`` against step, its chance dashed; True if some point is unresolved."""
    from pgsubspaces.figures.figures import _curve, _seed_stats

    if frame.empty:
        return False
    _chance(ax, frame, color)
    return _curve(ax, _seed_stats(frame, ["step"], "value"), "step", color, **kwargs)


def crosslens(tables, algorithm: str = "ppo", **_):
    """Row 1: overlap(k, r) against the checkpoint step; row 2: hessian_fraction(k) and path_fraction(r)."""
    from pgsubspaces.figures.figures import _marks_legend, _unit_axis, placeholder

    rows = tables["crosslens"]
    rows = rows[rows.algo == algorithm]
    if rows.empty:
        return placeholder(f"crosslens_{algorithm}: no {_algo_label(algorithm)} runs in crosslens.csv")
    overlaps = rows[(rows.measure == "overlap") & (rows.hessian == HESSIAN)]
    hessian = rows[(rows.measure == "hessian_fraction") & (rows.hessian == HESSIAN)]
    path = rows[rows.measure == "path_fraction"]
    ks, ranks = sorted(hessian.k.dropna().astype(int).unique()), sorted(path.r.dropna().astype(int).unique())
    tasks = sorted(map(str, rows.task.unique()))
    fig, axes = grid(2, len(tasks), rel_width=min(1.0, 0.6 * len(tasks)), height_to_width=0.65)
    k_colors = dict(zip(ks, OKABE_ITO))
    r_colors = {r: OKABE_ITO[(len(ks) + i) % len(OKABE_ITO)] for i, r in enumerate(ranks)}
    unresolved = False
    window = int(rows.window_snapshots.max())
    for col, task in enumerate(tasks):
        top, bottom = axes[0, col], axes[1, col]
        for k, r in overlap_pairs(ks, ranks):
            sub = overlaps[(overlaps.task == task) & (overlaps.k == k) & (overlaps.r == r)]
            unresolved |= _line(top, sub, k_colors[k], marker=".", label=f"overlap, k = {k}, r = {r}")
        for k in ks:
            sub = hessian[(hessian.task == task) & (hessian.k == k)]
            unresolved |= _line(bottom, sub, k_colors[k], marker=".", label=f"Hessian $V_k$, k = {k}")
        for r in ranks:
            sub = path[(path.task == task) & (path.r == r)]
            unresolved |= _line(bottom, sub, r_colors[r], linestyle="-.", marker="s", markersize=2.5,
                                label=f"path $P_r$, r = {r}")  # fmt: skip
        top.set(title=f"{task}: {_algo_label(algorithm)} actor, {HESSIAN} Hessian", xlabel="checkpoint (env steps)",
                ylabel=r"overlap $\|V_k^\top P_r\|_F^2 / \min(k, r)$")  # fmt: skip
        bottom.set(title=f"share of the displacement after {window} snapshots", xlabel="checkpoint (env steps)",
                   ylabel=r"$\|B^\top \Delta\|^2 / \|\Delta\|^2$, $B = V_k$ or $P_r$")  # fmt: skip
        for ax in (top, bottom):
            _unit_axis(ax)
    chance = Line2D([], [], label="chance level (dashed, in the line's colour)", **CHANCE)
    handles = [*axes[0, 0].get_legend_handles_labels()[0], *axes[1, 0].get_legend_handles_labels()[0], chance]
    handles += _marks_legend(False, unresolved)
    fig.legend(handles=handles, loc="outside lower center", ncols=3, frameon=False, fontsize=6)
    return fig


# the kwarg is not called "algo": the figures CLI checks "algo" against the Hessian tables' PPO and SAC runs
FIGURES = {f"crosslens_{algo}": (crosslens, {"algorithm": algo}) for algo in ALGOS}
CAPTIONS = {
    f"crosslens_{algo}": f"Cross-lens, {_algo_label(algo)}: at each checkpoint with eigenpairs, the actor's top-k "
    "precise-Hessian eigenspace V_k against the top-r SVD directions P_r of the actor path's next "
    "window_snapshots displacements from the checkpoint. Top: overlap ||V_k^T P_r||_F^2 / min(k, r) per k, r the "
    "largest rank <= k (1: the smaller space lies in the larger). Bottom: the share of the window's end "
    "displacement in V_k (solid) and in P_r (dash-dotted; fitted to that window, so 1 at r = its rank). Mean and "
    "std over seeds; dashed in each line's colour: its chance level for a uniformly random subspace "
    "(max(k, r)/n, k/n, r/n); hollow markers: some seed's eigensolver bound exceeds analysis.subspace_tol."
    for algo in ALGOS
}
