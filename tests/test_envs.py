"""Every registered task builds its real environment with a flat float32 Box observation."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from conftest import REPO

from pgsubspaces.config import load_config, run_specs, validate_config
from pgsubspaces.netsize import parameter_counts
from pgsubspaces.train.agents import new_policy
from pgsubspaces.train.envs import make_env, make_vec_env
from pgsubspaces.train.parameters import layout_of, split_parameters

TASKS = load_config()["tasks"]
# Observation sizes the paper's flattening gives (Fetch: achieved_goal, desired_goal, observation).
EXPECTED_OBS = {
    "FetchReach": 16,
    "FetchPush": 31,
    "FingerSpin": 9,
    "BallInCupCatch": 8,
    "Walker2d": 17,
    "Ant": 105,
    "WalkerWalk": 24,  # orientations 14, height 1, velocity 9
    "CartpoleSwingup": 5,  # position 3 (cart, cos and sin of the pole), velocity 2
    "CheetahRun": 17,  # position 8, velocity 9
}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_task_steps_with_box_observations(task):
    env = make_env(TASKS[task]["env_id"], TASKS[task].get("env_kwargs"))
    space = env.observation_space
    assert isinstance(space, gym.spaces.Box) and space.dtype == np.float32 and len(space.shape) == 1
    assert isinstance(env.action_space, gym.spaces.Box)
    # the registry's sizes, from which the config checks k against every network at DAG time
    assert (space.shape, env.action_space.shape) == ((TASKS[task]["obs_dim"],), (TASKS[task]["action_dim"],))
    check_parameter_counts(task, space, env.action_space)
    if task in EXPECTED_OBS:
        assert space.shape == (EXPECTED_OBS[task],)
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    assert obs.shape == space.shape and obs.dtype == np.float32
    for _ in range(5):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert obs.shape == space.shape and obs.dtype == np.float32 and np.isfinite(obs).all()
        assert np.isscalar(reward) or np.ndim(reward) == 0
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()


# Every registered (task, algorithm) at the paper's settings, and variants the registry lacks: gSDE for SAC,
# three critics, unequal and empty PPO nets, and the sweep's [n, n] widths.
PAPER = {
    (spec.algo, spec.task): spec
    for paper in ("paper.yaml", "paper-path.yaml")
    for spec in run_specs(validate_config(load_config(REPO / "config" / paper))).values()
}
VARIANTS = [
    ("sac", {"use_sde": True}, {"net_arch": [16, 8], "n_critics": 3}),
    ("td3", {}, {"net_arch": [16, 8], "n_critics": 3}),
    ("td3", {}, {"net_arch": [64, 64]}),
    ("ppo", {"use_sde": True}, {"net_arch": {"pi": [], "vf": [7]}}),
    ("ppo", {}, {"net_arch": {"pi": [5, 3, 2], "vf": []}}),
    ("sac", {}, {"net_arch": [128, 128]}),
]


def check_parameter_counts(task, observation_space, action_space):
    """netsize's counts equal the actor/critic split of real SB3 policies on the task's real spaces."""
    settings = [(spec.algo, spec.hyperparameters, spec.policy) for (_, t), spec in PAPER.items() if t == task]
    assert settings, f"{task} has no run in config/paper.yaml"
    for algo, hyperparameters, policy in settings + VARIANTS:
        blocks = split_parameters(new_policy(algo, observation_space, action_space, hyperparameters, policy), algo)
        real = {net: layout_of(blocks[net]).size for net in ("actor", "critic")}
        obs, act = TASKS[task]["obs_dim"], TASKS[task]["action_dim"]
        assert parameter_counts(algo, obs, act, hyperparameters, policy) == real, (algo, hyperparameters, policy)


def test_dm_control_episode_end_is_a_truncation():
    """dmc2gym ended episodes by a 1,000-step TimeLimit, which SB3 bootstraps; so must we."""
    env = make_env(TASKS["FingerSpin"]["env_id"])
    env.reset(seed=0)
    env.action_space.seed(0)
    for step in range(1, 1001):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            break
    assert (step, terminated, truncated) == (1000, False, True)


def test_fetch_resets_and_reports_success():
    """The joint-type assertion of gymnasium-robotics 1.4.2 is worked around in our code."""
    venv = make_vec_env(TASKS["FetchPush"]["env_id"])
    venv.seed(0)
    venv.reset()
    _, _, _, infos = venv.step(np.zeros((1, 4), dtype=np.float32))
    assert "is_success" in infos[0]


def test_unknown_env_id_names_it():
    with pytest.raises(ValueError, match="NoSuchEnv-v0"):
        make_env("NoSuchEnv-v0")
