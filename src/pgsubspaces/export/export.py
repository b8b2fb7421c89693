"""Export checkpoints into the HDF5 run file (docs/hdf5.md).

    python -m pgsubspaces.export run --run-dir DIR --out RUN.h5
    python -m pgsubspaces.export model A.zip [B.zip ...] --out RUN.h5 [--vecnormalize A.pkl ...]
        [--replay-buffer BUFFER.pkl] (--task NAME | --env-id ID | both) [--seed N]
        [--hyperparameter KEY=JSON ...] [--spaces-from-env] [--trust]

The second form takes stable-baselines3 PPO/SAC model zips trained anywhere, so their checkpoints can be
analysed like the workflow's own. Files from elsewhere are data, not code: zips, VecNormalize and
replay-buffer pickles are read by ``sb3_files`` without unpickling anything that could run code (SB3's
own loader would). What a zip holds only as a pickle is not read: spaces come from the bounds SB3
prints beside it (or ``--spaces-from-env``), hyperparameters such as SAC's ``train_freq`` are left out
unless given with ``--hyperparameter``. ``--trust`` restores SB3's loader for files you made yourself.
The workflow's own checkpoints (``run``) go through the same safe reader.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import logging
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.sac.policies import SACPolicy
from stable_baselines3.td3.policies import TD3Policy

from pgsubspaces.config import OFF_POLICY, RunSpec
from pgsubspaces.export import sb3_files
from pgsubspaces.export.runfile import CheckpointData, write_run_file
from pgsubspaces.train.agents import ACTIVATIONS, POLICIES, policy_kwargs
from pgsubspaces.train.checkpoints import REPLAY_FIELDS, checkpoint_dir, completed_steps, read_chunks, read_state
from pgsubspaces.train.curves import LearningCurves
from pgsubspaces.train.envs import make_vec_env
from pgsubspaces.train.parameters import ParameterLayout, flatten, layout_of, split_parameters
from pgsubspaces.versions import package_versions

log = logging.getLogger("pgsubspaces.export")

# Hyperparameters read back from a foreign zip (those the losses and data collection need).
ZIP_HYPERPARAMETERS = {
    "ppo": (
        "learning_rate",
        "n_steps",
        "batch_size",
        "n_epochs",
        "gamma",
        "gae_lambda",
        "clip_range",
        "normalize_advantage",
        "ent_coef",
        "vf_coef",
        "max_grad_norm",
        "use_sde",
        "sde_sample_freq",
    ),
    "sac": (
        "learning_rate",
        "buffer_size",
        "learning_starts",
        "batch_size",
        "tau",
        "gamma",
        "train_freq",
        "gradient_steps",
        "ent_coef",
        "target_update_interval",
        "target_entropy",
        "use_sde",
        "sde_sample_freq",
    ),
    "td3": (
        "learning_rate",
        "buffer_size",
        "learning_starts",
        "batch_size",
        "tau",
        "gamma",
        "train_freq",
        "gradient_steps",
        "policy_delay",
        "target_policy_noise",
        "target_noise_clip",
    ),
}
ZIP_POLICY_KEYS = ("net_arch", "activation_fn", "ortho_init", "log_std_init", "n_critics")


class ExportError(ValueError):
    """Checkpoints cannot be exported; the message names the file or folder."""


# Hyperparameters the analysis cannot do without: a zip that holds one only as a pickle is refused unless
# the user passes it (--hyperparameter); any other unreadable one is left out with a warning.
REQUIRED_HYPERPARAMETERS = {
    "ppo": ("n_steps", "batch_size", "gamma", "gae_lambda", "clip_range", "ent_coef", "vf_coef"),
    "sac": ("batch_size", "gamma"),
    "td3": ("batch_size", "gamma", "target_policy_noise", "target_noise_clip"),
}


class ZipCheckpoint:
    """One SB3 model zip, read without building the algorithm (no env, no replay buffer allocation).

    By default the zip is read as data (``sb3_files``): nothing in it is unpickled. ``trust=True`` uses SB3's
    own loader, which unpickles the zip's ``:serialized:`` entries and so runs any code they carry.
    """

    def __init__(
        self,
        path: Path,
        *,
        trust: bool = False,
        spaces: tuple[gym.spaces.Box, gym.spaces.Box] | None = None,
        fallback_spaces: Callable[[], tuple[gym.spaces.Box, gym.spaces.Box]] | None = None,
    ):
        """``spaces``: take these (checked against the zip) instead of the printed bounds;
        ``fallback_spaces``: called for them when the printed bounds do not pin the values down."""
        self.path = Path(path)
        self.trust = trust
        if trust:
            self._load_trusted()
        else:
            self._load_safe(spaces, fallback_spaces)
        for key, space in (("observation_space", self.observation_space), ("action_space", self.action_space)):
            if not isinstance(space, gym.spaces.Box):
                raise ExportError(f"{self.path}: '{key}' is {type(space).__name__}; only continuous (Box) spaces")
        self.blocks = split_parameters(self.policy, self.algo)

    def _load_trusted(self) -> None:
        try:
            data, params, variables = load_from_zip_file(self.path, device="cpu", print_system_info=False)
        except Exception as error:
            raise ExportError(f"{self.path}: not a readable stable-baselines3 model zip ({error})") from None
        self.data, self.variables = data, variables or {}
        for name, tensor in [*params["policy"].items(), *self.variables.items()]:
            if tensor.is_floating_point() and not bool(th.isfinite(tensor).all()):
                raise ExportError(f"{self.path}: tensor '{name}' holds NaN or infinite values")
        policy_class = data.get("policy_class")
        if not isinstance(policy_class, type):
            raise ExportError(f"{self.path}: its policy_class did not unpickle to a class ({policy_class!r})")
        if issubclass(policy_class, TD3Policy):
            self.algo = "td3"
        elif issubclass(policy_class, SACPolicy):
            self.algo = "sac"
        elif "clip_range" in data:
            self.algo = "ppo"
        else:
            raise ExportError(
                f"{self.path}: {policy_class.__name__} of an unsupported algorithm; expected PPO, SAC or TD3"
            )
        self.observation_space, self.action_space = data["observation_space"], data["action_space"]
        if not isinstance(self.action_space, gym.spaces.Box):
            raise ExportError(f"{self.path}: 'action_space' is {type(self.action_space).__name__}; only Box spaces")
        kwargs = dict(data.get("policy_kwargs", {}))
        if self.algo != "td3":  # SAC keeps use_sde in both; TD3 has no gSDE
            kwargs = {"use_sde": data.get("use_sde", False), **kwargs}
        self.policy = policy_class(self.observation_space, self.action_space, lambda _: 0.0, **kwargs)
        self.policy.load_state_dict(params["policy"])
        self.n_updates = int(data.get("_n_updates", 0))
        self.target_entropy = float(data.get("target_entropy", np.nan))
        self.num_timesteps = int(data["num_timesteps"])

    def _load_safe(self, spaces, fallback_spaces) -> None:
        try:
            zipped = sb3_files.ZipData(self.path)
            self.algo = sb3_files.algorithm(zipped)
            if spaces is None:
                try:
                    spaces = tuple(sb3_files.box_space(zipped, key) for key in ("observation_space", "action_space"))
                except sb3_files.UnreadableSpaceError:
                    if fallback_spaces is None:
                        raise
                    spaces = _matching_spaces(zipped, fallback_spaces())
            else:
                spaces = _matching_spaces(zipped, spaces)
            self.observation_space, self.action_space = spaces
            self._kwargs = sb3_files.policy_kwargs(zipped)
            use_sde = zipped.plain("use_sde") if "use_sde" in zipped.data else False
            self.num_timesteps = int(zipped.plain("num_timesteps"))
            self.n_updates = int(zipped.plain("_n_updates")) if "_n_updates" in zipped.data else 0
            self.target_entropy = float(zipped.plain("target_entropy")) if "target_entropy" in zipped.data else np.nan
        except sb3_files.SB3FileError as error:
            raise ExportError(str(error)) from None
        except KeyError as error:
            raise ExportError(f"{self.path}: 'data' lacks the field {error}") from None
        except (TypeError, ValueError) as error:
            raise ExportError(f"{self.path}: a field of 'data' has an unexpected value ({error})") from None
        self.data, self.variables = zipped.data, zipped.variables
        kwargs = policy_kwargs(self._policy_kwargs_config())
        if self.algo != "td3":  # TD3 has no gSDE
            kwargs = {"use_sde": bool(use_sde), **kwargs}
        try:
            self.policy = POLICIES[self.algo](self.observation_space, self.action_space, lambda _: 0.0, **kwargs)
        except Exception as error:
            raise ExportError(
                f"{self.path}: cannot build a {self.algo.upper()} policy from its policy_kwargs ({error})"
            ) from None
        _load_state(self.path, self.policy, zipped.params, self.algo)

    @property
    def step(self) -> int:
        return self.num_timesteps

    def layouts(self) -> dict[str, ParameterLayout]:
        return {net: layout_of(named) for net, named in self.blocks.items()}

    def checkpoint(
        self, vec_normalize: dict[str, Any] | None, extra_attrs: dict[str, Any] | None = None
    ) -> CheckpointData:
        attrs: dict[str, Any] = {"n_updates": self.n_updates}
        if self.algo == "sac":
            log_ent_coef = self.variables.get("log_ent_coef")
            if log_ent_coef is not None:
                attrs["log_ent_coef"] = float(log_ent_coef.detach().reshape(-1)[0])
                attrs["ent_coef"] = float(np.exp(attrs["log_ent_coef"]))
            elif "ent_coef_tensor" in self.variables:
                attrs["ent_coef"] = float(self.variables["ent_coef_tensor"].reshape(-1)[0])
            else:
                raise ExportError(f"{self.path}: SAC zip without log_ent_coef or ent_coef_tensor in pytorch_variables")
            attrs["target_entropy"] = self.target_entropy
        attrs.update(extra_attrs or {})
        vectors = {net: flatten(named) for net, named in self.blocks.items()}
        return CheckpointData(self.step, vectors, attrs, vec_normalize)

    def hyperparameters(self, given: dict[str, Any] | None = None) -> dict[str, Any]:
        """The hyperparameters of ZIP_HYPERPARAMETERS the zip holds, schedules as their starting value;
        ``given`` (the user's) override them and stand in for those stored only as pickles."""
        given = given or {}
        out = self._trusted_hyperparameters() if self.trust else self._safe_hyperparameters(set(given))
        out.update(given)
        return out

    def _trusted_hyperparameters(self) -> dict[str, Any]:
        out = {}
        for key in ZIP_HYPERPARAMETERS[self.algo]:
            if key not in self.data:
                continue
            value = self.data[key]
            if hasattr(value, "frequency"):  # TrainFreq
                value = value.frequency
            elif callable(value):  # schedules: their value at the start of training
                value = float(value(1.0))
            out[key] = value.item() if isinstance(value, np.generic) else value
        return out

    def _safe_hyperparameters(self, given: set[str]) -> dict[str, Any]:
        out, unreadable = {}, []
        for key in ZIP_HYPERPARAMETERS[self.algo]:
            if key not in self.data:
                continue
            value = self.data[key]
            if sb3_files.is_serialized(value):
                start = sb3_files.initial_value(value)
                if start is None and key == "learning_rate":  # a callable: SB3 keeps its FloatSchedule too
                    start = sb3_files.initial_value(self.data.get("lr_schedule"))
                if start is None:
                    unreadable.append(key)
                    continue
                value = start
            out[key] = value
        missing = [key for key in unreadable if key not in given]
        required = [key for key in missing if key in REQUIRED_HYPERPARAMETERS[self.algo]]
        if required:
            raise ExportError(
                f"{self.path}: hyperparameters {required} are stored only as pickles, which are not read; pass "
                + " ".join(f"--hyperparameter {key}=VALUE" for key in required)
            )
        if missing:
            log.warning(
                "%s: hyperparameters %s are stored only as pickles and were left out of the run file "
                "(pass --hyperparameter KEY=VALUE to record them)",
                self.path,
                missing,
            )
        return out

    def policy_config(self) -> dict[str, Any]:
        if not self.trust:
            return self._policy_kwargs_config()
        kwargs = dict(self.data.get("policy_kwargs", {}))
        kwargs.pop("use_sde", None)  # a hyperparameter
        unknown = sorted(set(kwargs) - set(ZIP_POLICY_KEYS))
        if unknown:
            raise ExportError(f"{self.path}: policy_kwargs {unknown} cannot be stored in a run file")
        if "activation_fn" in kwargs:
            names = {cls: name for name, cls in ACTIVATIONS.items()}
            if kwargs["activation_fn"] not in names:
                raise ExportError(f"{self.path}: activation {kwargs['activation_fn'].__name__} is not supported")
            kwargs["activation_fn"] = names[kwargs["activation_fn"]]
        return kwargs

    def _policy_kwargs_config(self) -> dict[str, Any]:
        """The readable policy_kwargs in the run file's form (activation names as in ACTIVATIONS)."""
        kwargs = dict(self._kwargs)
        kwargs.pop("use_sde", None)  # a hyperparameter
        unknown = sorted(set(kwargs) - set(ZIP_POLICY_KEYS))
        if unknown:
            raise ExportError(f"{self.path}: policy_kwargs {unknown} cannot be stored in a run file")
        if "activation_fn" in kwargs:
            names = {f"{cls.__module__}.{cls.__qualname__}": name for name, cls in ACTIVATIONS.items()}
            if kwargs["activation_fn"] not in names:
                raise ExportError(
                    f"{self.path}: policy_kwargs 'activation_fn' {kwargs['activation_fn']} is not supported; "
                    f"expected one of {sorted(names)}"
                )
            kwargs["activation_fn"] = names[kwargs["activation_fn"]]
        return kwargs


def _matching_spaces(zipped: sb3_files.ZipData, spaces: tuple[gym.spaces.Box, gym.spaces.Box]):
    """Spaces from an env, checked against what the zip records: Box, shape, dtype and printed bounds."""
    for key, space in zip(("observation_space", "action_space"), spaces):
        value = zipped.data.get(key)
        if not sb3_files.is_serialized(value):
            raise ExportError(f"{zipped.path}: '{key}' is missing from 'data'")
        if value.get(":type:") not in sb3_files.BOX_TYPES or not isinstance(space, gym.spaces.Box):
            raise ExportError(f"{zipped.path}: '{key}' is {value.get(':type:')}; only continuous (Box) spaces")
        recorded = {
            "_shape": (list(value.get("_shape", [])), list(space.shape)),
            "dtype": (value.get("dtype"), str(space.dtype)),
            "low": (" ".join(str(value.get("low")).split()), " ".join(str(space.low).split())),
            "high": (" ".join(str(value.get("high")).split()), " ".join(str(space.high).split())),
        }
        for field, (theirs, ours) in recorded.items():
            if theirs != ours and "..." not in str(theirs):  # a summarised print cannot be compared
                raise ExportError(f"{zipped.path}: '{key}' has {field} {theirs}, the env's {ours}")
    return spaces


def _load_state(path: Path, policy: th.nn.Module, params: dict[str, th.Tensor], algo: str) -> None:
    """``load_state_dict(strict=True)`` with the differences named."""
    own = policy.state_dict()
    missing, unexpected = sorted(set(own) - set(params)), sorted(set(params) - set(own))
    shapes = [
        f"{k}: {tuple(params[k].shape)} in the zip, {tuple(own[k].shape)} in the policy"
        for k in sorted(set(own) & set(params))
        if params[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        raise ExportError(
            f"{path}: policy.pth does not match a {algo.upper()} policy built from the zip's policy_kwargs "
            f"(missing {missing}, unexpected {unexpected}, shapes {shapes})"
        )
    policy.load_state_dict(params, strict=True)


def _unpickle(path: Path, what: str) -> Any:
    """Plain ``pickle.load``: runs any code the file carries (``--trust`` only)."""
    try:
        with open(path, "rb") as stream:
            return pickle.load(stream)
    except Exception as error:
        raise ExportError(f"{path}: not a readable {what} pickle ({error})") from None


def _load_pickle(path: Path, what: str, expected: str, trust: bool) -> Any:
    if trust:
        return _unpickle(path, what)
    try:
        return sb3_files.load_pickle(path, what, expected)
    except sb3_files.SB3FileError as error:
        raise ExportError(str(error)) from None


def vec_normalize_stats(path: Path, *, trust: bool = False) -> dict[str, Any]:
    """Running statistics and settings of a pickled VecNormalize (Box observations)."""
    normalizer = _load_pickle(path, "VecNormalize", sb3_files.VEC_NORMALIZE, trust)
    try:
        stats = {
            "obs_mean": _float_array(normalizer.obs_rms.mean),
            "obs_var": _float_array(normalizer.obs_rms.var),
            "obs_count": float(normalizer.obs_rms.count),
            "ret_mean": float(normalizer.ret_rms.mean),
            "ret_var": float(normalizer.ret_rms.var),
            "ret_count": float(normalizer.ret_rms.count),
            **{key: float(getattr(normalizer, key)) for key in ("clip_obs", "clip_reward", "gamma", "epsilon")},
            **{key: bool(getattr(normalizer, key)) for key in ("norm_obs", "norm_reward")},
        }
    except (AttributeError, TypeError, ValueError) as error:
        raise ExportError(f"{path}: not the state of a VecNormalize with Box observations ({error})") from None
    return stats


def _vec_normalize_settings(stats: dict[str, Any] | None) -> dict[str, Any] | None:
    """The VecNormalize keyword arguments the analysis rebuilds the env with (None: no normalisation)."""
    if stats is None:
        return None
    return {key: stats[key] for key in ("norm_obs", "norm_reward", "clip_obs", "clip_reward", "gamma", "epsilon")}


def _float_array(value: Any) -> np.ndarray:
    if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
        raise TypeError(f"expected a float array, found {type(value).__name__}")
    return np.asarray(value, dtype=np.float64)


def _env_spaces(env_id: str, env_kwargs: dict[str, Any] | None) -> tuple[gym.spaces.Box, gym.spaces.Box]:
    try:
        venv = make_vec_env(env_id, env_kwargs)
    except Exception as error:
        raise ExportError(f"cannot make env {env_id!r} for its spaces ({type(error).__name__}: {error})") from None
    spaces = (venv.observation_space, venv.action_space)
    venv.close()
    return spaces


def _check_env_shapes(
    checkpoint: ZipCheckpoint, env_id: str, env_spaces: tuple[gym.spaces.Box, gym.spaces.Box]
) -> None:
    own = (checkpoint.observation_space, checkpoint.action_space)
    for name, mine, theirs in zip(("observation", "action"), own, env_spaces):
        if mine.shape != theirs.shape:
            raise ExportError(
                f"{checkpoint.path}: its {name} space has shape {mine.shape}, env {env_id!r} has {theirs.shape}; "
                "check --env-id / --task (config imports.<name>.task or env_id)"
            )


def _common_layouts(zips: list[ZipCheckpoint]) -> dict[str, ParameterLayout]:
    layouts = zips[0].layouts()
    for checkpoint in zips[1:]:
        if checkpoint.layouts() != layouts or checkpoint.algo != zips[0].algo:
            raise ExportError(f"{checkpoint.path}: architecture differs from {zips[0].path}")
    return layouts


def export_run(run_dir: Path, out: Path, *, trust: bool = False) -> None:
    """Write the run file of a finished training run directory (``trust``: SB3's loader and plain pickle,
    for comparison; the safe reader gives the same file)."""
    run_dir = Path(run_dir)
    for name in ("spec.json", "training.json"):
        if not (run_dir / name).exists():
            raise ExportError(f"{run_dir}: missing {name}; has training finished?")
    summary = json.loads((run_dir / "training.json").read_text())
    if summary.get("status", "ok") != "ok":
        raise ExportError(f"{run_dir}: the training did not finish ({summary.get('reason')}); nothing to export")
    if not (run_dir / "curves.npz").exists():
        raise ExportError(f"{run_dir}: missing curves.npz; has training finished?")
    spec = RunSpec.from_json((run_dir / "spec.json").read_text())
    steps = completed_steps(run_dir)
    missing = sorted(set(spec.checkpoint_steps) - set(steps))
    if missing:
        raise ExportError(f"{run_dir}: checkpoints at steps {missing} are missing")
    steps = [s for s in steps if s in set(spec.checkpoint_steps)]
    zips, checkpoints = [], []
    env_spaces = functools.cache(lambda: _env_spaces(spec.env_id, spec.env_kwargs))  # e.g. float64 bounds
    for step in steps:
        folder = checkpoint_dir(run_dir, step)
        zips.append(ZipCheckpoint(folder / "model.zip", trust=trust, fallback_spaces=env_spaces))
        state = read_state(run_dir, step)
        vn_path = folder / "vecnormalize.pkl"
        vec_normalize = vec_normalize_stats(vn_path, trust=trust) if vn_path.exists() else None
        extra = {key: state[key] for key in ("replay_end", "actor_updates") if key in state}
        checkpoints.append(zips[-1].checkpoint(vec_normalize, extra))
        if zips[-1].step != step:
            raise ExportError(
                f"{folder / 'model.zip'}: num_timesteps {zips[-1].step} differs from its folder's step {step}"
            )
    replay = None
    if spec.algo in OFF_POLICY:
        replay = read_chunks(run_dir, "replay.npz", steps)
        end = int(checkpoints[-1].attrs["replay_end"])
        if len(replay["rewards"]) != end:
            raise ExportError(f"{run_dir}: replay chunks hold {len(replay['rewards'])} transitions, expected {end}")
        replay["buffer_size"] = spec.hyperparameters["buffer_size"]
    actor_path = read_chunks(run_dir, "actor_path.npz", steps) if spec.actor_path_every else None
    first = zips[0]
    write_run_file(
        out,
        identity={
            "algo": spec.algo,
            "task": spec.task,
            "env_id": spec.env_id,
            "seed": spec.seed,
            "experiment": spec.experiment,
            "total_steps": spec.total_steps,
            "source": "pgsubspaces training run",
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        },
        config={
            "hyperparameters": spec.hyperparameters,
            "policy": spec.policy,
            "vec_normalize": spec.vec_normalize,
            "spec": json.loads(spec.to_json()),
            "pptb": spec.pptb,  # PPTB settings of a PPTB-study run (docs/pptb.md); null: plain SB3
            "training": summary,
            "export_versions": package_versions(),
        },
        observation_space=first.observation_space,
        action_space=first.action_space,
        layouts=_common_layouts(zips),
        checkpoints=checkpoints,
        curves=LearningCurves.load(run_dir / "curves.npz").arrays(),
        replay=replay,
        actor_path=actor_path,
    )
    log.info("exported %d checkpoints of %s to %s", len(steps), spec.run_id, out)


def replay_stream_from_buffer(path: Path, *, trust: bool = False) -> dict[str, Any]:
    """A pickled SB3 ReplayBuffer (``model.save_replay_buffer``) as a stream, oldest transition first."""
    buffer = _load_pickle(path, "replay buffer", sb3_files.REPLAY_BUFFER, trust)
    try:
        n_envs, size, pos, full = int(buffer.n_envs), int(buffer.buffer_size), int(buffer.pos), bool(buffer.full)
        fields = {field: getattr(buffer, field) for field in REPLAY_FIELDS}
    except (AttributeError, TypeError, ValueError) as error:
        raise ExportError(f"{path}: not the state of an SB3 ReplayBuffer ({error})") from None
    if n_envs != 1:
        raise ExportError(f"{path}: buffers of {n_envs} envs are not supported (one env expected)")
    for field, values in fields.items():
        if not isinstance(values, np.ndarray) or values.shape[:2] != (size, 1):
            raise ExportError(f"{path}: replay-buffer field '{field}' is not an array of {size} x 1 transitions")
    if not 0 <= pos <= size:
        raise ExportError(f"{path}: replay-buffer position {pos} lies outside its size {size}")
    n = size if full else pos
    order = (pos + np.arange(n)) % size if full else np.arange(n)
    stream = {field: values[order, 0] for field, values in fields.items()}
    stream["dones"], stream["timeouts"] = stream["dones"].astype(bool), stream["timeouts"].astype(bool)
    stream["buffer_size"] = size
    return stream


def export_models(
    zip_paths: list[Path],
    out: Path,
    *,
    vecnormalize: list[Path] | None = None,
    replay_buffer: Path | None = None,
    task: str | None = None,
    env_id: str | None = None,
    seed: int | None = None,
    hyperparameters: dict[str, Any] | None = None,
    spaces_from_env: bool = False,
    trust: bool = False,
) -> None:
    """Write a run file from SB3 model zips (one checkpoint each, ordered by num_timesteps).

    Args:
        hyperparameters: the user's values, over those read from the last zip (for keys a zip holds only
            as pickles, such as SAC's ``train_freq``).
        spaces_from_env: take the observation and action spaces from ``env_id``'s env instead of the
            zips' printed bounds (needed when those do not pin the values down, e.g. float64 bounds).
        trust: load with SB3's loader and plain pickle, which run code the files carry.
    """
    if vecnormalize and len(vecnormalize) != len(zip_paths):
        raise ExportError(f"{len(vecnormalize)} VecNormalize files for {len(zip_paths)} zips; give one per zip or none")
    spaces = None
    if spaces_from_env:
        if env_id is None:
            raise ExportError("--spaces-from-env needs --env-id")
        spaces = _env_spaces(env_id, None)
    # zips whose printed bounds do not pin the values down (float64, e.g. dm_control) take the env's
    fallback = functools.cache(lambda: _env_spaces(env_id, None)) if env_id is not None else None
    zips = [ZipCheckpoint(p, trust=trust, spaces=spaces, fallback_spaces=fallback) for p in zip_paths]
    order = np.argsort([z.step for z in zips], kind="stable")
    zips = [zips[i] for i in order]
    if len({z.step for z in zips}) != len(zips):
        raise ExportError(f"two zips share a num_timesteps: {[str(z.path) for z in zips]}")
    if env_id is not None:  # a wrong env id would otherwise fail only in the data job
        _check_env_shapes(zips[-1], env_id, spaces or fallback())
    stats = [vec_normalize_stats(vecnormalize[i], trust=trust) for i in order] if vecnormalize else [None] * len(zips)
    replay = replay_stream_from_buffer(replay_buffer, trust=trust) if replay_buffer else None
    if replay is not None and zips[-1].algo not in OFF_POLICY:
        raise ExportError(f"{replay_buffer}: a replay buffer only goes with SAC or TD3 zips")
    checkpoints = []
    for index, (checkpoint, vn) in enumerate(zip(zips, stats)):
        extra = {"replay_end": len(replay["rewards"])} if replay is not None and index == len(zips) - 1 else {}
        checkpoints.append(checkpoint.checkpoint(vn, extra))
    last = zips[-1]
    write_run_file(
        out,
        identity={
            "algo": last.algo,
            "task": task,
            "env_id": env_id,
            "seed": seed,
            "source": "stable-baselines3 model zip",
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        },
        config={
            "hyperparameters": last.hyperparameters(hyperparameters),
            "policy": last.policy_config(),
            "vec_normalize": _vec_normalize_settings(stats[-1]),
            "zips": [str(z.path) for z in zips],
            "export_versions": package_versions(),
        },
        observation_space=last.observation_space,
        action_space=last.action_space,
        layouts=_common_layouts(zips),
        checkpoints=checkpoints,
        replay=replay,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="a training run directory of this workflow")
    run.add_argument("--run-dir", required=True, type=Path)
    run.add_argument("--out", required=True, type=Path)
    model = commands.add_parser("model", help="stable-baselines3 PPO/SAC model zips trained elsewhere")
    model.add_argument("zips", nargs="+", type=Path)
    model.add_argument("--out", required=True, type=Path)
    model.add_argument("--vecnormalize", nargs="+", type=Path, help="one VecNormalize pickle per zip")
    model.add_argument("--replay-buffer", type=Path, help="SAC: the buffer saved with the last zip")
    model.add_argument("--task", help="a task of config/tasks.yaml (its env_id unless --env-id is given)")
    model.add_argument("--env-id", help="the gymnasium id the analysis builds the env with")
    model.add_argument("--seed", type=int)
    model.add_argument(
        "--hyperparameter",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="record a hyperparameter the zip holds only as a pickle (e.g. train_freq=1), or override one",
    )
    model.add_argument(
        "--spaces-from-env",
        action="store_true",
        help="take observation and action spaces from --env-id's env, for zips whose printed bounds are ambiguous",
    )
    model.add_argument(
        "--trust",
        action="store_true",
        help="load with stable-baselines3's own loader and plain pickle. Those unpickle the zip's ':serialized:' "
        "entries and the .pkl files, which runs any code a crafted file carries: use it only for files you "
        "created yourself. Without it nothing in the files is executed.",
    )
    args = parser.parse_args(argv)
    if args.command == "model" and args.env_id is None:  # the analysis needs an env to sample from
        if args.task is None:
            model.error("give --env-id (a gymnasium id) or --task (a task of config/tasks.yaml): the analysis needs it")
        from pgsubspaces.config import load_config

        registry = load_config()["tasks"]
        if args.task not in registry:
            model.error(
                f"--task {args.task!r} is not in config/tasks.yaml (known: {', '.join(registry)}); give --env-id"
            )
        args.env_id = registry[args.task]["env_id"]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        if args.command == "run":
            export_run(args.run_dir, args.out)
        else:
            export_models(
                args.zips,
                args.out,
                vecnormalize=args.vecnormalize,
                replay_buffer=args.replay_buffer,
                task=args.task,
                env_id=args.env_id,
                seed=args.seed,
                hyperparameters=_given_hyperparameters(args.hyperparameter),
                spaces_from_env=args.spaces_from_env,
                trust=args.trust,
            )
    except ExportError as error:
        raise SystemExit(f"export: {error}") from None


def _given_hyperparameters(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ExportError(f"--hyperparameter {item!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(text)
        except ValueError:
            out[key] = text  # a bare string such as ent_coef=auto
    return out


if __name__ == "__main__":
    main()
