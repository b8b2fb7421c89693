"""The analysis samples of one checkpoint: a precise set and mini-batches (docs/reference.md §4).

    python -m pgsubspaces.analysis.data --run RUN.h5 --step STEP --out DATA.h5 [--analysis '{"ppo_samples": N}']

PPO: the precise set is N fresh on-policy samples of the checkpoint's stochastic policy, collected with
SB3's own ``collect_rollouts`` (truncations bootstrapped, the last partial episode bootstrapped with V, GAE
with the agent's gamma and lambda) under the checkpoint's frozen VecNormalize statistics (step 0: fresh
statistics that adapt, as the original). The mini-batch set is one more rollout of the agent's n_steps,
split SB3-style into its batch size; ``variant="original"`` computes its GAE with SB3's defaults
(lambda 1, gamma 0.99) as the original's buffer did (docs/reference.md §12 item 6).

SAC and TD3 (off-policy): the precise set is the replay buffer at the checkpoint (a slice of the run file's
stream; at step 0, where it is empty, fresh transitions of the step-0 policy, random for
``learning_starts``). Mini-batches are 2,048 // batch_size uniform draws of batch_size. The noise of the
losses is drawn once and stored, so each loss is a fixed function of the parameters: SAC's
reparameterisation noise of the actor loss and of the critic target, TD3's target smoothing noise (its
actor is deterministic). TD3's exploration noise (``action_noise``) plays no part: the fresh transitions
of step 0 are the deterministic actor's after the random ``learning_starts``.

Every random choice (env seeds, actions, shuffles, draws, noise) comes from one seed per checkpoint,
``config.sample_seed(analysis seed, run seed, step)``, stored as the data file's ``seed`` attribute.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.buffers import ReplayBuffer, RolloutBuffer
from stable_baselines3.common.type_aliases import TrainFreq, TrainFrequencyUnit
from stable_baselines3.common.vec_env import VecNormalize

from pgsubspaces import h5io
from pgsubspaces.analysis.losses import check_variant
from pgsubspaces.config import OFF_POLICY, AnalysisSpec, sample_seed
from pgsubspaces.export.runfile import RunFile, RunFileError, build_policy
from pgsubspaces.train.agents import new_agent
from pgsubspaces.train.checkpoints import REPLAY_FIELDS
from pgsubspaces.train.envs import make_vec_env

log = logging.getLogger("pgsubspaces.analysis.data")

FORMAT = "pgsubspaces-data"
FORMAT_VERSION = h5io.FORMATS[FORMAT]  # 2: checksummed (h5io)
PPO_FIELDS = ("observations", "actions", "old_log_prob", "advantages", "returns", "old_values")
SAC_MINIBATCH_SAMPLES = 2048  # the original's mini-batch Hessian size for SAC (matches default PPO's n_steps)
NOISE_FIELDS = {"sac": ("actor_noise", "target_noise"), "td3": ("target_noise",)}  # standard normal, (n, act_dim)


def _agent_at(run: RunFile, step: int, venv, seed: int):
    """An SB3 agent on ``venv`` carrying the checkpoint's parameters."""
    # the analysis brings its own buffers, and explores (step 0 only) with random actions, not action noise
    hyper = {k: v for k, v in run.config("hyperparameters").items() if k not in ("buffer_size", "action_noise")}
    if run.algo in OFF_POLICY:
        hyper["buffer_size"] = 1
    agent = new_agent(run.algo, venv, hyper, run.config("policy"), seed=seed, device="cpu")
    agent.policy.load_state_dict(build_policy(run, step).state_dict())
    return agent


def _analysis_env(run: RunFile, step: int):
    """The training env as the checkpoint saw it: VecNormalize statistics frozen (reward scaling kept)."""
    settings = run.config("vec_normalize")
    if "env_id" not in run.attrs:
        raise RunFileError(f"{run.path}: no 'env_id' attribute; export zips with --env-id to analyse them")
    venv = make_vec_env(str(run.attrs["env_id"]), run.config("spec", {}).get("env_kwargs"))
    if settings is None:
        return venv
    normalizer = VecNormalize(venv, **settings)
    if step > 0:
        stats = run.vec_normalize(step)
        if stats is None:
            raise RunFileError(f"{run.path}: checkpoint {step} has no VecNormalize statistics")
        normalizer.obs_rms.mean, normalizer.obs_rms.var = stats["obs_mean"], stats["obs_var"]
        normalizer.obs_rms.count = stats["obs_count"]
        normalizer.ret_rms.mean, normalizer.ret_rms.var = stats["ret_mean"], stats["ret_var"]
        normalizer.ret_rms.count = stats["ret_count"]
        normalizer.training = False
    return normalizer


def _rollout(agent, venv, n: int, gamma: float, gae_lambda: float) -> dict[str, np.ndarray]:
    """n on-policy samples through SB3's ``collect_rollouts`` into a fresh RolloutBuffer."""
    buffer = RolloutBuffer(
        n, venv.observation_space, venv.action_space, device="cpu", gamma=gamma, gae_lambda=gae_lambda, n_envs=1
    )
    _, callback = agent._setup_learn(n, None)  # fresh episode, empty info buffers, num_timesteps = 0
    if not agent.collect_rollouts(venv, callback, buffer, n_rollout_steps=n):
        raise RuntimeError("collect_rollouts stopped early")
    vectors = {"observations": buffer.observations, "actions": buffer.actions}
    scalars = {
        "old_log_prob": buffer.log_probs,
        "advantages": buffer.advantages,
        "returns": buffer.returns,
        "old_values": buffer.values,
    }
    out = {key: value.reshape(n, -1).astype(np.float32) for key, value in vectors.items()}
    out.update({key: value.reshape(n).astype(np.float32) for key, value in scalars.items()})
    return out


def ppo_data(run: RunFile, step: int, n_samples: int, variant: str, seed: int) -> dict[str, Any]:
    hyper = run.config("hyperparameters")
    venv = _analysis_env(run, step)
    venv.seed(seed)
    agent = _agent_at(run, step, venv, seed)
    precise = _rollout(agent, venv, n_samples, hyper["gamma"], hyper["gae_lambda"])
    if variant == "original":  # the original's mini-batch buffer took SB3's GAE defaults
        gamma, gae_lambda = 0.99, 1.0
    else:
        gamma, gae_lambda = hyper["gamma"], hyper["gae_lambda"]
    minibatch = _rollout(agent, venv, hyper["n_steps"], gamma, gae_lambda)
    order = np.random.default_rng(seed).permutation(hyper["n_steps"])  # SB3's RolloutBuffer.get shuffles
    minibatch = {key: value[order] for key, value in minibatch.items()}
    offsets = np.array(list(range(0, hyper["n_steps"], hyper["batch_size"])) + [hyper["n_steps"]], dtype=np.int64)
    return {"precise": precise, "minibatch": minibatch, "batch_offsets": offsets}


def _fresh_transitions(run: RunFile, step: int, n: int, seed: int) -> dict[str, np.ndarray]:
    """n transitions of the checkpoint's policy (uniformly random for ``learning_starts``), as at step 0."""
    venv = _analysis_env(run, step)
    venv.seed(seed)
    agent = _agent_at(run, step, venv, seed)
    buffer = ReplayBuffer(n, venv.observation_space, venv.action_space, device="cpu", n_envs=1)
    _, callback = agent._setup_learn(n, None)  # num_timesteps = 0: random actions for learning_starts steps
    agent.collect_rollouts(
        venv, callback, TrainFreq(n, TrainFrequencyUnit.STEP), buffer, learning_starts=agent.learning_starts
    )
    return {field: getattr(buffer, field)[:n, 0] for field in REPLAY_FIELDS}


def off_policy_data(run: RunFile, step: int, fresh_samples: int, seed: int) -> dict[str, Any]:
    """SAC's or TD3's analysis data: the replay buffer (or fresh transitions), draws and stored noise."""
    hyper = run.config("hyperparameters")
    end = int(run.checkpoint_attrs(step).get("replay_end", 0))
    if end == 0:
        transitions = _fresh_transitions(run, step, fresh_samples, seed)
        source = {"kind": "collected"}
    else:
        transitions = run.replay(step)
        source = {"kind": "replay", "replay_start": max(0, end - int(hyper["buffer_size"])), "replay_end": end}
    n = len(transitions["rewards"])
    act_dim = transitions["actions"].shape[1]
    rng = np.random.default_rng(seed)
    batch = int(hyper["batch_size"])
    indices = rng.integers(0, n, size=(SAC_MINIBATCH_SAMPLES // batch) * batch)
    fields = NOISE_FIELDS[run.algo]
    return {
        "source": source,
        "transitions": transitions if source["kind"] == "collected" else None,
        "precise": {field: rng.standard_normal((n, act_dim), dtype=np.float32) for field in fields},
        "minibatch": {
            "indices": indices.astype(np.int64),
            **{field: rng.standard_normal((len(indices), act_dim), dtype=np.float32) for field in fields},
        },
        "batch_offsets": np.arange(0, len(indices) + 1, batch, dtype=np.int64),
    }


def analysis_attrs(file_format: str, version: int, run: RunFile, step: int, variant: str) -> dict[str, Any]:
    """Root attributes every analysis file carries: its format and the checkpoint it belongs to."""
    return {
        "format": file_format,
        "format_version": version,
        "algo": run.algo,
        "step": step,
        "variant": variant,
        "run_file": str(run.path),
    }


def run_identity(run: RunFile) -> dict[str, Any]:
    """The run's identity attributes (task, seed, env id, experiment) that eigen and spectrum files repeat."""
    return {key: run.attrs[key] for key in ("task", "seed", "env_id", "experiment") if key in run.attrs}


def write_data_file(path: Path, run: RunFile, step: int, variant: str, seed: int, data: dict[str, Any]) -> None:
    with h5io.write_h5(path) as f:
        f.attrs.update({**analysis_attrs(FORMAT, FORMAT_VERSION, run, step, variant), "seed": seed})
        for group in ("precise", "minibatch"):
            for key, value in data[group].items():
                h5io.create_dataset(f, f"{group}/{key}", value)
        h5io.create_dataset(f, "minibatch/batch_offsets", data["batch_offsets"])
        if run.algo in OFF_POLICY:
            f["precise"].attrs.update(data["source"])
            if data["transitions"] is not None:
                for key, value in data["transitions"].items():
                    h5io.create_dataset(f, f"precise/transitions/{key}", value)


def make_data(run_path: Path, step: int, out: Path, spec: AnalysisSpec) -> None:
    """Write the analysis data of checkpoint ``step`` of a run file."""
    with RunFile(run_path) as run:
        check_variant(spec.variant, run.algo)
        seed = sample_seed(spec.seed, int(run.attrs.get("seed", 0)), step)
        th.manual_seed(seed)
        if run.algo == "ppo":
            data = ppo_data(run, step, spec.ppo_samples, spec.variant, seed)
        else:
            data = off_policy_data(run, step, spec.sac_fresh_samples, seed)
        write_data_file(out, run, step, spec.variant, seed, data)
    log.info("wrote analysis data of step %d to %s (seed %d)", step, out, seed)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, type=Path, help="the run file (HDF5)")
    parser.add_argument("--step", required=True, type=int)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument(
        "--analysis", help="analysis settings as JSON (config.AnalysisSpec fields); default the schema's"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    th.set_num_threads(1)
    with h5io.exit_on_file_errors():
        make_data(args.run, args.step, args.out, AnalysisSpec.from_json(args.analysis))


if __name__ == "__main__":
    main()
