"""The paper's figures, each a pure function of the tidy tables (docs/tables.md).

    python -m pgsubspaces.figures NAME --tables DIR|CSV... --out figures/<experiment>/NAME.pdf [--k K] [--t1 STEP]

writes NAME.pdf and NAME.png. Figures never recompute metrics; a figure rebuilds in seconds.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from pgsubspaces.atomic import atomic_path  # noqa: E402
from pgsubspaces.figures import crosslens_figures, path_figures, pptb_figures  # noqa: E402
from pgsubspaces.figures.style import (  # noqa: E402
    ALGO_COLORS,
    ALGO_LABELS,
    CHANCE,
    CHANCE_LABEL,
    OKABE_ITO,
    PHASE_COLORS,
    UNRESOLVED_LABEL,
    UNRESOLVED_MARKER,
    iclr2024,
)
from pgsubspaces.figures.style import band as _band  # noqa: E402
from pgsubspaces.figures.style import grid as _grid  # noqa: E402

log = logging.getLogger("pgsubspaces.figures")

COMBOS = (("precise", "precise"), ("minibatch", "precise"), ("minibatch", "minibatch"))
COMBO_LABELS = (
    "precise gradient, precise Hessian",
    "mini-batch gradient, precise Hessian",
    "mini-batch gradient, mini-batch Hessian",
)
HATCHES = ("", "///", "xxx")
PHASES = ("initial", "training", "convergence")
LINESTYLES = {"actor": "-", "critic": "--", "combined": ":"}
# artists the tests (and a reader of the PDF's structure) find by id
CHANCE_GID, UNRESOLVED_GID = "chance", "unresolved"


class Tables:
    """The experiment's tables, read lazily: CSV files by name, from a folder or a list of files."""

    def __init__(self, *paths: Path):
        paths = [Path(p) for p in paths]
        files = [f for p in paths for f in (sorted(p.glob("*.csv")) if p.is_dir() else [p])]
        self.files = {f.stem: f for f in files}
        self.where = ", ".join(map(str, paths))
        self._cache: dict[str, pd.DataFrame] = {}

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self._cache:
            if name not in self.files or not self.files[name].exists():
                raise FileNotFoundError(f"no {name}.csv in {self.where}; run the tables rules first")
            frame = pd.read_csv(self.files[name])
            missing = sorted(set(REQUIRED.get(name, ())) - set(frame.columns))
            if missing:
                raise ValueError(f"{self.files[name]}: no column {', '.join(missing)} (docs/tables.md); rerun tables")
            if {"status", "resolved"} <= set(frame):  # sweep.csv: a failed configuration has no metrics, nor accuracy
                frame = frame.assign(resolved=frame.resolved.where(frame.status == "ok", True))
            self._cache[name] = _parse_resolved(frame, self.files[name]) if "resolved" in frame else frame
        return self._cache[name]

    def _values(self, column: str, names: tuple[str, ...]) -> set:
        return {value for name in names if name in self.files for value in self[name][column]}

    def tasks(self, names: tuple[str, ...] = ("curves", "fractions")) -> list[str]:
        """The tasks of the runs in ``names``: by default every analysed run, also imported ones, which
        have fractions but no learning curves."""
        return sorted(map(str, self._values("task", names)))

    def algos(self, names: tuple[str, ...] = ("curves", "fractions")) -> list[str]:
        found = self._values("algo", names)
        return [a for a in ALGO_LABELS if a in found]


# columns the figures read beyond the identity (docs/tables.md)
REQUIRED = {
    "fractions": ("phase", "chance", "resolved"),
    "overlaps": ("chance", "resolved"),
    **path_figures.REQUIRED,
    **crosslens_figures.REQUIRED,
    **pptb_figures.REQUIRED,
}


def _parse_resolved(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``resolved`` as booleans; anything but True/False is an error, not silently 'resolved'."""
    if frame.resolved.dtype == bool:
        return frame
    parsed = frame.resolved.astype(str).str.strip().str.lower().map({"true": True, "false": False})
    if parsed.isna().any():
        bad = sorted(set(frame.resolved[parsed.isna()].astype(str)))
        raise ValueError(f"{path}: column resolved holds {bad}; expected True or False")
    return frame.assign(resolved=parsed.astype(bool))


def _seed_stats(frame: pd.DataFrame, by: list[str], value: str) -> pd.DataFrame:
    """Mean and population std (ddof 0, as the original) across seeds; with a ``resolved`` column also
    ``unresolved``: some contributing row is not resolved."""
    grouped = frame.groupby(by)
    stats = grouped[value].agg(mean="mean", std=lambda v: float(np.std(v)))
    if "resolved" in frame:
        stats["unresolved"] = ~grouped["resolved"].all()
    return stats.reset_index()


def _curve(ax, stats: pd.DataFrame, x: str, color, **kwargs) -> bool:
    """Seed mean and std band, hollow markers on the unresolved points; True if any is unresolved."""
    _band(ax, stats[x], stats["mean"], stats["std"], color=color, **kwargs)
    unresolved = stats[stats["unresolved"]]
    if len(unresolved):
        ax.plot(
            unresolved[x], unresolved["mean"], linestyle="none", markeredgecolor=color, gid=UNRESOLVED_GID,
            zorder=4, **UNRESOLVED_MARKER,
        )  # fmt: skip
    return bool(len(unresolved))


def _chance_line(ax, level: float) -> None:
    """The chance level across the whole panel."""
    ax.axhline(level, gid=CHANCE_GID, **CHANCE)


def _unit_axis(ax) -> None:
    """y in [0, 1] with room below 0, so a chance line at ~0.01 stands clear of the x axis."""
    ax.set_ylim(-0.06, 1.03)
    ax.spines["left"].set_bounds(0, 1)


def _chance_text(levels: dict[str, float], suffix: str = "") -> str:
    """The chance level as text (per network when they differ at two digits): a line at ~0.01 alone hugs
    the x axis."""
    shown = {name: f"{level:.2g}" for name, level in levels.items()}
    if len(set(shown.values())) == 1:
        return f"k/n = {next(iter(shown.values()))}{suffix}"
    return "k/n = " + ", ".join(f"{value} ({name})" for name, value in shown.items()) + suffix


def _chance_note(ax, levels: dict[str, float], suffix: str = "") -> None:
    """The chance level's value written just above its line, at the panel's right (t1 lines are at the left)."""
    ax.text(
        0.98, max(levels.values()), _chance_text(levels, suffix), transform=ax.get_yaxis_transform(), ha="right",
        va="bottom", fontsize=6, color=CHANCE["color"], gid=CHANCE_GID,
    )  # fmt: skip


def _chance_of(frame: pd.DataFrame) -> float:
    """The one chance level of rows that share a network and k (k / n_params, from the table)."""
    levels = frame.chance.unique()
    if len(levels) != 1:
        raise ValueError(f"rows of one network and k with chance levels {sorted(levels)}; expected one")
    return float(levels[0])


def _marks_legend(chance: bool, unresolved: bool, bars: bool = False, chance_label: str = CHANCE_LABEL) -> list:
    """Legend handles for the chance line and, only when some value is unresolved, the unresolved style."""
    handles = [Line2D([], [], label=chance_label, **CHANCE)] if chance else []
    if unresolved and bars:
        handles.append(
            Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="0.3", linewidth=1.0, label=UNRESOLVED_LABEL)
        )
    elif unresolved:
        handles.append(Line2D([], [], linestyle="none", color="0.3", label=UNRESOLVED_LABEL, **UNRESOLVED_MARKER))
    return handles


def _largest_k(fractions: pd.DataFrame, k: int | None) -> int:
    return int(k if k is not None else fractions.k.max())


# Fig. 1's bins: decades of |lambda| from this fraction of max|lambda| up; everything smaller shares the centre
# bin. With float32 Hessian-vector products (analysis.dtype's default; eps ~1e-7 relative per entry, summed over
# thousands of parameters) eigenvalues below it are round-off, not curvature.
SPECTRUM_FLOOR = 1e-6


def spectrum_bins(values: np.ndarray, floor: float = SPECTRUM_FLOOR) -> tuple[np.ndarray, float]:
    """Symmetric decade bin edges fitted to the data, and the linear threshold of the symlog axis.

    The centre bin is [-t, t] with t the decade at or below ``floor`` * max|lambda|; decades reach out to
    the largest positive and the most negative value separately (a spectrum in -8 ... 356 gets edges
    -10, -1, ... -t, t, ..., 1000)."""
    values = np.asarray(values, dtype=np.float64)
    top = float(np.max(np.abs(values))) if len(values) else 0.0
    if top == 0.0:
        return np.array([-1.0, 1.0]), 1.0
    low = int(np.floor(np.log10(top * floor)))

    def decades(extreme: float) -> np.ndarray:
        if extreme <= 10.0**low:
            return np.zeros(0)
        return 10.0 ** np.arange(low + 1, int(np.ceil(np.log10(extreme))) + 1)

    positive, negative = decades(values.max()), decades(-values.min())
    edges = np.concatenate([-negative[::-1], [-(10.0**low), 10.0**low], positive])
    return edges, 10.0**low


def _exponent(power_of_ten: float) -> int:
    """The decade of a (signed) bin edge; log10 of a power of ten may land a hair off the integer."""
    return int(np.rint(np.log10(abs(power_of_ten))))


def _decade_ticks(edges: np.ndarray, threshold: float) -> list[float]:
    """0 and about four decades per side (every decade labelled would overlap)."""
    low = _exponent(threshold)
    top = max((_exponent(edge) for edge in edges), default=low)
    step = max(1, int(np.ceil((top - low) / 4)))
    ticks = 10.0 ** np.arange(top, low - 1, -step)
    return sorted({0.0, *(t for t in ticks if t <= edges[-1]), *(-t for t in ticks if -t >= edges[0])})


def eigenspectrum(tables: Tables, algo: str = "ppo", **_) -> plt.Figure:
    """Fig. 1: eigenvalue histogram (symmetric decade bins fitted to the data, ``spectrum_bins``) and sorted
    eigenvalues, actor and critic, of the full spectra (seed and checkpoint as computed by the spectrum rule);
    tasks without one show their top k at the last analysed checkpoint of their first seed, and say so."""
    spectra = tables["spectra"]
    spectra = spectra[(spectra.algo == algo) & (spectra.hessian == "precise")]
    tasks = sorted(spectra.task.unique())
    fig, axes = _grid(len(tasks) * 2, 2, height_to_width=0.6)
    for row, task in enumerate(tasks):
        sub = spectra[spectra.task == task]
        full = sub[sub.kind == "all"]
        sub = full if len(full) else sub
        seed = sub.seed.min()
        step = sub[sub.seed == seed].step.max()
        for col_offset, net in enumerate(("actor", "critic")):
            values = sub[(sub.seed == seed) & (sub.step == step) & (sub.net == net)].eigenvalue.to_numpy()
            hist_ax, sorted_ax = axes[2 * row + col_offset]
            edges, threshold = spectrum_bins(values)
            hist_ax.hist(np.clip(values, edges[0], edges[-1]), bins=edges, color=OKABE_ITO[0])
            hist_ax.set_xscale("symlog", linthresh=threshold, linscale=0.5)  # the centre bin as wide as a decade
            hist_ax.set_xlim(edges[0], edges[-1])
            hist_ax.set_xticks(_decade_ticks(edges, threshold))
            hist_ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
            hist_ax.set_yscale("log")
            hist_ax.set_ylim(bottom=0.5)  # a single eigenvalue still shows
            hist_ax.set_xlabel(f"eigenvalue (centre bin: $|\\lambda| < 10^{{{_exponent(threshold)}}}$)")
            hist_ax.set_ylabel("count")
            which = "all" if len(full) else "top"
            hist_ax.set_title(f"{task}, {algo.upper()} {net}, step {step:,} ({which} {len(values)} eigenvalues)")
            sorted_ax.plot(np.arange(len(values)), np.sort(values), ".", markersize=2, color=OKABE_ITO[3])
            sorted_ax.set_yscale("symlog", linthresh=threshold, linscale=0.5)
            sorted_ax.set_ylim(edges[0], edges[-1])  # the histogram's range, so the two panels read alike
            sorted_ax.set_yticks(_decade_ticks(edges, threshold))
            sorted_ax.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
            sorted_ax.set_xlabel("index (ascending)")
            sorted_ax.set_ylabel("eigenvalue")
    return fig


def _phase_means(tables: Tables, k: int, net: str) -> pd.DataFrame:
    """Per (algo, task, combo, phase): mean and std across seeds of each seed's mean fraction in the phase,
    the phase as the tables assigned it (rows of runs without phases are left out)."""
    fractions = tables["fractions"]
    fractions = fractions[(fractions.k == k) & (fractions.net == net) & fractions.phase.isin(PHASES)]
    by = ["algo", "task", "gradient", "hessian", "phase"]
    per_seed = fractions.groupby([*by, "seed"]).agg(fraction=("fraction", "mean"), resolved=("resolved", "all"))
    return _seed_stats(per_seed.reset_index(), by, "fraction")


def phase_bars(tables: Tables, net: str = "actor", k: int | None = None, **_) -> plt.Figure:
    """Fig. 2: S_frac at the largest k per training phase, for the three gradient/Hessian combinations; the
    chance level k/n of each algorithm's network over its bars, outlined bars where a seed's subspace is not
    resolved."""
    fractions = tables["fractions"]
    k = _largest_k(fractions, k)
    stats = _phase_means(tables, k, net)
    tasks, algos = tables.tasks(), tables.algos()
    fig, axes = _grid(1, 1, height_to_width=0.45)
    ax = axes[0, 0]
    position, ticks, missing, any_unresolved, any_chance = 0.0, [], [], False, False
    for task in tasks:
        for algo in algos:
            start = position
            for phase in PHASES:
                for combo, hatch in zip(COMBOS, HATCHES):
                    match = stats[
                        (stats.algo == algo)
                        & (stats.task == task)
                        & (stats.phase == phase)
                        & (stats.gradient == combo[0])
                        & (stats.hessian == combo[1])
                    ]
                    if len(match):
                        unresolved = bool(match["unresolved"].iloc[0])
                        any_unresolved |= unresolved
                        color = PHASE_COLORS[phase]
                        ax.bar(
                            position,
                            match["mean"].iloc[0],
                            yerr=match["std"].iloc[0],
                            width=0.85,
                            color="white" if unresolved else color,
                            edgecolor=color if unresolved else "black",
                            linewidth=1.0 if unresolved else 0.3,
                            hatch=hatch,
                            gid=UNRESOLVED_GID if unresolved else None,
                            label=f"{task} {algo} {phase} {combo[0]}/{combo[1]}",  # ax.containers, not a legend
                            error_kw={"elinewidth": 0.6, "capsize": 1.5, "ecolor": "0.3"},
                        )
                    elif combo == COMBOS[0]:
                        missing.append(f"{task} {ALGO_LABELS[algo]} {phase}")
                    position += 1
            group = fractions[(fractions.algo == algo) & (fractions.task == task) & (fractions.net == net)]
            group = group[group.k == k]
            label = f"{ALGO_LABELS[algo]}\n{task}"
            if len(group) and position > start:
                chance = _chance_of(group)
                ax.plot([start - 0.5, position - 0.5], [chance] * 2, gid=CHANCE_GID, **CHANCE)
                label += "\n" + _chance_text({net: chance})
                any_chance = True
            ticks.append(((start + position - 1) / 2, label))
            position += 1
        position += 1
    ax.set_xticks([t for t, _ in ticks], [label for _, label in ticks])
    ax.set_ylim(0, 1.02)
    ax.set_ylabel(f"gradient subspace fraction\n({net}, k = {k})")
    ax.grid(axis="x", visible=False)
    handles = [Rectangle((0, 0), 1, 1, color=PHASE_COLORS[p], label=f"{p} phase") for p in PHASES]
    handles += [
        Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="black", hatch=h, label=label)
        for h, label in zip(HATCHES, COMBO_LABELS)
    ]
    handles += _marks_legend(any_chance, any_unresolved, bars=True)
    fig.legend(handles=handles, loc="outside lower center", ncols=3, frameon=False)
    if missing:
        # above the axes: inside, it would cover bars that reach 1
        ax.set_title("no checkpoint in: " + "; ".join(missing), loc="left", fontsize=6, color="0.3")
    return fig


def _nearest_t1(overlaps: pd.DataFrame, algo: str, t1: int | None) -> int:
    available = sorted(overlaps[overlaps.algo == algo].t1.unique())
    if t1 is None:
        positive = [t for t in available if t > 0]
        return positive[0] if positive else available[0]
    return min(available, key=lambda t: abs(t - t1))


def overlap_curves(tables: Tables, k: int | None = None, t1: int | None = 100_000, **_) -> plt.Figure:
    """Fig. 3 (and 12 with t1 = the first checkpoint after 0): S_overlap(t1, t2) of actor and critic, one
    panel per task and algorithm with the algorithm's own t2 axis (the algorithms train for different
    budgets), the chance levels k/n of both networks, hollow markers where a seed is not resolved."""
    overlaps = tables["overlaps"]
    k = int(k if k is not None else overlaps.k.max())
    tasks, algos = tables.tasks(), tables.algos()
    fig, axes = _grid(len(tasks), len(algos), height_to_width=0.75)
    any_unresolved = False
    for row, task in enumerate(tasks):
        for ax, algo in zip(axes[row], algos):
            here = overlaps[(overlaps.algo == algo) & (overlaps.task == task) & (overlaps.k == k)]
            if here.empty:
                ax.set_axis_off()
                ax.set_title(f"{task}: no {ALGO_LABELS[algo]} overlaps at k = {k}")
                continue
            start = _nearest_t1(here, algo, t1)
            here = here[here.t1 == start]
            chances = {}
            for net in ("actor", "critic"):
                sub = here[here.net == net]
                if sub.empty:
                    continue
                stats = _seed_stats(sub, ["t2"], "overlap")
                any_unresolved |= _curve(
                    ax, stats, "t2", ALGO_COLORS[algo], linestyle=LINESTYLES[net], label=f"{ALGO_LABELS[algo]} {net}"
                )
                chances[net] = _chance_of(sub)
                _chance_line(ax, chances[net])
            if chances:
                _chance_note(ax, chances)
            ax.axvline(start, color="0.5", linestyle=":", linewidth=0.8)
            ax.set_xlim(0, here.t2.max())
            _unit_axis(ax)
            ax.set_xlabel("$t_2$ (env steps)")
            ax.set_ylabel("subspace overlap")
            ax.set_title(f"{task}: {ALGO_LABELS[algo]}, k = {k}, $t_1$ = {start:,}")
    handles = [Line2D([], [], color="0.2", linestyle=LINESTYLES[net], label=net) for net in ("actor", "critic")]
    handles += _marks_legend(True, any_unresolved)
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)
    return fig


def overlap_entire(tables: Tables, k: int | None = None, **_) -> plt.Figure:
    """Fig. 12: the overlap with the first checkpoint after initialisation, over the entire training."""
    return overlap_curves(tables, k=k, t1=None)


def learning_curves(tables: Tables, **_) -> plt.Figure:
    """Fig. 4: evaluation return (deterministic policy) and training return, mean and std over seeds."""
    curves = tables["curves"]
    tasks = tables.tasks(("curves",))  # imported runs have none
    if not tasks:
        return placeholder("no learning curves in this experiment (imported checkpoints carry none)")
    fig, axes = _grid(len(tasks), 2, height_to_width=0.6)
    for row, task in enumerate(tasks):
        for ax, curve, title in zip(axes[row], ("eval", "train"), ("evaluation return", "training return")):
            for algo in tables.algos(("curves",)):
                sub = curves[(curves.task == task) & (curves.algo == algo) & (curves.curve == curve)]
                if curve == "train":  # rollouts end at different steps per seed: bin onto a common grid
                    bins = np.linspace(0, sub.step.max(), 40)
                    sub = sub.assign(step=bins[np.clip(np.digitize(sub.step, bins), 1, len(bins) - 1)])
                    sub = sub.groupby(["seed", "step"]).value.mean().reset_index()
                stats = _seed_stats(sub, ["step"], "value")
                _band(ax, stats.step, stats["mean"], stats["std"], color=ALGO_COLORS[algo], label=ALGO_LABELS[algo])
            ax.set_title(f"{task}: {title}")
            ax.set_xlabel("env steps")
            ax.set_ylabel("return")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncols=2, frameon=False)
    return fig


def placeholder(message: str) -> plt.Figure:
    """A figure that says why it has nothing to show (inputs missing for the experiment)."""
    fig, axes = _grid(1, 1, height_to_width=0.3)
    axes[0, 0].set_axis_off()
    axes[0, 0].text(0.5, 0.5, message, ha="center", va="center", transform=axes[0, 0].transAxes)
    return fig


SWEEP_METRICS = {  # label, and whether the metric lies in [0, 1]
    "max_return": ("max. smoothed eval. return", False),
    "fraction": (r"$S_\mathrm{frac}$ (mean over training)", True),
    "overlap": (r"$S_\mathrm{overlap}$ ($t_1 \to t_2$)", True),
}


def _sweep_long(sweep: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per (configuration, algorithm, network), ordered so, with the metric as ``value`` and an x
    ``label`` ("PPO\\nactor")."""
    frames = []
    for algo in SWEEP_ALGOS:
        label = ALGO_LABELS[algo]
        for net in ("actor", "critic") if metric != "max_return" else ("",):
            rows = sweep[sweep.algo == algo]
            value = rows[f"{metric}_{net}" if net else metric]
            chance = rows[f"chance_{net}"] if f"chance_{net}" in rows else np.nan
            frames.append(rows.assign(value=value, chance=chance, net=net, label=f"{label}\n{net}" if net else label))
    return pd.concat(frames, ignore_index=True)


def sweep_violins(tables: Tables, metric: str = "fraction", **_) -> plt.Figure:
    """Figs. 9-11: each random configuration (mean over its seeds) as a dot over the violin of all of them,
    the tuned configuration (the main study's runs, mean over seeds) as a star; per task and network. The
    configurations that diverged are left out and counted under their violin. Figs. 10-11 draw each
    distinct chance level k/n of a violin's configurations across it, from the optional sweep.csv columns
    ``chance_actor``, ``chance_critic``, and say so when the table has none."""
    import seaborn as sns

    sweep = tables["sweep"]
    if sweep.empty:
        return placeholder("no random-hyperparameter sweep in this config (sweep.configurations, sweep.runs)")
    ylabel, unit = SWEEP_METRICS[metric]
    tasks = list(dict.fromkeys(sweep.task))
    fig, axes = _grid(1, len(tasks), rel_width=min(1.0, 0.5 * len(tasks)), height_to_width=1.0)
    for ax, task in zip(axes[0], tasks):
        long = _sweep_long(sweep[sweep.task == task], metric)
        labels = list(dict.fromkeys(long.label))
        drawn = long[long.configuration != "tuned"]
        ok = drawn[drawn.status == "ok"]
        if len(ok):
            palette = {label: ALGO_COLORS[algo] for label, algo in zip(long.label, long.algo)}
            sns.violinplot(
                data=ok, x="label", y="value", hue="label", order=labels, palette=palette, ax=ax, inner=None,
                cut=0, density_norm="width", linewidth=0.6, legend=False, alpha=0.35,
            )  # fmt: skip
            sns.stripplot(data=ok, x="label", y="value", order=labels, ax=ax, color="black", size=2.5, jitter=0.12)
        tuned = long[(long.configuration == "tuned") & (long.status == "ok")]
        ticks = []
        for x, label in enumerate(labels):
            for level in long[(long.label == label) & (long.status == "ok")].chance.dropna().unique():
                ax.plot([x - 0.4, x + 0.4], [level, level], gid=CHANCE_GID, **CHANCE)
            value = tuned[tuned.label == label].value
            ax.scatter([x] * len(value), value, marker="*", s=70, color=OKABE_ITO[4], edgecolor="black", zorder=5)
            here = drawn[drawn.label == label]
            left_out = int((here.status != "ok").sum())
            ticks.append(f"{label}\nn = {len(here) - left_out}" + (f"\n({left_out} left out)" if left_out else ""))
        ax.set_xticks(range(len(labels)), ticks)
        ax.set_xlim(-0.5, len(labels) - 0.5)
        if unit:
            _unit_axis(ax)
        ax.set(title=task, xlabel="", ylabel=ylabel)
    drawn = sweep[sweep.configuration != "tuned"]
    failed = int((drawn.status != "ok").sum())
    handles = [
        Line2D([], [], marker="o", color="black", markersize=2.5, linestyle=""),
        Line2D([], [], marker="*", color=OKABE_ITO[4], markeredgecolor="black", markersize=8, linestyle=""),
    ]
    names = ["random configuration", "tuned (main study)"]
    left_out = f"{failed} left out (training diverged)" if failed else "none left out"
    title = f"{len(drawn) - failed} of {len(drawn)} configurations shown, {left_out}"
    if metric != "max_return":
        if any(line.get_gid() == CHANCE_GID for ax in axes[0] for line in ax.get_lines()):
            handles.append(Line2D([], [], **CHANCE))
            names.append(CHANCE_LABEL)
        else:
            title += f"\n({CHANCE_LABEL} not in sweep.csv)"
    fig.legend(handles, names, loc="outside upper center", ncols=len(handles), frameon=False, title=title)
    return fig


def _largest_k_chance(ax, frame: pd.DataFrame) -> bool:
    """The chance line of the largest k in ``frame`` (one network): the highest chance level of the panel's
    curves; those of smaller k lie below it, too close to 0 to tell apart."""
    if frame.empty:
        return False
    k = frame.k.max()
    chance = _chance_of(frame[frame.k == k])
    _chance_line(ax, chance)
    _chance_note(ax, {"": chance}, f" (k = {k})")
    return True


def fraction_by_k(tables: Tables, algo: str = "ppo", **_) -> plt.Figure:
    """Figs. 5-6: S_frac through training for several k; solid precise, dashed mini-batch gradient (both
    with the precise Hessian); the chance level k/n of the largest k; hollow markers where a seed's
    subspace is not resolved."""
    fractions = tables["fractions"]
    fractions = fractions[(fractions.algo == algo) & (fractions.hessian == "precise")]
    tasks, levels = tables.tasks(), sorted(fractions.k.unique())
    fig, axes = _grid(len(tasks), 2, height_to_width=0.8)
    any_unresolved = any_chance = False
    for row, task in enumerate(tasks):
        for ax, net in zip(axes[row], ("actor", "critic")):
            panel = fractions[(fractions.task == task) & (fractions.net == net)]
            for color, k in zip(OKABE_ITO, levels):
                for gradient, style in (("precise", "-"), ("minibatch", "--")):
                    sub = panel[(panel.k == k) & (panel.gradient == gradient)]
                    stats = _seed_stats(sub, ["step"], "fraction")
                    label = f"k = {k}" if gradient == "precise" else None
                    any_unresolved |= _curve(ax, stats, "step", color, linestyle=style, label=label)
            any_chance |= _largest_k_chance(ax, panel)
            _unit_axis(ax)
            ax.set_title(f"{task}: {ALGO_LABELS[algo]} {net}")
            ax.set_xlabel("env steps")
            ax.set_ylabel("gradient subspace fraction")
    marks = _marks_legend(any_chance, any_unresolved, chance_label=f"{CHANCE_LABEL} (largest k)")
    handles = axes[0, 0].get_legend_handles_labels()[0] + marks
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=min(len(handles), 5),
        frameon=False,
        title="solid: precise gradient, dashed: mini-batch gradient (precise Hessian)",
    )
    return fig


def overlap_by_k(tables: Tables, algo: str = "ppo", t1: int | None = 100_000, **_) -> plt.Figure:
    """Figs. 7-8: S_overlap(t1, t2) for several k, actor and critic; the chance level k/n of the largest k;
    hollow markers where a seed's subspace is not resolved."""
    overlaps = tables["overlaps"]
    start = _nearest_t1(overlaps, algo, t1)
    overlaps = overlaps[(overlaps.algo == algo) & (overlaps.t1 == start)]
    tasks, levels = tables.tasks(), sorted(overlaps.k.unique())
    fig, axes = _grid(len(tasks), 2, height_to_width=0.8)
    any_unresolved = any_chance = False
    for row, task in enumerate(tasks):
        for ax, net in zip(axes[row], ("actor", "critic")):
            panel = overlaps[(overlaps.task == task) & (overlaps.net == net)]
            for color, k in zip(OKABE_ITO, levels):
                stats = _seed_stats(panel[panel.k == k], ["t2"], "overlap")
                any_unresolved |= _curve(ax, stats, "t2", color, label=f"k = {k}")
            any_chance |= _largest_k_chance(ax, panel)
            ax.axvline(start, color="0.5", linestyle=":", linewidth=0.8)
            _unit_axis(ax)
            ax.set_title(f"{task}: {ALGO_LABELS[algo]} {net}, $t_1$ = {start:,}")
            ax.set_xlabel("$t_2$ (env steps)")
            ax.set_ylabel("subspace overlap")
    marks = _marks_legend(any_chance, any_unresolved, chance_label=f"{CHANCE_LABEL} (largest k)")
    handles = axes[0, 0].get_legend_handles_labels()[0] + marks
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5), frameon=False)
    return fig


FIGURES: dict[str, tuple[Callable[..., plt.Figure], dict]] = {
    "fig1_eigenspectrum": (eigenspectrum, {"algo": "ppo"}),
    "fig2_fraction_phases_actor": (phase_bars, {"net": "actor"}),
    "fig2_fraction_phases_critic": (phase_bars, {"net": "critic"}),
    "fig3_overlap": (overlap_curves, {}),
    "fig4_learning_curves": (learning_curves, {}),
    "fig5_fraction_ppo": (fraction_by_k, {"algo": "ppo"}),
    "fig6_fraction_sac": (fraction_by_k, {"algo": "sac"}),
    "fig7_overlap_ppo": (overlap_by_k, {"algo": "ppo"}),
    "fig8_overlap_sac": (overlap_by_k, {"algo": "sac"}),
    "fraction_td3": (fraction_by_k, {"algo": "td3"}),
    "overlap_td3": (overlap_by_k, {"algo": "td3"}),
    "fig9_sweep_returns": (sweep_violins, {"metric": "max_return"}),
    "fig10_sweep_fraction": (sweep_violins, {"metric": "fraction"}),
    "fig11_sweep_overlap": (sweep_violins, {"metric": "overlap"}),
    "fig12_overlap_entire": (overlap_entire, {}),
    **path_figures.FIGURES,
    **crosslens_figures.FIGURES,
    **pptb_figures.FIGURES,
}
# the policy-path lens's and the cross-lens's figures and the tables each reads (docs/path.md, docs/crosslens.md)
PATH_FIGURES = (*path_figures.FIGURES, *crosslens_figures.FIGURES)
PPTB_FIGURES = tuple(pptb_figures.FIGURES)  # the PPTB study's (docs/pptb.md), from results/<experiment>/pptb/
FIGURE_TABLES = {**path_figures.FIGURE_TABLES, **crosslens_figures.FIGURE_TABLES, **pptb_figures.FIGURE_TABLES}
SWEEP_FIGURES = ("fig9_sweep_returns", "fig10_sweep_fraction", "fig11_sweep_overlap")
# What an experiment of imported checkpoints only shows: no learning curves, phases (Figs. 2, 4) or sweep.
IMPORT_FIGURES = (
    "fig1_eigenspectrum",
    "fig3_overlap",
    "fig5_fraction_ppo",
    "fig6_fraction_sac",
    "fig7_overlap_ppo",
    "fig8_overlap_sac",
    "fraction_td3",
    "overlap_td3",
    "fig12_overlap_entire",
)
SWEEP_ALGOS = ("ppo", "sac")  # the paper's sweep spaces (pgsubspaces.sweep.SPACES)


MARKS = (
    " Dashed grey: the chance level k/n (the expected value for a random k-dimensional subspace of the n "
    "parameters); hollow markers or outlined bars: some seed's value has an eigensolver bound above "
    "analysis.subspace_tol (subspace not resolved)."
)
CAPTIONS = {
    "fig1_eigenspectrum": "Fig. 1: every Hessian eigenvalue (explicit Hessian, spectrum rule) of the PPO actor and "
    "critic losses at the last checkpoint of the first seed, as a histogram (decade bins from the largest "
    "absolute eigenvalue down to 1e-6 of it, smaller ones in the centre bin; log counts) and sorted by index; a task "
    "without a full spectrum shows its top k and says so.",
    "fig2_fraction_phases_actor": "Fig. 2 (actor): gradient subspace fraction at the largest k per training phase "
    "(as the tables assign it), for precise/mini-batch gradients and Hessians; mean and std over seeds." + MARKS,
    "fig2_fraction_phases_critic": "Fig. 2 (critic): as the actor panel, for the critic loss." + MARKS,
    "fig3_overlap": "Fig. 3: subspace overlap of the top-k precise Hessian eigenvectors between t1 and later t2, "
    "actor (solid) and critic (dashed), one panel per algorithm on its own step axis; mean and std over seeds." + MARKS,
    "fig4_learning_curves": "Fig. 4: evaluation return of the deterministic policy and training return; mean and "
    "std over seeds.",
    "fig5_fraction_ppo": "Fig. 5: PPO gradient subspace fraction through training for several k (chance line: "
    "the largest k)." + MARKS,
    "fig6_fraction_sac": "Fig. 6: SAC gradient subspace fraction through training for several k (chance line: "
    "the largest k)." + MARKS,
    "fig7_overlap_ppo": "Fig. 7: PPO subspace overlap from t1 for several k (chance line: the largest k)." + MARKS,
    "fig8_overlap_sac": "Fig. 8: SAC subspace overlap from t1 for several k (chance line: the largest k)." + MARKS,
    "fraction_td3": "As Fig. 5, for TD3 (not in the paper): gradient subspace fraction through training for "
    "several k (chance line: the largest k)." + MARKS,
    "overlap_td3": "As Fig. 7, for TD3 (not in the paper): subspace overlap from t1 for several k (chance line: "
    "the largest k)." + MARKS,
    "fig12_overlap_entire": "Fig. 12: subspace overlap with the first checkpoint after initialisation, over the "
    "entire training, one panel per algorithm." + MARKS,
    "fig9_sweep_returns": "Fig. 9: the maximum smoothed evaluation return of random hyperparameter configurations "
    "(Sobol draws from the paper's Table 1 ranges; dots, mean over seeds) against the tuned configuration (star).",
    "fig10_sweep_fraction": "Fig. 10: gradient subspace fraction (precise gradient and Hessian, largest k, mean "
    "over the checkpoints after step 0) of the random configurations (dots) and the tuned one (star); dashed "
    "grey: chance k/n when sweep.csv has it.",
    "fig11_sweep_overlap": "Fig. 11: subspace overlap between t1 and t2 (largest k) of the random configurations "
    "(dots) and the tuned one (star); dashed grey: chance k/n when sweep.csv has it.",
    **path_figures.CAPTIONS,
    **crosslens_figures.CAPTIONS,
    **pptb_figures.CAPTIONS,
}


def caption(name: str, config: dict) -> str:
    """The report caption: what the figure shows and with which config."""
    if name in PPTB_FIGURES:  # no Hessian in these: the study's bootstrap instead
        bootstrap = config.get("pptb", {}).get("bootstrap", {})
        return (
            f"{CAPTIONS[name]} Experiment '{config.get('experiment')}', {bootstrap.get('reps')} bootstrap resamples "
            f"(seed {bootstrap.get('seed')})."
        )
    analysis = config.get("analysis", {})
    return (
        f"{CAPTIONS[name]} Experiment '{config.get('experiment')}', variant '{analysis.get('variant')}', "
        f"k = {analysis.get('k')}, solver {analysis.get('solver')}, subspace_tol {analysis.get('subspace_tol')}, "
        f"{analysis.get('ppo_samples')} PPO analysis samples."
    )


def save(fig: plt.Figure, pdf: Path) -> None:
    """The figure as PDF and PNG next to each other, both written atomically."""
    for path in (pdf, pdf.with_suffix(".png")):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix[1:])
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=sorted(FIGURES))
    parser.add_argument("--tables", required=True, nargs="+", type=Path, help="table CSVs, or their folder")
    parser.add_argument("--out", required=True, type=Path, help="the PDF; the PNG goes next to it")
    parser.add_argument("--k", type=int)
    parser.add_argument("--t1", type=int)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("fontTools").setLevel(logging.WARNING)  # PDF font subsetting logs every glyph
    function, kwargs = FIGURES[args.name]
    options = {key: value for key, value in (("k", args.k), ("t1", args.t1)) if value is not None}
    tables = Tables(*args.tables)
    missing = [name for name in FIGURE_TABLES.get(args.name, ()) if name not in tables.files]
    with plt.rc_context(iclr2024()):
        if missing:
            log.warning("%s: no %s in %s", args.name, ", ".join(f"{m}.csv" for m in missing), tables.where)
            study = "PPTB-study" if args.name in PPTB_FIGURES else "policy-path"
            figure = placeholder(f"{args.name}: no {study} tables ({', '.join(missing)})")
        elif "algo" in kwargs and kwargs["algo"] not in tables.algos():
            name = ALGO_LABELS[kwargs["algo"]]
            log.warning("%s: no %s runs in %s", args.name, name, tables.where)
            figure = placeholder(f"{args.name}: this experiment has no {name} runs")
        else:
            figure = function(tables, **kwargs, **options)
        save(figure, args.out)


if __name__ == "__main__":
    main()
