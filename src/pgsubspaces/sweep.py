"""Random hyperparameter configurations for the study of paper Appendix C (issue 6; sampling only so far).

    python -m pgsubspaces.sweep --algo ppo --n 100 --seed 0 --out configurations.csv

Configurations are points of a scrambled Sobol sequence (scipy.stats.qmc), mapped onto the ranges of the
paper's Table 1 (reference §9, the original's tuning spaces): continuous ranges linearly or in log space,
categorical choices uniformly. The same (algo, n, seed) always gives the same table.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.stats import qmc

from pgsubspaces.atomic import atomic_path


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


def sample_configurations(algo: str, n: int, seed: int) -> list[dict[str, float | int]]:
    """``n`` configurations of ``algo``: rows of a scrambled Sobol sequence mapped onto SPACES[algo]."""
    if algo not in SPACES:
        raise ValueError(f"algo {algo!r}; expected one of {sorted(SPACES)}")
    space = SPACES[algo]
    # n need not be a power of two: the first n points of a scrambled sequence are still well spread
    sobol = qmc.Sobol(d=len(space), scramble=True, seed=np.random.default_rng(seed))
    points = sobol.random_base2(max(0, math.ceil(math.log2(max(n, 1)))))[:n]
    columns = {name: parameter.draw(points[:, i]) for i, (name, parameter) in enumerate(space.items())}
    return [{name: _plain(columns[name][row]) for name in space} for row in range(n)]


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def write_configurations(path: Path, algo: str, rows: Sequence[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=["configuration", "algo", *SPACES[algo]])
        writer.writeheader()
        for index, row in enumerate(rows):
            writer.writerow({"configuration": index, "algo": algo, **row})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", required=True, choices=sorted(SPACES))
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    write_configurations(args.out, args.algo, sample_configurations(args.algo, args.n, args.seed))


if __name__ == "__main__":
    main()
