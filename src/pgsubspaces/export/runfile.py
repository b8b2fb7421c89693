"""The run file: one HDF5 file per training run, the interface between training and analysis.

Format ``pgsubspaces-run``, version 2; every group, dataset and attribute is listed in docs/hdf5.md.
``write_run_file`` writes it atomically and checksummed (``h5io``); ``RunFile`` reads it, verifies it and
names the file in every error;
``build_policy`` turns a checkpoint back into a stable-baselines3 policy.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import gymnasium as gym
import h5py
import numpy as np
from stable_baselines3.common.policies import BasePolicy

from pgsubspaces import h5io
from pgsubspaces.h5io import IntegrityError, RunFileError
from pgsubspaces.train.agents import new_policy
from pgsubspaces.train.checkpoints import REPLAY_FIELDS
from pgsubspaces.train.parameters import NETS, ParameterLayout, assign, split_parameters

FORMAT = "pgsubspaces-run"
FORMAT_VERSION = h5io.FORMATS[FORMAT]  # 2: checksummed (fletcher32 datasets, 1.10 metadata, sealed attributes)
_MISSING = object()
_COMPRESSION = {"compression": "gzip", "compression_opts": 4, "shuffle": True}


@dataclasses.dataclass(frozen=True)
class CheckpointData:
    """One checkpoint of a run.

    Attributes:
        step: env steps taken when the checkpoint was saved.
        vectors: flat float32 vectors: ``actor``, ``critic``; SAC ``critic_target``; TD3 ``actor_target`` and
            ``critic_target``.
        attrs: scalars: n_updates; SAC: log_ent_coef, ent_coef, target_entropy, replay_end.
        vec_normalize: VecNormalize statistics and settings, or None.
    """

    step: int
    vectors: dict[str, np.ndarray]
    attrs: dict[str, Any]
    vec_normalize: dict[str, Any] | None = None


def checkpoint_group(step: int) -> str:
    return f"checkpoints/step_{step:09d}"


def write_run_file(
    path: str | Path,
    *,
    identity: dict[str, Any],
    config: dict[str, Any],
    observation_space: gym.spaces.Box,
    action_space: gym.spaces.Box,
    layouts: dict[str, ParameterLayout],
    checkpoints: Iterable[CheckpointData],
    curves: dict[str, np.ndarray] | None = None,
    replay: dict[str, np.ndarray] | None = None,
    actor_path: dict[str, np.ndarray] | None = None,
) -> None:
    """Write a run file atomically (see docs/hdf5.md for the layout).

    Args:
        identity: root attributes (algo, task, env_id, seed, experiment, source, ...).
        config: JSON-serialisable settings stored as JSON strings in ``/config`` attributes
            (hyperparameters, policy, vec_normalize, spec, versions, ...).
        curves: ``<table>/<column>`` -> array, as ``LearningCurves.arrays()``.
        replay: off-policy (SAC, TD3) transition stream (REPLAY_FIELDS), plus the scalar ``buffer_size``.
    """
    with h5io.write_h5(path) as f:
        f.attrs.update({"format": FORMAT, "format_version": FORMAT_VERSION})
        f.attrs.update({k: v for k, v in identity.items() if v is not None})
        group = f.create_group("config")
        for key, value in config.items():
            group.attrs[key] = json.dumps(value, sort_keys=True)
        for name, space in (("observation", observation_space), ("action", action_space)):
            h5io.create_dataset(f, f"spaces/{name}/low", space.low)
            h5io.create_dataset(f, f"spaces/{name}/high", space.high)
        for net, layout in layouts.items():
            group = f.create_group(f"layout/{net}")
            h5io.create_dataset(group, "names", np.array(layout.names, dtype=object))
            h5io.create_dataset(group, "offsets", np.array(layout.offsets, dtype=np.int64))
            group.attrs["shapes"] = json.dumps([list(s) for s in layout.shapes])
        steps = []
        for checkpoint in checkpoints:
            steps.append(checkpoint.step)
            group = f.create_group(checkpoint_group(checkpoint.step))
            group.attrs["step"] = checkpoint.step
            group.attrs.update(checkpoint.attrs)
            for net, vector in checkpoint.vectors.items():
                h5io.create_dataset(group, net, np.asarray(vector, dtype=np.float32))
            if checkpoint.vec_normalize is not None:
                _write_vec_normalize(group.create_group("vec_normalize"), checkpoint.vec_normalize)
        h5io.create_dataset(f, "checkpoints/steps", np.array(steps, dtype=np.int64))
        for key, values in (curves or {}).items():
            h5io.create_dataset(f, f"curves/{key}", values)
        if replay is not None:
            group = f.create_group("replay")
            group.attrs["buffer_size"] = int(replay["buffer_size"])
            for field in REPLAY_FIELDS:
                h5io.create_dataset(group, field, replay[field], **_COMPRESSION)
        if actor_path is not None:
            for key, values in actor_path.items():
                h5io.create_dataset(f, f"actor_path/{key}", values, **(_COMPRESSION if values.ndim > 1 else {}))


def _write_vec_normalize(group: h5py.Group, stats: dict[str, Any]) -> None:
    for key, value in stats.items():
        if isinstance(value, np.ndarray):
            h5io.create_dataset(group, key, value)
        else:
            group.attrs[key] = value


class RunFile:
    """Read access to a run file; use as a context manager.

    Every dataset is read through its checksum and the attributes are checked against the file's seal when
    it is opened, so a damaged file raises instead of giving other numbers.

    Raises:
        RunFileError: the file is missing, of another format or version, or lacks a key.
        IntegrityError (a RunFileError): the file is corrupt or truncated, or a checkpoint holds NaN or inf.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._file = h5io.open_h5(self.path, "run file", FORMAT, FORMAT_VERSION)

    def __enter__(self) -> RunFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def _get(self, key: str) -> Any:
        with h5io.reading(self.path, f"'/{key}'"):
            if key not in self._file:
                raise RunFileError(f"{self.path}: missing '/{key}'")
            return self._file[key]

    def _read(self, key: str, selection: Any = ()) -> np.ndarray:
        dataset = self._get(key)
        with h5io.reading(self.path, f"'/{key}'"):
            return dataset[selection]

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self._file.attrs)

    @property
    def algo(self) -> str:
        return str(self._file.attrs["algo"])

    def config(self, key: str, default: Any = _MISSING) -> Any:
        """A ``/config`` attribute, decoded from JSON (``default`` if absent and given)."""
        group = self._get("config")
        if key not in group.attrs:
            if default is not _MISSING:
                return default
            raise RunFileError(f"{self.path}: missing attribute '/config.{key}'")
        return json.loads(group.attrs[key])

    @property
    def steps(self) -> np.ndarray:
        """int64, shape (n_checkpoints,): checkpoint env steps, ascending."""
        return self._read("checkpoints/steps")

    def _checkpoint(self, step: int) -> h5py.Group:
        if step not in set(self.steps.tolist()):
            raise RunFileError(f"{self.path}: no checkpoint at step {step} (steps: {self.steps.tolist()})")
        return self._get(checkpoint_group(step))

    def layout(self, net: str) -> ParameterLayout:
        group = self._get(f"layout/{net}")
        names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in self._read(f"layout/{net}/names"))
        shapes = tuple(tuple(s) for s in json.loads(group.attrs["shapes"]))
        return ParameterLayout(names, shapes, tuple(int(o) for o in self._read(f"layout/{net}/offsets")))

    def vector(self, step: int, net: str) -> np.ndarray:
        """float32, shape (n_params of ``net``,): the flat parameters of ``net`` at ``step``."""
        group = self._checkpoint(step)
        vector = self._read(f"{group.name}/{net}".lstrip("/"))
        expected = self.layout(net).size
        if vector.shape != (expected,):
            raise RunFileError(f"{self.path}: '{group.name}/{net}' has shape {vector.shape}, expected ({expected},)")
        bad = np.count_nonzero(~np.isfinite(vector))
        if bad:
            raise IntegrityError(
                f"{self.path}: checkpoint step {step}, network {net}: {bad} of {vector.size} parameters are NaN or "
                "inf (a diverged training or a damaged file); this checkpoint cannot be analysed: delete the run "
                "file and rerun its export, or its training if the checkpoint itself diverged"
            )
        return vector

    def checkpoint_attrs(self, step: int) -> dict[str, Any]:
        return dict(self._checkpoint(step).attrs)

    def vec_normalize(self, step: int) -> dict[str, Any] | None:
        group = self._checkpoint(step)
        if "vec_normalize" not in group:
            return None
        stats = dict(group["vec_normalize"].attrs)
        stats.update(
            {key: self._read(f"{group.name}/vec_normalize/{key}".lstrip("/")) for key in group["vec_normalize"]}
        )
        return stats

    def space(self, name: str) -> gym.spaces.Box:
        low, high = self._read(f"spaces/{name}/low"), self._read(f"spaces/{name}/high")
        return gym.spaces.Box(low=low, high=high, dtype=low.dtype)

    def curves(self) -> dict[str, np.ndarray]:
        """``<table>/<column>`` -> float64 array (tables eval, episodes, rollouts); empty if none."""
        if "curves" not in self._file:
            return {}
        names: list[str] = []
        self._get("curves").visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        return {name: self._read(f"curves/{name}") for name in names}

    def replay(self, step: int) -> dict[str, np.ndarray]:
        """The replay buffer as SAC held it at ``step``, oldest transition first.

        That is the slice ``[max(0, end - buffer_size), end)`` of the stream, ``end`` being the
        checkpoint's ``replay_end``. Keys: REPLAY_FIELDS; first dimension n_transitions.
        """
        attrs = self.checkpoint_attrs(step)
        if "replay_end" not in attrs:
            raise RunFileError(
                f"{self.path}: checkpoint {step} has no 'replay_end' (not an off-policy run with a stream)"
            )
        end = int(attrs["replay_end"])
        group = self._get("replay")
        start = max(0, end - int(group.attrs["buffer_size"]))
        if group["rewards"].shape[0] < end:
            raise RunFileError(
                f"{self.path}: '/replay' holds {group['rewards'].shape[0]} transitions, step {step} needs {end}"
            )
        return {field: self._read(f"replay/{field}", np.s_[start:end]) for field in REPLAY_FIELDS}


def build_policy(run: RunFile, step: int) -> BasePolicy:
    """A freshly built SB3 policy (CPU) carrying the checkpoint's actor, critic and target-critic vectors."""
    policy = new_policy(
        run.algo, run.space("observation"), run.space("action"), run.config("hyperparameters"), run.config("policy")
    )
    for net, named in split_parameters(policy, run.algo).items():
        assign(named, run.vector(step, net), run.layout(net))
    policy.set_training_mode(False)
    return policy


__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "NETS",
    "CheckpointData",
    "IntegrityError",
    "RunFile",
    "RunFileError",
    "build_policy",
    "write_run_file",
]
