"""The SLURM profile on a real one-node Slurm cluster (tests/slurm/start_local_slurm.sh, Debian's Slurm).

Faults are injected with PGSUBSPACES_INJECT_FAULT (src/pgsubspaces/faults.py): a PPO training SIGKILLed
right after a checkpoint must be resubmitted by the profile's retry and resume from it; an eigen job that
fails must be reported with its log while the other jobs finish, and the rerun must do only what is
missing and end with tables equal to those of the local ``--cores`` run (exactly, on CPU).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO, SNAKEMAKE, copy_workflow, job_env, snakemake
from test_workflow import dry_run_jobs

SLURM = REPO / "tests" / "slurm"
TIMEOUT = 1200  # seconds for one Slurm run of the smoke config; `timeout -k` ends a hung Snakemake
TABLES = "results/smoke/tables/corrected"
# what the test profile may change from profiles/slurm, and why: the local node has no GPU, its own
# partition and no account, and short jobs want fast polling
ALLOWED = {
    "slurm-init-seconds-before-status-checks",
    "slurm-keep-successful-logs",
    "default-resources.slurm_partition",
    "default-resources.slurm_account",
    "set-threads.eigen",
    "set-threads.spectrum",
    *(
        f"set-resources.{rule}.{key}"
        for rule in ("eigen", "spectrum")
        for key in ("slurm_partition", "gpu", "cpus_per_gpu", "mem_mb")
    ),
}


def flat(mapping: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        out.update(flat(value, f"{name}.") if isinstance(value, dict) else {name: value})
    return out


def test_the_test_profile_differs_from_the_slurm_profile_only_where_it_must():
    real = flat(yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text()))
    test = flat(yaml.safe_load((SLURM / "profile" / "config.yaml").read_text()))
    differing = {key for key in real.keys() | test.keys() if real.get(key) != test.get(key)}
    assert differing <= ALLOWED, sorted(differing - ALLOWED)
    assert real["set-resources.eigen.gpu"] == 1 and real["set-resources.spectrum.gpu"] == 1


def test_a_dry_run_through_the_slurm_profile_sends_eigen_jobs_to_a_gpu(tmp_path):
    workdir = copy_workflow(tmp_path / "dry")
    dry = snakemake(workdir, "-n", "--profile", "profiles/slurm", "--configfile", "config/smoke.yaml").stdout
    blocks = [block for block in dry.split("\n\n") if "rule eigen:" in block or "rule spectrum:" in block]
    assert len(blocks) == 9, dry[-2000:]  # 8 eigen jobs and 1 spectrum job
    for block in blocks:
        resources = next(line for line in block.splitlines() if line.strip().startswith("resources:"))
        assert "gpu=1" in resources and "slurm_partition=gpu" in resources, resources


# What start_local_slurm.sh may touch outside its own folder; stop_local_slurm.sh must leave each as it was.
SYSTEM_FILES = ("/etc/slurm", "/etc/slurm/slurm.conf", "/etc/slurm/slurmdbd.conf", "/etc/munge/munge.key", "/etc/hosts")
DAEMONS = ("slurmctld", "slurmd", "slurmdbd", "mariadbd", "munged")


def machine_state() -> dict:
    """Each system file's content hash (a folder: True; absent: None) and the daemons' pids."""
    files = {}
    for name in SYSTEM_FILES:
        path = Path(name)
        files[name] = (
            True if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None
        )
    daemons = {}
    for proc in Path("/proc").iterdir():
        try:
            comm = (proc / "comm").read_text().strip() if proc.name.isdigit() else ""
        except OSError:
            continue
        if comm in DAEMONS:
            daemons.setdefault(comm, set()).add(int(proc.name))
    return {"files": files, "daemons": daemons}


def packaged(path: str) -> bool:
    """Whether an installed Debian package owns ``path`` (installed packages may stay)."""
    return subprocess.run(["dpkg", "-S", path], capture_output=True).returncode == 0


def snakemake_version_seconds() -> float:
    """The fastest of three `snakemake --version` (the SLURM plugin probes a configured controller)."""
    times = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([str(SNAKEMAKE), "--version"], check=True, capture_output=True, timeout=120)
        times.append(time.perf_counter() - started)
    return min(times)


@pytest.fixture(scope="module")
def cluster():
    before = {"state": machine_state(), "seconds": snakemake_version_seconds()}
    subprocess.run(["bash", str(SLURM / "start_local_slurm.sh")], check=True, timeout=600)
    yield before
    subprocess.run(["bash", str(SLURM / "stop_local_slurm.sh")], timeout=180)  # again: a no-op after the last test


def slurm_run(workdir: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    command = ["timeout", "-k", "10", str(TIMEOUT), str(Path(job_env()["PATH"].split(os.pathsep)[0]) / "snakemake")]
    command += [*args, "--profile", str(SLURM / "profile"), "--configfile", "config/smoke.yaml"]
    return subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=TIMEOUT + 60)


def sacct_jobs(since: str) -> list[tuple[str, str]]:
    """(comment, state) of this cluster's jobs since ``since`` (the plugin puts the rule in the comment)."""
    lines = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-S", since, "--format=Comment%200,State"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    return [tuple(line.rsplit("|", 1)) for line in lines if "|" in line]


def now() -> str:
    return subprocess.run(["date", "+%Y-%m-%dT%H:%M:%S"], capture_output=True, text=True).stdout.strip()


def test_a_killed_training_job_is_resubmitted_and_resumes(cluster, tmp_path):
    started, workdir = now(), copy_workflow(tmp_path / "kill")
    env = {**job_env(), "PGSUBSPACES_INJECT_FAULT": "train:ppo/Pendulum/seed0@1024"}
    run = slurm_run(workdir, env, "results/smoke/runs/ppo/Pendulum/seed0/training.json")
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    summary = json.loads((workdir / "results/smoke/runs/ppo/Pendulum/seed0/training.json").read_text())
    assert summary["resumed_from"] == 1024 and summary["checkpoints"] == [0, 512, 1024, 2048]
    states = [state for comment, state in sacct_jobs(started) if comment.startswith("rule_train")]
    assert len(states) == 2 and states[-1] == "COMPLETED" and states[0] != "COMPLETED", states


def test_smoke_config_through_slurm_equals_the_local_run_after_a_failed_job(cluster, smoke_workflow, tmp_path):
    started, workdir = now(), copy_workflow(tmp_path / "slurm")
    env = {**job_env(), "PGSUBSPACES_INJECT_FAULT": "eigen:ppo/Pendulum/seed0@512"}
    first = slurm_run(workdir, env)
    output = first.stdout + first.stderr
    assert first.returncode not in (0, 124, 137), output[-3000:]  # failed, but did not hang
    assert "logs/smoke/eigen/corrected/ppo/Pendulum/seed0/step000000512.log" in output, output[-3000:]
    assert "injected failure" in output, output[-3000:]  # the log is shown
    # keep-going: what does not need the failed eigen file was made; nothing half-written is left
    eigen = workdir / "results/smoke/eigen/corrected/ppo/Pendulum/seed0"
    assert not (eigen / "step000000512.h5").exists() and (eigen / "step000001024.h5").exists()
    assert not [p for p in workdir.glob("results/**/*") if ".tmp" in p.name]
    jobs = sacct_jobs(started)
    assert sum(state == "COMPLETED" for _, state in jobs) >= 10, jobs
    assert [state for comment, state in jobs if comment.startswith("rule_eigen") and "512" in comment] == [
        "FAILED",
        "FAILED",
    ], jobs  # submitted, retried once, failed again

    # the rerun does only what is missing: that eigen job and what depends on it
    counts = dry_run_jobs(workdir)
    assert counts.pop("eigen") == 1 and set(counts) <= {"run_tables", "tables", "scorecard", "figure", "all"}, counts

    second = slurm_run(workdir, job_env())
    assert second.returncode == 0, (second.stdout + second.stderr)[-3000:]
    tables = sorted((smoke_workflow / TABLES).glob("*.csv"))
    assert len(tables) == 8  # five tables, the (empty) sweep table, the scorecard and its accuracy table
    for table in tables:
        assert (workdir / TABLES / table.name).read_bytes() == table.read_bytes(), table.name


def test_stopping_the_cluster_leaves_the_machine_as_the_start_found_it(cluster):
    """Last in this file: stop the cluster (the fixture's finaliser then finds nothing to stop)."""
    assert Path("/etc/slurm/slurm.conf").exists()  # the cluster was up
    stop = subprocess.run(["bash", str(SLURM / "stop_local_slurm.sh")], capture_output=True, text=True, timeout=180)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    after = machine_state()
    for name, was in cluster["state"]["files"].items():  # as before, or a file of a package it installed
        assert after["files"][name] == was or (was is None and packaged(name)), (name, stop.stdout)
    for daemon, pids in after["daemons"].items():  # only daemons that ran before the start may run now
        assert pids <= cluster["state"]["daemons"].get(daemon, set()), (daemon, stop.stdout)
    seconds = snakemake_version_seconds()
    print(f"snakemake --version: {cluster['seconds']:.2f} s before the cluster, {seconds:.2f} s after its teardown")
    assert seconds <= 1.5 * cluster["seconds"] + 1, (cluster["seconds"], seconds)
