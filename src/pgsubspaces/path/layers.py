"""The actor's layers, from its parameter layout (``/layout/actor``): the units the path lens reports on.

Layer i is the i-th weight-and-bias pair of the actor's MLP in layout order (input -> hidden is layer 1,
the output layer last): PPO ``policy_net.0``, ``policy_net.2``, ``action_net``; SAC ``latent_pi.0``,
``latent_pi.2``, ``mu``; TD3 ``mu.0``, ``mu.2``, ``mu.4``. Log-std parameters (PPO's state-independent
``log_std``, SAC's ``log_std`` head) are not part of the MLP chain and form the layer ``extra``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from pgsubspaces.train.parameters import ParameterLayout

EXTRA = "extra"
# a module whose last name part is one of these is a log-std parameter, not a layer of the mean's MLP
EXTRA_MODULES = ("log_std",)


class Layer(NamedTuple):
    """A group of actor parameters.

    Attributes:
        name: ``layer1``, ``layer2``, ... (MLP order) or ``extra``.
        parameters: the layout names in the group.
        index: int64, the group's positions in the flat actor vector, ascending.
    """

    name: str
    parameters: tuple[str, ...]
    index: np.ndarray


def _module(name: str) -> tuple[str, str]:
    """``"a.b.weight"`` -> (``"a.b"``, ``"weight"``); a bare name is its own module."""
    module, _, leaf = name.rpartition(".")
    return (module, leaf) if module else (name, "")


def _positions(layout: ParameterLayout, names: list[str]) -> np.ndarray:
    where = {name: i for i, name in enumerate(layout.names)}
    spans = [np.arange(layout.offsets[where[n]], layout.offsets[where[n] + 1]) for n in names]
    return np.sort(np.concatenate(spans)).astype(np.int64)


def actor_layers(layout: ParameterLayout) -> list[Layer]:
    """The MLP layers in order, then ``extra`` if the actor has log-std parameters.

    Raises:
        ValueError: naming the parameter, if a module is not a (2-D weight, 1-D bias) pair or the pairs do
            not chain (a layer's input size is not the previous layer's output size).
    """
    modules: dict[str, dict[str, int]] = {}
    extra: list[str] = []
    for i, name in enumerate(layout.names):
        module, leaf = _module(name)
        if module.rpartition(".")[2] in EXTRA_MODULES or name in EXTRA_MODULES:
            extra.append(name)
        elif leaf in ("weight", "bias"):
            modules.setdefault(module, {})[leaf] = i
        else:
            raise ValueError(f"actor parameter {name!r} is neither a layer's weight or bias nor a log-std parameter")
    layers, previous_out = [], None
    for module, parts in modules.items():
        if set(parts) != {"weight", "bias"}:
            name = layout.names[next(iter(parts.values()))]
            raise ValueError(f"actor parameter {name!r} has no matching {'bias' if 'weight' in parts else 'weight'}")
        weight, bias = layout.shapes[parts["weight"]], layout.shapes[parts["bias"]]
        if len(weight) != 2 or bias != (weight[0],):
            raise ValueError(
                f"actor parameters {module}.weight {weight} and {module}.bias {bias} are not a linear layer"
            )
        if previous_out is not None and weight[1] != previous_out:
            raise ValueError(
                f"actor parameter {module}.weight {weight} takes {weight[1]} inputs; the layer before it gives "
                f"{previous_out}"
            )
        previous_out = weight[0]
        names = [layout.names[parts["weight"]], layout.names[parts["bias"]]]
        layers.append(Layer(f"layer{len(layers) + 1}", tuple(names), _positions(layout, names)))
    if not layers:
        raise ValueError(f"the actor layout {layout.names} has no weight-and-bias pair")
    if extra:
        layers.append(Layer(EXTRA, tuple(extra), _positions(layout, extra)))
    return layers
