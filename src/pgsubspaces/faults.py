"""Fault injection, for the workflow's fault tests only (tests/test_slurm.py).

    PGSUBSPACES_INJECT_FAULT="train:ppo/Pendulum/seed0@1024"    # SIGKILL right after saving checkpoint 1024,
                                                               # in a training that did not resume
    PGSUBSPACES_INJECT_FAULT="eigen:ppo/Pendulum/seed0@512"    # the eigen job of that checkpoint fails
    PGSUBSPACES_INJECT_FAULT="diverge:sweep/ppo/Pendulum/c001/seed0@512"  # NaN parameters after checkpoint
                                                               # 512: the training diverges

Several faults are separated by commas. Unset (always, outside tests), nothing happens.
"""

from __future__ import annotations

import os
import signal

import torch

VARIABLE = "PGSUBSPACES_INJECT_FAULT"


def injected(stage: str, run_id: str, step: int) -> bool:
    """Whether the environment asks ``stage`` to fail for this run and step."""
    wanted = f"{stage}:{run_id}@{step}"
    return wanted in (part.strip() for part in os.environ.get(VARIABLE, "").split(","))


def kill_if_injected(stage: str, run_id: str, step: int) -> None:
    """Die as an out-of-memory kill or a node failure would: SIGKILL, no cleanup."""
    if injected(stage, run_id, step):
        os.kill(os.getpid(), signal.SIGKILL)


def diverge_if_injected(run_id: str, step: int, module: torch.nn.Module) -> None:
    """Fill the module's first parameter with NaN, as a too-large learning rate would."""
    if injected("diverge", run_id, step):
        with torch.no_grad():
            next(module.parameters()).fill_(float("nan"))
