"""Environments of the paper's tasks, built from a task's env id as the original did.

Observations that are not a ``Box`` (dm_control, Fetch) are flattened, and every observation is cast to
float32 so that SB3's buffers, the HDF5 export and the torch losses share one dtype.
"""

from __future__ import annotations

import functools
import sys
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize


@functools.cache
def register_environments() -> None:
    """Register dm_control (through shimmy) and gymnasium-robotics ids, and fix the Fetch joint checks."""
    import gymnasium_robotics
    import shimmy

    gym.register_envs(shimmy)
    gym.register_envs(gymnasium_robotics)


def make_env(env_id: str, env_kwargs: dict[str, Any] | None = None) -> gym.Env:
    """One environment with a flat float32 ``Box`` observation space.

    dm_control episodes end after 1,000 steps with ``truncated=True`` (shimmy maps a LAST step with
    non-zero discount to truncation), as the original's dmc2gym TimeLimit did.
    """
    if env_id not in gym.registry:
        register_environments()  # dm_control and Fetch ids; importing them costs seconds, so only when needed
    if "gymnasium_robotics" in sys.modules:
        _patch_robotics_joint_lookups()
    try:
        env = gym.make(env_id, **(env_kwargs or {}))
    except gym.error.Error as error:
        raise ValueError(f"cannot make environment {env_id!r}: {error}") from error
    if not isinstance(env.observation_space, gym.spaces.Box):
        env = gym.wrappers.FlattenObservation(env)
    if env.observation_space.dtype != np.float32:
        with warnings.catch_warnings():  # infinite float64 bounds stay infinite in float32
            warnings.filterwarnings("ignore", message=".*precision lowered.*")
            env = gym.wrappers.DtypeObservation(env, np.float32)
    return env


def make_vec_env(
    env_id: str,
    env_kwargs: dict[str, Any] | None = None,
    vec_normalize: dict[str, Any] | None = None,
    *,
    training: bool = True,
) -> VecEnv:
    """A single-env ``DummyVecEnv`` with ``Monitor`` (unnormalised returns), VecNormalize if asked.

    Args:
        vec_normalize: VecNormalize keyword arguments, or None for no normalisation.
        training: False for evaluation: statistics frozen and rewards not normalised.
    """
    venv: VecEnv = DummyVecEnv([functools.partial(_monitored, env_id, env_kwargs)])
    if vec_normalize is not None:
        settings = dict(vec_normalize)
        if not training:
            settings["norm_reward"] = False
        venv = VecNormalize(venv, training=training, **settings)
    return venv


def _monitored(env_id: str, env_kwargs: dict[str, Any] | None) -> Monitor:
    return Monitor(make_env(env_id, env_kwargs))


def _patch_robotics_joint_lookups() -> None:
    """Replace gymnasium-robotics' joint qpos/qvel accessors by ones that compare joint types as ints.

    gymnasium-robotics 1.4.2 asserts ``joint_type in (mjJNT_HINGE, mjJNT_SLIDE)`` with a numpy int32 that
    the pybind11 enum refuses to compare, so every Fetch reset fails. Fetch envs call these through the
    module (``self._utils``), so replacing the module attributes is enough; site-packages stay untouched.
    """
    import mujoco
    from gymnasium_robotics.utils import mujoco_utils

    joint = mujoco.mjtJoint
    qpos_dims = {
        int(joint.mjJNT_FREE): 7,
        int(joint.mjJNT_BALL): 4,
        int(joint.mjJNT_SLIDE): 1,
        int(joint.mjJNT_HINGE): 1,
    }
    qvel_dims = {
        int(joint.mjJNT_FREE): 6,
        int(joint.mjJNT_BALL): 3,
        int(joint.mjJNT_SLIDE): 1,
        int(joint.mjJNT_HINGE): 1,
    }

    def joint_slice(model, name: str, addresses, dims: dict[int, int]) -> slice:
        joint_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
        if joint_id == -1:
            raise KeyError(f"joint {name!r} is not part of the model")
        start = int(addresses[joint_id])
        return slice(start, start + dims[int(model.jnt_type[joint_id])])

    def get_joint_qpos(model, data, name):
        return data.qpos[joint_slice(model, name, model.jnt_qposadr, qpos_dims)].copy()

    def get_joint_qvel(model, data, name):
        return data.qvel[joint_slice(model, name, model.jnt_dofadr, qvel_dims)].copy()

    def set_joint_qpos(model, data, name, value):
        data.qpos[joint_slice(model, name, model.jnt_qposadr, qpos_dims)] = np.asarray(value)

    def set_joint_qvel(model, data, name, value):
        data.qvel[joint_slice(model, name, model.jnt_dofadr, qvel_dims)] = np.asarray(value)

    mujoco_utils.get_joint_qpos = get_joint_qpos
    mujoco_utils.get_joint_qvel = get_joint_qvel
    mujoco_utils.set_joint_qpos = set_joint_qpos
    mujoco_utils.set_joint_qvel = set_joint_qvel
