"""Fault injection, for the workflow's fault tests only (tests/test_slurm.py).

    PGSUBSPACES_INJECT_FAULT="train:ppo/Pendulum/seed0@1024"    # SIGKILL right after saving checkpoint 1024,
                                                               # in a training that did not resume
    PGSUBSPACES_INJECT_FAULT="eigen:ppo/Pendulum/seed0@512"    # the eigen job of that checkpoint fails

Several faults are separated by commas. Unset (always, outside tests), nothing happens.
"""

from __future__ import annotations

import os
import signal

VARIABLE = "PGSUBSPACES_INJECT_FAULT"


def injected(stage: str, run_id: str, step: int) -> bool:
    """Whether the environment asks ``stage`` to fail for this run and step."""
    wanted = f"{stage}:{run_id}@{step}"
    return wanted in (part.strip() for part in os.environ.get(VARIABLE, "").split(","))


def kill_if_injected(stage: str, run_id: str, step: int) -> None:
    """Die as an out-of-memory kill or a node failure would: SIGKILL, no cleanup."""
    if injected(stage, run_id, step):
        os.kill(os.getpid(), signal.SIGKILL)
