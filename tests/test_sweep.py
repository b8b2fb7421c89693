"""Random hyperparameter configurations (paper Appendix C): reproducible, in range, evenly spread."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from pgsubspaces.config import ConfigError, RunSpec, deep_merge, load_config, run_specs, sweep_specs, validate_config
from pgsubspaces.sweep import (
    SPACES,
    Choice,
    Entry,
    Range,
    run_settings,
    sample_configurations,
    summary_table,
    write_configurations,
    write_summary_table,
)
from pgsubspaces.tables.tables import write_table


@pytest.mark.parametrize("algo", sorted(SPACES))
def test_the_same_seed_gives_the_same_table_and_another_seed_another(algo, tmp_path):
    write_configurations(tmp_path / "a.csv", algo, sample_configurations(algo, 100, seed=3))
    write_configurations(tmp_path / "b.csv", algo, sample_configurations(algo, 100, seed=3))
    write_configurations(tmp_path / "c.csv", algo, sample_configurations(algo, 100, seed=4))
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.csv").read_bytes() != (tmp_path / "c.csv").read_bytes()
    with open(tmp_path / "a.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 100 and [r["configuration"] for r in rows] == [f"c{i:03d}" for i in range(100)]


@pytest.mark.parametrize("algo", sorted(SPACES))
def test_every_value_lies_in_its_range_and_every_choice_is_drawn(algo):
    rows = sample_configurations(algo, 100, seed=0)
    for name, parameter in SPACES[algo].items():
        values = [row[name] for row in rows]
        if isinstance(parameter, Range):
            assert min(values) >= parameter.low and max(values) <= parameter.high, name
        else:
            assert set(values) == set(parameter.values), name  # 100 Sobol points hit every choice
            counts = np.array([values.count(v) for v in parameter.values])
            assert counts.min() >= 0.6 * 100 / len(parameter.values), (name, counts)


@pytest.mark.parametrize("algo", sorted(SPACES))
def test_log_scale_parameters_are_spread_evenly_in_log_space(algo):
    rows = sample_configurations(algo, 128, seed=1)
    for name, parameter in SPACES[algo].items():
        if not (isinstance(parameter, Range) and parameter.log):
            continue
        logs = np.log10([row[name] for row in rows])
        low, high = np.log10(parameter.low), np.log10(parameter.high)
        for q in (0.1, 0.25, 0.5, 0.75, 0.9):  # the quantiles of a uniform law on [low, high], within 0.03
            assert abs(np.quantile(logs, q) - (low + q * (high - low))) <= 0.03 * (high - low), (name, q)
        # and not evenly in linear space: half of the values lie below the geometric mean
        assert np.mean(np.asarray([row[name] for row in rows]) < np.sqrt(parameter.low * parameter.high)) == 0.5


def test_a_choice_maps_the_unit_interval_onto_its_values():
    choice = Choice((1, 2, 3))
    assert list(choice.draw(np.array([0.0, 0.33, 0.34, 0.66, 0.67, 0.999999, 1.0]))) == [1, 1, 2, 2, 3, 3, 3]


@pytest.mark.parametrize("algo", sorted(SPACES))
def test_a_fixed_parameter_leaves_the_other_draws_as_they_were(algo):
    free = sample_configurations(algo, 16, seed=2)
    held = sample_configurations(algo, 16, seed=2, fixed={"net_arch": 32})
    assert [row["net_arch"] for row in held] == [32] * 16
    assert [{**row, "net_arch": 0} for row in free] == [{**row, "net_arch": 0} for row in held]
    with pytest.raises(ValueError, match="'momentum'"):
        sample_configurations(algo, 4, seed=2, fixed={"momentum": 0.9})


def test_configurations_become_sb3_settings():
    ppo = run_settings("ppo", sample_configurations("ppo", 1, seed=0)[0] | {"net_arch": 128})
    assert ppo[1] == {"net_arch": {"pi": [128, 128], "vf": [128, 128]}} and "net_arch" not in ppo[0]
    sac = run_settings("sac", sample_configurations("sac", 1, seed=0)[0] | {"train_freq": 16})
    assert sac[0]["gradient_steps"] == sac[0]["train_freq"] == 16  # as the original's tuning


def sweep_config(**sweep):
    config = load_config(REPO / "config" / "config.yaml")
    config["sweep"] = deep_merge(config["sweep"], sweep)
    return validate_config(config)


def test_the_default_sweep_specs_carry_the_drawn_configurations():
    config = sweep_config()
    specs = sweep_specs(config)
    n = config["sweep"]["configurations"]
    assert len(specs) == 2 * n and {spec.configuration for spec in specs.values()} == {"c000", "c001", "c002"}
    drawn = sample_configurations("ppo", n, config["sweep"]["seed"], config["sweep"]["fixed"]["ppo"])
    for index, values in enumerate(drawn):
        spec = specs["ppo", "Pendulum", f"c{index:03d}", 0]
        assert spec.run_id == f"sweep/ppo/Pendulum/c{index:03d}/seed0"
        assert all(spec.hyperparameters[name] == values[name] for name in values if name != "net_arch")
        assert spec.policy["net_arch"] == {"pi": [64, 64], "vf": [64, 64]}
        assert spec.checkpoint_steps == (0, 8192, 16384) and RunSpec.from_json(spec.to_json()) == spec
    # the main runs' specs, and so their train jobs, are what they were before the sweep existed
    main = run_specs(config)["ppo", "Pendulum", 0]
    assert "configuration" not in json.loads(main.to_json()) and main.run_id == "ppo/Pendulum/seed0"


def entry(algo, total_steps, **settings):
    return {"runs": [{"task": "Pendulum", "algos": [algo], "total_steps": total_steps, **settings}]}


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        (
            {"fixed": {"ppo": {"momentum": 0.9}}},
            "'sweep.fixed.ppo': Additional properties are not allowed ('momentum' was unexpected) (allowed: "
            "learning_rate, n_steps, batch_size, n_epochs, gamma, gae_lambda, clip_range, ent_coef, net_arch)",
        ),
        (
            entry("ppo", 16384, hyperparameters={"ppo": {"gamma": 0.9}}),
            "'sweep.runs[0].hyperparameters.ppo.gamma': drawn by the sweep; hold it with sweep.fixed.ppo.gamma",
        ),
        (
            entry("sac", 2000, overlap={"t1": 1500, "t2": 2000}),
            "'sweep.runs[0].overlap.t1': 1500 is not on the entry's checkpoint grid",
        ),
        (
            entry("ppo", 12288, checkpoints={"interval": 4096}, overlap={"t1": 4096, "t2": 12288}),
            "'sweep.runs[0].overlap.t2': 12288 is not on the grid of the main ppo runs on Pendulum",
        ),
        ({"runs": [{"task": "Pendulm", "algos": ["ppo"]}]}, "'sweep.runs[0].task': 'Pendulm' is not a registered task"),
    ],
)
def test_sweep_config_errors_name_the_key(sweep, message):
    with pytest.raises(ConfigError) as error:
        sweep_config(**sweep)
    assert message in str(error.value)


def write_run_tables(folder: Path, seed: int, offset: float) -> None:
    """Per-run tables of a made-up run with known numbers (columns as pgsubspaces.tables writes them)."""
    folder.mkdir(parents=True)
    curves = [
        ("ppo", "Pendulum", seed, "eval", step, value + offset)
        for step, value in zip(range(0, 4000, 1000), (0, 10, 20, 5))
    ]
    curves.append(("ppo", "Pendulum", seed, "train", 1000, 999.0))  # not an evaluation: ignored
    write_table(folder / "curves.csv", "curves", curves)
    fractions = []
    for step, fraction in ((0, 0.9), (1000, 0.2), (2000, 0.4), (3000, 0.6)):  # 0 and 3000 are outside
        for net, k, gradient, hessian, scale in (
            ("actor", 10, "precise", "precise", 1.0),
            ("critic", 10, "precise", "precise", 0.5),
            ("actor", 5, "precise", "precise", 0.1),  # not the largest k
            ("actor", 10, "minibatch", "precise", 0.3),  # not the precise gradient
        ):
            fractions.append(
                ("ppo", "Pendulum", seed, step, "", net, gradient, hessian, k, 100, fraction * scale + offset, 0.1, 0.1)
                + (0.0, True)
            )
    write_table(folder / "fractions.csv", "fractions", fractions)
    overlaps = [(
        "ppo", "Pendulum", seed, net, k, 100, t1, t2, value + offset, k / 100, 0.0, True
    ) for net, k, t1, t2, value in (
        ("actor", 10, 1000, 2000, 0.7), ("critic", 10, 1000, 2000, 0.8), ("actor", 5, 1000, 2000, 0.1),
        ("actor", 10, 0, 2000, 0.2), ("actor", 10, 1000, 3000, 0.3),
    )]  # fmt: skip
    write_table(folder / "overlaps.csv", "overlaps", overlaps)


def test_the_summary_table_averages_each_configuration_over_its_seeds(tmp_path):
    tables, summaries = tmp_path / "tables", []
    for run, offset, status in (
        ("ppo/Pendulum/seed0", 0.0, "ok"),
        ("sweep/ppo/Pendulum/c000/seed0", 0.0, "ok"),
        ("sweep/ppo/Pendulum/c000/seed1", 0.1, "ok"),
        ("sweep/ppo/Pendulum/c001/seed0", 0.0, "ok"),
        ("sweep/ppo/Pendulum/c001/seed1", 0.0, "diverged"),
    ):
        summaries.append(tmp_path / "runs" / run / "training.json")
        summaries[-1].parent.mkdir(parents=True)
        summary = {"run": run, "status": status} | ({"reason": "non-finite log_std"} if status != "ok" else {})
        summaries[-1].write_text(json.dumps(summary))
        if status == "ok":
            write_run_tables(tables / run, int(run[-1]), offset)
    entry = Entry(algo="ppo", task="Pendulum", steps=2000, t1=1000, t2=2000)
    rows = summary_table(summaries, tables, [entry], smoothing_steps=1000)
    assert [row["configuration"] for row in rows] == ["tuned", "c000", "c001"]
    tuned, c000, c001 = rows
    # eval smoothed with w = 1 (mean of values[i-1:i+1]): 0, 5, 15, (12.5 at step 3000, beyond the steps)
    assert tuned["max_return"] == pytest.approx(15.0)
    assert tuned["fraction_actor"] == pytest.approx(0.3) and tuned["fraction_critic"] == pytest.approx(0.15)
    assert tuned["overlap_actor"] == pytest.approx(0.7) and tuned["overlap_critic"] == pytest.approx(0.8)
    assert (tuned["k"], tuned["seeds"], tuned["status"]) == (10, 1, "ok")
    assert c000["seeds"] == 2 and c000["fraction_actor"] == pytest.approx(0.35)  # mean of 0.3 and 0.4
    assert c000["max_return"] == pytest.approx(15.05) and c000["overlap_critic"] == pytest.approx(0.85)
    assert c001["status"] == "failed" and c001["reason"] == "seed 1: non-finite log_std"
    assert "max_return" not in c001  # left empty in the table
    write_summary_table(tmp_path / "sweep.csv", rows)
    with open(tmp_path / "sweep.csv") as stream:
        written = list(csv.DictReader(stream))
    assert written[2]["status"] == "failed" and written[2]["fraction_actor"] == "" and written[1]["seeds"] == "2"


SWEEP_CONFIG = ("--configfile", "config/smoke.yaml", "tests/configs/sweep.yaml")
DIVERGING = "sweep/ppo/Pendulum/c001/seed0"


@pytest.fixture(scope="module")
def sweep_workflow(smoke_workflow, tmp_path_factory) -> Path:
    """The smoke results plus a tiny sweep (tests/configs/sweep.yaml) in which PPO configuration c001
    diverges: NaN parameters injected right after its checkpoint at step 512."""
    from conftest import snakemake

    workdir = tmp_path_factory.mktemp("sweep") / "workflow"
    shutil.copytree(smoke_workflow, workdir, symlinks=True)
    shutil.copytree(REPO / "tests" / "configs", workdir / "tests" / "configs")
    fault = {"PGSUBSPACES_INJECT_FAULT": f"diverge:{DIVERGING}@512"}
    snakemake(workdir, "--cores", "2", *SWEEP_CONFIG, env=fault)  # completes: a divergence is a result
    return workdir


def test_a_diverged_configuration_is_recorded_and_the_sweep_completes(sweep_workflow):
    results = sweep_workflow / "results/smoke"
    summary = json.loads((results / "runs" / DIVERGING / "training.json").read_text())
    assert summary["status"] == "diverged" and "non-finite" in summary["reason"] and 512 in summary["checkpoints"]
    assert not (results / "runs" / f"{DIVERGING}.h5").exists()  # nothing downstream of the diverged run
    with open(results / "tables/corrected/sweep.csv") as stream:
        rows = {(row["algo"], row["configuration"]): row for row in csv.DictReader(stream)}
    assert sorted(rows) == sorted((algo, name) for algo in ("ppo", "sac") for name in ("tuned", "c000", "c001", "c002"))
    failed = rows["ppo", "c001"]
    assert (
        failed["status"] == "failed"
        and failed["reason"].startswith("seed 0: non-finite")
        and failed["max_return"] == ""
    )
    for key, row in rows.items():
        if key != ("ppo", "c001"):
            assert row["status"] == "ok", key
            assert 0 <= float(row["fraction_actor"]) <= 1 and 0 <= float(row["overlap_critic"]) <= 1 + 1e-5, key
    # the tuned row is the main run's, with the sweep's t1 -> t2 read off its overlap table
    import pandas as pd

    overlaps = pd.read_csv(results / "tables/corrected/overlaps.csv")
    tuned = overlaps[(overlaps.algo == "ppo") & (overlaps.net == "actor") & (overlaps.k == 10)]
    expected = tuned[(tuned.t1 == 512) & (tuned.t2 == 1024)].overlap.item()
    assert float(rows["ppo", "tuned"]["overlap_actor"]) == pytest.approx(expected)
    for name in ("fig9_sweep_returns", "fig10_sweep_fraction", "fig11_sweep_overlap"):
        for suffix in (".pdf", ".png"):
            assert (sweep_workflow / "figures/smoke" / f"{name}{suffix}").exists()


@pytest.mark.parametrize("metric", ["max_return", "fraction", "overlap"])
def test_the_violins_count_the_configurations_left_out(sweep_workflow, metric):
    from pgsubspaces.figures.figures import Tables, sweep_violins

    figure = sweep_violins(Tables(sweep_workflow / "results/smoke/tables/corrected"), metric)
    assert "5 of 6 configurations shown, 1 left out" in figure.legends[0].get_title().get_text()
    ticks = [tick.get_text() for tick in figure.axes[0].get_xticklabels()]
    ppo = [tick for tick in ticks if tick.startswith("PPO")]
    assert ppo and all("n = 2" in tick and "(1 left out)" in tick for tick in ppo)
    assert all("n = 3" in tick and "left out" not in tick for tick in ticks if tick.startswith("SAC"))


def test_the_report_holds_the_sweep(sweep_workflow):
    from conftest import snakemake

    snakemake(sweep_workflow, *SWEEP_CONFIG, "--report", "report.html")
    html = (sweep_workflow / "report.html").read_text(errors="replace")
    missing = [
        name
        for name in ("fig9_sweep_returns", "fig10_sweep_fraction", "fig11_sweep_overlap", "sweep.csv")
        if name not in html
    ]
    assert not missing and "configurations.csv" in html, missing


def test_a_checkpoint_with_non_finite_parameters_is_refused(tmp_path):
    import torch as th

    from pgsubspaces.train.agents import new_agent
    from pgsubspaces.train.callbacks import Checkpointer
    from pgsubspaces.train.curves import LearningCurves
    from pgsubspaces.train.envs import make_vec_env

    spec = run_specs(validate_config(load_config(REPO / "config" / "smoke.yaml")))["ppo", "Pendulum", 0]
    model = new_agent("ppo", make_vec_env(spec.env_id), spec.hyperparameters, spec.policy, 0, "cpu")
    checkpointer = Checkpointer(tmp_path, (0,), LearningCurves(), None, None)
    with th.no_grad():
        model.policy.log_std.fill_(float("inf"))
    with pytest.raises(FloatingPointError, match="non-finite parameters at step 0: log_std"):
        checkpointer.save(model)
    assert not list(tmp_path.iterdir())  # nothing written
