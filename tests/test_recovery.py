"""Recovery after a kill: temporaries of killed writers go, a locked workflow unlocks as the README says, a
run folder trained with other settings is refused at DAG time (before Snakemake deletes anything), and a
resumed run's tables say that it resumed while its checkpoints before the kill equal an uninterrupted run's.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, SNAKEMAKE, copy_workflow, job_env, snakemake

from pgsubspaces import atomic
from pgsubspaces.export.runfile import RunFile
from pgsubspaces.tables.tables import resumed_from
from pgsubspaces.train.checkpoints import read_state

RUN = "ppo/Pendulum/seed0"
GRID = [0, 512, 1024]
KILL = 512  # faults.py: SIGKILL right after checkpoint 512


def tiny_config(workdir: Path, experiment: str, name: str = "tiny.yaml", steps: int = 1024, **ppo) -> list[str]:
    """A PPO run of 1,024 steps with small networks over the smoke config, a small analysis; the --configfile
    arguments."""
    hyperparameters = {"n_steps": 256, "batch_size": 64, **ppo}
    (workdir / name).write_text(
        f"experiment: {experiment}\nseeds: [0]\n"
        "runs:\n  - task: Pendulum\n    algos: [ppo]\n"
        f"    total_steps: {steps}\n"
        "    checkpoints: {interval: 512, additional: []}\n"
        f"    hyperparameters: {{ppo: {json.dumps(hyperparameters)}}}\n"
        "    policy: {ppo: {net_arch: {pi: [16, 16], vf: [16, 16]}}}\n"
        "checkpoints: {interval: 512, additional: []}\n"
        "evaluation: {interval: 512, episodes: 1}\n"
        "analysis: {ppo_samples: 1024, k: 5}\n"
        "tables: {k_levels: [1, 5], overlap_t1: [0]}\n"
        "figures: {spectrum: {tasks: []}}\n"
    )
    return ["--configfile", "config/smoke.yaml", name]


def dead_pid() -> int:
    """The pid of a process that has ended (reused only after the kernel's pid space wraps)."""
    process = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(process.stdout)


@pytest.fixture
def live_process():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    yield process.pid
    process.kill()
    process.wait()


def test_a_killed_writer_leaves_a_temporary_that_the_next_write_of_its_target_removes(tmp_path, live_process):
    target = tmp_path / "out.txt"
    writer = (
        "import os, signal, sys\nfrom pgsubspaces.atomic import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n    tmp.write_text('half')\n    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    killed = subprocess.run(
        [sys.executable, "-c", writer, str(target)], env={**job_env(), "PYTHONPATH": str(REPO / "src")}
    )
    assert killed.returncode == -signal.SIGKILL
    (left,) = tmp_path.iterdir()
    assert left.name.startswith(".out.txt.tmp-") and left.read_text() == "half" and not target.exists()
    in_the_making = tmp_path / f".out.txt.tmp-{live_process}"  # a live writer's: kept
    in_the_making.write_text("not yet")
    other_target = tmp_path / f".other.txt.tmp-{dead_pid()}"  # another target's: left to its own next write
    other_target.mkdir()

    atomic.write_text(target, "whole")
    assert target.read_text() == "whole"
    assert not left.exists() and in_the_making.exists() and other_target.exists()
    assert atomic.remove_stale(tmp_path) == [other_target] and not other_target.exists()


def run_and_kill_job(workdir: Path, configs: list[str], target: str, env: dict | None = None) -> str:
    result = snakemake(workdir, target, "--cores", "1", *configs, check=False, env=env)
    assert result.returncode != 0, result.stdout[-3000:]
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def resumed(tmp_path_factory) -> tuple[Path, list[str], str]:
    """A workflow whose training job was SIGKILLed after checkpoint 512 (with stale temporaries planted
    as a kill in mid-write leaves them), then run again: (workdir, config arguments, experiment)."""
    workdir = copy_workflow(tmp_path_factory.mktemp("resumed"))
    experiment = f"recovery_{uuid.uuid4().hex[:8]}"
    configs = tiny_config(workdir, experiment)
    run_dir = workdir / f"results/{experiment}/runs/{RUN}"
    target = f"results/{experiment}/runs/{RUN}/training.json"
    output = run_and_kill_job(workdir, configs, target, env={"PGSUBSPACES_INJECT_FAULT": f"train:{RUN}@{KILL}"})
    assert "Error in rule train" in output, output[-3000:]
    assert [p.name for p in sorted((run_dir / "checkpoints").iterdir())] == ["step_000000000", "step_000000512"]
    return workdir, configs, experiment


def test_the_next_run_resumes_and_removes_what_killed_writers_left(resumed, live_process):
    workdir, configs, experiment = resumed
    run_dir = workdir / f"results/{experiment}/runs/{RUN}"
    dead = dead_pid()
    stale = [
        run_dir / "checkpoints" / f".step_000001024.tmp-{dead}",  # a checkpoint folder in mid-write
        run_dir / f".curves.npz.tmp-{dead}",
        run_dir / f".training.json.tmp-{dead}",
    ]
    stale[0].mkdir()
    (stale[0] / "model.zip").write_bytes(b"PK half")
    for path in stale[1:]:
        path.write_text("half")
    alive = run_dir / f".spec.json.tmp-{live_process}"
    alive.write_text("{")

    snakemake(workdir, f"results/{experiment}/runs/{RUN}.h5", "--cores", "1", *configs)
    summary = json.loads((run_dir / "training.json").read_text())
    assert summary["resumed_from"] == KILL and summary["resumes"] == [KILL] and summary["checkpoints"] == GRID
    assert not [path for path in stale if path.exists()] and alive.exists()
    log = (workdir / f"logs/{experiment}/train/{RUN}.log").read_text()
    assert f"removed {stale[0].relative_to(workdir)}, left by a killed training" in log
    assert read_state(run_dir, 1024)["resumes"] == [KILL] and read_state(run_dir, KILL)["resumes"] == []
    with RunFile(workdir / f"results/{experiment}/runs/{RUN}.h5") as run:
        assert run.config("training")["resumes"] == [KILL]
        assert resumed_from(run) == str(KILL)  # the tables' column
    # a rerun of the finished training (e.g. after a change of its command) trains nothing: no new resume
    # (to the run file, so that the tests below find the export up to date)
    snakemake(workdir, f"results/{experiment}/runs/{RUN}.h5", "--cores", "1", "--forcerun", "train", *configs)
    again = json.loads((run_dir / "training.json").read_text())
    assert again["resumes"] == [KILL] and again["resumed_from"] == KILL and again["checkpoints"] == GRID


def test_a_run_folder_trained_with_other_settings_is_refused_before_snakemake_deletes_anything(resumed):
    workdir, configs, experiment = resumed
    run_dir = workdir / f"results/{experiment}/runs/{RUN}"
    summary = run_dir / "training.json"
    assert summary.exists()  # trained by the test above
    before = summary.stat().st_mtime_ns
    rate = json.loads((run_dir / "spec.json").read_text())["hyperparameters"]["learning_rate"]
    changed = tiny_config(workdir, experiment, "changed.yaml", learning_rate=rate / 3)
    shorter = tiny_config(workdir, experiment, "shorter.yaml", steps=512)
    for arguments, expected in (
        (changed, f"hyperparameters.learning_rate: {rate!r} -> {rate / 3!r}"),
        (shorter, "total_steps: a checkpoint at step 1024 lies beyond the new total_steps 512"),
    ):
        for mode in (["-n"], ["--cores", "1"]):
            result = snakemake(workdir, f"results/{experiment}/runs/{RUN}.h5", *mode, *arguments, check=False)
            output = result.stdout + result.stderr
            assert result.returncode != 0 and f"results/{experiment}/runs/{RUN} ({expected}" in output, output[-2000:]
            assert "Revert the config to continue them, delete a folder to retrain it" in output
            assert "Traceback" not in output
            assert summary.stat().st_mtime_ns == before  # nothing deleted, nothing rewritten

    reverted = snakemake(workdir, f"results/{experiment}/runs/{RUN}.h5", "-n", *configs).stdout
    assert "Nothing to be done" in reverted, reverted[-2000:]


def test_after_snakemake_itself_is_killed_unlock_and_the_same_command_finish_the_run(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    experiment = f"recovery_{uuid.uuid4().hex[:8]}"
    configs = tiny_config(workdir, experiment)
    run_dir = workdir / f"results/{experiment}/runs/{RUN}"
    command = [str(SNAKEMAKE), f"results/{experiment}/runs/{RUN}/training.json", "--cores", "1", *configs]
    first = subprocess.Popen(command, cwd=workdir, env=job_env(), start_new_session=True, stdout=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (run_dir / "checkpoints/step_000000000").exists():
        assert first.poll() is None and time.time() < deadline, "training ended before its first checkpoint"
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)  # Snakemake and its job, as a lost session or an OOM kill would
    first.wait()

    locked = snakemake(workdir, *command[1:], check=False)
    assert locked.returncode != 0 and "cannot be locked" in locked.stdout + locked.stderr
    snakemake(workdir, "--unlock", *configs)
    snakemake(workdir, *command[1:])
    summary = json.loads((run_dir / "training.json").read_text())
    assert summary["resumed_from"] in (0, 512) and summary["checkpoints"] == GRID


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


@pytest.mark.expensive  # ~4 minutes on 2 busy cores: the analysis of two runs
def test_a_resumed_runs_tables_say_so_and_equal_an_uninterrupted_runs_up_to_the_kill(resumed, tmp_path):
    workdir, configs, experiment = resumed
    fresh = copy_workflow(tmp_path / "uninterrupted")
    tiny_config(fresh, experiment)
    tables = f"results/{experiment}/tables/corrected/runs/{RUN}"
    targets = [f"{tables}/{name}.csv" for name in ("fractions", "overlaps", "curves")]
    snakemake(workdir, *targets, "--cores", "2", *configs)
    snakemake(fresh, *targets, "--cores", "2", *configs)

    with (
        RunFile(workdir / f"results/{experiment}/runs/{RUN}.h5") as killed,
        RunFile(fresh / f"results/{experiment}/runs/{RUN}.h5") as whole,
    ):
        for step in GRID:
            same = all(np.array_equal(killed.vector(step, net), whole.vector(step, net)) for net in ("actor", "critic"))
            assert same == (step <= KILL), step
        # README, "Resumed runs": the PPO update of the rollout that ended at the kill is lost
        epochs = json.loads((fresh / f"results/{experiment}/runs/{RUN}/spec.json").read_text())["hyperparameters"][
            "n_epochs"
        ]
        assert whole.checkpoint_attrs(1024)["n_updates"] - killed.checkpoint_attrs(1024)["n_updates"] == epochs
        assert whole.checkpoint_attrs(KILL)["n_updates"] == killed.checkpoint_attrs(KILL)["n_updates"]

    for name, step_column in (("fractions", "step"), ("overlaps", "t2")):
        resumed_rows = read_rows(workdir / tables / f"{name}.csv")
        fresh_rows = read_rows(fresh / tables / f"{name}.csv")
        assert {row["resumed_from"] for row in resumed_rows} == {str(KILL)}
        assert {row["resumed_from"] for row in fresh_rows} == {""}
        before = [
            [{**row, "resumed_from": ""} for row in rows if int(row[step_column]) <= KILL]
            for rows in (resumed_rows, fresh_rows)
        ]
        assert before[0] and before[0] == before[1], name  # every row up to the kill, value for value
        after = [
            [row["fraction" if name == "fractions" else "overlap"] for row in rows if int(row[step_column]) > KILL]
            for rows in (resumed_rows, fresh_rows)
        ]
        assert after[0] and after[0] != after[1], name
    assert {row["resumed_from"] for row in read_rows(workdir / tables / "curves.csv")} == {str(KILL)}
