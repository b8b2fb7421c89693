"""The paper's Sec. 4 claims, each checked on an experiment's merged tables (docs/tables.md): a scorecard.

    python -m pgsubspaces.tables.scorecard results/<experiment>/tables/<variant> --out scorecard.csv \
        [--markdown scorecard.md] [--html scorecard.html]

One row per claim: how many units (checkpoints, runs, tasks: the row says which) it holds in, over all units
and over the resolved ones only (every deciding table row within ``analysis.subspace_tol``), and the
min/median/max of the quantity that decides it. A claim without data says ``no data``. The columns are
documented in docs/tables.md ("scorecard.csv").
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from pgsubspaces.atomic import atomic_path

# "Far above" means more than an order of magnitude: S_frac (or a spectral share) > FAR x its chance level k/n,
# and lambda_1 > FAR x lambda_k. A fixed part of the claims' definition, not a setting to tune until they hold.
FAR = 10.0
NETS = ("actor", "critic")  # the paper's figures show these two; the combined loss is not a claim of Sec. 4
COLUMNS = (
    "claim",
    "verdict",
    "holds",
    "total",
    "holds_resolved",
    "total_resolved",
    "unresolved",
    "unit",
    "test",
    "quantity",
    "min",
    "median",
    "max",
    "paper_paraphrase",
    "note",
)


@dataclasses.dataclass(frozen=True)
class Claim:
    name: str
    paper: str  # our one-sentence paraphrase of the paper's statement
    unit: str
    test: str
    quantity: str
    units: Callable[[dict[str, pd.DataFrame]], tuple[pd.DataFrame, str]]


# -- reading ---------------------------------------------------------------------------------------------------


# the columns the claims read (docs/tables.md); tables written before the accuracy columns are refused
REQUIRED = {
    "fractions": (
        "algo",
        "task",
        "seed",
        "step",
        "phase",
        "net",
        "gradient",
        "hessian",
        "k",
        "fraction",
        "chance",
        "resolved",
    ),  # fmt: skip
    "overlaps": ("algo", "task", "seed", "net", "k", "t1", "t2", "overlap", "chance", "resolved"),
    "spectra": ("algo", "task", "seed", "step", "net", "hessian", "kind", "index", "eigenvalue"),
}


def read_tables(tables_dir: Path) -> dict[str, pd.DataFrame]:
    """The tables the claims use; a missing table is an empty frame (its claims then have no data)."""
    tables = {}
    for name, columns in REQUIRED.items():
        path = Path(tables_dir) / f"{name}.csv"
        frame = pd.read_csv(path) if path.exists() and path.stat().st_size else pd.DataFrame()
        missing = [c for c in columns if c not in frame] if len(frame.columns) else []
        if missing:
            raise ValueError(f"{path}: no column {', '.join(missing)}; rerun the tables rules (docs/tables.md)")
        if "resolved" in frame:
            # read as text so that True/False, "True"/"False" and empty cells all parse; empty is not resolved
            frame["resolved"] = frame.resolved.map(lambda v: str(v).strip().lower() == "true")
        tables[name] = frame
    return tables


def _largest_k(frame: pd.DataFrame, by=("algo", "task", "net")) -> pd.DataFrame:
    """The rows at the largest k of their group (the paper's k = 100 when the config uses it)."""
    return frame[frame.k == frame.groupby(list(by)).k.transform("max")]


def _precise(fractions: pd.DataFrame) -> pd.DataFrame:
    """Precise gradient in the precise Hessian's subspace, actor and critic, at the largest k."""
    rows = fractions[(fractions.gradient == "precise") & (fractions.hessian == "precise")]
    return _largest_k(rows[rows.net.isin(NETS)])


def _units(frame: pd.DataFrame, value, holds, resolved=None) -> pd.DataFrame:
    """The per-unit frame every claim returns: its identity, the deciding value, holds, resolved."""
    keep = [c for c in ("algo", "task", "seed", "step", "net", "t1") if c in frame]
    units = frame[keep].copy()
    units["value"] = np.asarray(value, dtype=float)
    units["holds"] = np.asarray(holds, dtype=bool)
    units["resolved"] = pd.NA if resolved is None else np.asarray(resolved, dtype=bool)
    return units.reset_index(drop=True)


def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=["value", "holds", "resolved"])


# -- claim (i): a few large eigenvalues ------------------------------------------------------------------------

SPECTRUM = ["algo", "task", "seed", "step", "net"]


def _subspace_k(tables: dict[str, pd.DataFrame]) -> dict[tuple, int]:
    """Per (algo, task, net): the k of claim (ii) (largest k of fractions.csv), else the eigen files' k."""
    ks = {}
    spectra = tables["spectra"]
    if not spectra.empty:
        top = spectra[spectra.kind == "top_k"]
        counts = top.groupby([*SPECTRUM, "hessian"]).size().rename("k").reset_index()
        ks.update({key: int(k) for key, k in counts.groupby(["algo", "task", "net"]).k.max().items()})
    fractions = tables["fractions"]
    if not fractions.empty:
        ks.update({key: int(k) for key, k in fractions.groupby(["algo", "task", "net"]).k.max().items()})
    return ks


def spectrum_share_units(tables):
    """Full spectra: the share of sum |lambda| held by the top k (largest algebraic) against k/n."""
    spectra = tables["spectra"]
    if spectra.empty:
        return _empty(), ""
    full = spectra[(spectra.kind == "all") & (spectra.hessian == "precise") & spectra.net.isin(NETS)]
    ks, rows, too_small = _subspace_k(tables), [], 0
    for key, group in full.groupby(SPECTRUM):
        values = group.sort_values("index").eigenvalue.to_numpy(float)
        k, n = ks.get((key[0], key[1], key[4])), len(values)
        if k is None or k >= n:
            too_small += 1
            continue
        share = np.abs(values[:k]).sum() / np.abs(values).sum()
        rows.append((*key, k, n, share, share / (k / n)))
    if not rows:
        return _empty(), f"{too_small} spectra without a k below n" if too_small else ""
    frame = pd.DataFrame(rows, columns=[*SPECTRUM, "k", "n", "share", "ratio"])
    note = (
        f"share of sum|lambda| in the top k: min {_fmt(frame.share.min())}, median {_fmt(frame.share.median())}, "
        f"max {_fmt(frame.share.max())}; k = {_values(frame.k)}, n = {_values(frame.n)}"
    )
    if too_small:
        note += f"; {too_small} spectra left out (no k below n)"
    return _units(frame, frame.ratio, frame.ratio > FAR), note


def spectrum_decay_units(tables):
    """Top-k lists where the checkpoint has no full spectrum: lambda_1 / lambda_k."""
    spectra = tables["spectra"]
    if spectra.empty:
        return _empty(), ""
    precise = spectra[(spectra.hessian == "precise") & spectra.net.isin(NETS)]
    full = set(precise[precise.kind == "all"].groupby(SPECTRUM).groups)
    rows = []
    for key, group in precise[precise.kind == "top_k"].groupby(SPECTRUM):
        values = group.sort_values("index").eigenvalue.to_numpy(float)
        if key in full or len(values) < 2:
            continue
        first, last = values[0], values[-1]
        # lambda_k <= 0 < lambda_1: the positive curvature sits in fewer than k directions, the ratio is infinite
        ratio = math.nan if first <= 0 else (math.inf if last <= 0 else first / last)
        rows.append((*key, len(values), ratio))
    if not rows:
        return _empty(), ""
    frame = pd.DataFrame(rows, columns=[*SPECTRUM, "k", "ratio"])
    note = f"k = {_values(frame.k)}; lambda_k <= 0 counts as an infinite ratio, lambda_1 <= 0 as a failure (no value)"
    return _units(frame, frame.ratio, frame.ratio > FAR), note


# -- claim (ii): S_frac above chance ---------------------------------------------------------------------------


def _fraction_units(tables, factor: float):
    fractions = tables["fractions"]
    if fractions.empty:
        return _empty(), ""
    rows = _precise(fractions)
    ratio = rows.fraction / rows.chance
    note = (
        f"S_frac: min {_fmt(rows.fraction.min())}, median {_fmt(rows.fraction.median())}, "
        f"max {_fmt(rows.fraction.max())}; k = {_values(rows.k)}"
    )
    unreachable = int((factor * rows.chance >= 1).sum())
    if unreachable:
        note += f"; at {_units_count(unreachable)} {_fmt(factor)} k/n >= 1, so the test cannot hold there"
    return _units(rows, ratio, ratio > factor, rows.resolved), note


def fraction_above_units(tables):
    return _fraction_units(tables, 1.0)


def fraction_far_units(tables):
    return _fraction_units(tables, FAR)


# -- claim (iii): the overlap decays, yet stays above chance ---------------------------------------------------

OVERLAP_GROUP = ["algo", "task", "seed", "net", "t1"]


def _later_overlaps(tables) -> pd.DataFrame:
    overlaps = tables["overlaps"]
    if overlaps.empty:
        return pd.DataFrame()
    rows = _largest_k(overlaps[overlaps.net.isin(NETS)])
    return rows[rows.t2 > rows.t1]


def overlap_decay_units(tables):
    rows = _later_overlaps(tables)
    if rows.empty:
        return _empty(), ""
    rows = rows.sort_values([*OVERLAP_GROUP, "t2"])
    count = rows.groupby(OVERLAP_GROUP).t2.transform("size")
    decided = rows[count >= 2].groupby(OVERLAP_GROUP)
    first, last = decided.head(1).reset_index(drop=True), decided.tail(1).reset_index(drop=True)
    note = f"k = {_values(rows.k)}"
    if (count == 1).any():
        note += f"; {int((count == 1).sum())} (run, net, t1) with a single t2 > t1 left out"
    if first.empty:
        return _empty(), note
    change = last.overlap - first.overlap
    return _units(first, change, change < 0, first.resolved & last.resolved), note


def overlap_chance_units(tables):
    rows = _later_overlaps(tables)
    if rows.empty:
        return _empty(), ""
    rows = rows.assign(ratio=rows.overlap / rows.chance)
    groups = rows.groupby(OVERLAP_GROUP)
    frame = groups.agg(ratio=("ratio", "min"), resolved=("resolved", "all")).reset_index()
    lowest = groups.overlap.min()
    note = (
        f"lowest overlap per unit: min {_fmt(lowest.min())}, median {_fmt(lowest.median())}, "
        f"max {_fmt(lowest.max())}; k = {_values(rows.k)}"
    )
    return _units(frame, frame.ratio, frame.ratio > 1, frame.resolved), note


# -- secondary claims ------------------------------------------------------------------------------------------

CHECKPOINT = ["algo", "task", "seed", "step"]


def critic_actor_units(tables):
    fractions = tables["fractions"]
    if fractions.empty:
        return _empty(), ""
    rows = fractions[(fractions.gradient == "precise") & (fractions.hessian == "precise") & fractions.net.isin(NETS)]
    # the same k for both nets: the largest k both have in the run's algo and task
    common = rows.groupby(["algo", "task", "net"]).k.max().groupby(["algo", "task"]).min().rename("common")
    rows = rows.join(common, on=["algo", "task"])
    rows = rows[rows.k == rows.common]
    pair = rows[rows.net == "actor"].merge(rows[rows.net == "critic"], on=[*CHECKPOINT, "k"], suffixes=("_a", "_c"))
    if pair.empty:
        return _empty(), ""
    change = pair.fraction_c - pair.fraction_a
    note = f"k = {_values(pair.k)}"
    return _units(pair, change, change > 0, pair.resolved_a & pair.resolved_c), note


def precise_minibatch_units(tables):
    fractions = tables["fractions"]
    if fractions.empty:
        return _empty(), ""
    rows = _largest_k(fractions[(fractions.hessian == "precise") & fractions.net.isin(NETS)])
    keys = [*CHECKPOINT, "net", "k"]
    pair = rows[rows.gradient == "precise"].merge(rows[rows.gradient == "minibatch"], on=keys, suffixes=("_p", "_m"))
    if pair.empty:
        return _empty(), ""
    change = pair.fraction_p - pair.fraction_m
    return _units(pair, change, change > 0, pair.resolved_p & pair.resolved_m), f"k = {_values(pair.k)}"


def _seed_phase_means(rows: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    return rows.groupby(by).agg(fraction=("fraction", "mean"), resolved=("resolved", "all"))


def sac_early_units(tables):
    fractions = tables["fractions"]
    if fractions.empty:
        return _empty(), ""
    rows = _precise(fractions)
    rows = rows[(rows.net == "actor") & (rows.phase == "initial") & rows.algo.isin(("ppo", "sac"))]
    per_seed = _seed_phase_means(rows, ["algo", "task", "seed"]).reset_index()
    per_task = _seed_phase_means(per_seed, ["algo", "task"]).reset_index()
    pair = per_task[per_task.algo == "sac"].merge(per_task[per_task.algo == "ppo"], on="task", suffixes=("_s", "_p"))
    if pair.empty:
        return _empty(), ""
    change = pair.fraction_s - pair.fraction_p
    note = f"tasks: {', '.join(sorted(pair.task))}"
    return _units(pair, change, change > 0, pair.resolved_s & pair.resolved_p), note


def ppo_rise_units(tables):
    fractions = tables["fractions"]
    if fractions.empty:
        return _empty(), ""
    rows = _precise(fractions)
    rows = rows[(rows.algo == "ppo") & rows.phase.isin(("initial", "training", "convergence"))]
    rows = rows.assign(later=rows.phase != "initial")
    means = _seed_phase_means(rows, ["algo", "task", "seed", "net", "later"]).reset_index()
    run = ["algo", "task", "seed", "net"]
    pair = means[~means.later].merge(means[means.later], on=run, suffixes=("_i", "_l"))
    left_out = means.groupby(run).ngroups - len(pair)
    note = f"{left_out} (run, net) without checkpoints in both the initial and a later phase left out"
    note = note if left_out else ""
    if pair.empty:
        return _empty(), note
    change = pair.fraction_l - pair.fraction_i
    return _units(pair, change, change > 0, pair.resolved_i & pair.resolved_l), note


# -- the scorecard ---------------------------------------------------------------------------------------------

CLAIMS = (
    Claim(
        "(i) few large eigenvalues: full spectrum",
        "The actor and critic Hessians have a small number of large eigenvalues while the bulk is close to zero "
        "(Sec. 4, Fig. 1).",
        "checkpoint x net with a full spectrum (spectra.csv kind 'all', precise Hessian)",
        f"share of sum|lambda| in the top k > {FAR:g} x k/n "
        "(k: the largest k of fractions.csv, else the eigen files' k)",
        "share / (k/n)",
        spectrum_share_units,
    ),
    Claim(
        "(i) few large eigenvalues: top-k decay",
        "The actor and critic Hessians have a small number of large eigenvalues while the bulk is close to zero "
        "(Sec. 4, Fig. 1).",
        "checkpoint x net without a full spectrum (spectra.csv kind 'top_k', precise Hessian)",
        f"lambda_1 > {FAR:g} x lambda_k (k: the eigen file's k)",
        "lambda_1 / lambda_k",
        spectrum_decay_units,
    ),
    Claim(
        "(ii) S_frac above chance",
        "A large share of the gradient lies in the span of the top-k Hessian eigenvectors, although k is a small "
        "part of the parameters (Sec. 4, Fig. 2).",
        "checkpoint x net (precise gradient, precise Hessian, largest k)",
        "S_frac > k/n",
        "S_frac / (k/n)",
        fraction_above_units,
    ),
    Claim(
        "(ii) S_frac far above chance",
        "A large share of the gradient lies in the span of the top-k Hessian eigenvectors, although k is a small "
        "part of the parameters (Sec. 4, Fig. 2).",
        "checkpoint x net (precise gradient, precise Hessian, largest k)",
        f"S_frac > {FAR:g} x k/n",
        "S_frac / (k/n)",
        fraction_far_units,
    ),
    Claim(
        "(iii) overlap decays with t2",
        "The high-curvature subspace changes slowly: its overlap with an earlier checkpoint's subspace decreases "
        "with t2 but stays well above that of random subspaces (Sec. 4, Fig. 3).",
        "run x net x t1 with at least two t2 > t1 (largest k)",
        "S_overlap(t1, last t2) < S_overlap(t1, first t2 > t1)",
        "S_overlap(last t2) - S_overlap(first t2)",
        overlap_decay_units,
    ),
    Claim(
        "(iii) overlap stays above chance",
        "The high-curvature subspace changes slowly: its overlap with an earlier checkpoint's subspace decreases "
        "with t2 but stays well above that of random subspaces (Sec. 4, Fig. 3).",
        "run x net x t1 (largest k, every t2 > t1)",
        "every S_overlap(t1, t2) > k/n",
        "min over t2 of S_overlap / (k/n)",
        overlap_chance_units,
    ),
    Claim(
        "critic above actor",
        "The critic's gradient lies in its high-curvature subspace to a larger extent than the actor's (Sec. 4).",
        "checkpoint (precise gradient, precise Hessian, the largest k of both nets)",
        "S_frac(critic) > S_frac(actor)",
        "S_frac(critic) - S_frac(actor)",
        critic_actor_units,
    ),
    Claim(
        "SAC actor above PPO actor early",
        "In the initial phase of training, SAC's actor gradient lies in its subspace to a larger extent than "
        "PPO's (Sec. 4, Fig. 2).",
        "task with SAC and PPO runs (actor, initial phase, precise/precise, largest k)",
        "seed mean of per-seed phase means: SAC > PPO",
        "S_frac(SAC) - S_frac(PPO)",
        sac_early_units,
    ),
    Claim(
        "precise gradient above mini-batch gradient",
        "Mini-batch gradients lie in the high-curvature subspace to a smaller extent than the precise gradient, "
        "their noise pointing elsewhere (Sec. 4, Fig. 2).",
        "checkpoint x net (precise Hessian, largest k)",
        "S_frac(precise gradient) > S_frac(mini-batch gradient)",
        "S_frac(precise) - S_frac(mini-batch)",
        precise_minibatch_units,
    ),
    Claim(
        "PPO fraction rises after the initial phase",
        "PPO's gradient subspace fraction is lower in the initial phase than once training takes off (Sec. 4, Fig. 2).",
        "PPO run x net (precise gradient, precise Hessian, largest k)",
        "mean S_frac over training and convergence checkpoints > mean over initial ones",
        "mean(later) - mean(initial)",
        ppo_rise_units,
    ),
)


def summarise(claim: Claim, units: pd.DataFrame, note: str) -> dict:
    """One scorecard row from a claim's per-unit frame."""
    total = len(units)
    holds = int(units.holds.sum()) if total else 0
    flagged = total > 0 and not units.resolved.isna().all()
    resolved = units.resolved.astype(bool) if flagged else None
    values = units.value.to_numpy(float) if total else np.zeros(0)
    values = values[~np.isnan(values)]
    verdict = "no data" if total == 0 else "holds" if holds == total else "fails" if holds == 0 else "partly"
    notes = [n for n in (note, _breakdown(units)) if n]
    if total and not flagged:
        notes.append("no accuracy flag in this table")
    if len(values) < total:
        notes.append(f"{_units_count(total - len(values))} without a value")
    return {
        "claim": claim.name,
        "verdict": verdict,
        "holds": holds,
        "total": total,
        "holds_resolved": int((units.holds & resolved).sum()) if flagged else pd.NA,
        "total_resolved": int(resolved.sum()) if flagged else pd.NA,
        "unresolved": int((~resolved).sum()) if flagged else pd.NA,
        "unit": claim.unit,
        "test": claim.test,
        "quantity": claim.quantity,
        "min": values.min() if len(values) else math.nan,
        "median": float(np.median(values)) if len(values) else math.nan,
        "max": values.max() if len(values) else math.nan,
        "paper_paraphrase": claim.paper,
        "note": "; ".join(notes),
    }


def _breakdown(units: pd.DataFrame) -> str:
    """X of Y per algorithm and net, when a claim spans more than one."""
    by = [c for c in ("algo", "net") if c in units]
    if not by or len(units) == 0 or units.groupby(by).ngroups < 2:
        return ""
    counts = units.groupby(by).holds.agg(["sum", "size"])
    return (
        "by "
        + "/".join(by)
        + ": "
        + ", ".join(
            f"{'/'.join(map(str, key if isinstance(key, tuple) else (key,)))} {s} of {n}"
            for key, (s, n) in counts.iterrows()
        )
    )


def scorecard(tables_dir: Path) -> pd.DataFrame:
    """Every claim of ``CLAIMS`` checked on the merged tables in ``tables_dir``: one row per claim."""
    tables = read_tables(tables_dir)
    rows = [summarise(claim, *claim.units(tables)) for claim in CLAIMS]
    card = pd.DataFrame(rows, columns=list(COLUMNS))
    return card.astype({c: "Int64" for c in ("holds_resolved", "total_resolved", "unresolved")})


# -- output ----------------------------------------------------------------------------------------------------


def _fmt(value) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (int, np.integer)):
        return str(value)
    return f"{value:.4g}"


def _units_count(n: int) -> str:
    return f"{n} unit" if n == 1 else f"{n} units"


def _values(series: pd.Series) -> str:
    return ", ".join(str(v) for v in sorted(set(series.astype(int))))


def _count(holds, total) -> str:
    return "" if total is pd.NA else f"{holds} of {total}"


def _cells(row) -> dict[str, str]:
    """A scorecard row as the display columns of the Markdown and terminal forms."""
    return {
        "claim": row.claim,
        "verdict": row.verdict,
        "holds": _count(row.holds, row.total),
        "holds (resolved)": _count(row.holds_resolved, row.total_resolved),
        "unresolved": _fmt(row.unresolved),
        "unit": row.unit,
        "test": row.test,
        "quantity": row.quantity,
        "min": _fmt(row.min),
        "median": _fmt(row.median),
        "max": _fmt(row.max),
        "paper (paraphrase)": row.paper_paraphrase,
        "note": row.note,
    }


def to_markdown(card: pd.DataFrame) -> str:
    rows = [_cells(row) for row in card.itertuples(index=False)]
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row.values()) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def to_text(card: pd.DataFrame) -> str:
    """The scorecard for a terminal: one block per claim."""
    blocks = []
    for row in card.itertuples(index=False):
        head = f"{row.claim}: {row.verdict}"
        if row.total:
            head += f", {row.holds} of {row.total}"
            if row.total_resolved is not pd.NA:
                head += f" (resolved: {row.holds_resolved} of {row.total_resolved}, {row.unresolved} unresolved)"
        lines = [head, f"    unit:  {row.unit}", f"    test:  {row.test}"]
        if row.total:
            lines.append(f"    {row.quantity}: min {_fmt(row.min)}, median {_fmt(row.median)}, max {_fmt(row.max)}")
        lines.append(f"    paper (paraphrase): {row.paper_paraphrase}")
        if row.note:
            lines.append(f"    note:  {row.note}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def accuracy(tables_dir: Path) -> pd.DataFrame:
    """The eigensolver's accuracy behind the numbers: per algorithm, network, Hessian and k, the largest
    ``subspace_bound`` of the fractions and how many rows are unresolved (from fractions.csv)."""
    fractions = read_tables(tables_dir)["fractions"]
    rows = fractions[fractions.net.isin(NETS)].drop_duplicates(["algo", "task", "seed", "step", "net", "hessian", "k"])
    return (
        rows.groupby(["algo", "net", "hessian", "k"])
        .agg(checkpoints=("subspace_bound", "size"), max_bound=("subspace_bound", "max"), resolved=("resolved", "sum"))
        .reset_index()
        .assign(unresolved=lambda frame: frame.checkpoints - frame.resolved)
        .drop(columns="resolved")
    )


def accuracy_text(table: pd.DataFrame) -> str:
    """One sentence: the largest bound of the experiment and where it is."""
    if table.empty:
        return "No fractions: no eigensolver accuracy to report.\n"
    worst = table.loc[table.max_bound.idxmax()]
    return (
        f"Largest subspace bound: {worst.max_bound:.3g} ({worst.algo} {worst.net}, {worst.hessian} Hessian, "
        f"k = {worst.k}); {int(table.unresolved.sum())} of {int(table.checkpoints.sum())} top-k subspaces "
        "unresolved (bound > analysis.subspace_tol).\n"
    )


def to_html(card: pd.DataFrame, accuracy_table: pd.DataFrame | None = None) -> str:
    shown = card.astype(object).where(card.notna(), "")
    for column in ("min", "median", "max"):
        shown[column] = card[column].map(_fmt)
    html = shown.to_html(index=False, border=0)
    if accuracy_table is not None:
        html = f"<p>{accuracy_text(accuracy_table)}</p>\n{html}\n<h4>Eigensolver accuracy</h4>\n"
        html += accuracy_table.to_html(index=False, border=0, float_format=lambda v: f"{v:.3g}")
    return html


def write(card: pd.DataFrame, path: Path, text: str | None = None) -> None:
    with atomic_path(path) as tmp:
        if text is None:
            card.to_csv(tmp, index=False)
        else:
            Path(tmp).write_text(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tables", type=Path, help="the experiment's merged tables (fractions.csv, ...)")
    parser.add_argument("--out", required=True, type=Path, help="scorecard.csv")
    parser.add_argument("--markdown", type=Path, help="also write the scorecard as a Markdown table")
    parser.add_argument("--html", type=Path, help="also write it as an HTML table (for the Snakemake report)")
    parser.add_argument("--accuracy", type=Path, help="also write the eigensolver accuracy table (CSV)")
    args = parser.parse_args(argv)
    card, bounds = scorecard(args.tables), accuracy(args.tables)
    write(card, args.out)
    if args.markdown:
        write(card, args.markdown, to_markdown(card))
    if args.html:
        write(card, args.html, to_html(card, bounds))
    if args.accuracy:
        write(bounds, args.accuracy)
    print(to_text(card), end="")
    print(accuracy_text(bounds) + bounds.to_string(index=False))


if __name__ == "__main__":
    main()
