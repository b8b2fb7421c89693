"""Parameter counts of the actor and critic without building a network.

The config checks at DAG time that k eigenpairs fit every analysed network (config.py), for every run of
the paper's grid; importing torch and building each policy there would cost seconds, so the counts come
from SB3's architecture rules here instead. tests/test_envs.py checks them against real SB3 policies on
every registered task (and the registry's obs_dim/action_dim against the real environments).

PPO (ActorCriticPolicy, Box actions): the actor is the ``pi`` MLP, ``action_net`` and ``log_std`` (one
per action, or with gSDE a full ``last_pi x action`` matrix); the critic the ``vf`` MLP and ``value_net``.
SAC (SACPolicy): the actor is the MLP, ``mu`` and ``log_std`` (a linear layer, or with gSDE a matrix); the
critic ``n_critics`` Q-networks on (observation, action). Feature extractors are flattenings (no weights).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def mlp_size(inputs: int, layers: Sequence[int]) -> tuple[int, int]:
    """(weights and biases, width of the last layer) of a fully connected stack."""
    size, width = 0, inputs
    for units in layers:
        size += width * units + units
        width = units
    return size, width


def parameter_counts(
    algo: str, obs_dim: int, action_dim: int, hyperparameters: Mapping[str, Any], policy: Mapping[str, Any]
) -> dict[str, int]:
    """{"actor": n, "critic": n} of an SB3 MlpPolicy with these settings (a RunSpec's)."""
    sde = bool(hyperparameters.get("use_sde", False))
    if algo == "ppo":
        arch = policy.get("net_arch", {"pi": [64, 64], "vf": [64, 64]})
        actor, last = mlp_size(obs_dim, arch["pi"])
        actor += last * action_dim + action_dim + (last * action_dim if sde else action_dim)
        critic, last = mlp_size(obs_dim, arch["vf"])
        return {"actor": actor, "critic": critic + last + 1}
    if algo == "sac":
        arch = policy.get("net_arch", [256, 256])
        actor, last = mlp_size(obs_dim, arch)
        actor += last * action_dim + action_dim + (last * action_dim if sde else last * action_dim + action_dim)
        q, last = mlp_size(obs_dim + action_dim, arch)
        return {"actor": actor, "critic": policy.get("n_critics", 2) * (q + last + 1)}
    if algo == "td3":  # a deterministic tanh head; no log-std
        arch = policy.get("net_arch", [400, 300])
        actor, last = mlp_size(obs_dim, arch)
        q, q_last = mlp_size(obs_dim + action_dim, arch)
        return {
            "actor": actor + last * action_dim + action_dim,
            "critic": policy.get("n_critics", 2) * (q + q_last + 1),
        }
    raise ValueError(f"algo {algo!r}; expected ppo, sac or td3")
