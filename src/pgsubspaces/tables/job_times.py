"""Where a workflow run's time went: the Snakemake ``benchmark:`` files of its jobs, summed per stage.

    python -m pgsubspaces.tables.job_times logs/default/benchmarks [--out job_times.csv]

Every rule writes ``logs/<experiment>/benchmarks/<stage>/...tsv`` (one row: wall seconds, peak memory, CPU
time, ...); a stage is the first folder below ``benchmarks`` (train, export, data, eigen, ...). A job rerun
overwrites its file, so the sums are those of the newest run of each job.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from pgsubspaces.atomic import atomic_path

COLUMNS = ("stage", "jobs", "seconds", "max_seconds", "cpu_seconds", "max_rss_mb")


def read_benchmark(path: Path) -> dict[str, float]:
    """The first row of a Snakemake benchmark file, the numeric columns as floats ('-' as 0)."""
    with open(path) as stream:
        row = next(csv.DictReader(stream, delimiter="\t"), None)
    if row is None:
        raise ValueError(f"{path}: an empty benchmark file")
    return {key: float(value) if value not in ("-", "NA", "") else 0.0 for key, value in row.items() if key != "h:m:s"}


def stage_times(folder: Path) -> list[dict[str, float | str]]:
    """One row per stage, the slowest first."""
    stages: dict[str, list[dict[str, float]]] = {}
    for path in sorted(folder.rglob("*.tsv")):
        stages.setdefault(path.relative_to(folder).parts[0], []).append(read_benchmark(path))
    rows = [
        {
            "stage": stage,
            "jobs": len(jobs),
            "seconds": round(sum(job["s"] for job in jobs), 1),
            "max_seconds": round(max(job["s"] for job in jobs), 1),
            "cpu_seconds": round(sum(job.get("cpu_time", 0.0) for job in jobs), 1),
            "max_rss_mb": round(max(job.get("max_rss", 0.0) for job in jobs), 1),
        }
        for stage, jobs in stages.items()
    ]
    return sorted(rows, key=lambda row: -row["seconds"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="logs/<experiment>/benchmarks")
    parser.add_argument("--out", type=Path, help="also write the table as CSV")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        sys.exit(f"error: {args.folder}: no such folder (run the workflow first)")
    rows = stage_times(args.folder)
    total = sum(row["seconds"] for row in rows)
    print(f"{'stage':<12}{'jobs':>6}{'seconds':>10}{'share':>8}{'max s':>8}{'cpu s':>9}{'max RSS MB':>12}")
    for row in rows:
        share = row["seconds"] / total if total else 0.0
        print(f"{row['stage']:<12}{row['jobs']:>6}{row['seconds']:>10.1f}{share:>8.1%}{row['max_seconds']:>8.1f}"
              f"{row['cpu_seconds']:>9.1f}{row['max_rss_mb']:>12.1f}")  # fmt: skip
    print(f"{'total':<12}{sum(row['jobs'] for row in rows):>6}{total:>10.1f}")
    if args.out:
        with atomic_path(args.out) as tmp, open(tmp, "w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
