"""Inputs are data, never code; bad input fails at DAG time with the key named (issue 12).

Shell text is sent through every path that reaches a command (sweep.fixed values and names, wildcard-like
target names), each in a real Snakemake run: nothing may run (no marker file) and the error names the key
or the target. The DAG-time checks reject at their boundary (the value one past it passes).
"""

from __future__ import annotations

import copy
import csv
import subprocess
import sys

import numpy as np
import pytest
import torch as th
from conftest import REPO, copy_workflow, job_env, snakemake

from pgsubspaces.analysis.eigensolvers import EigenConvergenceError, arpack, lanczos
from pgsubspaces.config import ConfigError, deep_merge, load_config, validate_config
from pgsubspaces.sweep import SPACES, sample_configurations
from pgsubspaces.sweep import main as sweep_main

# On top of config/smoke.yaml: two configurations of a tiny PPO sweep (net_arch 16: actor 369, critic 353).
SWEEP = """sweep:
  configurations: 2
  fixed: {ppo: {net_arch: 16}}
  runs:
    - {task: Pendulum, algos: [ppo], total_steps: 1024, checkpoints: {interval: 512}, overlap: {t1: 512, t2: 1024}}
"""
CONFIGURATIONS = "results/smoke/runs/sweep/ppo/configurations.csv"
MARKER = "pwned"  # every payload touches this file in the job's working directory


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    """A copy of the workflow in a folder whose path holds a space (the shell prefix quotes it)."""
    workdir = copy_workflow(tmp_path_factory.mktemp("validation") / "a b")
    (workdir / "sweep.yaml").write_text(SWEEP)
    return workdir


def refused(workdir, *args):
    """Run Snakemake (for real, not dry) expecting it to refuse; nothing may have run. Its output."""
    result = snakemake(workdir, "--cores", "1", *args, check=False, timeout=300)
    assert result.returncode != 0, result.stdout[-2000:]
    assert not (workdir / MARKER).exists(), "the shell text ran"
    assert not (workdir / "results").exists() and not (workdir / "logs").exists()
    return result.stdout + result.stderr


def smoke(**changes) -> dict:
    """config/smoke.yaml with ``changes`` merged over it."""
    config = load_config(REPO / "config" / "smoke.yaml")
    return deep_merge(config, changes)


def with_sweep(**changes) -> dict:
    """config/smoke.yaml with the tiny sweep and ``changes`` merged over it."""
    import yaml

    return smoke(**deep_merge(yaml.safe_load(SWEEP), changes))


def rejected(config) -> str:
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    return str(error.value)


# --- shell text through sweep.fixed, in a real run of the configurations job -------------------------------

# One run: the schema reports every offending value, so each payload is checked on its own.
FIXED_PAYLOADS = {
    'gamma: "0.99; touch pwned #"': "'sweep.fixed.ppo.gamma': '0.99; touch pwned #' is not of type 'number'",
    'learning_rate: "$(touch pwned)"': "'sweep.fixed.ppo.learning_rate': '$(touch pwned)' is not of type 'number'",
    'n_steps: "`touch pwned`"': "'sweep.fixed.ppo.n_steps': '`touch pwned`' is not of type 'integer'",
    'net_arch: ["64; touch pwned"]': "'sweep.fixed.ppo.net_arch': ['64; touch pwned'] is not of type 'integer'",
    'clip_range: {x: "$(touch pwned)"}': "'sweep.fixed.ppo.clip_range': {'x': '$(touch pwned)'} is not of type",
    '"gamma; touch pwned #": 0.9': "('gamma; touch pwned #' was unexpected) (allowed: learning_rate, n_steps,",
}


def test_shell_text_in_sweep_fixed_never_runs(workflow):
    (workflow / "bad.yaml").write_text(f"sweep:\n  fixed:\n    ppo: {{{', '.join(FIXED_PAYLOADS)}}}\n")
    output = refused(workflow, CONFIGURATIONS, "--configfile", "config/smoke.yaml", "sweep.yaml", "bad.yaml")
    for message in FIXED_PAYLOADS.values():
        assert message in output


def test_the_sweep_command_line_takes_fixed_values_as_checked_json(tmp_path, capsys):
    """Behind the config: the job's command line parses --fixed as JSON data and checks it like the schema."""
    out = tmp_path / "c.csv"
    for fixed, message in (
        ('{"gamma": "x; touch pwned"}', "sweep.fixed.ppo.gamma: 'x; touch pwned' is not of type 'number'"),
        ("net_arch=64; touch pwned", "--fixed is not JSON"),
        ('{"gamma": 0}', "sweep.fixed.ppo.gamma: 0 is less than or equal to the minimum of 0"),
        ('["net_arch"]', "sweep.fixed.ppo: ['net_arch'] is not of type 'object'"),
    ):
        with pytest.raises(SystemExit) as exit:
            sweep_main(
                ["configurations", "--algo", "ppo", "--n", "2", "--seed", "0", "--fixed", fixed, "--out", str(out)]
            )
        assert exit.value.code == 2 and message in capsys.readouterr().err
        assert not out.exists()
    sweep_main(
        ["configurations", "--algo", "ppo", "--n", "2", "--seed", "0", "--fixed", '{"gamma": 1}', "--out", str(out)]
    )
    assert [row["gamma"] for row in csv.DictReader(out.open())] == ["1", "1"]


# --- shell text and spaces in target names: every wildcard is constrained ------------------------------------

TARGETS = {
    "export_model ;": "results/imports/x;touch pwned.h5",
    "export_model $()": "results/imports/$(touch pwned).h5",
    "export_model backticks and space": "results/imports/a b`touch pwned`.h5",
    "run ;": "results/smoke/runs/ppo/Pendulum/seed0;touch pwned.h5",
    "step $()": "results/smoke/data/corrected/ppo/Pendulum/seed0/step$(touch pwned).h5",
    "algo space": "results/smoke/runs/sweep/p po/configurations.csv",
    "figure backticks": "figures/fig1_spectrum`touch pwned`.pdf",
}


@pytest.mark.parametrize("target", TARGETS.values(), ids=TARGETS.keys())
def test_shell_text_in_a_target_name_never_runs(workflow, target):
    if target.startswith("results/imports/"):
        # the model zip exists: only the wildcard constraint stands between the name and the command
        zipped = workflow / "imports" / (target.removeprefix("results/imports/").removesuffix(".h5") + ".zip")
        zipped.parent.mkdir(exist_ok=True)
        zipped.write_bytes(b"PK")
    output = refused(workflow, target, "--configfile", "config/smoke.yaml")
    assert f"No rule to produce {target}" in output


def test_names_with_spaces_are_refused_with_the_key_named():
    assert "config key 'experiment': 'my exp' does not match" in rejected(smoke(experiment="my exp"))
    config = smoke()
    config["tasks"]["My Task"] = copy.deepcopy(config["tasks"]["Pendulum"])
    assert "config key 'tasks': 'My Task' does not match" in rejected(config)


# --- sweep.fixed: each parameter's type and range ------------------------------------------------------------


def test_the_schema_holds_exactly_the_drawn_parameters():
    import yaml

    defs = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())["$defs"]
    for algo, space in SPACES.items():
        assert list(defs[f"{algo}_fixed"]["properties"]) == list(space)


@pytest.mark.parametrize(
    "algo, fixed, message",
    [
        ("ppo", {"net_arch": "abc"}, "'sweep.fixed.ppo.net_arch': 'abc' is not of type 'integer'"),
        ("ppo", {"net_arch": 0}, "'sweep.fixed.ppo.net_arch': 0 is less than the minimum of 1"),
        ("ppo", {"net_arch": 64.5}, "'sweep.fixed.ppo.net_arch': 64.5 is not of type 'integer'"),
        ("ppo", {"net_arch": 64.0}, "'sweep.fixed.ppo.net_arch': 64.0 is not of type 'integer'"),
        ("ppo", {"gamma": 0}, "'sweep.fixed.ppo.gamma': 0 is less than or equal to the minimum of 0"),
        ("ppo", {"gamma": 1.5}, "'sweep.fixed.ppo.gamma': 1.5 is greater than the maximum of 1"),
        ("ppo", {"learning_rate": -1e-3}, "'sweep.fixed.ppo.learning_rate': -0.001 is less than or equal to"),
        ("ppo", {"batch_size": 1}, "'sweep.fixed.ppo.batch_size': 1 is less than the minimum of 2"),
        ("ppo", {"n_steps": True}, "'sweep.fixed.ppo.n_steps': True is not of type 'integer'"),
        ("ppo", {"n_epochs": 0}, "'sweep.fixed.ppo.n_epochs': 0 is less than the minimum of 1"),
        ("ppo", {"ent_coef": -1}, "'sweep.fixed.ppo.ent_coef': -1 is less than the minimum of 0"),
        ("ppo", {"gae_lambda": 2}, "'sweep.fixed.ppo.gae_lambda': 2 is greater than the maximum of 1"),
        ("ppo", {"clip_range": 0}, "'sweep.fixed.ppo.clip_range': 0 is less than or equal to the minimum of 0"),
        ("ppo", {"momentum": 0.9}, "(allowed: learning_rate, n_steps, batch_size, n_epochs, gamma, gae_lambda,"),
        ("sac", {"tau": 0}, "'sweep.fixed.sac.tau': 0 is less than or equal to the minimum of 0"),
        ("sac", {"learning_starts": -1}, "'sweep.fixed.sac.learning_starts': -1 is less than the minimum of 0"),
        ("sac", {"train_freq": 0}, "'sweep.fixed.sac.train_freq': 0 is less than the minimum of 1"),
        ("sac", {"n_steps": 512}, "(allowed: learning_rate, batch_size, train_freq, gamma, tau, learning_starts,"),
        ("ppo", [64], "'sweep.fixed.ppo': [64] is not of type 'object'"),
    ],
)
def test_a_bad_fixed_value_is_refused_with_the_key_named(algo, fixed, message):
    assert message in rejected(with_sweep(sweep={"fixed": {algo: fixed}}))


def test_a_fixed_n_steps_below_a_drawn_batch_size_is_refused():
    message = rejected(with_sweep(sweep={"fixed": {"ppo": {"n_steps": 32}}}))
    assert "config key 'sweep.fixed.ppo.n_steps': 32 gives configuration c00" in message
    assert "above its n_steps 32" in message
    validate_config(with_sweep(sweep={"fixed": {"ppo": {"n_steps": 256}}}))  # every drawn batch_size fits


def test_integers_are_integers():
    config = smoke()
    config["runs"][0]["total_steps"] = 2048.0
    assert "config key 'runs[0].total_steps': 2048.0 is not of type 'integer'" in rejected(config)


# --- DAG-time checks against the networks' parameter counts -------------------------------------------------
# smoke: PPO on Pendulum [64, 64] with gSDE, actor 4,545 and critic 4,481 (the smallest); SAC [64, 64], actor
# 4,546 and critics 9,090 (tests/test_envs.py checks these counts against real SB3 policies).


@pytest.mark.parametrize(
    "analysis, message",
    [
        ({"k": 4481}, "'analysis.k': 4481 eigenpairs do not fit the ppo critic on Pendulum (runs[0]), which has 4481"),
        ({"k": 4477}, "'analysis.guard_eigenpairs': k 4477 + 5 guard eigenpairs do not fit the ppo critic on Pendulum"),
        ({"k": 10, "max_matvecs": 14}, "'analysis.max_matvecs': 14 Hessian-vector products cannot build the Krylov"),
        ({"k": 10, "max_matvecs": 45, "solver": "arpack"}, "'analysis.max_matvecs': 45 Hessian-vector products are"),
    ],
)
def test_analysis_counts_are_checked_against_every_network(analysis, message):
    assert message in rejected(smoke(analysis=analysis))


@pytest.mark.parametrize(
    "analysis",
    [{"k": 4475}, {"k": 4479, "guard_eigenpairs": 1}, {"max_matvecs": 15}, {"max_matvecs": 46, "solver": "arpack"}],
)
def test_the_value_at_each_boundary_passes(analysis):
    validate_config(smoke(analysis=analysis))


def test_k_is_checked_against_the_sweeps_networks_too():
    message = rejected(with_sweep(analysis={"k": 353}))
    assert "'analysis.k': 353 eigenpairs do not fit the ppo critic on Pendulum (sweep.runs[0], configuration c000)" in (
        message
    )
    validate_config(with_sweep(analysis={"k": 347}))


def test_fig1_networks_are_checked_against_the_explicit_hessians_limit():
    message = rejected(smoke(figures={"spectrum": {"max_parameters": 4544}}))
    assert (
        "'figures.spectrum.max_parameters': 4544 is below the 4545 parameters of the ppo actor on Pendulum" in message
    )
    validate_config(smoke(figures={"spectrum": {"max_parameters": 4545}}))


def test_the_budgets_refused_cannot_work_in_the_real_solvers():
    """Below the floors the checks state, the solvers fail (and say why); a diagonal operator with a gap."""
    n, k, guard = 300, 10, 5
    diagonal = th.tensor(np.concatenate([np.linspace(100, 50, 40), np.linspace(1, 0, n - 40)]), dtype=th.float64)
    common = dict(subspace_tol=0.1, guard=guard)
    with pytest.raises(EigenConvergenceError, match=r"lanczos: the budget max_matvecs = 9 ended at dimension 9 < k"):
        lanczos(lambda v: diagonal * v, n, k, 1e-4, th.float64, "cpu", max_matvecs=k - 1, **common)
    with pytest.raises(EigenConvergenceError, match="arpack stopped at the budget max_matvecs = 45"):
        arpack(lambda v: diagonal * v, n, k, 1e-4, th.float64, "cpu", max_matvecs=45, **common)


def test_a_dry_run_fails_on_k_with_the_key_named(workflow):
    (workflow / "big.yaml").write_text("analysis: {k: 5000}\n")
    result = snakemake(workflow, "-n", "--configfile", "config/smoke.yaml", "big.yaml", check=False)
    assert result.returncode != 0
    assert (
        "config key 'analysis.k': 5000 eigenpairs do not fit the ppo critic on Pendulum"
        in result.stdout + result.stderr
    )


# --- malformed config files -------------------------------------------------------------------------------


def test_a_malformed_configfile(workflow):
    """Snakemake reads --configfile files before the Snakefile, and names neither file nor line (we pin its
    message, to notice when it does); python -m pgsubspaces.config names both."""
    (workflow / "broken.yaml").write_text("experiment: x\nsweep: {configurations: 1\nruns: []\n")
    output = refused(workflow, "--configfile", "config/smoke.yaml", "broken.yaml")
    assert "Config file is not valid JSON or YAML" in output and "broken.yaml" not in output
    result = subprocess.run(
        [sys.executable, "-m", "pgsubspaces.config", "config/smoke.yaml", "broken.yaml"],
        cwd=workflow,
        env=job_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "error: broken.yaml:3:5: not valid YAML: expected ',' or '}', but got ':'" in result.stderr
    assert "(while parsing a flow mapping that starts at line 2, column 8)" in result.stderr


def test_a_malformed_registry_is_named_by_file_and_line(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    registry = workdir / "config" / "tasks.yaml"
    lines = registry.read_text().splitlines()
    line = lines.index("  Pendulum:") + 1
    lines[line - 1] = "  Pendulum: {"
    registry.write_text("\n".join(lines) + "\n")
    output = refused(workdir, "-n", "--configfile", "config/smoke.yaml")
    assert f"config/tasks.yaml:{line + 2}:12: not valid YAML: expected ',' or '}}', but got ':'" in output
    assert f"(while parsing a flow mapping that starts at line {line}, column 13)" in output


# --- a legitimate fixed value reaches the drawn configurations -----------------------------------------------


def test_a_real_sweep_job_holds_the_fixed_values(tmp_path):
    workflow = copy_workflow(tmp_path / "with space")  # the job's PATH and PYTHONPATH hold the space
    (workflow / "sweep.yaml").write_text(SWEEP)
    (workflow / "held.yaml").write_text(
        "sweep:\n  fixed:\n    ppo: {net_arch: 16, gamma: 0.95, learning_rate: 1.0e-3}\n"
    )
    result = snakemake(
        workflow, CONFIGURATIONS, "--cores", "1", "--configfile", "config/smoke.yaml", "sweep.yaml", "held.yaml"
    )
    assert """--fixed '{"gamma": 0.95, "learning_rate": 0.001, "net_arch": 16}'""" in result.stdout + result.stderr
    with open(workflow / CONFIGURATIONS) as stream:
        rows = list(csv.DictReader(stream))
    fixed = {"net_arch": 16, "gamma": 0.95, "learning_rate": 1e-3}
    assert [row["configuration"] for row in rows] == ["c000", "c001"]
    assert all(float(row[name]) == value for row in rows for name, value in fixed.items())
    for row, drawn in zip(rows, sample_configurations("ppo", 2, 0, fixed)):
        assert {name: float(row[name]) for name in drawn} == pytest.approx({n: float(v) for n, v in drawn.items()})
