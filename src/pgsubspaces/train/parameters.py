"""The actor/critic split of a policy's parameters and their flat float32 vectors.

Flat vectors concatenate the blocks in ``named_parameters`` order, each flattened row-major, as the
original did. PPO: the actor is ``mlp_extractor.policy_net.*``, ``action_net.*`` and the state-independent
``log_std``; the critic is ``mlp_extractor.value_net.*`` and ``value_net.*``. SAC: the actor is
``actor.*`` (incl. the log-std head), the critic ``critic.*`` (both Q-networks), and the target critic
``critic_target.*`` is kept apart. SAC's entropy coefficient is not a policy parameter. TD3: as SAC, with
its deterministic ``actor.*`` (no log-std head) and both targets, ``actor_target.*`` and ``critic_target.*``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch as th
from torch import nn

NETS = ("actor", "critic")


class ParameterLayout(NamedTuple):
    """Where each parameter tensor sits in a flat vector.

    Attributes:
        names: parameter names, in flat-vector order.
        shapes: each tensor's shape.
        offsets: int64, shape (n_tensors + 1,); tensor i occupies ``offsets[i]:offsets[i + 1]``.
    """

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    offsets: tuple[int, ...]

    @property
    def size(self) -> int:
        return self.offsets[-1]


def _net_of(algo: str, name: str) -> str:
    if algo == "ppo":
        if name == "log_std" or "policy_net" in name or name.startswith("action_net."):
            return "actor"
        if "value_net" in name:
            return "critic"
    elif algo in ("sac", "td3"):
        for net in ("actor_target", "actor", "critic_target", "critic"):
            if name.startswith(net + "."):
                return net
    raise ValueError(f"{algo} parameter {name!r} belongs to neither actor nor critic (shared layers are not supported)")


def split_parameters(policy: nn.Module, algo: str) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """Named parameters by network: ``actor``, ``critic``; SAC ``critic_target``; TD3 also ``actor_target``."""
    blocks: dict[str, list[tuple[str, nn.Parameter]]] = {"actor": [], "critic": []}
    for name, parameter in policy.named_parameters():
        blocks.setdefault(_net_of(algo, name), []).append((name, parameter))
    return blocks


def actor_optimizer(model, algo: str) -> th.optim.Optimizer:
    """The optimizer that steps the actor: PPO's one optimizer for both networks, SAC's and TD3's actor's own."""
    return model.policy.optimizer if algo == "ppo" else model.actor.optimizer


def layout_of(named: Sequence[tuple[str, th.Tensor]]) -> ParameterLayout:
    sizes = [int(tensor.numel()) for _, tensor in named]
    return ParameterLayout(
        names=tuple(name for name, _ in named),
        shapes=tuple(tuple(tensor.shape) for _, tensor in named),
        offsets=tuple(int(x) for x in np.concatenate([[0], np.cumsum(sizes)])),
    )


def flatten(named: Sequence[tuple[str, th.Tensor]]) -> np.ndarray:
    """float32, shape (n_params,): the tensors flattened row-major and concatenated."""
    if not named:
        return np.zeros(0, dtype=np.float32)
    return th.cat([tensor.detach().reshape(-1).cpu().float() for _, tensor in named]).numpy()


def assign(named: Sequence[tuple[str, th.Tensor]], flat: np.ndarray, layout: ParameterLayout) -> None:
    """Copy a flat vector into the tensors; raise if names or sizes do not match ``layout``."""
    names = tuple(name for name, _ in named)
    if names != layout.names:
        raise ValueError(f"parameter names differ: the policy has {list(names)}, the layout {list(layout.names)}")
    if flat.shape != (layout.size,):
        raise ValueError(f"flat vector has shape {flat.shape}, expected ({layout.size},)")
    with th.no_grad():
        for (name, tensor), start, stop, shape in zip(named, layout.offsets, layout.offsets[1:], layout.shapes):
            if tuple(tensor.shape) != shape:
                raise ValueError(f"parameter {name!r} has shape {tuple(tensor.shape)}, the layout says {shape}")
            tensor.copy_(th.as_tensor(flat[start:stop]).reshape(shape))
