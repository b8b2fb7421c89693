"""The columns of the path lens's tables (docs/path.md), apart from the lens so that the figures, which never
read run files, need not import it (nor torch)."""

from __future__ import annotations

IDENTITY = ("algo", "task", "seed")
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
STATS = ("mean", *(f"q{round(q * 100):02d}" for q in QUANTILES), "max")
# crosslens.csv (docs/crosslens.md): the Hessian's eigenspaces against the path just after each checkpoint
CROSSLENS_COLUMNS = (
    *IDENTITY, "step", "hessian", "measure", "k", "r", "n_params", "window_snapshots", "value", "chance",
    "subspace_bound", "resolved",
)  # fmt: skip


def _stat_columns(prefix: str) -> tuple[str, ...]:
    return tuple(f"{prefix}_{stat}" for stat in STATS)


PATH_TABLES: dict[str, tuple[str, ...]] = {
    "path_layers": (*IDENTITY, "layer", "parameters", "n_params"),
    "path_periods": (
        *IDENTITY, "period", "first_snapshot", "last_snapshot", "n_snapshots", "first_update", "last_update",
        "first_env_step", "last_env_step",
    ),
    "parameter_stats": (
        *IDENTITY, "layer", "period", "n_params", "n_snapshots", *_stat_columns("apc"), *_stat_columns("fpc"),
        "detour_n", "detour_infinite", *_stat_columns("detour"), "barely_moving", "barely_threshold", "apc_gini",
    ),
    "parameter_hist": (
        *IDENTITY, "layer", "period", "quantity", "bin", "left", "right", "count", "clipped", "cdf", "n_values",
    ),
    "dimensionality": (*IDENTITY, "layer", "period", "n_snapshots", "n_params", "d", "beta", "D", "D_over_d"),
    "components": (
        *IDENTITY, "layer", "period", "k", "singular_value", "information", "apc", "final_change", "detour",
    ),
    "component_curves": (*IDENTITY, "layer", "k", "snapshot", "actor_updates", "env_step", "u"),
    "path_returns": (*IDENTITY, "curve", "step", "value"),
}  # fmt: skip

# reconstruction.csv (docs/path.md, "Reconstruction"): the statistics of one period and rank over its evaluated
# policies (level "period"), and each policy's own row (level "policy", with its snapshot)
RECONSTRUCTION: tuple[str, ...] = (
    *IDENTITY, "period", "r", "n_policies", "episodes", "return_original_mean", "delta_mean", "delta_std",
    "abs_delta_mean", "abs_delta_std", "delta_max", "delta_min", "return_rebuilt_mean", "relative_error", "d",
    "level", "snapshot", "actor_updates", "env_step",
)  # fmt: skip
