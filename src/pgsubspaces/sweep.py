"""The random-hyperparameter study of paper Appendix C: configurations and their summary table.

    python -m pgsubspaces.sweep configurations --algo ppo --n 100 --seed 0 [--fixed '{"net_arch": 64}'] --out c.csv
    python -m pgsubspaces.sweep table --summaries RUN/training.json ... --tables DIR --entries JSON --out sweep.csv

Configurations are points of a scrambled Sobol sequence (scipy.stats.qmc), mapped onto the ranges of the
paper's Table 1 (docs/reference.md §9, the original's tuning spaces): continuous ranges linearly or in log space,
categorical choices uniformly. The same (algo, n, seed) always gives the same table. Each configuration is
trained and analysed by the main study's rules; ``table`` summarises every configuration, and the tuned
(main-study) runs of the same task and algorithm, from their per-run tables (docs/tables.md).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.stats import qmc

from pgsubspaces.atomic import atomic_path
from pgsubspaces.tables.metrics import smoothed


@dataclasses.dataclass(frozen=True)
class Range:
    """A continuous hyperparameter, sampled uniformly in [low, high] or in log space."""

    low: float
    high: float
    log: bool = False

    def draw(self, u: np.ndarray) -> np.ndarray:
        if self.log:
            return np.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        return self.low + u * (self.high - self.low)


@dataclasses.dataclass(frozen=True)
class Choice:
    """A categorical hyperparameter, each value with the same probability."""

    values: tuple

    def draw(self, u: np.ndarray) -> np.ndarray:
        index = np.minimum((u * len(self.values)).astype(int), len(self.values) - 1)
        return np.asarray(self.values, dtype=object)[index]


# Table 1 of the paper (the original's conf/tuning/tune_{ppo,sac}.yaml); net_arch n means [n, n].
SPACES: dict[str, dict[str, Range | Choice]] = {
    "ppo": {
        "learning_rate": Range(1e-5, 1e-1, log=True),
        "n_steps": Choice((256, 512, 1024, 2048, 4096)),
        "batch_size": Choice((32, 64, 128, 256)),
        "n_epochs": Choice((5, 10, 20)),
        "gamma": Range(0.9, 1.0),
        "gae_lambda": Range(0.9, 1.0),
        "clip_range": Choice((0.1, 0.2, 0.3)),
        "ent_coef": Range(1e-8, 1e-2, log=True),
        "net_arch": Choice((64, 128, 256)),
    },
    "sac": {
        "learning_rate": Range(1e-5, 1e-1, log=True),
        "batch_size": Choice((32, 64, 128, 256)),
        "train_freq": Choice((1, 4, 16, 32, 64)),  # gradient_steps follow train_freq
        "gamma": Range(0.9, 1.0),
        "tau": Choice((0.005, 0.01, 0.02)),
        "learning_starts": Choice((100, 1000, 10000)),
        "net_arch": Choice((64, 128, 256)),
    },
}


def sample_configurations(
    algo: str, n: int, seed: int, fixed: dict[str, float | int] | None = None
) -> list[dict[str, float | int]]:
    """``n`` configurations of ``algo``: rows of a scrambled Sobol sequence mapped onto SPACES[algo].

    ``fixed`` holds parameters at a value instead of drawing them; the other parameters keep the draws they
    have without it (the sequence always spans the whole space).
    """
    if algo not in SPACES:
        raise ValueError(f"algo {algo!r}; expected one of {sorted(SPACES)}")
    space, fixed = SPACES[algo], fixed or {}
    unknown = sorted(set(fixed) - set(space))
    if unknown:
        raise ValueError(f"fixed {unknown} are not {algo} sweep parameters (those are {list(space)})")
    # n need not be a power of two: the first n points of a scrambled sequence are still well spread
    sobol = qmc.Sobol(d=len(space), scramble=True, seed=np.random.default_rng(seed))
    points = sobol.random_base2(max(0, math.ceil(math.log2(max(n, 1)))))[:n]
    columns = {name: parameter.draw(points[:, i]) for i, (name, parameter) in enumerate(space.items())}
    return [{name: fixed.get(name, _plain(columns[name][row])) for name in space} for row in range(n)]


def configuration_names(n: int) -> list[str]:
    """Path segments of the configurations: c000, c001, ... (wider beyond 1000)."""
    width = max(3, len(str(n - 1)))
    return [f"c{index:0{width}d}" for index in range(n)]


def run_settings(algo: str, values: dict[str, float | int]) -> tuple[dict, dict]:
    """A configuration as stable-baselines3 (hyperparameters, policy_kwargs) overrides."""
    hyperparameters = {name: value for name, value in values.items() if name != "net_arch"}
    width = int(values["net_arch"])
    if algo == "ppo":
        return hyperparameters, {"net_arch": {"pi": [width, width], "vf": [width, width]}}
    hyperparameters["gradient_steps"] = hyperparameters["train_freq"]
    return hyperparameters, {"net_arch": [width, width]}


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def write_configurations(path: Path, algo: str, rows: Sequence[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=["configuration", "algo", *SPACES[algo]])
        writer.writeheader()
        for name, row in zip(configuration_names(len(rows)), rows):
            writer.writerow({"configuration": name, "algo": algo, **row})


@dataclasses.dataclass(frozen=True)
class Entry:
    """What one (algorithm, task) of the sweep is summarised over: steps up to ``steps``, overlap t1 -> t2."""

    algo: str
    task: str
    steps: int
    t1: int
    t2: int


TABLE_COLUMNS = (
    "algo",
    "task",
    "configuration",
    "status",
    "reason",
    "seeds",
    "steps",
    "k",
    "t1",
    "t2",
    "max_return",
    "fraction_actor",
    "fraction_critic",
    "overlap_actor",
    "overlap_critic",
    "chance_actor",
    "chance_critic",
    "resolved",
)
METRICS = TABLE_COLUMNS[-8:-1]


def failure_reason(summary: dict) -> str | None:
    """Why a training did not finish (from its training summary), or None when it did."""
    return None if summary.get("status", "ok") == "ok" else summary.get("reason", summary["status"])


def failure(summary_path: str | Path) -> str | None:
    """``failure_reason`` of a training.json."""
    return failure_reason(json.loads(Path(summary_path).read_text()))


def parse_run_id(run_id: str) -> tuple[str, str, str, int]:
    """(algo, task, configuration, seed) of a run id (``RunSpec.run_id``); main runs are ``tuned``."""
    parts = run_id.split("/")
    algo, task, name, seed = parts[1:] if parts[0] == "sweep" else (parts[0], parts[1], "tuned", parts[2])
    return algo, task, name, int(seed.removeprefix("seed"))


def run_metrics(folder: Path, entry: Entry, smoothing_steps: float) -> dict[str, float]:
    """One run's metrics from its tables, up to ``entry.steps``: the maximum of the smoothed evaluation
    return; the mean S_frac (precise gradient and Hessian, largest k) over the checkpoints after step 0; and
    the overlap of the top-k subspaces between t1 and t2."""
    import pandas as pd

    curves = pd.read_csv(folder / "curves.csv")
    evaluation = curves[(curves.curve == "eval") & (curves.step <= entry.steps)]
    fractions = pd.read_csv(folder / "fractions.csv")
    fractions = fractions[
        (fractions.gradient == "precise") & (fractions.hessian == "precise") & fractions.step.between(1, entry.steps)
    ]
    overlaps = pd.read_csv(folder / "overlaps.csv")
    overlaps = overlaps[(overlaps.t1 == entry.t1) & (overlaps.t2 == entry.t2)]
    k = int(fractions.k.max())
    metrics = {"k": k, "max_return": float(np.max(smoothed(evaluation.step, evaluation.value, smoothing_steps)))}
    resolved = True
    for net in ("actor", "critic"):
        rows = fractions[(fractions.net == net) & (fractions.k == k)]
        metrics[f"fraction_{net}"] = float(rows.fraction.mean())
        metrics[f"chance_{net}"] = float(rows.chance.mean())
        overlap = overlaps[(overlaps.net == net) & (overlaps.k == k)]
        if len(overlap) != 1:
            raise ValueError(
                f"{folder / 'overlaps.csv'}: no single {net} overlap at k {k}, t1 {entry.t1}, t2 {entry.t2}"
            )
        metrics[f"overlap_{net}"] = float(overlap.overlap.iloc[0])
        resolved = resolved and bool(rows.resolved.all()) and bool(overlap.resolved.all())
    metrics["resolved"] = resolved
    return metrics


def summary_table(
    summaries: Sequence[Path], tables: Path, entries: Sequence[Entry], smoothing_steps: float
) -> list[dict]:
    """One row per configuration (and one ``tuned`` row per entry with main runs): metrics averaged over
    seeds; a configuration with a seed that did not finish training is ``failed``, with the reason."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for path in summaries:
        summary = json.loads(Path(path).read_text())
        algo, task, name, seed = parse_run_id(summary["run"])
        groups.setdefault((algo, task, name), []).append({**summary, "seed": seed})
    rows = []
    for entry in entries:
        names = sorted(name for algo, task, name in groups if (algo, task) == (entry.algo, entry.task))
        for name in sorted(names, key=lambda n: n != "tuned"):
            runs = sorted(groups[entry.algo, entry.task, name], key=lambda s: s["seed"])
            row = {"algo": entry.algo, "task": entry.task, "configuration": name, "seeds": len(runs)}
            row.update(steps=entry.steps, t1=entry.t1, t2=entry.t2)
            failed = [f"seed {s['seed']}: {failure_reason(s)}" for s in runs if failure_reason(s)]
            if failed:
                rows.append({**row, "status": "failed", "reason": "; ".join(failed)})
                continue
            per_seed = [run_metrics(tables / s["run"], entry, smoothing_steps) for s in runs]
            row.update(status="ok", reason="", k=per_seed[0]["k"])
            row.update({m: float(np.mean([metrics[m] for metrics in per_seed])) for m in METRICS})
            row["resolved"] = all(metrics["resolved"] for metrics in per_seed)
            rows.append(row)
    return rows


def write_summary_table(path: Path, rows: Sequence[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=TABLE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def parse_fixed(algo: str, text: str) -> dict[str, float | int]:
    """The held parameters from their JSON (``{"net_arch": 64, "gamma": 0.99}``), checked as the config's
    sweep.fixed.<algo> (each a drawn parameter, with a value SB3 takes): data, never a command."""
    from pgsubspaces.config import ConfigError, check_fixed

    try:
        fixed = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"--fixed is not JSON ({error}): {text!r}") from None
    return check_fixed(algo, fixed)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    draw = commands.add_parser("configurations", help="the drawn configurations of one algorithm as a table")
    draw.add_argument("--algo", required=True, choices=sorted(SPACES))
    draw.add_argument("--n", type=int, required=True)
    draw.add_argument("--seed", type=int, required=True)
    draw.add_argument("--fixed", default="{}", metavar="JSON", help='parameters not drawn: {"net_arch": 64}')
    draw.add_argument("--out", required=True, type=Path)
    table = commands.add_parser("table", help="the summary table of every configuration and the tuned runs")
    table.add_argument("--summaries", nargs="*", default=[], type=Path, help="training.json of every run")
    table.add_argument(
        "--tables", required=True, type=Path, help="the per-run tables' folder (.../tables/<variant>/runs)"
    )
    table.add_argument("--entries", required=True, help="JSON list of {algo, task, steps, t1, t2}")
    table.add_argument("--smoothing-steps", type=float, required=True)
    table.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    if args.command == "configurations":
        from pgsubspaces.config import ConfigError

        try:
            rows = sample_configurations(args.algo, args.n, args.seed, parse_fixed(args.algo, args.fixed))
        except (ConfigError, ValueError) as error:
            parser.error(str(error))
        write_configurations(args.out, args.algo, rows)
    else:
        entries = [Entry(**entry) for entry in json.loads(args.entries)]
        write_summary_table(args.out, summary_table(args.summaries, args.tables, entries, args.smoothing_steps))


if __name__ == "__main__":
    main()
