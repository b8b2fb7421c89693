"""The run directory of one training run, written by ``train`` and read by ``export``.

<run_dir>/spec.json                       the RunSpec the checkpoints were trained with
<run_dir>/checkpoints/step_<step:09d>/    one folder per checkpoint, renamed into place when complete:
    model.zip          SB3 model (policy, target nets, optimizer state; SAC: log_ent_coef)
    vecnormalize.pkl   VecNormalize statistics, where used
    state.json         step, gradient updates, replay stream end index
    curves.npz         learning curves up to this step
    replay.npz         SAC: the transitions stored since the previous checkpoint, in order
    actor_path.npz     when recorded: flat actor parameters since the previous checkpoint
<run_dir>/curves.npz                      the final learning curves
<run_dir>/training.json                   written last: the rule's output
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from pgsubspaces.atomic import atomic_path

_CHECKPOINT = re.compile(r"^step_(\d{9})$")
REPLAY_FIELDS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:09d}"


def completed_steps(run_dir: Path) -> list[int]:
    """Steps of the complete checkpoints, ascending (half-written temporaries are ignored)."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := _CHECKPOINT.match(p.name)))


def write_checkpoint(run_dir: Path, step: int, files: dict[str, Any], state: dict[str, Any]) -> Path:
    """Write one checkpoint folder atomically.

    Args:
        files: file name -> a callable taking the target path (e.g. ``model.save``) or a dict of arrays
            (written as .npz).
        state: JSON-serialisable bookkeeping written to ``state.json``.
    """
    target = checkpoint_dir(run_dir, step)
    with atomic_path(target) as tmp:
        tmp.mkdir()
        for name, content in files.items():
            if callable(content):
                content(tmp / name)
            else:
                np.savez(tmp / name, **content)
        (tmp / "state.json").write_text(json.dumps({"step": step, **state}, indent=1))
    return target


def read_state(run_dir: Path, step: int) -> dict[str, Any]:
    return json.loads((checkpoint_dir(run_dir, step) / "state.json").read_text())


def read_chunks(run_dir: Path, name: str, steps: list[int]) -> dict[str, np.ndarray]:
    """Concatenate the ``name`` .npz of the given checkpoints, in order (empty dict if none has one)."""
    parts: dict[str, list[np.ndarray]] = {}
    for step in steps:
        path = checkpoint_dir(run_dir, step) / name
        if path.exists():
            with np.load(path) as data:
                for key in data.files:
                    parts.setdefault(key, []).append(data[key])
    return {key: np.concatenate(values) for key, values in parts.items()}
