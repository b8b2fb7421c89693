"""The PPTB study's table columns (docs/tables.md), for the tables and the figures that read them."""

BASE = "base"  # the run-id segment of the study's plain-SB3 runs; a PPTB run's is its settings' name
SELECTED = "selected"  # the aggregate over each task's best variant, as the paper chose r_t per task
ID = ("algo", "task", "variant")
TABLE_COLUMNS = (*ID, "budget", "metric", "seeds", "evaluations", "value", "stderr", "random", "random_stderr",
                 "base", "normalised", "difference", "difference_stderr", "pptb_steps")  # fmt: skip
AGGREGATE_COLUMNS = ("algo", "budget", "metric", "variant", "quantity", "statistic", "estimate", "ci_low",
                     "ci_high", "tasks", "seeds", "reps")  # fmt: skip
CURVE_COLUMNS = (*ID, "step", "seeds", "mean", "stderr", "ci_low", "ci_high")
