"""The paper's figures, each a pure function of the tidy tables (docs/tables.md).

    python -m pgsubspaces.figures NAME --tables DIR --out figures/NAME.pdf [--k K] [--t1 STEP]

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
    """The experiment's tables, read lazily from a folder of CSV files."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._cache: dict[str, pd.DataFrame] = {}

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self._cache:
            path = self.folder / f"{name}.csv"
            if not path.exists():
                raise FileNotFoundError(f"{path}: missing; run the tables rule first")
            self._cache[name] = pd.read_csv(path)
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
    "fig12_overlap_entire": (overlap_entire, {}),
}


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
    parser.add_argument("--tables", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path, help="the PDF; the PNG goes next to it")
    parser.add_argument("--k", type=int)
    parser.add_argument("--t1", type=int)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    function, kwargs = FIGURES[args.name]
    options = {key: value for key, value in (("k", args.k), ("t1", args.t1)) if value is not None}
    tables = Tables(args.tables)
    with plt.rc_context(iclr2024()):
        if "algo" in kwargs and kwargs["algo"] not in tables.algos():
            name = ALGO_LABELS[kwargs["algo"]]
            log.warning("%s: no %s runs in %s", args.name, name, args.tables)
            figure = placeholder(f"{args.name}: this experiment has no {name} runs")
        else:
            figure = function(tables, **kwargs, **options)
        save(figure, args.out)


if __name__ == "__main__":
    main()
