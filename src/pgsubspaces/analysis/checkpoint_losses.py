"""From a checkpoint to its losses: the analysis data file read back, its batches as tensors, and the
actor and critic losses of the checkpoint's networks on them (used by eigen, spectrum and the tests).

    batches = read_batches(run, data_path)                  # precise set, mini-batches, offsets
    loss = checkpoint_loss(run, batches.step, "actor", to_tensors(batches.precise, device, dtype), variant)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch as th

from pgsubspaces import h5io
from pgsubspaces.analysis.data import FORMAT as DATA_FORMAT
from pgsubspaces.analysis.data import FORMAT_VERSION as DATA_VERSION
from pgsubspaces.analysis.losses import FlatLoss, make_loss
from pgsubspaces.config import OFF_POLICY
from pgsubspaces.export.runfile import RunFile, RunFileError, build_policy

DTYPES = {"float32": th.float32, "float64": th.float64}
CPU_GRAPH_BUDGET_GB = 0.3  # keeps an N = 1e6 PPO actor solve under 1.5 GB on a laptop (README benchmark)


@dataclasses.dataclass
class Batches:
    """The analysis samples of one checkpoint as numpy arrays (SAC, TD3: transitions joined with their noise).

    Attributes:
        step: the checkpoint's env step.
        precise: the precise set (PPO: fresh on-policy samples; SAC, TD3: the replay buffer or fresh transitions).
        minibatch: the mini-batches, concatenated.
        offsets: mini-batch i is ``minibatch[offsets[i]:offsets[i + 1]]``.
        seed: the data file's seed (derived per checkpoint; the solvers' start vectors use it too).
    """

    step: int
    precise: dict[str, np.ndarray]
    minibatch: dict[str, np.ndarray]
    offsets: np.ndarray
    seed: int

    def minibatches(self) -> Iterator[dict[str, np.ndarray]]:
        for start, stop in zip(self.offsets, self.offsets[1:]):
            yield {key: value[start:stop] for key, value in self.minibatch.items()}


def read_batches(run: RunFile, data_path: Path) -> Batches:
    """The batches of a data file (``pgsubspaces.analysis.data``) of ``run``; a named error (RunFileError,
    IntegrityError if damaged) naming the file and dataset if it cannot be read."""
    with h5io.open_h5(data_path, "analysis data file", DATA_FORMAT, DATA_VERSION) as f:
        with h5io.reading(data_path, "the analysis data"):
            names = {
                group: [key for key in f[group] if isinstance(f[group][key], h5py.Dataset)]
                for group in ("precise", "minibatch")
            }
            source = dict(f["precise"].attrs)
            step, seed = int(f.attrs["step"]), int(f.attrs["seed"])
            has_transitions = "transitions" in f["precise"]
        precise = {key: h5io.read(f, f"precise/{key}", data_path) for key in names["precise"]}
        minibatch = {key: h5io.read(f, f"minibatch/{key}", data_path) for key in names["minibatch"]}
        transitions = None
        if has_transitions:
            transitions = {
                key: h5io.read(f, f"precise/transitions/{key}", data_path) for key in f["precise/transitions"]
            }
    offsets = minibatch.pop("batch_offsets")
    if run.algo in OFF_POLICY:
        transitions = transitions if transitions is not None else run.replay(step)
        if source.get("kind") == "replay" and len(transitions["rewards"]) != len(precise["target_noise"]):
            raise RunFileError(
                f"{data_path}: noise for {len(precise['target_noise'])} samples, replay has "
                f"{len(transitions['rewards'])}: the data belongs to another run file"
            )
        indices = minibatch.pop("indices")
        minibatch.update({key: value[indices] for key, value in transitions.items()})
        precise.update(transitions)
    return Batches(step, precise, minibatch, offsets, seed)


def to_tensors(batch: dict[str, np.ndarray], device, dtype: th.dtype) -> dict[str, th.Tensor]:
    """A batch on ``device``; floating-point arrays in ``dtype``, integer ones as they are."""
    out = {}
    for key, value in batch.items():
        tensor = th.as_tensor(value, device=device)
        out[key] = tensor.to(dtype) if tensor.is_floating_point() else tensor
    return out


def loss_settings(run: RunFile, step: int) -> dict[str, Any]:
    """The hyperparameters the losses need, with SAC's entropy coefficient at this checkpoint (TD3's losses
    need gamma, target_policy_noise and target_noise_clip, all hyperparameters)."""
    settings: dict[str, Any] = dict(run.config("hyperparameters"))
    if run.algo == "sac":
        settings["ent_coef_value"] = float(run.checkpoint_attrs(step)["ent_coef"])
    return settings


def checkpoint_loss(
    run: RunFile, step: int, net: str, batch: dict[str, th.Tensor], variant: str, device, dtype: th.dtype
) -> FlatLoss:
    """The ``net`` loss of the checkpoint at ``step`` on ``batch``, its policy on ``device`` in ``dtype``."""
    policy = build_policy(run, step).to(device=device, dtype=dtype)
    return make_loss(run.algo, net, policy, batch, loss_settings(run, step), variant)


def resolve_device(device: str) -> th.device:
    if device == "auto":
        return th.device("cuda" if th.cuda.is_available() else "cpu")
    return th.device(device)


def graph_budget_bytes(budget_gb: float | None, device: th.device) -> float:
    """Bytes of gradient graphs the Hessian operator may keep alive; ``None``: the laptop CPU value, or half
    the free memory of a GPU."""
    if budget_gb is not None:
        return budget_gb * 1e9
    if device.type == "cuda":
        free, _ = th.cuda.mem_get_info(device)
        return free / 2
    return CPU_GRAPH_BUDGET_GB * 1e9
