"""Real run files with a recorded actor path, trained once per test session (tiny budgets).

Import the fixture ``path_runs`` into a test module; the training is cached per session directory, so
modules that share it train once.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import pytest
from conftest import REPO

from pgsubspaces.config import load_config, run_specs, validate_config
from pgsubspaces.export.export import export_run
from pgsubspaces.train.train import train

# (total env steps, actor_path_every): PPO 560 actor updates, 113 snapshots; SAC 495 updates, 100 snapshots;
# "plain": a SAC run that records no path
BUDGETS = {"ppo": (4096, 5), "sac": (600, 5), "plain": (300, 0)}


@functools.cache
def _train(base: Path, name: str) -> Path:
    algo = "sac" if name == "plain" else name
    spec = run_specs(validate_config(load_config(REPO / "config" / "smoke.yaml")))[algo, "Pendulum", 0]
    total, every = BUDGETS[name]
    # the export keeps the path up to the last checkpoint: end with one at the budget
    checkpoints = tuple(sorted({*(s for s in spec.checkpoint_steps if s <= total), total}))
    spec = dataclasses.replace(spec, total_steps=total, checkpoint_steps=checkpoints, actor_path_every=every)
    run_dir = base / f"{name}_run"
    train(spec, run_dir, run_dir / "training.json", device="cpu", progress=False)
    export_run(run_dir, base / f"{name}.h5")
    return base / f"{name}.h5"


@pytest.fixture(scope="session")
def path_runs(tmp_path_factory) -> dict[str, Path]:
    """``{"ppo": run.h5, "sac": run.h5, "plain": run.h5}``: Pendulum seed 0, the first two with ``/actor_path``."""
    base = tmp_path_factory.getbasetemp() / "path_runs"
    base.mkdir(exist_ok=True)
    return {name: _train(base, name) for name in BUDGETS}
