"""The paper's figures, each a pure function of the tidy tables (docs/tables.md).

    python -m pgsubspaces.figures NAME --tables DIR|CSV... --out figures/NAME.pdf [--k K] [--t1 STEP]

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

from pgsubspaces.atomic import atomic_path  # noqa: E402
from pgsubspaces.style import ALGO_COLORS, ALGO_LABELS, OKABE_ITO, PHASE_COLORS, iclr2024  # noqa: E402

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
            self._cache[name] = pd.read_csv(self.files[name])
        return self._cache[name]

    def tasks(self) -> list[str]:
        return sorted(self["curves"].task.unique())

    def algos(self) -> list[str]:
        return [a for a in ("ppo", "sac") if a in set(self["curves"].algo)]


def _band(ax, x, mean, std, **kwargs):
    line = ax.plot(x, mean, **kwargs)[0]
    ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
    return line


def _seed_stats(frame: pd.DataFrame, by: list[str], value: str) -> pd.DataFrame:
    """Mean and population std (ddof 0, as the original) across seeds."""
    return frame.groupby(by)[value].agg(mean="mean", std=lambda v: float(np.std(v))).reset_index()


def _largest_k(fractions: pd.DataFrame, k: int | None) -> int:
    return int(k if k is not None else fractions.k.max())


def _grid(nrows: int, ncols: int, rel_width: float = 1.0, height_to_width: float = 0.75, **subplot_kw):
    with plt.rc_context(iclr2024(rel_width=rel_width, nrows=nrows, ncols=ncols, height_to_width=height_to_width)):
        fig, axes = plt.subplots(nrows, ncols, squeeze=False, **subplot_kw)
    return fig, axes


def eigenspectrum(tables: Tables, algo: str = "ppo", **_) -> plt.Figure:
    """Fig. 1: eigenvalue histogram (symmetric log bins) and sorted eigenvalues, actor and critic, of the
    full spectra (seed and checkpoint as computed by the spectrum rule); tasks without one show their top k
    at the last analysed checkpoint of their first seed, and say so."""
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
            edges = np.concatenate([-np.logspace(4, -2, 7), [0], np.logspace(-2, 4, 7)])
            hist_ax.hist(np.clip(values, edges[0], edges[-1]), bins=edges, color=OKABE_ITO[0])
            hist_ax.set_xscale("symlog", linthresh=1e-2)
            hist_ax.set_xticks([-1e4, -1e2, -1, 0, 1, 1e2, 1e4])  # every decade labelled would overlap
            hist_ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
            hist_ax.set_yscale("log")
            hist_ax.set_xlabel("eigenvalue")
            hist_ax.set_ylabel("count")
            which = "all" if len(full) else "top"
            hist_ax.set_title(f"{task}, {algo.upper()} {net}, step {step:,} ({which} {len(values)} eigenvalues)")
            sorted_ax.plot(np.arange(len(values)), np.sort(values), ".", markersize=2, color=OKABE_ITO[3])
            sorted_ax.set_yscale("symlog", linthresh=1e-2)
            sorted_ax.set_xlabel("index (ascending)")
            sorted_ax.set_ylabel("eigenvalue")
    return fig


def _phase_means(tables: Tables, k: int, net: str) -> pd.DataFrame:
    """Per (algo, task, combo, phase): mean and std across seeds of each seed's mean fraction in the phase."""
    fractions = tables["fractions"]
    fractions = fractions[(fractions.k == k) & (fractions.net == net)].copy()
    phases = tables["phases"].set_index(["algo", "task", "seed"])
    labels = []
    for algo, task, seed, step in fractions[["algo", "task", "seed", "step"]].itertuples(index=False):
        row = phases.loc[(algo, task, seed)]
        labels.append(
            "initial" if step <= row.end_initial else "convergence" if step >= row.start_convergence else "training"
        )
    fractions["phase"] = labels
    per_seed = fractions.groupby(["algo", "task", "gradient", "hessian", "phase", "seed"]).fraction.mean().reset_index()
    return _seed_stats(per_seed, ["algo", "task", "gradient", "hessian", "phase"], "fraction")


def phase_bars(tables: Tables, net: str = "actor", k: int | None = None, **_) -> plt.Figure:
    """Fig. 2: S_frac at the largest k per training phase, for the three gradient/Hessian combinations."""
    k = _largest_k(tables["fractions"], k)
    stats = _phase_means(tables, k, net)
    tasks, algos = tables.tasks(), tables.algos()
    fig, axes = _grid(1, 1, height_to_width=0.45)
    ax = axes[0, 0]
    position, ticks, missing = 0.0, [], []
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
                        color = PHASE_COLORS[phase]
                        ax.bar(
                            position,
                            match["mean"].iloc[0],
                            yerr=match["std"].iloc[0],
                            width=0.85,
                            color=color,
                            edgecolor="black",
                            linewidth=0.3,
                            hatch=hatch,
                            error_kw={"elinewidth": 0.6, "capsize": 1.5, "ecolor": "0.3"},
                        )
                    elif combo == COMBOS[0]:
                        missing.append(f"{task} {ALGO_LABELS[algo]} {phase}")
                    position += 1
            ticks.append(((start + position - 1) / 2, f"{ALGO_LABELS[algo]}\n{task}"))
            position += 1
        position += 1
    ax.set_xticks([t for t, _ in ticks], [label for _, label in ticks])
    ax.set_ylim(0, 1.02)
    ax.set_ylabel(f"gradient subspace fraction ({net}, k = {k})")
    ax.grid(axis="x", visible=False)
    handles = [plt.Rectangle((0, 0), 1, 1, color=PHASE_COLORS[p], label=f"{p} phase") for p in PHASES]
    handles += [
        plt.Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="black", hatch=h, label=label)
        for h, label in zip(HATCHES, COMBO_LABELS)
    ]
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
    """Fig. 3 (and 12 with t1 = the first checkpoint after 0): S_overlap(t1, t2) of actor and critic."""
    overlaps = tables["overlaps"]
    k = int(k if k is not None else overlaps.k.max())
    tasks = tables.tasks()
    fig, axes = _grid(1, len(tasks), height_to_width=0.75)
    for ax, task in zip(axes[0], tasks):
        for algo in tables.algos():
            start = _nearest_t1(overlaps, algo, t1)
            for net in ("actor", "critic"):
                sub = overlaps[
                    (overlaps.algo == algo)
                    & (overlaps.task == task)
                    & (overlaps.net == net)
                    & (overlaps.k == k)
                    & (overlaps.t1 == start)
                ]
                stats = _seed_stats(sub, ["t2"], "overlap")
                _band(
                    ax,
                    stats.t2,
                    stats["mean"],
                    stats["std"],
                    color=ALGO_COLORS[algo],
                    linestyle=LINESTYLES[net],
                    label=f"{ALGO_LABELS[algo]}, {net} (t1 = {start:,})",
                )
            ax.axvline(start, color="0.5", linestyle=":", linewidth=0.8)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("$t_2$ (env steps)")
        ax.set_ylabel(f"subspace overlap (k = {k})")
        ax.set_title(task)
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncols=2, frameon=False)
    return fig


def overlap_entire(tables: Tables, k: int | None = None, **_) -> plt.Figure:
    """Fig. 12: the overlap with the first checkpoint after initialisation, over the entire training."""
    return overlap_curves(tables, k=k, t1=None)


def learning_curves(tables: Tables, **_) -> plt.Figure:
    """Fig. 4: evaluation return (deterministic policy) and training return, mean and std over seeds."""
    curves = tables["curves"]
    tasks = tables.tasks()
    fig, axes = _grid(len(tasks), 2, height_to_width=0.6)
    for row, task in enumerate(tasks):
        for ax, curve, title in zip(axes[row], ("eval", "train"), ("evaluation return", "training return")):
            for algo in tables.algos():
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


SWEEP_METRICS = {
    "max_return": ("max. smoothed eval. return", None),
    "fraction": (r"$S_\mathrm{frac}$ (mean over training)", (0.0, 1.05)),
    "overlap": (r"$S_\mathrm{overlap}$ ($t_1 \to t_2$)", (0.0, 1.05)),
}


def _sweep_long(sweep: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per (configuration, algorithm, network), ordered so, with the metric as ``value`` and an x
    ``label`` ("PPO\\nactor")."""
    frames = []
    for algo, label in ALGO_LABELS.items():
        for net in ("actor", "critic") if metric != "max_return" else ("",):
            rows = sweep[sweep.algo == algo]
            value = rows[f"{metric}_{net}" if net else metric]
            frames.append(rows.assign(value=value, net=net, label=f"{label}\n{net}" if net else label))
    return pd.concat(frames, ignore_index=True)


def sweep_violins(tables: Tables, metric: str = "fraction", **_) -> plt.Figure:
    """Figs. 9-11: each random configuration (mean over its seeds) as a dot over the violin of all of them,
    the tuned configuration (the main study's runs, mean over seeds) as a star; per task and network. The
    configurations that diverged are left out and counted under their violin."""
    import seaborn as sns
    from matplotlib.lines import Line2D

    sweep = tables["sweep"]
    if sweep.empty:
        return placeholder("no random-hyperparameter sweep in this config (sweep.configurations, sweep.runs)")
    ylabel, ylim = SWEEP_METRICS[metric]
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
            value = tuned[tuned.label == label].value
            ax.scatter([x] * len(value), value, marker="*", s=70, color=OKABE_ITO[4], edgecolor="black", zorder=5)
            here = drawn[drawn.label == label]
            left_out = int((here.status != "ok").sum())
            ticks.append(f"{label}\nn = {len(here) - left_out}" + (f"\n({left_out} left out)" if left_out else ""))
        ax.set_xticks(range(len(labels)), ticks)
        ax.set_xlim(-0.5, len(labels) - 0.5)
        if ylim is not None:
            ax.set_ylim(*ylim)
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
    fig.legend(handles, names, loc="outside upper center", ncols=2, frameon=False, title=title)
    return fig


def fraction_by_k(tables: Tables, algo: str = "ppo", **_) -> plt.Figure:
    """Figs. 5-6: S_frac through training for several k; solid precise, dashed mini-batch gradient
    (both with the precise Hessian), dotted the chance level k/n."""
    fractions = tables["fractions"]
    fractions = fractions[(fractions.algo == algo) & (fractions.hessian == "precise")]
    tasks, levels = tables.tasks(), sorted(fractions.k.unique())
    fig, axes = _grid(len(tasks), 2, height_to_width=0.6)
    for row, task in enumerate(tasks):
        for ax, net in zip(axes[row], ("actor", "critic")):
            for color, k in zip(OKABE_ITO, levels):
                for gradient, style in (("precise", "-"), ("minibatch", "--")):
                    sub = fractions[
                        (fractions.task == task)
                        & (fractions.net == net)
                        & (fractions.k == k)
                        & (fractions.gradient == gradient)
                    ]
                    stats = _seed_stats(sub, ["step"], "fraction")
                    _band(
                        ax,
                        stats.step,
                        stats["mean"],
                        stats["std"],
                        color=color,
                        linestyle=style,
                        label=f"k = {k}" if gradient == "precise" else None,
                    )
            ax.set_ylim(0, 1.02)
            ax.set_title(f"{task}: {ALGO_LABELS[algo]} {net}")
            ax.set_xlabel("env steps")
            ax.set_ylabel("gradient subspace fraction")
    fig.legend(
        *axes[0, 0].get_legend_handles_labels(),
        loc="outside lower center",
        ncols=len(levels),
        frameon=False,
        title="solid: precise gradient, dashed: mini-batch gradient (precise Hessian)",
    )
    return fig


def overlap_by_k(tables: Tables, algo: str = "ppo", t1: int | None = 100_000, **_) -> plt.Figure:
    """Figs. 7-8: S_overlap(t1, t2) for several k, actor and critic."""
    overlaps = tables["overlaps"]
    start = _nearest_t1(overlaps, algo, t1)
    overlaps = overlaps[(overlaps.algo == algo) & (overlaps.t1 == start)]
    tasks, levels = tables.tasks(), sorted(overlaps.k.unique())
    fig, axes = _grid(len(tasks), 2, height_to_width=0.6)
    for row, task in enumerate(tasks):
        for ax, net in zip(axes[row], ("actor", "critic")):
            for color, k in zip(OKABE_ITO, levels):
                sub = overlaps[(overlaps.task == task) & (overlaps.net == net) & (overlaps.k == k)]
                stats = _seed_stats(sub, ["t2"], "overlap")
                _band(ax, stats.t2, stats["mean"], stats["std"], color=color, label=f"k = {k}")
            ax.axvline(start, color="0.5", linestyle=":", linewidth=0.8)
            ax.set_ylim(0, 1.02)
            ax.set_title(f"{task}: {ALGO_LABELS[algo]} {net}, $t_1$ = {start:,}")
            ax.set_xlabel("$t_2$ (env steps)")
            ax.set_ylabel("subspace overlap")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncols=len(levels), frameon=False)
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
    "fig9_sweep_returns": (sweep_violins, {"metric": "max_return"}),
    "fig10_sweep_fraction": (sweep_violins, {"metric": "fraction"}),
    "fig11_sweep_overlap": (sweep_violins, {"metric": "overlap"}),
    "fig12_overlap_entire": (overlap_entire, {}),
}
SWEEP_FIGURES = ("fig9_sweep_returns", "fig10_sweep_fraction", "fig11_sweep_overlap")


CAPTIONS = {
    "fig1_eigenspectrum": "Fig. 1: every Hessian eigenvalue (explicit Hessian, spectrum rule) of the PPO actor and "
    "critic losses at the last checkpoint of the first seed, as a histogram (symmetric log bins) and sorted by "
    "index; a task without a full spectrum shows its top k and says so.",
    "fig2_fraction_phases_actor": "Fig. 2 (actor): gradient subspace fraction at the largest k per training phase, "
    "for precise/mini-batch gradients and Hessians; mean and std over seeds.",
    "fig2_fraction_phases_critic": "Fig. 2 (critic): as the actor panel, for the critic loss.",
    "fig3_overlap": "Fig. 3: subspace overlap of the top-k precise Hessian eigenvectors between t1 and later t2, "
    "actor (solid) and critic (dashed); mean and std over seeds.",
    "fig4_learning_curves": "Fig. 4: evaluation return of the deterministic policy and training return; mean and "
    "std over seeds.",
    "fig5_fraction_ppo": "Fig. 5: PPO gradient subspace fraction through training for several k.",
    "fig6_fraction_sac": "Fig. 6: SAC gradient subspace fraction through training for several k.",
    "fig7_overlap_ppo": "Fig. 7: PPO subspace overlap from t1 for several k.",
    "fig8_overlap_sac": "Fig. 8: SAC subspace overlap from t1 for several k.",
    "fig12_overlap_entire": "Fig. 12: subspace overlap with the first checkpoint after initialisation, over the "
    "entire training.",
    "fig9_sweep_returns": "Fig. 9: the maximum smoothed evaluation return of random hyperparameter configurations "
    "(Sobol draws from the paper's Table 1 ranges; dots, mean over seeds) against the tuned configuration (star).",
    "fig10_sweep_fraction": "Fig. 10: gradient subspace fraction (precise gradient and Hessian, largest k, mean "
    "over the checkpoints after step 0) of the random configurations (dots) and the tuned one (star).",
    "fig11_sweep_overlap": "Fig. 11: subspace overlap between t1 and t2 (largest k) of the random configurations "
    "(dots) and the tuned one (star).",
}


def caption(name: str, config: dict) -> str:
    """The report caption: what the figure shows and with which config."""
    analysis = config.get("analysis", {})
    return (
        f"{CAPTIONS[name]} Experiment '{config.get('experiment')}', variant '{analysis.get('variant')}', "
        f"k = {analysis.get('k')}, solver {analysis.get('solver')}, "
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
    with plt.rc_context(iclr2024()):
        if "algo" in kwargs and kwargs["algo"] not in tables.algos():
            name = ALGO_LABELS[kwargs["algo"]]
            log.warning("%s: no %s runs in %s", args.name, name, tables.where)
            figure = placeholder(f"{args.name}: this experiment has no {name} runs")
        else:
            figure = function(tables, **kwargs, **options)
        save(figure, args.out)


if __name__ == "__main__":
    main()
