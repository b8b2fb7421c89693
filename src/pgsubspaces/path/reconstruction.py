"""The policy-path paper's reconstruction experiment (its Appendix A.3, Tables 3-8; docs/path.md, "Reconstruction").

    python -m pgsubspaces.path.reconstruction --run RUN.h5 --out CSV --settings JSON
    python -m pgsubspaces.path.reconstruction merge CSV ... --out CSV

Per period of the actor path, the policies theta_i (rows of the period's uncentred path) are rebuilt from the
first r directions of the period's temporal SVD, theta~_i = u_{i,1:r} diag(s_{1:r}) V_{1:r}^T, and both are
evaluated in the environment: Delta R = return(rebuilt) - return(original). JSON holds every setting (none has a
default here): {"periods": 3, "ranks": [1, 2, 4, ...], "policies_per_period": 10, "episodes": 10, "seed": 0}.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from pgsubspaces import h5io
from pgsubspaces.atomic import atomic_path
from pgsubspaces.export.runfile import RunFile, RunFileError
from pgsubspaces.path.columns import RECONSTRUCTION
from pgsubspaces.path.metrics import Period, periods
from pgsubspaces.path.svd import TemporalSVD, temporal_svd
from pgsubspaces.tables.tables import merge
from pgsubspaces.train.agents import new_policy
from pgsubspaces.train.envs import make_vec_env
from pgsubspaces.train.parameters import ParameterLayout, assign, split_parameters

log = logging.getLogger("pgsubspaces.path.reconstruction")

PERIOD, POLICY = "period", "policy"  # the two levels of reconstruction.csv's rows


@dataclass(frozen=True)
class ReconstructionSettings:
    """The reconstruction's settings (config ``path.periods`` and ``path.reconstruction``; the schema holds the
    defaults).

    Attributes:
        periods: the path's periods, as the lens cuts them (``metrics.periods``).
        ranks: the r levels, each capped at the period's rank d = min(n, m).
        policies_per_period: evenly spaced snapshots of each period that are rebuilt and evaluated.
        episodes: deterministic evaluation episodes per policy, on the same seeds for original and rebuilt.
        seed: mixed with the run's seed and the snapshot's index into the episodes' seeds.
    """

    periods: int
    ranks: tuple[int, ...]
    policies_per_period: int
    episodes: int
    seed: int

    @classmethod
    def from_json(cls, text: str) -> ReconstructionSettings:
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"reconstruction settings are not JSON ({error}): {text!r}") from None
        if not isinstance(values, dict):
            raise ValueError(f"reconstruction settings must be a JSON object, got {text!r}")
        return cls.from_dict(values)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ReconstructionSettings:
        names = tuple(cls.__dataclass_fields__)
        missing, unknown = [n for n in names if n not in values], sorted(set(values) - set(names))
        if missing or unknown:
            raise ValueError(
                f"reconstruction settings: missing {missing}, unknown {unknown}; expected exactly {list(names)}"
            )

        def integer(key: str, value: Any, low: int) -> int:
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"reconstruction setting '{key}' holds {value!r}; expected an integer >= {low}")
            return value

        ranks = values["ranks"]
        if not isinstance(ranks, list) or not ranks:
            raise ValueError(f"reconstruction setting 'ranks' = {ranks!r}; expected a non-empty list of integers >= 1")
        ranks = tuple(integer("ranks", r, 1) for r in ranks)
        if len(set(ranks)) != len(ranks):
            raise ValueError(f"reconstruction setting 'ranks' = {list(ranks)} repeats a rank")
        return cls(
            periods=integer("periods", values["periods"], 1),
            ranks=ranks,
            policies_per_period=integer("policies_per_period", values["policies_per_period"], 1),
            episodes=integer("episodes", values["episodes"], 1),
            seed=integer("seed", values["seed"], 0),
        )


def capped_ranks(ranks: Sequence[int], d: int) -> list[int]:
    """The r levels of a period of rank d: each capped at d, ascending, duplicates dropped."""
    return sorted({min(r, d) for r in ranks})


def chosen_snapshots(span: Period, count: int) -> np.ndarray:
    """``count`` evenly spaced snapshot indices of the period, its first and last included (all if fewer)."""
    return np.unique(np.rint(np.linspace(span.first, span.last, min(count, span.last - span.first + 1))).astype(int))


def episode_seeds(settings_seed: int, run_seed: int, snapshot: int, episodes: int) -> np.ndarray:
    """The episodes' env seeds of one snapshot, shared by its original and every rebuilt policy (common
    random numbers), different across snapshots and run seeds (numpy's SeedSequence mixes the three)."""
    return np.random.SeedSequence([settings_seed, max(run_seed, 0), snapshot]).generate_state(episodes)


def statistics_step(checkpoint_steps: Sequence[int], env_step: int, path: Path) -> int:
    """The checkpoint whose VecNormalize statistics a snapshot is evaluated with: the nearest at or before it."""
    earlier = [int(step) for step in checkpoint_steps if step <= env_step]
    if not earlier:
        raise RunFileError(f"{path}: no checkpoint at or before env step {env_step} for its VecNormalize statistics")
    return max(earlier)


def episode_returns(policy: BasePolicy, venv: VecEnv, seeds: Sequence[int]) -> np.ndarray:
    """The undiscounted, unnormalised return (the env's Monitor) of one deterministic episode per seed."""
    returns = []
    for seed in seeds:
        venv.seed(int(seed))
        obs = venv.reset()
        while True:
            action, _ = policy.predict(obs, deterministic=True)
            obs, _, dones, infos = venv.step(action)
            if dones[0]:
                returns.append(float(infos[0]["episode"]["r"]))
                break
    return np.asarray(returns, dtype=np.float64)


class Evaluator:
    """One run's policy network and env: evaluates flat actor vectors (float32 in the network)."""

    def __init__(self, run: RunFile):
        self.path, self.run = run.path, run
        if "env_id" not in run.attrs:
            raise RunFileError(f"{run.path}: no 'env_id' attribute; export zips with --env-id to evaluate them")
        self.policy = new_policy(
            run.algo, run.space("observation"), run.space("action"), run.config("hyperparameters"),
            run.config("policy"),
        )  # fmt: skip
        self.policy.set_training_mode(False)
        self.actor = split_parameters(self.policy, run.algo)["actor"]
        self.layout: ParameterLayout = run.layout("actor")
        self.normalization = run.config("vec_normalize", None)
        self.venv = make_vec_env(
            str(run.attrs["env_id"]), run.config("spec", {}).get("env_kwargs"), self.normalization, training=False
        )
        self.checkpoint_steps = run.steps.tolist()
        self._statistics_at: int | None = None

    def freeze_statistics(self, env_step: int) -> None:
        """VecNormalize (if the run has it): the observation statistics of the nearest checkpoint at or before
        ``env_step``, frozen; rewards are not normalised (the Monitor's returns are raw anyway)."""
        if self.normalization is None:
            return
        step = statistics_step(self.checkpoint_steps, env_step, self.path)
        if step == self._statistics_at:
            return
        stats = self.run.vec_normalize(step)
        if stats is None:
            raise RunFileError(f"{self.path}: checkpoint {step} has no VecNormalize statistics")
        assert isinstance(self.venv, VecNormalize)
        self.venv.obs_rms.mean, self.venv.obs_rms.var = stats["obs_mean"], stats["obs_var"]
        self.venv.obs_rms.count = stats["obs_count"]
        self.venv.training = False
        self._statistics_at = step

    def returns(self, actor_vector: np.ndarray, seeds: Sequence[int]) -> np.ndarray:
        assign(self.actor, np.asarray(actor_vector, dtype=np.float32), self.layout)
        return episode_returns(self.policy, self.venv, seeds)


class PathIndex(NamedTuple):
    """``/actor_path`` without its parameters (those are read period by period)."""

    identity: tuple[str, str, int]
    updates: np.ndarray
    env_steps: np.ndarray


def read_path_index(run: RunFile) -> PathIndex:
    """The path's snapshots; a clear error naming the file if the run has none or it does not match the actor."""
    identity = (run.algo, str(run.attrs.get("task", "")), int(run.attrs.get("seed", -1)))
    try:
        params = run._get("actor_path/params")
    except RunFileError:
        raise RunFileError(
            f"{run.path}: no '/actor_path' (train with actor_path.every_updates > 0 to record one)"
        ) from None
    updates, env_steps = run._read("actor_path/updates"), run._read("actor_path/env_steps")
    size = run.layout("actor").size
    if params.shape != (len(updates), size) or len(env_steps) != len(updates):
        raise RunFileError(
            f"{run.path}: '/actor_path/params' has shape {params.shape} with {len(updates)} updates and "
            f"{len(env_steps)} env_steps; expected ({len(updates)}, {size}) (the actor's layout)"
        )
    return PathIndex(identity, updates.astype(np.int64), env_steps.astype(np.int64))


def _period_block(run: RunFile, span: Period) -> np.ndarray:
    block = run._read("actor_path/params", np.s_[span.first : span.last + 1])
    bad = np.count_nonzero(~np.isfinite(block))
    if bad:
        raise RunFileError(f"{run.path}: '/actor_path/params' holds {bad} NaN or inf values in period {span.label}")
    return block


def _spread(values: np.ndarray) -> float:
    """Sample std (ddof = 1) over the evaluated policies; NaN for a single policy."""
    return float(np.std(values, ddof=1)) if values.size > 1 else float("nan")


def period_row(key: tuple, r: int, d: int, episodes: int, original: np.ndarray, rebuilt: np.ndarray,
               errors: np.ndarray) -> tuple:  # fmt: skip
    """The statistics over one period's policies at rank r; ``original``/``rebuilt``: per-policy mean returns."""
    delta = rebuilt - original
    return (
        *key, r, delta.size, episodes, float(original.mean()), float(delta.mean()), _spread(delta),
        float(np.abs(delta).mean()), _spread(np.abs(delta)), float(delta.max()), float(delta.min()),
        float(rebuilt.mean()), float(errors.mean()), d, PERIOD, None, None, None,
    )  # fmt: skip


def reconstruction_table(run: RunFile, settings: ReconstructionSettings) -> pd.DataFrame:
    """Every row of reconstruction.csv for one run (columns: ``columns.RECONSTRUCTION``)."""
    index = read_path_index(run)
    try:
        spans = periods(len(index.updates), settings.periods)[:-1]  # p1 .. pP; not the whole path
    except ValueError as error:
        raise RunFileError(f"{run.path}: '/actor_path': {error} (reconstruction setting 'periods')") from None
    evaluator = Evaluator(run)
    run_seed = index.identity[2]
    originals: dict[int, float] = {}  # a border snapshot belongs to two periods: evaluate its original once
    rows: list[tuple] = []
    for span in spans:
        started = time.perf_counter()
        block = _period_block(run, span)
        svd = temporal_svd(block)
        d = len(svd.s)
        ranks = capped_ranks(settings.ranks, d)
        snapshots = chosen_snapshots(span, settings.policies_per_period)
        local = snapshots - span.first
        chosen = TemporalSVD(svd.u[local], svd.s, svd.vt)  # only the evaluated rows are rebuilt
        rebuilt = [chosen.reconstruct(r) for r in ranks]
        rebuilt_returns = np.empty((len(ranks), len(snapshots)))
        errors = np.empty_like(rebuilt_returns)
        for j, (snapshot, i) in enumerate(zip(snapshots.tolist(), local.tolist())):
            seeds = episode_seeds(settings.seed, run_seed, snapshot, settings.episodes)
            evaluator.freeze_statistics(int(index.env_steps[snapshot]))
            if snapshot not in originals:
                originals[snapshot] = float(evaluator.returns(block[i], seeds).mean())
            theta = block[i].astype(np.float64)
            for k in range(len(ranks)):
                errors[k, j] = np.linalg.norm(rebuilt[k][j] - theta) / max(np.linalg.norm(theta), np.finfo(float).tiny)
                rebuilt_returns[k, j] = evaluator.returns(rebuilt[k][j], seeds).mean()
        original = np.array([originals[s] for s in snapshots.tolist()])
        key = (*index.identity, span.label)
        for k, r in enumerate(ranks):
            rows.append(period_row(key, r, d, settings.episodes, original, rebuilt_returns[k], errors[k]))
            for j, snapshot in enumerate(snapshots.tolist()):
                delta = float(rebuilt_returns[k, j] - original[j])
                rows.append(
                    (*key, r, 1, settings.episodes, float(original[j]), delta, float("nan"), abs(delta),
                     float("nan"), delta, delta, float(rebuilt_returns[k, j]), float(errors[k, j]), d, POLICY,
                     snapshot, int(index.updates[snapshot]), int(index.env_steps[snapshot]))
                )  # fmt: skip
        log.info("%s %s: %d policies x ranks %s x %d episodes in %.1f s", run.path, span.label, len(snapshots),
                 ranks, settings.episodes, time.perf_counter() - started)  # fmt: skip
    table = pd.DataFrame(rows, columns=RECONSTRUCTION)
    return table.astype({name: "Int64" for name in ("snapshot", "actor_updates", "env_step")})


def make_reconstruction(run_path: Path, out: Path, settings: ReconstructionSettings) -> None:
    with RunFile(run_path) as run:
        table = reconstruction_table(run, settings)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    if argv[:1] == ["merge"]:
        parser.add_argument("tables", nargs="+", type=Path, help="per-run reconstruction.csv files")
        parser.add_argument("--out", required=True, type=Path)
        args = parser.parse_args(argv[1:])
        missing = [str(p) for p in args.tables if not p.exists()]
        if missing:
            parser.error(f"no such table: {', '.join(missing)}")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        merge(args.tables, args.out)
        return
    parser.add_argument("--run", required=True, type=Path, help="a run file with /actor_path")
    parser.add_argument("--out", required=True, type=Path, help="the reconstruction.csv to write")
    parser.add_argument(
        "--settings", required=True, help="JSON: " + ", ".join(ReconstructionSettings.__dataclass_fields__)
    )
    args = parser.parse_args(argv)
    try:
        settings = ReconstructionSettings.from_json(args.settings)
    except ValueError as error:
        parser.error(str(error))
    with h5io.exit_on_file_errors():
        make_reconstruction(args.run, args.out, settings)


if __name__ == "__main__":
    main()
