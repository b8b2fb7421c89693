"""The numbers the README quotes about an experiment, regenerated from its tables.

    python -m pgsubspaces.tables.summary results/default/tables/corrected

Prints, per algorithm and network, the range of S_frac (precise gradient and Hessian, largest k) against
chance, the largest subspace bound, the sweep's returns (tuned against random configurations) and fractions,
and the scorecard's verdicts, with the commit of the code that ran (``git describe``), so a quoted number
can be traced to the code that produced it.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import pandas as pd

from pgsubspaces.tables.scorecard import accuracy, accuracy_text, scorecard


def commit() -> str:
    """The repository's commit (with -dirty when the tree has changes), or 'unknown' outside git."""
    try:
        return subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def fraction_ranges(fractions: pd.DataFrame) -> pd.DataFrame:
    rows = fractions[(fractions.gradient == "precise") & (fractions.hessian == "precise")]
    rows = rows[rows.net.isin(["actor", "critic"])]
    rows = rows[rows.k == rows.groupby(["algo", "net"]).k.transform("max")]
    return rows.groupby(["algo", "net"]).agg(
        k=("k", "first"),
        checkpoints=("fraction", "size"),
        min=("fraction", "min"),
        median=("fraction", "median"),
        max=("fraction", "max"),
        chance=("chance", "max"),
        max_bound=("subspace_bound", "max"),
    )


def sweep_summary(sweep: pd.DataFrame) -> pd.DataFrame:
    ok = sweep[sweep.status == "ok"]
    random = ok[ok.configuration != "tuned"]
    tuned = ok[ok.configuration == "tuned"].set_index(["algo", "task"])
    out = random.groupby(["algo", "task"]).agg(
        configurations=("configuration", "size"),
        return_min=("max_return", "min"),
        return_max=("max_return", "max"),
        actor_min=("fraction_actor", "min"),
        actor_max=("fraction_actor", "max"),
        critic_min=("fraction_critic", "min"),
        critic_max=("fraction_critic", "max"),
    )
    out["tuned_return"] = tuned.max_return.reindex(out.index)
    out["failed"] = sweep[sweep.status == "failed"].groupby(["algo", "task"]).size().reindex(out.index).fillna(0)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tables", type=Path, help="results/<experiment>/tables/<variant>")
    args = parser.parse_args(argv)
    pd.set_option("display.width", 160, "display.precision", 3)
    print(f"code: {commit()}; tables: {args.tables}\n")
    print("S_frac, precise gradient and Hessian, largest k:")
    print(fraction_ranges(pd.read_csv(args.tables / "fractions.csv")).to_string(), "\n")
    bounds = accuracy(args.tables)
    print(accuracy_text(bounds) + bounds.to_string(index=False), "\n")
    if (args.tables / "sweep.csv").exists():
        sweep = pd.read_csv(args.tables / "sweep.csv")
        if len(sweep):
            print("sweep (smoothed evaluation return; mean S_frac over training):")
            print(sweep_summary(sweep).to_string(), "\n")
    card = scorecard(args.tables)
    print("scorecard:")
    print(card[["claim", "verdict", "holds", "total", "holds_resolved", "total_resolved"]].to_string(index=False))


if __name__ == "__main__":
    main()
