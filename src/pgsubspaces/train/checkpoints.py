"""The run directory of one training run, written by ``train`` and read by ``export``.

<run_dir>/spec.json                       the RunSpec the checkpoints were trained with
<run_dir>/checkpoints/step_<step:09d>/    one folder per checkpoint, renamed into place when complete:
    model.zip          SB3 model (policy, target nets, optimizer state; SAC: log_ent_coef)
    vecnormalize.pkl   VecNormalize statistics, where used
    state.json         step, gradient updates, replay stream end index, resumes (steps resumed from so far)
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
# Spec fields that may change between a run's sessions: extending the budget extends the grid.
RESUMABLE_CHANGES = frozenset({"total_steps", "checkpoint_steps"})
REPLAY_FIELDS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:09d}"


def completed_steps(run_dir: Path) -> list[int]:
    """Steps of the complete checkpoints, ascending (half-written temporaries are ignored)."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := _CHECKPOINT.match(p.name)))


def spec_conflicts(run_dir: Path, spec_json: str) -> list[str]:
    """Why the run dir cannot continue with this spec (its RunSpec JSON): one line per problem, none if it can.

    Pure (reads, never writes), and light enough for Snakemake to call on every run at DAG time, so that a
    refused training fails before Snakemake deletes its ``training.json`` (rules/common.smk).
    """
    path = Path(run_dir) / "spec.json"
    if not path.exists():
        return []
    old, new = json.loads(path.read_text()), json.loads(spec_json)
    problems = [
        f"{key}: {was!r} -> {now!r}"
        for key, was, now in _differences(old, new)
        if key.split(".")[0] not in RESUMABLE_CHANGES
    ]
    done = completed_steps(run_dir)
    if done and done[-1] > new["total_steps"]:
        problems.append(
            f"total_steps: a checkpoint at step {done[-1]} lies beyond the new total_steps {new['total_steps']}"
        )
    return problems


def _differences(old: dict, new: dict, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, old value, new value) of every leaf that differs; a key missing on one side is None."""
    out = []
    for key in sorted(old.keys() | new.keys()):
        was, now = old.get(key), new.get(key)
        if isinstance(was, dict) and isinstance(now, dict):
            out += _differences(was, now, f"{prefix}{key}.")
        elif was != now:
            out.append((f"{prefix}{key}", was, now))
    return out


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
