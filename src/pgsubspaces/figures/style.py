"""Figure style: ICLR 2024 sizes and fonts as a plain rcParams dict (apply with ``plt.rc_context``).

The template's text width is 5.5 in; panels default to the golden ratio. Colours are colour-blind safe:
the IBM palette for the training phases (as the paper) and Okabe-Ito for everything else.
"""

from __future__ import annotations

from cycler import cycler

TEXT_WIDTH_IN = 5.5
GOLDEN = 0.618
PHASE_COLORS = {"initial": "#648FFF", "training": "#785EF0", "convergence": "#DC267F"}
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
ALGO_COLORS = {"ppo": OKABE_ITO[0], "sac": OKABE_ITO[3], "td3": OKABE_ITO[2]}
ALGO_LABELS = {"ppo": "PPO", "sac": "SAC", "td3": "TD3"}
NET_LABELS = {"actor": "actor", "critic": "critic", "combined": "combined"}
# the chance level k/n: thin, grey, dashed, under the data
CHANCE = {"color": "0.35", "linestyle": (0, (3, 2)), "linewidth": 0.7, "zorder": 1.5}
CHANCE_LABEL = "chance k/n"
# values whose eigensolver bound exceeds analysis.subspace_tol: hollow markers, outlined bars
UNRESOLVED_LABEL = "subspace not resolved (bound > tol)"
UNRESOLVED_MARKER = {"marker": "o", "markersize": 3.5, "markerfacecolor": "white", "markeredgewidth": 0.9}


def iclr2024(*, rel_width: float = 1.0, nrows: int = 1, ncols: int = 1, height_to_width: float = GOLDEN) -> dict:
    """rcParams for a figure ``rel_width`` of the ICLR 2024 text width with nrows x ncols panels."""
    if not 0 < rel_width <= 1:
        raise ValueError(f"rel_width={rel_width}; expected 0 < rel_width <= 1")
    width = TEXT_WIDTH_IN * rel_width
    height = height_to_width * width / ncols * nrows
    return {
        "figure.figsize": (width, height),
        "figure.constrained_layout.use": True,
        "font.family": "serif",
        "mathtext.fontset": "dejavuserif",  # math labels in the text's serif face
        "font.size": 8,
        "axes.titlesize": 8,
        "axes.labelsize": 8,
        "legend.fontsize": 7,
        "xtick.labelsize": 7,
        "ytick.labelsize": 7,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "lines.linewidth": 1.2,
        "axes.prop_cycle": cycler(color=OKABE_ITO),
        "savefig.bbox": "tight",
        "savefig.dpi": 200,
        "pdf.fonttype": 42,
    }


def grid(nrows: int, ncols: int, rel_width: float = 1.0, height_to_width: float = 0.75, **subplot_kw):
    """A figure of nrows x ncols panels in the ICLR style (``axes`` always 2-D)."""
    import matplotlib.pyplot as plt

    with plt.rc_context(iclr2024(rel_width=rel_width, nrows=nrows, ncols=ncols, height_to_width=height_to_width)):
        fig, axes = plt.subplots(nrows, ncols, squeeze=False, **subplot_kw)
    return fig, axes


def band(ax, x, mean, std, **kwargs):
    """A line and its +-std band in the line's colour."""
    line = ax.plot(x, mean, **kwargs)[0]
    ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
    return line
