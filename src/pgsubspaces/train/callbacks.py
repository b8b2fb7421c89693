"""Training side effects as SB3 callbacks: learning curves, evaluation, checkpoints and their records.

Every callback acts on ``num_timesteps`` (env steps), not on call counts, so a resumed run keeps the grid.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv, sync_envs_normalization
from tqdm import tqdm

from pgsubspaces.train.checkpoints import REPLAY_FIELDS, checkpoint_dir, completed_steps, write_checkpoint
from pgsubspaces.train.curves import LearningCurves
from pgsubspaces.train.parameters import actor_optimizer, flatten, split_parameters
from pgsubspaces.train.pptb import PPTB


class EpisodeRecorder(BaseCallback):
    """Records every finished training episode (Monitor returns) and the mean per rollout."""

    def __init__(self, curves: LearningCurves):
        super().__init__()
        self.curves = curves
        self._rollout_start = 0

    def _on_rollout_start(self) -> None:
        self._rollout_start = len(self.curves.episodes)

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "episode" in info:
                self.curves.episodes.append((self.num_timesteps, info["episode"]["r"], info["episode"]["l"]))
        return True

    def _on_rollout_end(self) -> None:
        finished = self.curves.episodes[self._rollout_start :]
        if finished:
            mean = float(np.mean([row[1] for row in finished]))
            self.curves.rollouts.append((self.num_timesteps, mean, len(finished)))


def evaluate(model: BaseAlgorithm, eval_env: VecEnv, n_episodes: int) -> tuple[float, ...]:
    """Deterministic evaluation: (mean, std return, mean length, success rate or NaN); unnormalised."""
    train_env = model.get_env()
    if train_env is not None:
        sync_envs_normalization(train_env, eval_env)
    successes: list[float] = []

    def record_success(local_vars, _globals) -> None:
        info = local_vars["info"]
        if local_vars["done"] and "is_success" in info:
            successes.append(float(info["is_success"]))

    returns, lengths = evaluate_policy(
        model,
        eval_env,
        n_eval_episodes=n_episodes,
        deterministic=True,
        return_episode_rewards=True,
        callback=record_success,
    )
    success = float(np.mean(successes)) if successes else math.nan
    return float(np.mean(returns)), float(np.std(returns)), float(np.mean(lengths)), success


class Evaluator(BaseCallback):
    """Evaluates every ``interval`` env steps up to ``last_step``."""

    def __init__(self, curves: LearningCurves, eval_env: VecEnv, interval: int, n_episodes: int, last_step: int):
        super().__init__()
        self.curves, self.eval_env = curves, eval_env
        self.interval, self.n_episodes, self.last_step = interval, n_episodes, last_step

    def _on_step(self) -> bool:
        step = self.num_timesteps
        if step % self.interval == 0 and step <= self.last_step:
            self.curves.eval.append((step, *evaluate(self.model, self.eval_env, self.n_episodes)))
        return True


class ReplayStream:
    """The SAC transition stream: which transitions of the replay buffer are already on disk.

    The checkpoint callback runs after ``env.step`` but before SB3 stores that step's transition, so the
    transitions stored between two checkpoint calls are those of the calls in between, counted here.
    """

    def __init__(self, end: int = 0):
        self.end = end  # transitions written so far
        self.pending = 0  # transitions stored since, not yet written

    def take(self, buffer: ReplayBuffer) -> dict[str, np.ndarray]:
        """The ``pending`` newest transitions of ``buffer`` in storage order, shape (n, ...)."""
        n = self.pending
        if n > buffer.buffer_size:
            raise RuntimeError(f"{n} transitions since the last checkpoint exceed buffer_size {buffer.buffer_size}")
        index = (buffer.pos - n + np.arange(n)) % buffer.buffer_size
        chunk = {field: getattr(buffer, field)[index, 0] for field in REPLAY_FIELDS}
        chunk["dones"] = chunk["dones"].astype(bool)
        chunk["timeouts"] = chunk["timeouts"].astype(bool)
        self.end += n
        self.pending = 0
        return chunk


def restore_replay_buffer(buffer: ReplayBuffer, stream: dict[str, np.ndarray]) -> None:
    """Fill an empty buffer with the newest ``buffer_size`` transitions of the stream, oldest first."""
    n = len(stream["rewards"])
    keep = min(n, buffer.buffer_size)
    for field in REPLAY_FIELDS:
        target = getattr(buffer, field)
        target[:keep, 0] = stream[field][n - keep :].astype(target.dtype)
    buffer.pos = keep % buffer.buffer_size
    buffer.full = keep == buffer.buffer_size


class ActorPathRecorder:
    """Records the flat actor parameters every ``every`` gradient updates of the actor's optimizer.

    Implemented as an optimizer step hook, so it counts PPO mini-batch steps and SAC actor steps alike
    without touching SB3's training loops.
    """

    def __init__(self, model: BaseAlgorithm, algo: str, every: int, updates: int = 0):
        self.model, self.every, self.updates = model, every, updates
        self.actor = split_parameters(model.policy, algo)["actor"]
        optimizer = actor_optimizer(model, algo)
        self.rows: list[tuple[int, int, np.ndarray]] = []
        self._handle = optimizer.register_step_post_hook(self._after_step)

    def record(self) -> None:
        self.rows.append((self.updates, self.model.num_timesteps, flatten(self.actor)))

    def _after_step(self, _optimizer, _args, _kwargs) -> None:
        self.updates += 1
        if self.updates % self.every == 0:
            self.record()

    def take(self) -> dict[str, np.ndarray]:
        """updates (m,), env_steps (m,), params float32 (m, n_actor) recorded since the last take."""
        rows, self.rows = self.rows, []
        width = sum(p.numel() for _, p in self.actor)
        return {
            "updates": np.array([r[0] for r in rows], dtype=np.int64),
            "env_steps": np.array([r[1] for r in rows], dtype=np.int64),
            "params": np.stack([r[2] for r in rows]) if rows else np.zeros((0, width), np.float32),
        }


def non_finite_parameters(model: BaseAlgorithm) -> list[str]:
    """Names of the policy's parameters holding NaN or inf: a diverged training."""
    return [name for name, p in model.policy.named_parameters() if not th.isfinite(p).all()]


class Checkpointer(BaseCallback):
    """Saves a checkpoint folder at each step of the grid (model, VecNormalize, curves and records)."""

    def __init__(
        self,
        run_dir: Path,
        steps: tuple[int, ...],
        curves: LearningCurves,
        stream: ReplayStream | None,
        actor_path: ActorPathRecorder | None,
        resumes: list[int] = (),
        pptb: PPTB | None = None,
    ):
        super().__init__()
        self.run_dir, self.steps, self.resumes = run_dir, frozenset(steps), list(resumes)
        self.curves, self.stream, self.actor_path, self.pptb = curves, stream, actor_path, pptb
        self.after_save = lambda step: None

    def _on_step(self) -> bool:
        if self.num_timesteps in self.steps:
            self.save(self.model)
            self.after_save(self.num_timesteps)
        if self.stream is not None:
            self.stream.pending += 1  # this step's transition is stored right after the callbacks
        return True

    def save(self, model: BaseAlgorithm) -> None:
        step = model.num_timesteps
        broken = non_finite_parameters(model)
        if broken:  # never a checkpoint the analysis cannot use
            raise FloatingPointError(f"non-finite parameters at step {step}: {', '.join(broken[:3])}")
        files = {"model.zip": model.save, "curves.npz": self.curves.up_to(step).save}
        vec_normalize = model.get_vec_normalize_env()
        if vec_normalize is not None:
            files["vecnormalize.pkl"] = vec_normalize.save
        state = {"n_updates": int(model._n_updates), "resumes": self.resumes}
        if self.stream is not None:
            files["replay.npz"] = self.stream.take(model.replay_buffer)
            state["replay_end"] = self.stream.end
        if self.actor_path is not None:
            files["actor_path.npz"] = self.actor_path.take()
            state["actor_updates"] = self.actor_path.updates
        if self.pptb is not None:  # its FIFO, for a resume: kept in the newest checkpoint only (up to GBs)
            files["pptb.npz"] = self.pptb.state()
            state["pptb_updates"] = self.pptb.updates
        write_checkpoint(self.run_dir, step, files, state)
        if self.pptb is not None:
            for older in completed_steps(self.run_dir):
                if older < step:
                    (checkpoint_dir(self.run_dir, older) / "pptb.npz").unlink(missing_ok=True)


class ProgressBar(BaseCallback):
    """A tqdm bar on stderr (the job's log), updated at most every 5 seconds."""

    def __init__(self, total: int, initial: int):
        super().__init__()
        self.bar = tqdm(total=total, initial=initial, file=sys.stderr, mininterval=5, unit="step", ascii=True)

    def _on_step(self) -> bool:
        self.bar.update(self.num_timesteps - self.bar.n)
        return True

    def _on_training_end(self) -> None:
        self.bar.close()
