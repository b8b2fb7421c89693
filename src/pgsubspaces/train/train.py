"""Train one stable-baselines3 agent on the run's checkpoint grid; resume from its last checkpoint.

python -m pgsubspaces.train --spec '<RunSpec JSON>' --out RUN_DIR/training.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from pgsubspaces import atomic
from pgsubspaces.config import OFF_POLICY, RunSpec
from pgsubspaces.faults import diverge_if_injected, kill_if_injected
from pgsubspaces.train.agents import action_noise, algorithm_class, new_agent
from pgsubspaces.train.callbacks import (
    ActorPathRecorder,
    Checkpointer,
    EpisodeRecorder,
    Evaluator,
    ProgressBar,
    ReplayStream,
    evaluate,
    non_finite_parameters,
    restore_replay_buffer,
)
from pgsubspaces.train.checkpoints import checkpoint_dir, completed_steps, read_chunks, read_state, spec_conflicts
from pgsubspaces.train.curves import LearningCurves
from pgsubspaces.train.envs import make_vec_env
from pgsubspaces.train.pptb import PPTB
from pgsubspaces.versions import package_versions

log = logging.getLogger("pgsubspaces.train")


class RunDirError(RuntimeError):
    """The run directory cannot be resumed with this spec."""


@dataclasses.dataclass
class Session:
    """What a training session starts from: fresh (step 0) or a checkpoint."""

    model: BaseAlgorithm
    start: int
    curves: LearningCurves
    stream: ReplayStream | None
    actor_updates: int
    resumes: list[int]  # the steps this run's earlier sessions resumed from, and this one's (README: Resumed runs)


def check_spec(run_dir: Path, spec: RunSpec) -> None:
    """Record the spec in a new run dir, or check that an existing one was trained with the same settings."""
    problems = spec_conflicts(run_dir, spec.to_json())
    if problems:
        raise RunDirError(
            f"{run_dir} holds checkpoints trained with other settings ({'; '.join(problems)}). "
            "Delete that folder to retrain, or give the experiment another name."
        )
    atomic.write_text(run_dir / "spec.json", spec.to_json())


def _fresh(spec: RunSpec, venv: VecEnv, device: str) -> Session:
    model = new_agent(spec.algo, venv, spec.hyperparameters, spec.policy, spec.seed, device)
    stream = ReplayStream() if spec.algo in OFF_POLICY else None
    return Session(model, 0, LearningCurves(), stream, 0, [])


def _resume(spec: RunSpec, run_dir: Path, step: int, device: str) -> Session:
    folder = checkpoint_dir(run_dir, step)
    venv = make_vec_env(spec.env_id, spec.env_kwargs)
    if spec.vec_normalize is not None:
        venv = VecNormalize.load(str(folder / "vecnormalize.pkl"), venv)
    model = algorithm_class(spec.algo).load(folder / "model.zip", env=venv, device=device)
    model.set_random_seed(spec.seed + step)  # a resumed session draws fresh, reproducible randomness
    if "action_noise" in spec.hyperparameters:  # rebuilt from the spec, not from the zip's pickle
        model.action_noise = action_noise(spec.hyperparameters["action_noise"], venv.action_space)
    state = read_state(run_dir, step)
    stream = None
    if spec.algo in OFF_POLICY:
        steps = [s for s in completed_steps(run_dir) if s <= step]
        transitions = read_chunks(run_dir, "replay.npz", steps)
        if transitions:
            restore_replay_buffer(model.replay_buffer, transitions)
        stream = ReplayStream(end=state["replay_end"])
    curves = LearningCurves.load(folder / "curves.npz")
    resumes = [*state.get("resumes", []), step]
    return Session(model, step, curves, stream, state.get("actor_updates", 0), resumes)


def train(
    spec: RunSpec, run_dir: Path, out: Path, device: str = "auto", threads: int = 1, progress: bool = True
) -> dict[str, Any]:
    """Train (or resume) the run and write ``out``, a JSON summary, last.

    Returns:
        The summary: run id, total steps, checkpoint steps, the step resumed from (or None), seconds.
    """
    th.set_num_threads(threads)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    check_spec(run_dir, spec)
    for folder in (run_dir, run_dir / "checkpoints"):  # what a killed session was writing
        for path in atomic.remove_stale(folder):
            log.info("removed %s, left by a killed training", path)
    done = completed_steps(run_dir)
    started = time.time()
    if done:
        log.info("resuming %s from its checkpoint at step %d of %d", spec.run_id, done[-1], spec.total_steps)
        session = _resume(spec, run_dir, done[-1], device)
        if session.start >= spec.total_steps:  # nothing left to train (a rerun after all checkpoints were
            session.resumes.pop()  # saved): the run is its uninterrupted self, not a resumed one
    else:
        log.info("training %s from scratch for %d steps", spec.run_id, spec.total_steps)
        venv = make_vec_env(spec.env_id, spec.env_kwargs, spec.vec_normalize)
        session = _fresh(spec, venv, device)
    model = session.model
    eval_env = make_vec_env(spec.env_id, spec.env_kwargs, spec.vec_normalize, training=False)
    eval_env.seed(spec.seed + 1 + session.start)

    actor_path = None
    if spec.actor_path_every > 0:
        actor_path = ActorPathRecorder(model, spec.algo, spec.actor_path_every, session.actor_updates)
    pptb = None
    if spec.pptb is not None:  # its optimizer hook runs after the path recorder's: the path holds θ before PPTB
        pptb = PPTB(**spec.pptb)
        if session.start > 0:
            pptb.load(checkpoint_dir(run_dir, session.start) / "pptb.npz", device=model.device)
    checkpointer = Checkpointer(
        run_dir, spec.checkpoint_steps, session.curves, session.stream, actor_path, session.resumes, pptb
    )
    if not done:  # tests only: a fresh training may be killed, or diverge, after a checkpoint (faults.py)

        def after_save(step: int) -> None:
            kill_if_injected("train", spec.run_id, step)
            diverge_if_injected(spec.run_id, step, model.policy)

        checkpointer.after_save = after_save
    callbacks: list[BaseCallback] = [
        EpisodeRecorder(session.curves),
        Evaluator(session.curves, eval_env, spec.eval_interval, spec.eval_episodes, spec.total_steps),
        checkpointer,
        *([pptb] if pptb is not None else []),
    ]
    if progress:
        callbacks.append(ProgressBar(spec.total_steps, session.start))
    if session.start == 0:
        session.curves.eval.append((0, *evaluate(model, eval_env, spec.eval_episodes)))
        if actor_path is not None:
            actor_path.record()
        checkpointer.save(model)
    summary = {
        "run": spec.run_id,
        "experiment": spec.experiment,
        "total_steps": spec.total_steps,
        "status": "ok",
        "resumed_from": session.resumes[-1] if session.resumes else None,
        "resumes": session.resumes,
    }
    try:
        if session.start < spec.total_steps:
            model.learn(
                total_timesteps=spec.total_steps - session.start,
                reset_num_timesteps=False,
                callback=CallbackList(callbacks),
            )
    except Exception as error:
        # A random configuration may diverge: that is a result (recorded), not a failed job. Anything that
        # leaves the parameters finite is a bug and is raised.
        broken = non_finite_parameters(model)
        if not broken:
            raise
        message = " ".join(str(error).split())
        message = message if len(message) <= 160 else message[:157] + "..."
        reason = f"non-finite {', '.join(broken[:3])} at step {model.num_timesteps} ({type(error).__name__}: {message})"
        summary.update(status="diverged", reason=reason)
        log.warning("%s %s", spec.run_id, summary["reason"])
    else:
        # PPO (and SAC with train_freq > 1) may step past the budget to finish a rollout: keep rows <= budget.
        with atomic.atomic_path(run_dir / "curves.npz") as tmp, open(tmp, "wb") as stream:
            session.curves.up_to(spec.total_steps).save(stream)
    if pptb is not None:  # counted over every session: a resumed run reports its whole training
        changes = [row["relative_change"] for row in pptb.history]
        summary["pptb"] = {
            "settings": pptb.settings.as_dict(),
            "actor_updates": pptb.updates,
            "steps": pptb.updates // pptb.settings.t_p,
            "session_steps": len(changes),
            "session_seconds": round(sum(row["seconds"] for row in pptb.history), 3),
            "median_relative_change": float(np.median(changes)) if changes else None,
        }
    summary.update(
        checkpoints=completed_steps(run_dir),
        seconds=round(time.time() - started, 1),
        versions=package_versions(),
    )
    missing = sorted(set(spec.checkpoint_steps) - set(summary["checkpoints"]))
    if missing and summary["status"] == "ok":
        raise RuntimeError(f"{run_dir}: training ended without checkpoints at steps {missing}")
    atomic.write_text(out, json.dumps(summary, indent=1))
    log.info("finished %s (%s) in %.0f s", spec.run_id, summary["status"], summary["seconds"])
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", required=True, help="the run's RunSpec as JSON (or @file)")
    parser.add_argument("--run-dir", type=Path, help="checkpoint folder (default: the folder of --out)")
    parser.add_argument("--out", required=True, type=Path, help="summary JSON, written last")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (one is fastest for these nets)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    text = Path(args.spec[1:]).read_text() if args.spec.startswith("@") else args.spec
    train(
        RunSpec.from_json(text),
        args.run_dir or args.out.parent,
        args.out,
        args.device,
        args.threads,
        not args.no_progress,
    )


if __name__ == "__main__":
    main()
