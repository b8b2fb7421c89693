"""Config validation names the offending key; the registry resolves to the paper's grid."""

from __future__ import annotations

import copy

import pytest
from conftest import REPO, copy_workflow, snakemake

from pgsubspaces.config import ConfigError, checkpoint_grid, load_config, run_specs, validate_config


def config(name: str = "smoke.yaml") -> dict:
    return validate_config(load_config(REPO / "config" / name))


def test_checkpoint_grid_of_the_paper():
    grid = checkpoint_grid(1_000_000, 50_000, [10_000])
    assert grid[:4] == (0, 10_000, 50_000, 100_000) and grid[-1] == 1_000_000
    assert len(grid) == 22  # "about 2 + T/50k" checkpoints per run (reference §13)
    assert checkpoint_grid(5000, 2048) == (0, 2048, 4096, 5000)  # the budget's end is always a checkpoint


def test_paper_config_is_the_paper_grid():
    specs = run_specs(config("paper.yaml"))
    assert len(specs) == 250  # (13 PPO + 12 SAC tasks) x 10 seeds
    assert ("sac", "FetchPush", 0) not in specs
    walker = specs["ppo", "Walker2d", 3]
    assert walker.env_id == "Walker2d-v5" and walker.total_steps == 3_000_000
    assert walker.hyperparameters["n_steps"] == 512 and walker.hyperparameters["learning_rate"] == 5.05041e-5
    assert walker.vec_normalize["gamma"] == 0.99 and walker.policy["net_arch"] == {"pi": [64, 64], "vf": [64, 64]}
    lunar = specs["sac", "LunarLanderContinuous", 0]
    assert lunar.policy["net_arch"] == [400, 300] and lunar.hyperparameters["ent_coef"] == "auto"
    assert lunar.vec_normalize is None and lunar.checkpoint_steps[:3] == (0, 10_000, 50_000)


def test_defaults_are_filled_in():
    cfg = load_config(REPO / "config" / "smoke.yaml")
    del cfg["actor_path"], cfg["device"]
    validate_config(cfg)
    assert cfg["actor_path"] == {"every_updates": 0} and cfg["device"] == "auto"


def broken(change) -> dict:
    cfg = copy.deepcopy(load_config(REPO / "config" / "smoke.yaml"))
    change(cfg)
    return cfg


@pytest.mark.parametrize(
    "change, key",
    [
        (lambda c: c["runs"][0].update(task="Atari"), r"runs\[0\]\.task': 'Atari' is not a registered task"),
        (lambda c: c["runs"][1].update(algos=["ddpg"]), r"runs\[1\]\.algos\[0\]': 'ddpg' is not one of"),
        (lambda c: c["runs"][0].update(total_steps=-5), r"runs\[0\]\.total_steps': -5 is less than the minimum"),
        (
            lambda c: c["runs"][0]["checkpoints"].update(interval=4096),
            r"runs\[0\]\.checkpoints\.interval': 4096 exceeds",
        ),
        (
            lambda c: c["runs"][1]["checkpoints"].update(additional=[700]),
            r"runs\[1\]\.checkpoints\.additional': step 700",
        ),
        (lambda c: c["evaluation"].update(interval=10_000), r"'evaluation\.interval': 10000 exceeds"),
        (
            lambda c: c["runs"][0]["hyperparameters"]["ppo"].update(n_stepz=3),
            r"runs\[0\]\.hyperparameters\.ppo'.*'n_stepz'",
        ),
        (
            lambda c: c["runs"].append({"task": "Pendulum", "algos": ["ppo"]}),
            r"runs\[2\]': \(Pendulum, ppo\) is already",
        ),
        (lambda c: c["runs"].append({"task": "FetchPush", "algos": ["sac"]}), r"task 'FetchPush' has no 'sac' entry"),
        (lambda c: c.update(seeds=[]), r"'seeds': \[\] should be non-empty"),
        (lambda c: c.update(experimnt="x"), r"'<top level>'.*'experimnt' was unexpected"),
        (
            lambda c: c["runs"][1]["hyperparameters"]["sac"].update(buffer_size=100),
            r"runs\[1\]\.checkpoints\.interval': checkpoints 300 steps apart exceed the SAC buffer_size 100",
        ),
        (
            lambda c: c.setdefault("figures", {}).update(spectrum={"tasks": ["Walker2d"]}),
            r"'figures\.spectrum\.tasks': 'Walker2d' has no PPO run",
        ),
    ],
)
def test_bad_config_names_the_key(change, key):
    with pytest.raises(ConfigError, match=key):
        validate_config(broken(change))


def test_snakemake_rejects_a_bad_config_before_any_job(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    (workdir / "bad.yaml").write_text("runs:\n  - {task: Pendulum, algos: [ppo], total_steps: 0}\n")
    result = snakemake(workdir, "--cores", "1", "--configfile", "config/smoke.yaml", "bad.yaml", check=False)
    assert result.returncode != 0
    assert "config key 'runs[0].total_steps': 0 is less than the minimum of 1" in result.stdout + result.stderr
    assert not (workdir / "results").exists() and not (workdir / "logs").exists()
