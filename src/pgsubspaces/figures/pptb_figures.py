"""The PPTB study's figures (docs/pptb.md): learning curves of base and PPTB runs with bootstrap intervals, and
rliable's interval estimates of the normalised PPTB - base difference."""

from __future__ import annotations

import pandas as pd

from pgsubspaces.comparison.columns import AGGREGATE_COLUMNS, CURVE_COLUMNS, TABLE_COLUMNS
from pgsubspaces.comparison.columns import BASE as PPTB_BASE
from pgsubspaces.figures.style import ALGO_LABELS, CHANCE, OKABE_ITO, grid

FIGURE_TABLES = {
    "pptb_curves": ("pptb_curves", "pptb"),
    "pptb_intervals": ("pptb_aggregate",),
}
REQUIRED = {"pptb_curves": CURVE_COLUMNS, "pptb": TABLE_COLUMNS, "pptb_aggregate": AGGREGATE_COLUMNS}
BASE_COLOR = OKABE_ITO[7]
VARIANT_COLORS = OKABE_ITO[:7]
METRIC_LABELS = {"score": "SCORE", "auc": "AUC"}


def _label(variant: str) -> str:
    return "base (plain SB3)" if variant == PPTB_BASE else f"PPTB {variant}"


def _panels(frame: pd.DataFrame) -> list[tuple[str, str]]:
    order = {algo: i for i, algo in enumerate(ALGO_LABELS)}
    pairs = frame[["algo", "task"]].drop_duplicates().itertuples(index=False)
    return sorted(((a, t) for a, t in pairs), key=lambda p: (order.get(p[0], len(order)), p[0], p[1]))


def learning_curves(tables, **_):
    """Evaluation return against env steps, seed mean and its stratified-bootstrap 95 % interval, per (algo,
    task); the random agent's mean return dashed."""
    curves, table = tables["pptb_curves"], tables["pptb"]
    panels = _panels(curves)
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = grid(nrows, ncols, height_to_width=0.9 if ncols > 1 else 0.6)
    variants = [PPTB_BASE, *sorted(v for v in curves.variant.unique() if v != PPTB_BASE)]
    colors = {v: BASE_COLOR if v == PPTB_BASE else VARIANT_COLORS[(i - 1) % len(VARIANT_COLORS)]
              for i, v in enumerate(variants)}  # fmt: skip
    handles = {}
    for ax, (algo, task) in zip(axes.flat, panels):
        sub = curves[(curves.algo == algo) & (curves.task == task)]
        for variant in (v for v in variants if v in set(sub.variant)):
            line = sub[sub.variant == variant].sort_values("step")
            handles[_label(variant)] = ax.plot(line.step, line["mean"], color=colors[variant])[0]
            ax.fill_between(line.step, line.ci_low, line.ci_high, color=colors[variant], alpha=0.2, linewidth=0)
        random = table[(table.algo == algo) & (table.task == task)].random
        if len(random):
            handles["random agent"] = ax.axhline(float(random.iloc[0]), **CHANCE)
        ax.set_title(f"{ALGO_LABELS.get(algo, algo)} {task} ({int(sub.seeds.max())} seeds)")
        ax.set_xlabel("env steps")
        ax.set_ylabel("evaluation return" if ax in axes[:, 0] else "")
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_axis_off()
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=min(3, len(handles)), frameon=False)
    return fig


ESTIMATES = (("iqm", "o", -0.15, OKABE_ITO[0], "interquartile mean"), ("mean", "x", 0.15, OKABE_ITO[1], "mean"))


def difference_intervals(tables, **_):
    """IQM and mean of the per-seed normalised PPTB - base difference with their 95 % intervals, per algorithm,
    budget and variant; one panel per metric."""
    aggregate = tables["pptb_aggregate"]
    diff = aggregate[aggregate.quantity == "difference"]
    keys = diff[["algo", "budget", "variant"]].drop_duplicates().itertuples(index=False)
    rows = sorted(keys, key=lambda k: (list(ALGO_LABELS).index(k[0]) if k[0] in ALGO_LABELS else 9, k[1], k[2]))
    fig, axes = grid(1, 2, height_to_width=max(0.45, 0.12 * len(rows)))
    handles = {}
    for ax, metric in zip(axes[0], ("score", "auc")):
        for y, (algo, budget, variant) in enumerate(rows):
            sel = diff[(diff.algo == algo) & (diff.budget == budget) & (diff.variant == variant)]
            sel = sel[sel.metric == metric]
            for statistic, marker, offset, color, label in ESTIMATES:
                point = sel[sel.statistic == statistic]
                if point.empty:
                    continue
                row = point.iloc[0]
                error = [[row.estimate - row.ci_low], [row.ci_high - row.estimate]]
                handles[label] = ax.errorbar(row.estimate, y + offset, xerr=error, fmt=marker, color=color,
                                             markersize=4, capsize=2, linewidth=0.9)  # fmt: skip
        ax.axvline(0.0, **CHANCE)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([f"{ALGO_LABELS.get(a, a)} @{b:,} {v}" for a, b, v in rows] if ax is axes[0, 0] else [])
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_xlabel("PPTB - base (normalised)")
        ax.set_title(METRIC_LABELS[metric])
    fig.legend(handles.values(), [f"{k}, 95 % interval" for k in handles], loc="outside lower center", ncols=2,
               frameon=False)  # fmt: skip
    return fig


FIGURES = {
    "pptb_curves": (learning_curves, {}),
    "pptb_intervals": (difference_intervals, {}),
}
CAPTIONS = {
    "pptb_curves": "PPTB study: deterministic evaluation return of the base runs (plain SB3, black) and the PPTB "
    "runs of the same seeds, seed mean with its stratified-bootstrap 95 % interval (rliable), per algorithm and task; "
    "dashed: the random agent's mean return (the normalisation's zero).",
    "pptb_intervals": "PPTB study: interquartile mean (dot) and mean (cross) over seeds and tasks of the paired "
    "per-seed difference of normalised SCORE and AUC (random agent 0, base 1), PPTB minus base, with "
    "stratified-bootstrap 95 % intervals (rliable); 'selected' takes each task's best variant, as the paper chose "
    "r_t per task, so its interval is optimistic.",
}
