"""Learning curves recorded during training: evaluations, training episodes and per-rollout means."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

# Column names of each table; every column is float64 in memory and in the .npz files.
EVAL_COLUMNS = ("step", "mean_return", "std_return", "mean_length", "success_rate")
EPISODE_COLUMNS = ("step", "return", "length")
ROLLOUT_COLUMNS = ("step", "mean_return", "n_episodes")
TABLES = {"eval": EVAL_COLUMNS, "episodes": EPISODE_COLUMNS, "rollouts": ROLLOUT_COLUMNS}


@dataclasses.dataclass
class LearningCurves:
    """Rows of (step, ...) tuples, step being the env step at which the row was recorded.

    - ``eval``: deterministic evaluation (unnormalised returns); success_rate is NaN without ``is_success``.
    - ``episodes``: every finished training episode of the stochastic policy.
    - ``rollouts``: mean return of the episodes that finished within one rollout (PPO: n_steps; SAC:
      train_freq steps), the original's ``rollout/ep_rew_mean`` with its per-rollout buffer clearing.
    """

    eval: list[tuple[float, ...]] = dataclasses.field(default_factory=list)
    episodes: list[tuple[float, ...]] = dataclasses.field(default_factory=list)
    rollouts: list[tuple[float, ...]] = dataclasses.field(default_factory=list)

    def arrays(self) -> dict[str, np.ndarray]:
        """Each table as float64 arrays of shape (n_rows,), keyed ``<table>/<column>``."""
        out = {}
        for table, columns in TABLES.items():
            rows = np.asarray(getattr(self, table), dtype=np.float64).reshape(-1, len(columns))
            for index, column in enumerate(columns):
                out[f"{table}/{column}"] = rows[:, index]
        return out

    def save(self, path: Path) -> None:
        np.savez(path, **self.arrays())

    @classmethod
    def load(cls, path: Path) -> LearningCurves:
        with np.load(path) as data:
            tables = {
                table: [tuple(row) for row in np.stack([data[f"{table}/{c}"] for c in columns], axis=1).tolist()]
                for table, columns in TABLES.items()
            }
        return cls(**tables)

    def up_to(self, step: int) -> LearningCurves:
        """The rows recorded at or before ``step``."""
        return LearningCurves(**{table: [row for row in getattr(self, table) if row[0] <= step] for table in TABLES})
