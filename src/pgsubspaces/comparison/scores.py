"""SCORE and AUC of the PPTB study, the paper's normalised aggregate, and rliable's interval estimates.

    python -m pgsubspaces.comparison --runs RUN.h5 ... --random TASK.json ... --entries JSON \
        --bootstrap '{"reps": 10000, "seed": 0}' --out-dir results/<experiment>/pptb

Definitions (docs/pptb.md, "The comparison"), with R_s(t) the deterministic evaluation return of seed s at
evaluation step t and T_B the evaluations at steps <= budget B:

- SCORE@B = max_{t in T_B} mean_s R_s(t); its standard error is that of the seeds at the maximising step.
- AUC@B = mean_{t in T_B} mean_s R_s(t); its standard error is that of the per-seed means over T_B.
- normalised X = (X - X_random) / (X_base - X_random) per task (random agent 0, base 1), and the paper's
  aggregate is its mean over tasks.
- rliable (beyond the paper): per seed, the same metric on that seed's curve (SCORE_s = max_t R_s(t)), normalised
  by the same two numbers, as a (seeds x tasks) matrix; interquartile mean and mean with stratified-bootstrap 95 %
  percentile intervals, for each variant and for its paired difference from the base (the same seed starts
  from the same network), and the probability of improvement P(PPTB_s > base_s').
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pgsubspaces.atomic import atomic_path
from pgsubspaces.comparison.columns import AGGREGATE_COLUMNS, CURVE_COLUMNS, SELECTED, TABLE_COLUMNS
from pgsubspaces.comparison.columns import BASE as PPTB_BASE
from pgsubspaces.config import RunSpec

log = logging.getLogger("pgsubspaces.comparison")

METRICS = ("score", "auc")


class ComparisonError(ValueError):
    """The study's runs do not form the pairs the config lists; the message names the file or run."""


# -- reading ----------------------------------------------------------------------------------------------


def read_curves(paths: Iterable[Path]) -> dict[tuple[str, str, str, int], dict[str, Any]]:
    """(algo, task, variant, seed) -> {"steps", "returns", "pptb_steps", "path"} of each exported run."""
    from pgsubspaces.export.runfile import RunFile

    runs = {}
    for path in paths:
        with RunFile(path) as run:
            spec = RunSpec.from_json(json.dumps(run.config("spec")))
            curves = run.curves()
            training = run.config("training", {})
        if spec.study != "pptb" or spec.configuration is None:
            raise ComparisonError(f"{path}: run {spec.run_id} is not a PPTB-study run")
        key = (spec.algo, spec.task, spec.configuration, spec.seed)
        if key in runs:
            raise ComparisonError(f"{path}: run {spec.run_id} also in {runs[key]['path']}")
        if "eval/step" not in curves or len(curves["eval/step"]) == 0:
            raise ComparisonError(f"{path}: no evaluation curve ('/curves/eval/step')")
        runs[key] = {
            "steps": np.asarray(curves["eval/step"], dtype=np.int64),
            "returns": np.asarray(curves["eval/mean_return"], dtype=np.float64),
            "pptb_steps": (training.get("pptb") or {}).get("steps", 0),
            "path": str(path),
        }
    return runs


def read_random(paths: Iterable[Path]) -> dict[str, dict[str, Any]]:
    out = {}
    for path in paths:
        result = json.loads(Path(path).read_text())
        out[result["task"]] = result
    return out


def _matrix(runs: Mapping, algo: str, task: str, variant: str, seeds: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(steps, returns (seeds x evaluations)) of one (algo, task, variant); the seeds must share their steps."""
    missing = [seed for seed in seeds if (algo, task, variant, seed) not in runs]
    if missing:
        raise ComparisonError(f"no run file of pptb/{algo}/{task}/{variant} for seeds {missing}")
    first = runs[algo, task, variant, seeds[0]]
    rows = []
    for seed in seeds:
        run = runs[algo, task, variant, seed]
        if not np.array_equal(run["steps"], first["steps"]):
            raise ComparisonError(
                f"{run['path']}: evaluation steps differ from those of {first['path']}; the seeds are not comparable"
            )
        rows.append(run["returns"])
    return first["steps"], np.stack(rows)


# -- the metrics ----------------------------------------------------------------------------------------------


def seed_metric(returns: np.ndarray, metric: str) -> np.ndarray:
    """Per seed (rows of ``returns``): the maximum (score) or mean (auc) over its evaluations."""
    return returns.max(axis=1) if metric == "score" else returns.mean(axis=1)


def paper_metric(returns: np.ndarray, metric: str) -> tuple[float, float]:
    """(value, standard error) of SCORE or AUC of the seed-averaged curve (module docstring)."""
    if metric == "score":
        mean = returns.mean(axis=0)
        column = returns[:, int(np.argmax(mean))]
        return float(mean.max()), _stderr(column)
    per_seed = returns.mean(axis=1)
    return float(per_seed.mean()), _stderr(per_seed)


def _stderr(values: np.ndarray) -> float:
    return float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan


def normalised(value, random: float, base: float):
    """Random agent 0, base 1 (NaN if the base does no better than the random agent on this metric)."""
    span = base - random
    return (np.asarray(value, dtype=np.float64) - random) / span if span > 0 else np.full(np.shape(value), np.nan)


# -- rliable --------------------------------------------------------------------------------------------------


def interval_estimates(scores: np.ndarray | list[np.ndarray], func: Callable, reps: int, seed: int):
    """rliable's stratified bootstrap (95 % percentile intervals) of ``func`` on ``scores`` (seeds x tasks).

    rliable draws its resamples from numpy's global generator (its ``random_state`` argument does not reach
    ``np.random.choice``), so the generator is seeded here and restored after: the same seed, the same intervals.
    """
    from rliable import library

    state = np.random.get_state()
    np.random.seed(seed)
    try:
        points, intervals = library.get_interval_estimates({"x": scores}, func, reps=reps)
    finally:
        np.random.set_state(state)
    return np.atleast_1d(points["x"]), np.atleast_2d(np.asarray(intervals["x"]).reshape(2, -1))


def _iqm_and_mean(scores: np.ndarray) -> np.ndarray:
    from rliable import metrics

    return np.array([metrics.aggregate_iqm(scores), metrics.aggregate_mean(scores)])


def _improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    from rliable import metrics

    return np.array([metrics.probability_of_improvement(x, y)])


# -- the tables -----------------------------------------------------------------------------------------------


def comparison_tables(
    runs: Mapping, random: Mapping[str, Mapping], entries: Sequence[Mapping], reps: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(per-task table, aggregates, learning curves) of the study (module docstring)."""
    rows, curves, per_seed = [], [], {}
    for entry in entries:
        algo, task, seeds = entry["algo"], entry["task"], entry["seeds"]
        if task not in random:
            raise ComparisonError(f"no random-agent result for task {task}")
        rand = random[task]
        steps, base = _matrix(runs, algo, task, PPTB_BASE, seeds)
        for variant in (PPTB_BASE, *entry["variants"]):
            returns = base if variant == PPTB_BASE else _matrix(runs, algo, task, variant, seeds)[1]
            curves += _curve_rows(algo, task, variant, seeds, steps, returns, reps, seed)
            pptb_steps = int(np.mean([runs[algo, task, variant, s]["pptb_steps"] for s in seeds]))
            for budget in entry["budgets"]:
                within = steps <= budget
                for metric in METRICS:
                    value, stderr = paper_metric(returns[:, within], metric)
                    base_value, _ = paper_metric(base[:, within], metric)
                    difference = seed_metric(returns[:, within], metric) - seed_metric(base[:, within], metric)
                    rows.append({
                        "algo": algo, "task": task, "variant": variant, "budget": budget, "metric": metric,
                        "seeds": len(seeds), "evaluations": int(within.sum()), "value": value, "stderr": stderr,
                        "random": rand["mean_return"], "random_stderr": rand["stderr"], "base": base_value,
                        "normalised": float(normalised(value, rand["mean_return"], base_value)),
                        "difference": float(difference.mean()), "difference_stderr": _stderr(difference),
                        "pptb_steps": pptb_steps,
                    })  # fmt: skip
                    base_seeds = seed_metric(base[:, within], metric)
                    zero, one = rand["mean_return"], float(base_seeds.mean())
                    per_seed[algo, budget, metric, task, variant] = (
                        normalised(seed_metric(returns[:, within], metric), zero, one),
                        normalised(base_seeds, zero, one),
                    )
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    aggregate = pd.DataFrame(_aggregate_rows(table, per_seed, reps, seed), columns=list(AGGREGATE_COLUMNS))
    return table, aggregate, pd.DataFrame(curves, columns=list(CURVE_COLUMNS))


def _curve_rows(algo, task, variant, seeds, steps, returns, reps, seed) -> list[tuple]:
    """The seed-averaged curve with a bootstrap 95 % interval of the mean at each evaluation step."""
    if len(seeds) > 1:
        points, intervals = interval_estimates(returns[:, None, :], lambda x: x.mean(axis=(0, 1)), reps, seed)
    else:
        points, intervals = returns[0], np.full((2, len(steps)), np.nan)
    stderr = returns.std(axis=0, ddof=1) / math.sqrt(len(seeds)) if len(seeds) > 1 else np.full(len(steps), np.nan)
    return [
        (algo, task, variant, int(step), len(seeds), float(points[i]), float(stderr[i]), *map(float, intervals[:, i]))
        for i, step in enumerate(steps)
    ]


def _selected(table: pd.DataFrame, algo: str, budget: int) -> dict[str, str]:
    """Per task, the variant with the highest normalised SCORE at ``budget`` (the paper's choice of r_t)."""
    rows = table[(table.algo == algo) & (table.budget == budget) & (table.metric == "score")]
    rows = rows[rows.variant != PPTB_BASE].dropna(subset=["normalised"])
    return {task: str(group.loc[group.normalised.idxmax(), "variant"]) for task, group in rows.groupby("task")}


def _aggregate_rows(table: pd.DataFrame, per_seed: Mapping, reps: int, seed: int) -> Iterable[dict[str, Any]]:
    for (algo, budget, metric), rows in table.groupby(["algo", "budget", "metric"], sort=False):
        pptb_rows = rows[rows.variant != PPTB_BASE]
        choices = {v: dict.fromkeys(group.task, v) for v, group in pptb_rows.groupby("variant", sort=False)}
        if pptb_rows.groupby("task").variant.nunique().max() > 1:  # a grid of variants on some task
            choices[SELECTED] = _selected(table, algo, budget)
        for variant, chosen in choices.items():
            tasks = sorted(chosen)

            def row(quantity, statistic, estimate, low=math.nan, high=math.nan, seeds=0):
                return {"algo": algo, "budget": int(budget), "metric": metric, "variant": variant,
                        "quantity": quantity, "statistic": statistic, "estimate": float(estimate),
                        "ci_low": float(low), "ci_high": float(high), "tasks": len(tasks), "seeds": seeds,
                        "reps": reps}  # fmt: skip

            picked = pptb_rows[[chosen.get(t) == v for t, v in zip(pptb_rows.task, pptb_rows.variant)]]
            yield row("normalised", "paper_aggregate", picked.normalised.mean(), seeds=int(picked.seeds.min()))
            pairs = [per_seed[algo, budget, metric, task, chosen[task]] for task in tasks]
            if len({len(pair[0]) for pair in pairs}) > 1:
                log.warning("%s %s@%d: tasks with different seed counts, no rliable estimates", algo, metric, budget)
                continue
            pptb, base = (np.stack([pair[i] for pair in pairs], axis=1) for i in (0, 1))  # seeds x tasks
            if not (np.isfinite(pptb).all() and np.isfinite(base).all()):
                log.warning("%s %s@%d: a base no better than random, no rliable estimates", algo, metric, budget)
                continue
            n = pptb.shape[0]
            for quantity, scores in (("normalised", pptb), ("base_normalised", base), ("difference", pptb - base)):
                points, intervals = interval_estimates(scores, _iqm_and_mean, reps, seed)
                for i, statistic in enumerate(("iqm", "mean")):
                    yield row(quantity, statistic, points[i], *intervals[:, i], seeds=n)
            points, intervals = interval_estimates([pptb, base], _improvement, reps, seed)
            yield row("pptb_over_base", "probability_of_improvement", points[0], *intervals[:, 0], seeds=n)


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", required=True, nargs="+", type=Path, help="run files of the study")
    parser.add_argument("--random", required=True, nargs="+", type=Path, help="random-agent JSON per task")
    parser.add_argument("--entries", required=True, help="JSON: config.pptb_entries")
    parser.add_argument("--bootstrap", default='{"reps": 10000, "seed": 0}', help="JSON: reps and seed")
    parser.add_argument("--out-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from pgsubspaces.h5io import exit_on_file_errors

    bootstrap = json.loads(args.bootstrap)
    with exit_on_file_errors():
        runs = read_curves(args.runs)
    try:
        tables = comparison_tables(
            runs, read_random(args.random), json.loads(args.entries), bootstrap["reps"], bootstrap["seed"]
        )
    except ComparisonError as error:
        raise SystemExit(f"error: {error}") from None
    for name, frame in zip(("pptb", "pptb_aggregate", "pptb_curves"), tables):
        write_csv(frame, args.out_dir / f"{name}.csv")
    aggregate = tables[1]
    for row in aggregate[aggregate.statistic.isin(["paper_aggregate", "iqm"])].itertuples():
        log.info("%s %s@%d %s %s %s: %.3f [%.3f, %.3f]", row.algo, row.metric, row.budget, row.variant,
                 row.quantity, row.statistic, row.estimate, row.ci_low, row.ci_high)  # fmt: skip


if __name__ == "__main__":
    main()
