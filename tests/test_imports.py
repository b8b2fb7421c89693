"""Checkpoints trained elsewhere (config ``imports``): from plain SB3 zips to tables and figures with one
Snakemake command, and every missing piece refused at DAG time with the import and key named."""

from __future__ import annotations

import copy
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, copy_workflow, job_counts, snakemake

from pgsubspaces.config import ConfigError, load_config, validate_config
from pgsubspaces.export.export import main as export_main
from pgsubspaces.export.runfile import RunFile
from pgsubspaces.train.parameters import flatten, split_parameters

STEPS = (0, 1024, 2048)
NET = {"pi": [16, 16], "vf": [16, 16]}
# small analysis settings, as config/smoke.yaml's
ANALYSIS = {"ppo_samples": 1024, "k": 10, "chunk_size": 1024, "device": "cpu"}
TABLES = {"k_levels": [1, 5, 10], "overlap_t1": [0]}


@pytest.fixture(scope="module")
def zips(tmp_path_factory) -> dict:
    """Plain SB3 PPO on Pendulum, outside the workflow: a zip at 0, 1024 and 2048 steps, and the flat actor
    each holds."""
    import torch as th
    from stable_baselines3 import PPO

    th.set_num_threads(1)
    root = tmp_path_factory.mktemp("zips") / "my checkpoints"  # a space: every path reaches the shell quoted
    root.mkdir()
    model = PPO(
        "MlpPolicy", "Pendulum-v1", n_steps=512, batch_size=64, n_epochs=2, policy_kwargs={"net_arch": NET},
        seed=5, device="cpu",
    )  # fmt: skip
    actors, paths = {}, []
    for step in STEPS:
        if step:
            model.learn(step - model.num_timesteps, reset_num_timesteps=False)
        assert model.num_timesteps == step
        paths.append(root / f"rl_model_{step}_steps.zip")
        model.save(paths[-1])
        actors[step] = flatten(split_parameters(model.policy, "ppo")["actor"])
    n_params = {net: len(flatten(named)) for net, named in split_parameters(model.policy, "ppo").items()}
    return {"root": root, "paths": paths, "actors": actors, "n_params": n_params}


def imports_config(imports: dict, **extra) -> dict:
    return {"experiment": "imp", "imports": imports, "analysis": ANALYSIS, "tables": TABLES, **extra}


def write_config(workdir: Path, config: dict, name: str = "imports.yaml") -> str:
    (workdir / name).write_text(yaml.safe_dump(config))
    return name


def test_zips_to_tables_and_figures_in_one_command(zips, tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    glob = str(zips["root"] / "rl_model_*_steps.zip")
    config = imports_config({"mine": {"zips": glob, "task": "Pendulum", "seed": 7}}, figures={"overlap_t1": 2000})
    name = write_config(workdir, config)
    start = time.perf_counter()
    result = snakemake(workdir, "--cores", "2", "--configfile", name)
    elapsed = time.perf_counter() - start
    print(f"imports end to end: {elapsed:.1f} s")
    jobs = job_counts(result.stdout + result.stderr)
    assert "train" not in jobs and "export" not in jobs  # never a training job for an import
    figures = ["fig1_eigenspectrum", "fig3_overlap", "fig5_fraction_ppo", "fig7_overlap_ppo", "fig12_overlap_entire"]
    assert jobs == {
        "export_import": 1, "data": 3, "eigen": 3, "run_tables": 1, "tables": 1, "scorecard": 1,
        "sweep_table": 1, "figure": len(figures), "all": 1,
    }  # fmt: skip
    for figure in figures:  # no learning curves, phases or sweep, no SAC: those figures are left out
        for suffix in (".pdf", ".png"):
            assert (workdir / "figures/imp" / f"{figure}{suffix}").stat().st_size > 1000
    assert not (workdir / "figures/imp/fig4_learning_curves.pdf").exists()

    with RunFile(workdir / "results/imp/runs/imports/mine.h5") as run:
        assert run.steps.tolist() == list(STEPS) and run.algo == "ppo"
        assert (run.attrs["task"], run.attrs["env_id"], int(run.attrs["seed"])) == ("Pendulum", "Pendulum-v1", 7)
        for step in STEPS:
            np.testing.assert_array_equal(run.vector(step, "actor"), zips["actors"][step])

    tables = workdir / "results/imp/tables/corrected"
    fractions = pd.read_csv(tables / "fractions.csv")
    assert set(fractions[["algo", "task", "seed"]].itertuples(index=False)) == {("ppo", "Pendulum", 7)}
    # every imported step x network x (gradient, hessian) x k level, nothing else
    counts = fractions.groupby(["step", "net"]).size()
    assert counts.to_dict() == {(step, net): 4 * 3 for step in STEPS for net in ("actor", "critic", "combined")}
    assert fractions.fraction.between(0, 1).all() and fractions.random_control.between(0, 1).all()
    assert fractions.phase.isna().all()  # no learning curve, no phases
    n = zips["n_params"]
    expected_n = {"actor": n["actor"], "critic": n["critic"], "combined": n["actor"] + n["critic"]}
    assert fractions.groupby("net").n_params.unique().map(list).to_dict() == {k: [v] for k, v in expected_n.items()}
    np.testing.assert_allclose(fractions.chance, fractions.k / fractions.n_params)
    # the gradient lies far more in the top-10 subspace than in a random one (finding ii on imports)
    top = fractions[(fractions.k == 10) & (fractions.gradient == "precise") & (fractions.hessian == "precise")]
    assert (top.fraction > top.chance).all()

    overlaps = pd.read_csv(tables / "overlaps.csv")
    # t1: tables.overlap_t1's 0, the first step after 0 (Fig. 12), the step nearest figures.overlap_t1 (2048)
    assert sorted(overlaps.t1.unique()) == [0, 1024, 2048]
    assert (overlaps[overlaps.t1 == overlaps.t2].overlap == 1.0).all()
    assert overlaps.overlap.between(0, 1 + 1e-5).all()
    assert len(pd.read_csv(tables / "phases.csv")) == 0 and len(pd.read_csv(tables / "curves.csv")) == 0
    assert (tables / "scorecard.csv").exists()
    assert (workdir / "logs/imp/export/imports/mine.log").exists()


def test_imports_merge_into_a_trained_experiment(zips, tmp_path):
    """Imports next to trained runs: one more export, their tables merged with the runs'; the figures of a
    training experiment all come; a seed that a trained run has is refused (the tables would mix them)."""
    workdir = copy_workflow(tmp_path / "wf")
    entry = {"zips": [str(p) for p in zips["paths"][1:]], "task": "Pendulum", "algo": "ppo", "seed": 3}
    name = write_config(workdir, {"imports": {"mine": entry}}, "extra.yaml")
    dry = snakemake(workdir, "-n", "--configfile", "config/smoke.yaml", name)
    dry = dry.stdout + dry.stderr
    jobs = job_counts(dry)
    assert jobs["export_import"] == 1 and jobs["train"] == 2 and jobs["export"] == 2
    assert jobs["eigen"] == 4 + 4 + 2  # smoke PPO (0, 512, 1024, 2048), SAC (0, 150, 300, 600), 2 imported
    assert jobs["run_tables"] == 3 and jobs["figure"] == 13
    assert "results/smoke/tables/corrected/runs/imports/mine/fractions.csv" in dry
    assert "figures/smoke/fig4_learning_curves.pdf" in dry
    entry["seed"] = 0
    write_config(workdir, {"imports": {"mine": entry}}, "extra.yaml")
    clash = snakemake(workdir, "-n", "--configfile", "config/smoke.yaml", name, check=False)
    assert clash.returncode != 0
    assert "config key 'imports.mine.seed': ppo on Pendulum with seed 0 is already runs (ppo/Pendulum/seed0)" in (
        clash.stdout + clash.stderr
    )


def bad_inputs(zips: dict, tmp: Path) -> dict[str, tuple[dict, str]]:
    """Bad import entries and the message each must produce (paths in ``tmp``)."""
    good = [str(p) for p in zips["paths"]]
    (tmp / "notes.zip").write_text("not a zip")
    shutil.copy(zips["paths"][1], tmp / "copy_of_1024.zip")
    for i in range(2):
        (tmp / f"vn{i}.pkl").write_bytes(b"never unpickled at DAG time")
    missing = str(tmp / "nowhere/rl_model_9_steps.zip")
    return {
        "missing": (
            {"zips": [good[0], missing], "task": "Pendulum", "seed": 0},
            f"'imports.missing.zips[1]': no such file '{missing}'",
        ),
        "noglob": (
            {"zips": str(tmp / "none_*.zip"), "task": "Pendulum", "seed": 0},
            "'imports.noglob.zips': no file matches",
        ),
        "unknown": (
            {"zips": good, "task": "Atari", "seed": 0},
            "'imports.unknown.task': 'Atari' is not a registered task",
        ),
        "noenv": (
            {"zips": good, "seed": 0},
            "'imports.noenv': give its task (a key of the task registry) or its env_id",
        ),
        "counts": (
            {"zips": good, "task": "Pendulum", "seed": 0, "vecnormalize": [str(tmp / "vn0.pkl"), str(tmp / "vn1.pkl")]},
            "'imports.counts.vecnormalize': 2 files for 3 zips",
        ),
        "algo": (
            {"zips": good, "task": "Pendulum", "algo": "sac", "seed": 0},
            "'imports.algo.algo': 'sac', but the zips hold ppo",
        ),
        "buffer": (
            {"zips": good, "task": "Pendulum", "seed": 0, "replay_buffer": str(tmp / "vn0.pkl")},
            "'imports.buffer.replay_buffer': a replay buffer only goes with SAC or TD3 zips",
        ),
        "nozip": (
            {"zips": [str(tmp / "notes.zip")], "task": "Pendulum", "seed": 0},
            "is not a readable stable-baselines3 model zip",
        ),
        "twice": (
            {"zips": [*good, str(tmp / "copy_of_1024.zip")], "task": "Pendulum", "seed": 1},
            "both hold step 1024 (num_timesteps)",
        ),
        "nobuffer": (
            {"zips": good, "task": "Pendulum", "seed": 2, "replay_buffer": str(tmp / "gone.pkl")},
            "'imports.nobuffer.replay_buffer': no such file",
        ),
    }


def test_bad_imports_fail_at_dag_time_naming_import_and_key(zips, tmp_path):
    """Each bad entry alone (in process), then all of them in one `snakemake -n`: every message, no traceback."""
    cases = bad_inputs(zips, tmp_path)
    base = load_config()
    for name, (entry, message) in cases.items():
        config = copy.deepcopy(base) | imports_config({name: entry})
        with pytest.raises(ConfigError) as error:
            validate_config(config)
        assert message in str(error.value), name
        problems = 2 if name == "nobuffer" else 1  # nobuffer: also, a buffer does not go with PPO zips
        assert str(error.value).count("config key") == problems, str(error.value)
    workdir = copy_workflow(tmp_path / "wf")
    config = write_config(workdir, imports_config({name: entry for name, (entry, _) in cases.items()}))
    result = snakemake(workdir, "-n", "--configfile", config, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output
    for name, (_, message) in cases.items():
        assert message in output, name
    assert not (workdir / "results").exists()


@pytest.mark.parametrize(
    ("imports", "message"),
    [
        ({"my run": {"zips": ["a.zip"], "task": "Pendulum", "seed": 0}}, "'my run' does not match"),
        ({"mine": {"zips": ["a.zip"], "task": "Pendulum"}}, "config key 'imports.mine': 'seed' is a required property"),
        ({"mine": {"zips": [], "task": "Pendulum", "seed": 0}}, "config key 'imports.mine.zips'"),
        ({"mine": {"zip": ["a.zip"], "task": "Pendulum", "seed": 0}}, "('zip' was unexpected)"),
        ({}, "config key 'runs': empty, and no imports either"),
    ],
)
def test_malformed_imports_are_schema_errors(imports, message):
    config = load_config() | imports_config(imports)
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    assert message in str(error.value)


def test_env_id_alone_labels_the_run_and_a_glob_orders_by_step(zips):
    from pgsubspaces.config import import_specs

    config = validate_config(
        load_config()
        | imports_config({"mine": {"zips": str(zips["root"] / "*.zip"), "env_id": "Pendulum-v1", "seed": 0}})
    )
    spec = import_specs(config)["mine"]
    assert (spec.algo, spec.task, spec.env_id, spec.run_id) == ("ppo", "Pendulum-v1", "Pendulum-v1", "imports/mine")
    assert spec.checkpoint_steps == STEPS and [Path(p).name for p in spec.zips] == [p.name for p in zips["paths"]]


def test_the_export_cli_needs_an_env(zips, tmp_path, capsys):
    zip_path = str(zips["paths"][-1])
    for arguments, message in (
        ([], "give --env-id (a gymnasium id) or --task"),
        (["--task", "Atari"], "--task 'Atari' is not in config/tasks.yaml"),
    ):
        with pytest.raises(SystemExit) as exit_code:
            export_main(["model", zip_path, "--out", str(tmp_path / "run.h5"), *arguments])
        assert exit_code.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "run.h5").exists()
    export_main(["model", zip_path, "--out", str(tmp_path / "run.h5"), "--task", "Pendulum"])
    with RunFile(tmp_path / "run.h5") as run:
        assert run.attrs["env_id"] == "Pendulum-v1" and run.attrs["task"] == "Pendulum"


def test_the_example_config_names_what_is_missing():
    """config/imports-example.yaml is valid but for its placeholder zips, which it names."""
    config = load_config(REPO / "config/imports-example.yaml")
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    assert "config key 'imports.walker_seed0.zips': no file matches 'my_checkpoints/seed0/rl_model_*_steps.zip'" in str(
        error.value
    )
    assert str(error.value).count("config key") == 1


def test_two_imports_of_one_run_are_refused(zips):
    """Same algorithm, task and seed: the tables could not tell the two apart."""
    entry = {"zips": [str(p) for p in zips["paths"]], "task": "Pendulum", "seed": 0}
    with pytest.raises(ConfigError) as error:
        validate_config(load_config() | imports_config({"a": entry, "b": dict(entry)}))
    assert "config key 'imports.b.seed': ppo on Pendulum with seed 0 is already imports.a;" in str(error.value)
    validate_config(load_config() | imports_config({"a": entry, "b": {**entry, "seed": 1}}))  # seeds of one study
