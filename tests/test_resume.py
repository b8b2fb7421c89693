"""An interrupted training resumes from its last checkpoint instead of starting over."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest
from conftest import REPO, SNAKEMAKE, chronological, copy_workflow, job_env, snakemake
from stable_baselines3 import TD3

from pgsubspaces.config import load_config, run_specs, validate_config
from pgsubspaces.export.export import export_run
from pgsubspaces.export.runfile import RunFile
from pgsubspaces.train.checkpoints import read_state
from pgsubspaces.train.train import RunDirError, _resume, train


def kill_training(pattern: str) -> None:
    for pid in subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_killed_training_job_resumes_from_its_checkpoint(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    experiment = f"resume_{uuid.uuid4().hex[:8]}"
    (workdir / "resume.yaml").write_text(
        f"experiment: {experiment}\nseeds: [0]\n"
        "runs:\n  - task: Pendulum\n    algos: [ppo]\n    total_steps: 16384\n"
        "    checkpoints: {interval: 2048, additional: []}\n"
        "    hyperparameters: {ppo: {n_steps: 512}}\n"
        "evaluation: {interval: 4096, episodes: 1}\n"
    )
    run_dir = workdir / f"results/{experiment}/runs/ppo/Pendulum/seed0"
    target = f"results/{experiment}/runs/ppo/Pendulum/seed0.h5"
    first = subprocess.Popen(
        [str(SNAKEMAKE), target, "--cores", "1", "--configfile", "config/smoke.yaml", "resume.yaml"],
        cwd=workdir,
        env=job_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 300
    while not (run_dir / "checkpoints/step_000002048").exists():
        if first.poll() is not None or time.time() > deadline:
            pytest.fail(f"training ended before its first checkpoint:\n{first.communicate()[0][-3000:]}")
        time.sleep(0.1)
    kill_training(f"pgsubspaces.train .*results/{experiment}/runs")  # the job, not Snakemake
    output, _ = first.communicate(timeout=120)
    assert first.returncode != 0, output  # the job died; Snakemake reports it
    assert not (run_dir / "training.json").exists()
    kept = sorted(p.name for p in (run_dir / "checkpoints").iterdir() if not p.name.startswith("."))
    assert kept and kept[-1] != "step_000016384"
    last = int(kept[-1].split("_")[1])
    before = {name: (run_dir / "checkpoints" / name / "model.zip").stat().st_mtime_ns for name in kept}

    snakemake(workdir, target, "--cores", "1", "--configfile", "config/smoke.yaml", "resume.yaml")
    summary = json.loads((run_dir / "training.json").read_text())
    assert summary["resumed_from"] == last
    assert summary["checkpoints"] == list(range(0, 16385, 2048))
    log = (workdir / f"logs/{experiment}/train/ppo/Pendulum/seed0.log").read_text()
    assert f"resuming ppo/Pendulum/seed0 from its checkpoint at step {last} of 16384" in log
    for name, mtime in before.items():  # what was done before the kill stays as it was
        assert (run_dir / "checkpoints" / name / "model.zip").stat().st_mtime_ns == mtime
    with RunFile(workdir / f"results/{experiment}/runs/ppo/Pendulum/seed0.h5") as run:
        assert run.steps.tolist() == list(range(0, 16385, 2048))
        assert run.curves()["eval/step"].tolist() == [0, 4096, 8192, 12288, 16384]


def test_sac_resume_restores_the_replay_buffer(tmp_path):
    spec = run_specs(validate_config(load_config(REPO / "config" / "smoke.yaml")))["sac", "Pendulum", 0]
    short = dataclasses.replace(spec, total_steps=300, checkpoint_steps=(0, 150, 300))
    run_dir = tmp_path / "run"
    train(short, run_dir, run_dir / "training.json", device="cpu", progress=False)
    export_run(run_dir, tmp_path / "short.h5")
    with RunFile(tmp_path / "short.h5") as run:
        at_300 = run.replay(300)
    assert len(at_300["rewards"]) == 299  # the transition of step 300 is stored after the checkpoint

    session = _resume(spec, run_dir, 300, "cpu")
    for field, values in chronological(session.model.replay_buffer).items():
        np.testing.assert_array_equal(values, at_300[field].astype(values.dtype))

    summary = train(spec, run_dir, run_dir / "training.json", device="cpu", progress=False)  # budget extended
    assert summary["resumed_from"] == 300 and summary["checkpoints"] == [0, 150, 300, 600]
    export_run(run_dir, tmp_path / "long.h5")
    with RunFile(tmp_path / "long.h5") as run:
        np.testing.assert_array_equal(run.replay(300)["observations"], at_300["observations"])
        # 299 transitions before the interruption, 299 after (step 300's transition was never stored)
        assert run.checkpoint_attrs(600)["replay_end"] == 598
        assert len(run.replay(600)["rewards"]) == spec.hyperparameters["buffer_size"]


def test_resume_refuses_other_settings(tmp_path):
    spec = run_specs(validate_config(load_config(REPO / "config" / "smoke.yaml")))["ppo", "Pendulum", 0]
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "spec.json").write_text(spec.to_json())
    other = dataclasses.replace(spec, hyperparameters={**spec.hyperparameters, "learning_rate": 1e-3})
    with pytest.raises(RunDirError, match=r"other settings \(hyperparameters.learning_rate: 0.003 -> 0.001\)"):
        train(other, run_dir, run_dir / "training.json", device="cpu", progress=False)


def test_killed_td3_training_resumes_with_its_buffer_noise_and_actor_path(tmp_path):
    """A TD3 training SIGKILLed right after checkpoint 300 resumes from it: replay buffer, exploration noise
    and the actor-path clock (TD3 updates its actor every policy_delay critic updates) carry over."""
    configs = (REPO / "config" / "smoke.yaml", REPO / "tests" / "configs" / "td3.yaml")
    spec = run_specs(validate_config(load_config(*configs)))["td3", "Pendulum", 0]
    spec = dataclasses.replace(spec, actor_path_every=5)
    run_dir = tmp_path / "run"
    env = {**job_env(), "PGSUBSPACES_INJECT_FAULT": f"train:{spec.run_id}@300"}
    killed = subprocess.run(
        [sys.executable, "-m", "pgsubspaces.train", "--spec", spec.to_json(), "--out", str(run_dir / "training.json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (run_dir / "training.json").exists()
    read_back = read_state(run_dir, 300)
    assert read_back["actor_updates"] == (read_back["n_updates"]) // 2  # policy_delay 2

    session = _resume(spec, run_dir, 300, "cpu")
    noise = session.model.action_noise
    assert noise is not None and np.allclose(noise._sigma, 0.1) and noise._mu.shape == (1,)
    assert session.actor_updates == read_back["actor_updates"]
    summary = train(spec, run_dir, run_dir / "training.json", device="cpu", progress=False)
    assert summary["resumed_from"] == 300 and summary["checkpoints"] == [0, 150, 300, 600]
    export_run(run_dir, tmp_path / "td3.h5")
    with RunFile(tmp_path / "td3.h5") as run:
        assert len(run.replay(300)["rewards"]) == 299
        assert run.checkpoint_attrs(600)["replay_end"] == 598
        updates = run._read("actor_path/updates")
        assert updates[0] == 0 and np.all(np.diff(updates) == 5)  # no gap and no repeat across the kill
        assert updates[-1] <= run.checkpoint_attrs(600)["actor_updates"] < updates[-1] + 5
        n_updates = run.checkpoint_attrs(600)["n_updates"]
        assert run.checkpoint_attrs(600)["actor_updates"] == n_updates // 2


def test_killed_pptb_training_resumes_to_the_parameters_of_a_clean_stop(tmp_path):
    """A TD3-PPTB training SIGKILLed right after checkpoint 300 ends at 600 with the parameters, PPTB path and
    update count of one that stopped cleanly at 300 and was extended: the kill loses nothing. (Equality with a
    session never stopped would need an exact resume, which the workflow does not make: README, "Resumed runs".)"""
    configs = (REPO / "config" / "smoke.yaml", REPO / "tests" / "configs" / "td3.yaml")
    spec = run_specs(validate_config(load_config(*configs)))["td3", "Pendulum", 0]
    pptb = {"r_t": 3, "p_b": 0.5, "r_b": 2, "t_s": 5, "t_p": 50, "buffer_size": 20}
    spec = dataclasses.replace(spec, pptb=pptb, study="pptb", configuration="pptb")
    killed_dir, clean_dir = tmp_path / "killed", tmp_path / "clean"
    env = {**job_env(), "PGSUBSPACES_INJECT_FAULT": f"train:{spec.run_id}@300"}
    killed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pgsubspaces.train",
            "--spec",
            spec.to_json(),
            "--out",
            str(killed_dir / "training.json"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    at_300 = read_state(killed_dir, 300)
    assert at_300["pptb_updates"] == at_300["n_updates"] // 2 == 99  # saved before step 300's update
    train(spec, killed_dir, killed_dir / "training.json", device="cpu", progress=False)

    stop = dataclasses.replace(spec, total_steps=300, checkpoint_steps=(0, 150, 300))
    train(stop, clean_dir, clean_dir / "training.json", device="cpu", progress=False)
    train(spec, clean_dir, clean_dir / "training.json", device="cpu", progress=False)

    folders = [run / "checkpoints/step_000000600" for run in (killed_dir, clean_dir)]
    states = [np.load(folder / "pptb.npz") for folder in folders]
    assert int(states[0]["updates"]) == int(states[1]["updates"]) == read_state(clean_dir, 600)["n_updates"] // 2
    np.testing.assert_array_equal(states[0]["path"], states[1]["path"])
    assert states[0]["path"].shape[0] == 20  # the FIFO is full
    models = [TD3.load(folder / "model.zip", device="cpu") for folder in folders]
    for (name, a), (_, b) in zip(*(m.policy.named_parameters() for m in models), strict=True):
        assert np.array_equal(a.detach().numpy(), b.detach().numpy()), name
    # the FIFO is kept in the newest checkpoint only
    assert not (killed_dir / "checkpoints/step_000000300/pptb.npz").exists()
