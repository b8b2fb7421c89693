"""The figures draw what the tables hold: chance levels, per-algorithm overlap axes, Fig. 1's bins, the
unresolved marks and the tables' phases (synthetic tables with the columns of docs/tables.md)."""

from __future__ import annotations

import itertools

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba
from matplotlib.container import BarContainer

from pgsubspaces.figures import figures
from pgsubspaces.figures.figures import (
    CHANCE_GID,
    FIGURES,
    UNRESOLVED_GID,
    Tables,
    eigenspectrum,
    fraction_by_k,
    overlap_by_k,
    overlap_curves,
    phase_bars,
    spectrum_bins,
    sweep_violins,
)
from pgsubspaces.figures.style import CHANCE_LABEL, PHASE_COLORS, UNRESOLVED_LABEL
from pgsubspaces.tables.metrics import training_phases

TASKS = ("Pendulum", "Walker2d")
SEEDS = (0, 1)
STEPS = {"ppo": (0, 4096, 8192, 16384, 24576, 32768, 40960), "sac": (0, 500, 1000, 2000, 3000, 4000)}
K_LEVELS = (1, 10, 50)
N_PARAMS = {("ppo", "actor"): 4545, ("ppo", "critic"): 4417, ("sac", "actor"): 4738, ("sac", "critic"): 9218}
N_PARAMS.update({(a, "combined"): N_PARAMS[a, "actor"] + N_PARAMS[a, "critic"] for a in ("ppo", "sac")})
T1 = {"ppo": (0, 4096, 8192), "sac": (0, 500, 1000)}
COMBOS = (("precise", "precise"), ("minibatch", "precise"), ("minibatch", "minibatch"), ("precise", "minibatch"))


def phase_of(algo: str, step: int) -> str:
    """The phases the synthetic tables assign: a third of each run each."""
    last = STEPS[algo][-1]
    return "initial" if step <= last / 3 else "convergence" if step >= 2 * last / 3 else "training"


UNRESOLVED = {  # (algo, task, seed, step, net, hessian, k): the actor's largest k of one seed, precise Hessian
    ("sac", "Pendulum", 1, 2000, "actor", "precise", 50),  # the only checkpoint of SAC's training phase
    ("ppo", "Pendulum", 0, 16384, "actor", "precise", 50),  # one of two in PPO's
}


def unresolved_row(*row) -> bool:
    return row in UNRESOLVED


def fraction_table(unresolved=unresolved_row) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for algo, task, seed, net, (gradient, hessian), k in itertools.product(
        ("ppo", "sac"), TASKS, SEEDS, ("actor", "critic", "combined"), COMBOS, K_LEVELS
    ):
        n = N_PARAMS[algo, net]
        for step in STEPS[algo]:
            bad = unresolved(algo, task, seed, step, net, hessian, k)
            rows.append(
                dict(
                    algo=algo, task=task, seed=seed, step=step, phase=phase_of(algo, step), net=net,
                    gradient=gradient, hessian=hessian, k=k, n_params=n,
                    fraction=float(np.clip(0.2 + 0.6 * (k / 50) ** 0.3 + rng.normal(0, 0.05), 0, 1)),
                    chance=k / n, random_control=k / n * (1 + rng.normal(0, 0.1)),
                    subspace_bound=0.3 if bad else 1e-4, resolved=not bad,
                )
            )  # fmt: skip
    return pd.DataFrame(rows)


def overlap_table() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for algo, task, seed, net, k in itertools.product(
        ("ppo", "sac"), TASKS, SEEDS, ("actor", "critic", "combined"), K_LEVELS
    ):
        for t1 in T1[algo]:
            for t2 in (s for s in STEPS[algo] if s >= t1):
                bad = (algo, task, seed, net, k, t1, t2) == ("sac", "Pendulum", 0, "critic", 50, 1000, 3000)
                overlap = 1.0 if t2 == t1 else float(np.clip(0.7 - 0.3 * (t2 - t1) / t2 + rng.normal(0, 0.03), 0, 1))
                rows.append(
                    dict(
                        algo=algo, task=task, seed=seed, net=net, k=k, n_params=N_PARAMS[algo, net], t1=t1, t2=t2,
                        overlap=overlap, chance=k / N_PARAMS[algo, net], subspace_bound=0.3 if bad else 1e-4,
                        resolved=not bad,
                    )
                )  # fmt: skip
    return pd.DataFrame(rows)


def curve_table() -> pd.DataFrame:
    rows = []
    for algo, task, seed in itertools.product(("ppo", "sac"), TASKS, SEEDS):
        last = STEPS[algo][-1]
        for curve in ("eval", "train"):
            for step in np.linspace(0, last, 21).astype(int):
                value = -1500 + 1300 / (1 + np.exp(-12 * (step / last - 0.4))) + 10 * seed
                rows.append(dict(algo=algo, task=task, seed=seed, curve=curve, step=int(step), value=float(value)))
    return pd.DataFrame(rows)


def phase_table() -> pd.DataFrame:
    return pd.DataFrame(
        [
            dict(
                algo=algo, task=task, seed=seed, end_initial=STEPS[algo][-1] / 3,
                start_convergence=2 * STEPS[algo][-1] / 3, n_initial=2, n_training=2, n_convergence=2,
            )
            for algo, task, seed in itertools.product(("ppo", "sac"), TASKS, SEEDS)
        ]
    )  # fmt: skip


def pendulum_like_spectrum(n: int, rng: np.random.Generator) -> np.ndarray:
    """As the default run's PPO actor: most |lambda| < 1e-3, outliers up to 356, a few negative down to -8."""
    bulk = rng.choice([-1, 1], 3782) * 10.0 ** rng.uniform(-9, -3, 3782)
    middle = 10.0 ** rng.uniform(-3, 1.5, n - 3782 - 12)
    negative = -(10.0 ** rng.uniform(-2, np.log10(8), 10))
    return np.concatenate([bulk, middle, negative, [-8.0, 356.0]])


def spectrum_table() -> pd.DataFrame:
    rng = np.random.default_rng(2)
    rows = []
    for task, net in itertools.product(TASKS, ("actor", "critic")):
        values = np.sort(pendulum_like_spectrum(N_PARAMS["ppo", net], rng))[::-1]
        rows += [
            dict(
                algo="ppo", task=task, seed=0, step=40960, net=net, hessian="precise", kind="all", index=i, eigenvalue=v
            )
            for i, v in enumerate(values)
        ]
    return pd.DataFrame(rows)


def sweep_table(chance: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = []
    for algo, configuration in itertools.product(("ppo", "sac"), ("tuned", "c000", "c001", "c002", "c003")):
        fraction, overlap = rng.uniform(0.3, 0.9, 2), rng.uniform(0.2, 0.8, 2)
        row = dict(
            algo=algo, task="Pendulum", configuration=configuration, status="ok", reason="", seeds=1, steps=4000,
            k=50, t1=1000, t2=2000, max_return=rng.uniform(-1200, -200), fraction_actor=fraction[0],
            fraction_critic=fraction[1], overlap_actor=overlap[0], overlap_critic=overlap[1],
        )  # fmt: skip
        if chance:
            row.update(chance_actor=50 / N_PARAMS[algo, "actor"], chance_critic=50 / N_PARAMS[algo, "critic"])
        rows.append(row)
    return pd.DataFrame(rows)


def write_tables(folder, **tables) -> Tables:
    """The synthetic tables as CSV files in ``folder`` (``tables`` replace single ones)."""
    folder.mkdir(parents=True, exist_ok=True)
    built = dict(
        fractions=fraction_table, overlaps=overlap_table, curves=curve_table, phases=phase_table,
        spectra=spectrum_table, sweep=sweep_table,
    )  # fmt: skip
    for name, make in built.items():
        frame = tables[name] if name in tables else make()
        frame.to_csv(folder / f"{name}.csv", index=False)
    return Tables(folder)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    return write_tables(tmp_path_factory.mktemp("tables"))


def lines(ax, gid):
    return [line for line in ax.get_lines() if line.get_gid() == gid]


def legend_texts(fig):
    return [text.get_text() for legend in fig.legends for text in legend.get_texts()]


def bars(ax):
    """The bar containers (each bar's error bar is a container of its own)."""
    return [c for c in ax.containers if isinstance(c, BarContainer)]


def panels(fig):
    return [ax for ax in fig.axes if ax.axison]


# -- chance levels ---------------------------------------------------------------------------------------------------


def test_overlap_panels_draw_each_networks_chance_level(tables):
    fig = overlap_curves(tables, t1=8192)
    for ax, (task, algo) in zip(panels(fig), itertools.product(TASKS, ("ppo", "sac"))):
        drawn = sorted(line.get_ydata()[0] for line in lines(ax, CHANCE_GID))
        assert drawn == pytest.approx(sorted(50 / N_PARAMS[algo, net] for net in ("actor", "critic"))), (task, algo)
    assert legend_texts(fig).count(CHANCE_LABEL) == 1


@pytest.mark.parametrize("function", [fraction_by_k, overlap_by_k])
@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_by_k_panels_draw_the_largest_k_chance_level(tables, function, algo):
    fig = function(tables, algo=algo, t1=8192)
    for ax, (task, net) in zip(panels(fig), itertools.product(TASKS, ("actor", "critic"))):
        assert [line.get_ydata()[0] for line in lines(ax, CHANCE_GID)] == pytest.approx([50 / N_PARAMS[algo, net]])


@pytest.mark.parametrize("net", ["actor", "critic"])
def test_phase_bars_draw_the_chance_level_over_each_algorithms_bars(tables, net):
    fig = phase_bars(tables, net=net)
    ax = fig.axes[0]
    segments = lines(ax, CHANCE_GID)
    assert len(segments) == len(TASKS) * 2
    for segment, (task, algo) in zip(segments, itertools.product(TASKS, ("ppo", "sac"))):
        assert segment.get_ydata()[0] == pytest.approx(50 / N_PARAMS[algo, net])
        left, right = segment.get_xdata()
        own = [c for c in bars(ax) if c.get_label().startswith(f"{task} {algo} ")]
        centres = [patch.get_x() + patch.get_width() / 2 for c in own for patch in c.patches]
        assert left < min(centres) and max(centres) < right and len(centres) == 9  # spans exactly its 9 bars
        others = [c for c in bars(ax) if not c.get_label().startswith(f"{task} {algo} ")]
        assert all(not left < p.get_x() + p.get_width() / 2 < right for c in others for p in c.patches)


def test_sweep_violins_draw_chance_from_the_sweep_table(tmp_path):
    fig = sweep_violins(write_tables(tmp_path / "with"), metric="fraction")
    drawn = sorted(line.get_ydata()[0] for line in lines(fig.axes[0], CHANCE_GID))
    assert drawn == pytest.approx(sorted(50 / N_PARAMS[a, n] for a in ("ppo", "sac") for n in ("actor", "critic")))
    without = sweep_violins(write_tables(tmp_path / "without", sweep=sweep_table(chance=False)), metric="overlap")
    assert not lines(without.axes[0], CHANCE_GID)
    assert "chance k/n not in sweep.csv" in without.legends[0].get_title().get_text()


# -- Fig. 3 and 12: one panel per algorithm --------------------------------------------------------------------------


@pytest.mark.parametrize("t1", [8192, None])
def test_overlap_curves_give_each_algorithm_its_own_axis(tables, t1):
    fig = overlap_curves(tables, t1=t1)
    axes = panels(fig)
    assert len(axes) == len(TASKS) * 2
    for ax, (task, algo) in zip(axes, itertools.product(TASKS, ("ppo", "sac"))):
        assert algo.upper() in ax.get_title() and task in ax.get_title()
        assert ax.get_xlim() == (0, STEPS[algo][-1])
        x = np.concatenate([line.get_xdata() for line in ax.get_lines() if line.get_gid() is None])
        assert set(x) <= set(STEPS[algo]) and max(x) == STEPS[algo][-1]
    sac = axes[1].get_title()
    assert ("$t_1$ = 1,000" if t1 == 8192 else "$t_1$ = 500") in sac  # SAC's nearest t1, resp. its first after 0


# -- Fig. 1: bins fitted to the data ---------------------------------------------------------------------------------


def test_spectrum_bins_separate_the_bulk_from_the_outliers():
    top = 356.0
    values = np.array([top, 1e-5 * top, -8.0, 1e-9, -1e-9, 3.0])
    edges, threshold = spectrum_bins(values)
    assert threshold == 1e-4  # the decade at or below 1e-6 * 356
    assert edges[0] == pytest.approx(-10.0) and edges[-1] == pytest.approx(1000.0)
    counts, _ = np.histogram(values, edges)
    small, large = np.searchsorted(edges, [1e-5 * top, top], side="right") - 1
    assert small != large and counts[small] >= 1 and counts[large] >= 1
    centre = np.searchsorted(edges, 0.0, side="right") - 1
    assert edges[centre] == -threshold and counts[centre] == 2  # +-1e-9 share the centre bin


def test_eigenspectrum_histogram_shows_bulk_and_outliers(tables):
    fig = eigenspectrum(tables)
    hist_ax = fig.axes[0]  # Pendulum actor
    values = spectrum_table().query("task == 'Pendulum' and net == 'actor'").eigenvalue.to_numpy()
    heights = np.array([patch.get_height() for patch in hist_ax.patches])
    lefts = np.array([patch.get_x() for patch in hist_ax.patches])
    assert heights.sum() == len(values)
    assert hist_ax.get_xlim() == pytest.approx((-10.0, 1000.0))
    # the bins of 1e-3 .. 1e-2 (part of the bulk) and of 100 .. 1000 (the largest) are separate and filled
    assert heights[np.isclose(lefts, 1e-3)].item() > 0 and heights[np.isclose(lefts, 100.0)].item() >= 1
    assert heights.max() < 0.9 * len(values)  # no one bin swallows the spectrum


# -- unresolved values -----------------------------------------------------------------------------------------------


def test_overlap_curves_mark_exactly_the_unresolved_points(tables):
    fig = overlap_curves(tables, t1=8192)
    marked = {(ax.get_title(), x) for ax in panels(fig) for line in lines(ax, UNRESOLVED_GID) for x in line.get_xdata()}
    assert marked == {("Pendulum: SAC, k = 50, $t_1$ = 1,000", 3000)}
    marker = lines(panels(fig)[1], UNRESOLVED_GID)[0]
    assert marker.get_markerfacecolor() == "white" and marker.get_linestyle() == "None"
    assert legend_texts(fig).count(UNRESOLVED_LABEL) == 1


@pytest.mark.parametrize("algo, step", [("sac", 2000), ("ppo", 16384)])
def test_fraction_curves_mark_the_unresolved_step_of_both_gradients(tables, algo, step):
    fig = fraction_by_k(tables, algo=algo)
    marked = [(ax.get_title(), line.get_xdata().tolist()) for ax in panels(fig) for line in lines(ax, UNRESOLVED_GID)]
    # precise and mini-batch gradient in the precise Hessian's subspace
    assert marked == [(f"Pendulum: {algo.upper()} actor", [step])] * 2
    assert legend_texts(fig).count(UNRESOLVED_LABEL) == 1


def test_no_unresolved_entry_when_everything_is_resolved(tmp_path):
    fine = write_tables(tmp_path, fractions=fraction_table(unresolved=lambda *row: False))
    for fig in (fraction_by_k(fine, algo="sac"), phase_bars(fine, net="actor")):
        assert UNRESOLVED_LABEL not in legend_texts(fig)
        assert not any(lines(ax, UNRESOLVED_GID) or any(p.get_gid() for p in ax.patches) for ax in fig.axes)


def test_phase_bars_outline_a_mean_with_an_unresolved_seed(tables):
    fig = phase_bars(tables, net="actor")
    drawn = {c.get_label(): c.patches[0] for c in bars(fig.axes[0])}
    # both unresolved checkpoints are in their run's training phase; the minibatch-Hessian combination stays
    # resolved, and PPO's bar is outlined although its seed's other training checkpoint is resolved
    outlined = {label for label, patch in drawn.items() if patch.get_gid() == UNRESOLVED_GID}
    assert outlined == {
        f"Pendulum {algo} training {gradient}/precise"
        for algo in ("ppo", "sac")
        for gradient in ("precise", "minibatch")
    }
    for label, patch in drawn.items():
        phase = label.split()[2]
        face = to_rgba("white") if label in outlined else to_rgba(PHASE_COLORS[phase])
        assert patch.get_facecolor() == pytest.approx(face), label
    assert UNRESOLVED_LABEL in legend_texts(fig)
    assert UNRESOLVED_LABEL not in legend_texts(phase_bars(tables, net="critic"))  # every critic value resolved


# -- phases from the table -------------------------------------------------------------------------------------------


def test_phase_bars_take_the_phase_column_not_a_recomputed_one(tmp_path):
    fractions = fraction_table()
    curves = curve_table()
    # what metrics.training_phases says of each run's curve, and a phase column that contradicts it
    computed = {}
    for (algo, task, seed), curve in curves[curves.curve == "train"].groupby(["algo", "task", "seed"]):
        computed[algo, task, seed] = training_phases(curve.step.to_numpy(), curve.value.to_numpy(), 1000, 0.1, 0.9)
    recomputed = [computed[a, t, s].of(step) for a, t, s, step in fractions[["algo", "task", "seed", "step"]].values]
    # every step 0 "convergence", every other checkpoint "initial": no phase borders yield that
    fractions["phase"] = np.where(fractions.step == 0, "convergence", "initial")
    assert (fractions.phase != recomputed).mean() > 0.5
    fig = phase_bars(write_tables(tmp_path, fractions=fractions, curves=curves), net="actor")
    heights = {c.get_label(): c.patches[0].get_height() for c in bars(fig.axes[0])}
    for algo in ("ppo", "sac"):
        rows = fractions[(fractions.algo == algo) & (fractions.task == "Pendulum") & (fractions.net == "actor")]
        rows = rows[(rows.k == 50) & (rows.gradient == "precise") & (rows.hessian == "precise")]
        for phase in ("initial", "convergence"):
            expected = rows[rows.phase == phase].groupby("seed").fraction.mean().mean()
            assert heights[f"Pendulum {algo} {phase} precise/precise"] == pytest.approx(expected)
        assert not any(label.startswith(f"Pendulum {algo} training") for label in heights)
    assert "no checkpoint in: Pendulum PPO training" in fig.axes[0].get_title(loc="left")


def test_rows_without_a_phase_are_left_out(tmp_path):
    fractions = fraction_table()
    fractions.loc[fractions.algo == "sac", "phase"] = np.nan  # SAC runs without phases
    fig = phase_bars(write_tables(tmp_path, fractions=fractions), net="critic")
    assert not any(" sac " in c.get_label() for c in bars(fig.axes[0]))
    assert "Pendulum SAC initial" in fig.axes[0].get_title(loc="left")


# -- the tables' contract --------------------------------------------------------------------------------------------


def test_tables_refuse_missing_columns_and_odd_resolved_values(tmp_path):
    with pytest.raises(ValueError, match="no column phase"):
        write_tables(tmp_path / "old", fractions=fraction_table().drop(columns="phase"))["fractions"]
    odd = overlap_table().astype({"resolved": object})
    odd.loc[3, "resolved"] = "maybe"
    with pytest.raises(ValueError, match=r"resolved holds \['maybe'\]"):
        write_tables(tmp_path / "odd", overlaps=odd)["overlaps"]


def test_every_figure_builds_from_the_command_line(tables, tmp_path, monkeypatch):
    built = {}
    monkeypatch.setattr(figures, "save", lambda fig, pdf: built.setdefault(pdf.stem, fig))  # rendering: below
    for name in FIGURES:
        figures.main([name, "--tables", str(tables.where), "--out", str(tmp_path / f"{name}.pdf"), "--t1", "4096"])
    assert sorted(built) == sorted(FIGURES)
    assert "$t_1$ = 4,096" in built["fig3_overlap"].axes[0].get_title()  # --t1 reaches the figure
    assert "$t_1$ = 4,096" in built["fig7_overlap_ppo"].axes[0].get_title()
    monkeypatch.undo()
    figures.main(["fig3_overlap", "--tables", str(tables.where), "--out", str(tmp_path / "fig3.pdf"), "--t1", "8192"])
    assert (tmp_path / "fig3.pdf").stat().st_size > 0 and (tmp_path / "fig3.png").stat().st_size > 0


def test_every_caption_is_clean_restructuredtext():
    """The report renders captions as reStructuredText: |x| is a substitution, a lone * starts emphasis."""
    import io

    import docutils.core

    config = {"experiment": "default", "analysis": {"variant": "corrected", "k": 50}}
    for name in figures.CAPTIONS:
        warnings = io.StringIO()
        docutils.core.publish_string(
            figures.caption(name, config),
            writer="null",
            settings_overrides={"warning_stream": warnings, "report_level": 2, "halt_level": 5},
        )
        assert warnings.getvalue() == "", f"{name}: {warnings.getvalue()}"
