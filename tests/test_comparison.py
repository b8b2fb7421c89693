"""The PPTB study: its config, the random agent, SCORE/AUC and rliable's estimates on hand-built curves, and a
tiny study through Snakemake (base and PPTB runs paired by seed, tables recomputed from the run files)."""

from __future__ import annotations

import json
import math
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from conftest import REPO

from pgsubspaces.comparison import random_agent, scores
from pgsubspaces.config import ConfigError, load_config, pptb_entries, pptb_specs, validate_config
from pgsubspaces.train.pptb_settings import VARIANT_PATTERN, PPTBSettings

CONFIGS = (REPO / "config" / "smoke.yaml", REPO / "tests" / "configs" / "pptb.yaml")


def _config(**pptb):
    config = load_config(*CONFIGS)
    config["pptb"].update(pptb)
    return validate_config(config)


# -- config -------------------------------------------------------------------------------------------------


def test_each_seed_has_a_base_run_and_a_pptb_run_equal_in_everything_else():
    specs = pptb_specs(_config())
    (variant,) = {name for _, _, name, _ in specs} - {"base"}
    assert variant == "rt4-rb1-pb0.5-ts2-tp20-k50"  # tests/configs/pptb.yaml over pptb.settings
    for seed in (0, 1):
        base, pptb = specs["sac", "Pendulum", "base", seed], specs["sac", "Pendulum", variant, seed]
        assert base.run_id == f"pptb/sac/Pendulum/base/seed{seed}" and base.pptb is None
        assert pptb.run_id == f"pptb/sac/Pendulum/{variant}/seed{seed}"
        assert pptb.pptb == {"r_t": 4, "p_b": 0.5, "r_b": 1, "t_s": 2, "t_p": 20, "buffer_size": 50}
        differing = {k for k, v in vars(base).items() if vars(pptb)[k] != v}
        assert differing == {"configuration", "pptb"} and base.actor_path_every == 0  # no path unless asked
    (entry,) = pptb_entries(_config())
    assert entry == {"algo": "sac", "task": "Pendulum", "variants": [variant], "seeds": [0, 1], "budgets": [300, 600]}


@pytest.mark.parametrize("p_b", [0, 0.1, 1e-05, 2.5e20, 1 / 3])
def test_a_variant_name_is_exact_and_a_valid_run_id_segment(p_b):

    name = PPTBSettings(r_t=8, p_b=p_b).name
    assert re.fullmatch(VARIANT_PATTERN, name), name
    assert float(name.split("-pb")[1].split("-ts")[0]) == p_b  # round trip: two p_b never share a name


@pytest.mark.parametrize(
    "variant, message",
    [
        ({"r_t": 2, "p_b": 0.1, "r_b": 3}, "pptb.runs[0].variants[0]': PPTB r_b = 3 is invalid"),
        ({"r_t": 4, "p_b": 0.1, "t_p": 21}, "PPTB t_p = 21 is invalid"),
        ({"r_t": 4, "p_b": 0.1, "t_p": 100000}, "variants[0].t_p': 100000 actor updates, but the sac run on Pendulum"),
    ],
)
def test_an_invalid_variant_is_refused_naming_its_key(variant, message):
    config = load_config(*CONFIGS)
    config["pptb"]["runs"][0]["variants"] = [variant]
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_config(config)


def test_repeated_variants_and_late_budgets_are_refused():
    config = load_config(*CONFIGS)
    run = config["pptb"]["runs"][0]
    run["variants"] = [{"r_t": 4, "p_b": 0.5}, {"r_t": 4, "p_b": 0.5}]
    run["budgets"] = [300, 700]
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    assert "'pptb.runs[0].variants[1]': the same settings as variants[0]" in str(error.value)
    assert "'pptb.runs[0].budgets': [700] beyond the sac run's total_steps 600" in str(error.value)


# -- the random agent ------------------------------------------------------------------------------------------


def test_the_random_agent_is_seeded_and_runs_whole_episodes():
    returns, lengths = random_agent.random_returns("Pendulum-v1", {}, 3, seed=5)
    again, _ = random_agent.random_returns("Pendulum-v1", {}, 3, seed=5)
    other, _ = random_agent.random_returns("Pendulum-v1", {}, 3, seed=6)
    assert returns == again and returns != other and lengths == [200, 200, 200]
    assert all(-16.3 * 200 <= r < 0 for r in returns)  # Pendulum's reward lies in [-16.27, 0]
    result = random_agent.summary("Pendulum", "Pendulum-v1", returns, lengths, 5)
    assert result["mean_return"] == pytest.approx(np.mean(returns))
    assert result["stderr"] == pytest.approx(scipy.stats.sem(returns))


# -- the metrics on hand-built curves -------------------------------------------------------------------------

STEPS = np.array([0, 100, 200, 300])


def _runs(curves: dict[tuple[str, str, str], np.ndarray]) -> dict:
    """Run records as ``read_curves`` returns them: (algo, task, variant) -> returns (seeds x steps)."""
    return {
        (algo, task, variant, seed): {"steps": STEPS, "returns": row, "pptb_steps": 3, "path": f"{variant}{seed}.h5"}
        for (algo, task, variant), matrix in curves.items()
        for seed, row in enumerate(matrix)
    }


BASE = np.array([[-10.0, -8.0, -6.0, -7.0], [-10.0, -6.0, -4.0, -2.0], [-10.0, -9.0, -5.0, -3.0]])
PPTB = BASE + np.array([[0.0, 1.0, 2.0, 0.0], [0.0, 0.0, 1.0, 1.0], [0.0, 2.0, 1.0, 1.0]])
RANDOM = {"Pendulum": {"mean_return": -12.0, "stderr": 0.5}, "Hopper": {"mean_return": -30.0, "stderr": 0.5}}


def _entry(task="Pendulum", variants=("v",), budgets=(200, 300)):
    return {"algo": "sac", "task": task, "variants": list(variants), "seeds": [0, 1, 2], "budgets": list(budgets)}


def test_score_and_auc_follow_the_papers_definitions():
    runs = _runs({("sac", "Pendulum", "base"): BASE, ("sac", "Pendulum", "v"): PPTB})
    table, _, curves = scores.comparison_tables(runs, RANDOM, [_entry()], reps=200, seed=0)
    row = table.set_index(["variant", "budget", "metric"])
    mean = PPTB.mean(axis=0)  # [-10, -6.33, -3.67, -3.33]
    assert row.loc[("v", 300, "score"), "value"] == pytest.approx(mean.max())
    assert row.loc[("v", 300, "score"), "stderr"] == pytest.approx(scipy.stats.sem(PPTB[:, 3]))  # at the argmax
    assert row.loc[("v", 200, "score"), "value"] == pytest.approx(mean[:3].max())  # budget 200: steps 0-200
    assert row.loc[("v", 200, "auc"), "value"] == pytest.approx(mean[:3].mean())
    assert row.loc[("v", 200, "auc"), "stderr"] == pytest.approx(scipy.stats.sem(PPTB[:, :3].mean(axis=1)))
    assert row.loc[("v", 200, "auc"), "evaluations"] == 3
    base_score = BASE.mean(axis=0).max()
    expected = (mean.max() + 12.0) / (base_score + 12.0)  # random 0, base 1
    assert row.loc[("v", 300, "score"), "normalised"] == pytest.approx(expected)
    assert row.loc[("base", 300, "score"), "normalised"] == pytest.approx(1.0)
    paired = PPTB.max(axis=1) - BASE.max(axis=1)
    assert row.loc[("v", 300, "score"), "difference"] == pytest.approx(paired.mean())
    assert row.loc[("v", 300, "score"), "difference_stderr"] == pytest.approx(scipy.stats.sem(paired))
    curve = curves[curves.variant == "v"].sort_values("step")
    assert curve["mean"].to_numpy() == pytest.approx(mean)
    assert curve["stderr"].to_numpy()[1:] == pytest.approx(scipy.stats.sem(PPTB, axis=0)[1:])
    inside = (curve.ci_low <= curve["mean"] + 1e-12) & (curve["mean"] <= curve.ci_high + 1e-12)
    assert inside.all()


def test_rliable_estimates_are_the_iqm_and_mean_of_the_normalised_seeds_and_reproducible():
    runs = _runs({
        ("sac", "Pendulum", "base"): BASE, ("sac", "Pendulum", "v"): PPTB,
        ("sac", "Hopper", "base"): BASE * 2, ("sac", "Hopper", "v"): BASE * 2,  # no change on Hopper
    })  # fmt: skip
    entries = [_entry("Pendulum", budgets=[300]), _entry("Hopper", budgets=[300])]
    _, aggregate, _ = scores.comparison_tables(runs, RANDOM, entries, reps=500, seed=3)
    _, again, _ = scores.comparison_tables(runs, RANDOM, entries, reps=500, seed=3)
    pd.testing.assert_frame_equal(aggregate, again)  # rliable resamples from a seeded generator
    rows = aggregate[aggregate.metric == "auc"].set_index(["quantity", "statistic"])

    def normalised(pptb, base, zero):
        one = base.mean(axis=1).mean()
        return (pptb.mean(axis=1) - zero) / (one - zero)

    pendulum, hopper = normalised(PPTB, BASE, -12.0), normalised(BASE * 2, BASE * 2, -30.0)
    matrix = np.stack([pendulum, hopper], axis=1)  # seeds x tasks
    assert rows.loc[("normalised", "iqm"), "estimate"] == pytest.approx(scipy.stats.trim_mean(matrix.ravel(), 0.25))
    assert rows.loc[("normalised", "mean"), "estimate"] == pytest.approx(matrix.mean())
    assert rows.loc[("base_normalised", "mean"), "estimate"] == pytest.approx(1.0)
    difference = matrix - np.stack([normalised(BASE, BASE, -12.0), hopper], axis=1)
    assert rows.loc[("difference", "mean"), "estimate"] == pytest.approx(difference.mean())
    low, high = rows.loc[("difference", "mean"), ["ci_low", "ci_high"]]
    assert 0 < low <= difference.mean() <= high  # every Pendulum seed improved, Hopper is unchanged
    paper = rows.loc[("normalised", "paper_aggregate"), "estimate"]
    seed_mean = PPTB.mean(axis=0).mean()
    assert paper == pytest.approx(((seed_mean + 12) / (BASE.mean() + 12) + 1.0) / 2)  # mean over the two tasks
    improvement = rows.loc[("pptb_over_base", "probability_of_improvement")]
    assert 0.5 < improvement.estimate <= 1 and improvement.ci_low <= improvement.estimate <= improvement.ci_high


def test_selected_takes_each_tasks_best_variant_and_only_with_a_grid():
    better = BASE + 3.0
    runs = _runs({("sac", "Pendulum", "base"): BASE, ("sac", "Pendulum", "a"): PPTB, ("sac", "Pendulum", "b"): better})
    _, aggregate, _ = scores.comparison_tables(runs, RANDOM, [_entry(variants=("a", "b"), budgets=[300])], 200, 0)
    paper = aggregate[(aggregate.statistic == "paper_aggregate") & (aggregate.metric == "score")]
    by_variant = paper.set_index("variant").estimate
    assert set(by_variant.index) == {"a", "b", scores.SELECTED}
    assert by_variant[scores.SELECTED] == by_variant["b"] == max(by_variant["a"], by_variant["b"])
    single = scores.comparison_tables(_runs({("sac", "Pendulum", "base"): BASE, ("sac", "Pendulum", "a"): PPTB}),
                                      RANDOM, [_entry(variants=("a",))], 200, 0)[1]  # fmt: skip
    assert scores.SELECTED not in set(single.variant)


def test_missing_or_misaligned_runs_are_refused_naming_them():
    runs = _runs({("sac", "Pendulum", "base"): BASE, ("sac", "Pendulum", "v"): PPTB[:2]})
    with pytest.raises(scores.ComparisonError, match=re.escape("pptb/sac/Pendulum/v for seeds [2]")):
        scores.comparison_tables(runs, RANDOM, [_entry()], 100, 0)
    runs = _runs({("sac", "Pendulum", "base"): BASE, ("sac", "Pendulum", "v"): PPTB})
    runs["sac", "Pendulum", "v", 1]["steps"] = STEPS + 1
    with pytest.raises(scores.ComparisonError, match="v1.h5: evaluation steps differ from those of v0.h5"):
        scores.comparison_tables(runs, RANDOM, [_entry()], 100, 0)


# -- a tiny study through Snakemake ---------------------------------------------------------------------------

TARGETS = ("results/smoke/pptb/pptb.csv", "figures/smoke/pptb_curves.pdf", "figures/smoke/pptb_intervals.pdf")
PPTB_CONFIG = ("--configfile", "config/smoke.yaml", "tests/configs/pptb.yaml")


@pytest.fixture(scope="module")
def pptb_workflow(smoke_workflow, tmp_path_factory):
    from conftest import snakemake

    workdir = tmp_path_factory.mktemp("pptb") / "workflow"
    shutil.copytree(smoke_workflow, workdir, symlinks=True)
    shutil.copytree(REPO / "tests" / "configs", workdir / "tests" / "configs")
    snakemake(workdir, "--cores", "2", *TARGETS, *PPTB_CONFIG)
    return workdir


def test_the_study_pairs_runs_by_seed_and_its_tables_follow_from_the_run_files(pptb_workflow):
    from pgsubspaces.export.runfile import RunFile

    results = pptb_workflow / "results/smoke"
    variant = "rt4-rb1-pb0.5-ts2-tp20-k50"
    curves = {}
    for name in ("base", variant):
        rows = []
        for seed in (0, 1):
            with RunFile(results / f"runs/pptb/sac/Pendulum/{name}/seed{seed}.h5") as run:
                assert run.config("pptb") == (None if name == "base" else {
                    "r_t": 4, "p_b": 0.5, "r_b": 1, "t_s": 2, "t_p": 20, "buffer_size": 50})  # fmt: skip
                training = run.config("training")
                rows.append(run.curves()["eval/mean_return"])
                steps = run.curves()["eval/step"]
            if name != "base":  # counted over the whole training: one PPTB step every t_p actor updates
                assert training["pptb"]["steps"] == training["pptb"]["actor_updates"] // 20 >= 20
        curves[name] = np.stack(rows)
    # the same seed starts from the same network: the evaluations at step 0 agree exactly
    assert np.array_equal(curves["base"][:, 0], curves[variant][:, 0])
    assert not np.array_equal(curves["base"], curves[variant])  # and PPTB changed the training
    random = json.loads((results / "pptb/random/Pendulum.json").read_text())
    assert random["episodes"] == 10 and random["mean_return"] == pytest.approx(np.mean(random["returns"]))
    table = pd.read_csv(results / "pptb/pptb.csv").set_index(["variant", "budget", "metric"])
    for budget in (300, 600):
        within = steps <= budget
        for name in ("base", variant):
            mean = curves[name][:, within].mean(axis=0)
            assert table.loc[(name, budget, "score"), "value"] == pytest.approx(mean.max())
            assert table.loc[(name, budget, "auc"), "value"] == pytest.approx(mean.mean())
        base = curves["base"][:, within].mean(axis=0).max()
        score = curves[variant][:, within].mean(axis=0).max()
        expected = (score - random["mean_return"]) / (base - random["mean_return"])
        assert table.loc[(variant, budget, "score"), "normalised"] == pytest.approx(expected)
    aggregate = pd.read_csv(results / "pptb/pptb_aggregate.csv")
    assert {"paper_aggregate", "iqm", "mean", "probability_of_improvement"} <= set(aggregate.statistic)
    assert (aggregate.reps == 300).all()  # tests/configs/pptb.yaml
    for name in ("pptb_curves", "pptb_intervals"):
        assert (pptb_workflow / f"figures/smoke/{name}.png").exists()


def test_the_report_holds_the_pptb_tables_and_figures(pptb_workflow):
    from conftest import snakemake

    snakemake(pptb_workflow, *TARGETS, "--report", "report.html", *PPTB_CONFIG)
    html = (pptb_workflow / "report.html").read_text(errors="replace")
    for name in ("pptb_aggregate", "pptb_curves.pdf", "pptb_intervals.pdf"):
        assert name in html, name


def test_math_is_finite_for_a_single_seed():
    runs = _runs({("sac", "Pendulum", "base"): BASE[:1], ("sac", "Pendulum", "v"): PPTB[:1]})
    entry = {**_entry(), "seeds": [0]}
    table, aggregate, curves = scores.comparison_tables(runs, RANDOM, [entry], 100, 0)
    assert math.isnan(table.stderr.iloc[0]) and curves.ci_low.isna().all() and len(aggregate)
