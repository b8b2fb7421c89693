"""The run file: one HDF5 file per training run, the interface between training and analysis.

Format ``pgsubspaces-run``, version 1; every group, dataset and attribute is listed in docs/hdf5.md.
``write_run_file`` writes it atomically; ``RunFile`` reads it and names the file in every error;
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

from pgsubspaces.agents import new_policy
from pgsubspaces.atomic import atomic_path
from pgsubspaces.checkpoints import REPLAY_FIELDS
from pgsubspaces.parameters import NETS, ParameterLayout, assign, split_parameters

FORMAT = "pgsubspaces-run"
FORMAT_VERSION = 1
_MISSING = object()
_COMPRESSION = {"compression": "gzip", "compression_opts": 4, "shuffle": True}


class RunFileError(ValueError):
    """A run file is missing, unreadable, of another format, or lacks a key; the message names the file."""


@dataclasses.dataclass(frozen=True)
class CheckpointData:
    """One checkpoint of a run.

    Attributes:
        step: env steps taken when the checkpoint was saved.
        vectors: ``actor``, ``critic`` and (SAC) ``critic_target`` flat float32 vectors.
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
        replay: SAC transition stream (REPLAY_FIELDS), plus the scalar ``buffer_size``.
    """
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update({"format": FORMAT, "format_version": FORMAT_VERSION})
        f.attrs.update({k: v for k, v in identity.items() if v is not None})
        group = f.create_group("config")
        for key, value in config.items():
            group.attrs[key] = json.dumps(value, sort_keys=True)
        for name, space in (("observation", observation_space), ("action", action_space)):
            f.create_dataset(f"spaces/{name}/low", data=space.low)
            f.create_dataset(f"spaces/{name}/high", data=space.high)
        for net, layout in layouts.items():
            group = f.create_group(f"layout/{net}")
            group.create_dataset("names", data=np.array(layout.names, dtype=h5py.string_dtype()))
            group.create_dataset("offsets", data=np.array(layout.offsets, dtype=np.int64))
            group.attrs["shapes"] = json.dumps([list(s) for s in layout.shapes])
        steps = []
        for checkpoint in checkpoints:
            steps.append(checkpoint.step)
            group = f.create_group(checkpoint_group(checkpoint.step))
            group.attrs["step"] = checkpoint.step
            group.attrs.update(checkpoint.attrs)
            for net, vector in checkpoint.vectors.items():
                group.create_dataset(net, data=np.asarray(vector, dtype=np.float32))
            if checkpoint.vec_normalize is not None:
                _write_vec_normalize(group.create_group("vec_normalize"), checkpoint.vec_normalize)
        f.create_dataset("checkpoints/steps", data=np.array(steps, dtype=np.int64))
        for key, values in (curves or {}).items():
            f.create_dataset(f"curves/{key}", data=values)
        if replay is not None:
            group = f.create_group("replay")
            group.attrs["buffer_size"] = int(replay["buffer_size"])
            for field in REPLAY_FIELDS:
                group.create_dataset(field, data=replay[field], chunks=True, **_COMPRESSION)
        if actor_path is not None:
            for key, values in actor_path.items():
                f.create_dataset(f"actor_path/{key}", data=values, **(_COMPRESSION if values.ndim > 1 else {}))


def _write_vec_normalize(group: h5py.Group, stats: dict[str, Any]) -> None:
    for key, value in stats.items():
        if isinstance(value, np.ndarray):
            group.create_dataset(key, data=value)
        else:
            group.attrs[key] = value


class RunFile:
    """Read access to a run file; use as a context manager.

    Raises:
        RunFileError: the file is missing, corrupt or truncated, of another format or version.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise RunFileError(f"{self.path}: no such run file")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as error:
            raise RunFileError(
                f"{self.path}: not a readable HDF5 file, corrupt or truncated ({error}); delete it and rerun the export"
            ) from None
        found, version = self._file.attrs.get("format"), self._file.attrs.get("format_version")
        if found != FORMAT:
            self.close()
            raise RunFileError(f"{self.path}: attribute 'format' is {found!r}, expected {FORMAT!r}")
        if version != FORMAT_VERSION:
            self.close()
            raise RunFileError(f"{self.path}: format_version {version}, this code reads {FORMAT_VERSION}")

    def __enter__(self) -> RunFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def _get(self, key: str) -> Any:
        try:
            return self._file[key]
        except KeyError:
            raise RunFileError(f"{self.path}: missing '/{key}'") from None
        except OSError as error:  # a truncated dataset surfaces only when read
            raise RunFileError(f"{self.path}: cannot read '/{key}' ({error}); the file is corrupt") from None

    def _read(self, key: str) -> np.ndarray:
        try:
            return self._get(key)[()]
        except OSError as error:
            raise RunFileError(f"{self.path}: cannot read '/{key}' ({error}); the file is corrupt") from None

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
        names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in group["names"][()])
        shapes = tuple(tuple(s) for s in json.loads(group.attrs["shapes"]))
        return ParameterLayout(names, shapes, tuple(int(o) for o in group["offsets"][()]))

    def vector(self, step: int, net: str) -> np.ndarray:
        """float32, shape (n_params of ``net``,): the flat parameters of ``net`` at ``step``."""
        group = self._checkpoint(step)
        vector = self._read(f"{group.name}/{net}".lstrip("/"))
        expected = self.layout(net).size
        if vector.shape != (expected,):
            raise RunFileError(f"{self.path}: '{group.name}/{net}' has shape {vector.shape}, expected ({expected},)")
        return vector

    def checkpoint_attrs(self, step: int) -> dict[str, Any]:
        return dict(self._checkpoint(step).attrs)

    def vec_normalize(self, step: int) -> dict[str, Any] | None:
        group = self._checkpoint(step)
        if "vec_normalize" not in group:
            return None
        stats = dict(group["vec_normalize"].attrs)
        stats.update({key: value[()] for key, value in group["vec_normalize"].items()})
        return stats

    def space(self, name: str) -> gym.spaces.Box:
        low, high = self._read(f"spaces/{name}/low"), self._read(f"spaces/{name}/high")
        return gym.spaces.Box(low=low, high=high, dtype=low.dtype)

    def curves(self) -> dict[str, np.ndarray]:
        """``<table>/<column>`` -> float64 array (tables eval, episodes, rollouts); empty if none."""
        if "curves" not in self._file:
            return {}
        out: dict[str, np.ndarray] = {}
        self._get("curves").visititems(
            lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None
        )
        return out

    def replay(self, step: int) -> dict[str, np.ndarray]:
        """The replay buffer as SAC held it at ``step``, oldest transition first.

        That is the slice ``[max(0, end - buffer_size), end)`` of the stream, ``end`` being the
        checkpoint's ``replay_end``. Keys: REPLAY_FIELDS; first dimension n_transitions.
        """
        attrs = self.checkpoint_attrs(step)
        if "replay_end" not in attrs:
            raise RunFileError(f"{self.path}: checkpoint {step} has no 'replay_end' (not a SAC run with a stream)")
        end = int(attrs["replay_end"])
        group = self._get("replay")
        start = max(0, end - int(group.attrs["buffer_size"]))
        if group["rewards"].shape[0] < end:
            raise RunFileError(
                f"{self.path}: '/replay' holds {group['rewards'].shape[0]} transitions, step {step} needs {end}"
            )
        return {field: group[field][start:end] for field in REPLAY_FIELDS}


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
    "RunFile",
    "RunFileError",
    "build_policy",
    "write_run_file",
]
