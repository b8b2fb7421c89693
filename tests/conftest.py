"""Shared helpers: a copy of the workflow in a temporary folder, and Snakemake runs inside it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
WORKFLOW_PARTS = ("Snakefile", "rules", "config", "envs", "profiles")


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


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run Snakemake in ``workdir``; on an unexpected failure show its output."""
    result = subprocess.run(
        [str(SNAKEMAKE), *args], cwd=workdir, env=job_env(), capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        pytest.fail(f"snakemake {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


@pytest.fixture(scope="session")
def smoke_workflow(tmp_path_factory) -> Path:
    """The smoke config run end to end (train and export of PPO and SAC on Pendulum) once per session."""
    workdir = copy_workflow(tmp_path_factory.mktemp("smoke"))
    snakemake(workdir, "--cores", "2", "--configfile", "config/smoke.yaml")
    return workdir
