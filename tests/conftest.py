"""Shared helpers: a copy of the workflow in a temporary folder, and Snakemake runs inside it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from stable_baselines3.common.callbacks import BaseCallback

from pgsubspaces.train.checkpoints import REPLAY_FIELDS
from pgsubspaces.train.parameters import flatten, split_parameters

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
WORKFLOW_PARTS = ("Snakefile", "rules", "config", "envs", "profiles", "report")


def copy_workflow(dest: Path) -> Path:
    """The workflow's files in ``dest`` (``src`` linked), so runs there leave the repository untouched."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in WORKFLOW_PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, dest / part)
        else:
            shutil.copy(source, dest / part)
    (dest / "src").symlink_to(REPO / "src")
    return dest


def job_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def snakemake(
    workdir: Path, *args: str, check: bool = True, timeout: float = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run Snakemake in ``workdir`` (``env``: extra environment variables); show its output if it fails."""
    result = subprocess.run(
        [str(SNAKEMAKE), *args],
        cwd=workdir,
        env={**job_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        output = f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        pytest.fail(f"snakemake {' '.join(args)} failed ({result.returncode}):\n{output}")
    return result


def job_counts(output: str) -> dict[str, int]:
    """Job counts per rule from Snakemake's "Job stats" table (the first in ``output``)."""
    counts, table = {}, False
    for line in output.splitlines():
        if line.startswith("job ") and "count" in line:
            table = True
        elif table and line.strip() and not line.startswith("-"):
            name, count = line.split()[:2]
            if name == "total":
                break
            counts[name] = int(count)
    return counts


@pytest.fixture(scope="session")
def smoke_workflow(tmp_path_factory) -> Path:
    """The smoke config run end to end (train and export of PPO and SAC on Pendulum) once per session."""
    workdir = copy_workflow(tmp_path_factory.mktemp("smoke"))
    snakemake(workdir, "--cores", "2", "--configfile", "config/smoke.yaml")
    return workdir


def chronological(buffer) -> dict[str, np.ndarray]:
    """An SB3 replay buffer's transitions, oldest first (unrolling the circular storage)."""
    n = buffer.buffer_size if buffer.full else buffer.pos
    order = (buffer.pos + np.arange(n)) % buffer.buffer_size if buffer.full else np.arange(n)
    return {field: getattr(buffer, field)[order, 0].copy() for field in REPLAY_FIELDS}


class BufferSnapshots(BaseCallback):
    """What plain SB3 holds at the given steps: the flat actor and (SAC) the replay buffer, oldest first."""

    def __init__(self, algo: str, steps):
        super().__init__()
        self.algo, self.steps, self.buffers, self.actors = algo, set(steps), {}, {}

    def _on_step(self) -> bool:
        if self.num_timesteps in self.steps:
            self.actors[self.num_timesteps] = flatten(split_parameters(self.model.policy, self.algo)["actor"])
            if self.algo == "sac":
                self.buffers[self.num_timesteps] = chronological(self.model.replay_buffer)
        return True


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> dict[str, tuple[Path, Path, int]]:
    """Small real checkpoints: PPO, SAC and TD3 trained briefly on Pendulum with tiny networks, exported, with
    their analysis data at the last checkpoint. algo -> (run file, data file, step)."""
    import dataclasses

    import torch as th

    from pgsubspaces.analysis.data import make_data
    from pgsubspaces.config import AnalysisSpec, load_config, run_specs, validate_config
    from pgsubspaces.export.export import export_run
    from pgsubspaces.train.train import train

    th.set_num_threads(1)
    root = tmp_path_factory.mktemp("tiny")
    specs = run_specs(validate_config(load_config(REPO / "config" / "smoke.yaml")))
    specs |= run_specs(
        validate_config(load_config(REPO / "config" / "smoke.yaml", REPO / "tests" / "configs" / "td3.yaml"))
    )
    settings = {
        "ppo": {
            "total_steps": 1024,
            "checkpoint_steps": (0, 1024),
            "policy": {"net_arch": {"pi": [8, 8], "vf": [8, 8]}},
        },
        "sac": {"total_steps": 300, "checkpoint_steps": (0, 300), "policy": {"net_arch": [16, 16]}},
        "td3": {"total_steps": 300, "checkpoint_steps": (0, 300), "policy": {"net_arch": [8, 8]}},  # action noise 0.1
    }
    out = {}
    for algo, changes in settings.items():
        spec = dataclasses.replace(specs[algo, "Pendulum", 0], **changes)
        train(spec, root / algo, root / algo / "training.json", device="cpu", progress=False)
        export_run(root / algo, root / f"{algo}.h5")
        make_data(
            root / f"{algo}.h5",
            spec.total_steps,
            root / f"{algo}_data.h5",
            AnalysisSpec.from_settings({"ppo_samples": 1000}),
        )
        out[algo] = (root / f"{algo}.h5", root / f"{algo}_data.h5", spec.total_steps)
    return out
