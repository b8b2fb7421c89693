"""Export checkpoints into the HDF5 run file (docs/hdf5.md).

    python -m pgsubspaces.export run --run-dir DIR --out RUN.h5
    python -m pgsubspaces.export model A.zip [B.zip ...] --out RUN.h5 [--vecnormalize A.pkl ...]
        [--replay-buffer BUFFER.pkl] (--task NAME | --env-id ID | both) [--seed N]

The second form takes stable-baselines3 PPO/SAC model zips trained anywhere, so their checkpoints can be
analysed like the workflow's own.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.sac.policies import SACPolicy

from pgsubspaces.agents import ACTIVATIONS
from pgsubspaces.checkpoints import REPLAY_FIELDS, checkpoint_dir, completed_steps, read_chunks, read_state
from pgsubspaces.config import RunSpec
from pgsubspaces.curves import LearningCurves
from pgsubspaces.parameters import ParameterLayout, flatten, layout_of, split_parameters
from pgsubspaces.runfile import CheckpointData, write_run_file
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
}
ZIP_POLICY_KEYS = ("net_arch", "activation_fn", "ortho_init", "log_std_init", "n_critics")


class ExportError(ValueError):
    """Checkpoints cannot be exported; the message names the file or folder."""


class ZipCheckpoint:
    """One SB3 model zip, read without building the algorithm (no env, no replay buffer allocation)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            data, params, variables = load_from_zip_file(self.path, device="cpu", print_system_info=False)
        except Exception as error:
            raise ExportError(f"{self.path}: not a readable stable-baselines3 model zip ({error})") from None
        self.data, self.variables = data, variables or {}
        policy_class = data["policy_class"]
        if issubclass(policy_class, SACPolicy):
            self.algo = "sac"
        elif "clip_range" in data:
            self.algo = "ppo"
        else:
            raise ExportError(f"{self.path}: {policy_class.__name__} of an unsupported algorithm; expected PPO or SAC")
        kwargs = {"use_sde": data.get("use_sde", False), **data.get("policy_kwargs", {})}  # SAC keeps use_sde in both
        self.policy = policy_class(data["observation_space"], data["action_space"], lambda _: 0.0, **kwargs)
        self.policy.load_state_dict(params["policy"])
        self.blocks = split_parameters(self.policy, self.algo)

    @property
    def step(self) -> int:
        return int(self.data["num_timesteps"])

    def layouts(self) -> dict[str, ParameterLayout]:
        return {net: layout_of(named) for net, named in self.blocks.items()}

    def checkpoint(
        self, vec_normalize: dict[str, Any] | None, extra_attrs: dict[str, Any] | None = None
    ) -> CheckpointData:
        attrs: dict[str, Any] = {"n_updates": int(self.data.get("_n_updates", 0))}
        if self.algo == "sac":
            log_ent_coef = self.variables.get("log_ent_coef")
            if log_ent_coef is not None:
                attrs["log_ent_coef"] = float(log_ent_coef.detach().reshape(-1)[0])
                attrs["ent_coef"] = float(np.exp(attrs["log_ent_coef"]))
            else:
                attrs["ent_coef"] = float(self.variables["ent_coef_tensor"].reshape(-1)[0])
            attrs["target_entropy"] = float(self.data.get("target_entropy", np.nan))
        attrs.update(extra_attrs or {})
        vectors = {net: flatten(named) for net, named in self.blocks.items()}
        return CheckpointData(self.step, vectors, attrs, vec_normalize)

    def hyperparameters(self) -> dict[str, Any]:
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

    def policy_config(self) -> dict[str, Any]:
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


def _unpickle(path: Path, what: str) -> Any:
    try:
        with open(path, "rb") as stream:
            return pickle.load(stream)
    except Exception as error:
        raise ExportError(f"{path}: not a readable {what} pickle ({error})") from None


def vec_normalize_stats(path: Path) -> dict[str, Any]:
    """Running statistics and settings of a pickled VecNormalize (Box observations)."""
    normalizer = _unpickle(path, "VecNormalize")
    return {
        "obs_mean": np.asarray(normalizer.obs_rms.mean, dtype=np.float64),
        "obs_var": np.asarray(normalizer.obs_rms.var, dtype=np.float64),
        "obs_count": float(normalizer.obs_rms.count),
        "ret_mean": float(normalizer.ret_rms.mean),
        "ret_var": float(normalizer.ret_rms.var),
        "ret_count": float(normalizer.ret_rms.count),
        **{key: float(getattr(normalizer, key)) for key in ("clip_obs", "clip_reward", "gamma", "epsilon")},
        **{key: bool(getattr(normalizer, key)) for key in ("norm_obs", "norm_reward")},
    }


def _common_layouts(zips: list[ZipCheckpoint]) -> dict[str, ParameterLayout]:
    layouts = zips[0].layouts()
    for checkpoint in zips[1:]:
        if checkpoint.layouts() != layouts or checkpoint.algo != zips[0].algo:
            raise ExportError(f"{checkpoint.path}: architecture differs from {zips[0].path}")
    return layouts


def export_run(run_dir: Path, out: Path) -> None:
    """Write the run file of a finished training run directory."""
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
    for step in steps:
        folder = checkpoint_dir(run_dir, step)
        zips.append(ZipCheckpoint(folder / "model.zip"))
        state = read_state(run_dir, step)
        vn_path = folder / "vecnormalize.pkl"
        vec_normalize = vec_normalize_stats(vn_path) if vn_path.exists() else None
        extra = {key: state[key] for key in ("replay_end", "actor_updates") if key in state}
        checkpoints.append(zips[-1].checkpoint(vec_normalize, extra))
        if zips[-1].step != step:
            raise ExportError(
                f"{folder / 'model.zip'}: num_timesteps {zips[-1].step} differs from its folder's step {step}"
            )
    replay = None
    if spec.algo == "sac":
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
            "training": summary,
            "export_versions": package_versions(),
        },
        observation_space=first.data["observation_space"],
        action_space=first.data["action_space"],
        layouts=_common_layouts(zips),
        checkpoints=checkpoints,
        curves=LearningCurves.load(run_dir / "curves.npz").arrays(),
        replay=replay,
        actor_path=actor_path,
    )
    log.info("exported %d checkpoints of %s to %s", len(steps), spec.run_id, out)


def replay_stream_from_buffer(path: Path) -> dict[str, Any]:
    """A pickled SB3 ReplayBuffer (``model.save_replay_buffer``) as a stream, oldest transition first."""
    buffer = _unpickle(path, "replay buffer")
    if buffer.n_envs != 1:
        raise ExportError(f"{path}: buffers of {buffer.n_envs} envs are not supported (one env expected)")
    n = buffer.buffer_size if buffer.full else buffer.pos
    order = (buffer.pos + np.arange(n)) % buffer.buffer_size if buffer.full else np.arange(n)
    stream = {field: getattr(buffer, field)[order, 0] for field in REPLAY_FIELDS}
    stream["dones"], stream["timeouts"] = stream["dones"].astype(bool), stream["timeouts"].astype(bool)
    stream["buffer_size"] = buffer.buffer_size
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
) -> None:
    """Write a run file from SB3 model zips (one checkpoint each, ordered by num_timesteps)."""
    if vecnormalize and len(vecnormalize) != len(zip_paths):
        raise ExportError(f"{len(vecnormalize)} VecNormalize files for {len(zip_paths)} zips; give one per zip or none")
    zips = [ZipCheckpoint(p) for p in zip_paths]
    order = np.argsort([z.step for z in zips], kind="stable")
    zips = [zips[i] for i in order]
    if len({z.step for z in zips}) != len(zips):
        raise ExportError(f"two zips share a num_timesteps: {[str(z.path) for z in zips]}")
    stats = [vec_normalize_stats(vecnormalize[i]) for i in order] if vecnormalize else [None] * len(zips)
    replay = replay_stream_from_buffer(replay_buffer) if replay_buffer else None
    if replay is not None and zips[-1].algo != "sac":
        raise ExportError(f"{replay_buffer}: a replay buffer only goes with SAC zips")
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
            "hyperparameters": last.hyperparameters(),
            "policy": last.policy_config(),
            "vec_normalize": None,
            "zips": [str(z.path) for z in zips],
            "export_versions": package_versions(),
        },
        observation_space=last.data["observation_space"],
        action_space=last.data["action_space"],
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
        )


if __name__ == "__main__":
    main()
