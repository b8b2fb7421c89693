"""stable-baselines3 agents and policies built from a run's settings."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3 import PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.noise import ActionNoise, NormalActionNoise
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.sac.policies import SACPolicy
from stable_baselines3.td3.policies import TD3Policy
from torch import nn

from pgsubspaces.config import OFF_POLICY  # noqa: F401 (re-exported beside the registry)

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "sac": SAC, "td3": TD3}
POLICIES: dict[str, type[BasePolicy]] = {"ppo": ActorCriticPolicy, "sac": SACPolicy, "td3": TD3Policy}
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
}


def algorithm_class(algo: str) -> type[BaseAlgorithm]:
    try:
        return ALGORITHMS[algo]
    except KeyError:
        raise ValueError(f"unknown algorithm {algo!r}; expected one of {sorted(ALGORITHMS)}") from None


def algo_of(model: BaseAlgorithm) -> str:
    """The algorithm name of a loaded SB3 model."""
    for name, cls in ALGORITHMS.items():
        if isinstance(model, cls):
            return name
    raise ValueError(f"unsupported model class {type(model).__name__}; expected PPO, SAC or TD3")


def policy_kwargs(policy: dict[str, Any]) -> dict[str, Any]:
    """SB3 ``policy_kwargs`` from the config's JSON-friendly form (activation names become classes)."""
    kwargs = dict(policy)
    if "activation_fn" in kwargs:
        kwargs["activation_fn"] = ACTIVATIONS[kwargs["activation_fn"]]
    return kwargs


def action_noise(setting: dict[str, Any] | None, action_space: gym.spaces.Box) -> ActionNoise | None:
    """TD3's exploration noise from its config form ``{type: normal, std: s}`` (None: none)."""
    if setting is None:
        return None
    if setting["type"] != "normal":
        raise ValueError(f"action_noise type {setting['type']!r}; expected 'normal'")
    dims = action_space.shape[0]
    return NormalActionNoise(np.zeros(dims), np.full(dims, float(setting["std"])))


def new_agent(
    algo: str,
    env: VecEnv,
    hyperparameters: dict[str, Any],
    policy: dict[str, Any],
    seed: int,
    device: str = "auto",
) -> BaseAlgorithm:
    """A freshly initialised agent; ``seed`` seeds python, numpy, torch and the env (SB3's ``seed=``)."""
    hyperparameters = dict(hyperparameters)
    if "action_noise" in hyperparameters:
        hyperparameters["action_noise"] = action_noise(hyperparameters["action_noise"], env.action_space)
    return algorithm_class(algo)(
        "MlpPolicy",
        env,
        policy_kwargs=policy_kwargs(policy),
        seed=seed,
        device=device,
        verbose=0,
        **hyperparameters,
    )


def new_policy(
    algo: str,
    observation_space: gym.spaces.Box,
    action_space: gym.spaces.Box,
    hyperparameters: dict[str, Any],
    policy: dict[str, Any],
) -> BasePolicy:
    """A bare policy network of the right architecture (on CPU), without an algorithm around it."""
    kwargs = policy_kwargs(policy)
    if algo == "td3":  # TD3 has no gSDE
        kwargs.setdefault("n_critics", 2)
        return POLICIES[algo](observation_space, action_space, lambda _: 0.0, **kwargs)
    kwargs["use_sde"] = bool(hyperparameters.get("use_sde", False))
    if algo == "sac":
        kwargs.setdefault("n_critics", 2)
    return POLICIES[algo](observation_space, action_space, lambda _: 0.0, **kwargs)
