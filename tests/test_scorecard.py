"""The scorecard on constructed tables: each claim holds in a known X of Y, fails, or has no data."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from pgsubspaces.tables.scorecard import main, scorecard
from pgsubspaces.tables.tables import TABLES

COLUMNS = TABLES  # the columns pgsubspaces.tables writes


def write(folder, name, rows):
    columns = COLUMNS[name]  # rows may leave out trailing columns the claims do not read (resumed_from)
    rows = [(*row, *[""] * (len(columns) - len(row))) for row in rows]
    pd.DataFrame(rows, columns=columns).to_csv(folder / f"{name}.csv", index=False)


def frac(fraction, step=0, net="actor", gradient="precise", hessian="precise", k=10, n=1000, algo="ppo", task="T",
         seed=0, phase="initial", resolved=True):  # fmt: skip
    return (algo, task, seed, step, phase, net, gradient, hessian, k, n, fraction, k / n, k / n,
            0.0 if resolved else 0.5, resolved, "")  # fmt: skip


def overlap(t1, t2, value, net="actor", k=2, n=100, resolved=True, seed=0):
    return ("ppo", "T", seed, net, k, n, t1, t2, value, k / n, 0.0 if resolved else 0.5, resolved)


def spectrum(values, step=0, net="actor", hessian="precise", kind="top_k"):
    return [("ppo", "T", 0, step, net, hessian, kind, i, v) for i, v in enumerate(values)]


def row(card, claim):
    return card.set_index("claim").loc[claim]


def counts(card, claim):
    r = row(card, claim)
    resolved = None if pd.isna(r.total_resolved) else (r.holds_resolved, r.total_resolved, r.unresolved)
    return r.verdict, r.holds, r.total, resolved


def stats(card, claim):
    r = row(card, claim)
    return r["min"], r["median"], r["max"]


def fraction_tables(folder):
    """Actor 1 of 3 and critic 2 of 3 far above chance (k/n = 0.01), one unreachable unit (k/n = 0.2)."""
    rows = [
        frac(0.005, step=0, resolved=False),  # below chance
        frac(0.05, step=1),  # above, not far above
        frac(0.5, step=2),
        frac(0.2, step=0, net="critic"),
        frac(0.3, step=1, net="critic", resolved=False),
        frac(0.02, step=2, net="critic"),
        frac(0.9, task="Small", k=10, n=50),  # 4.5 x chance; 10 x chance would exceed 1
    ]
    # not deciding: a smaller k, the combined loss, the mini-batch gradient (all far below chance)
    rows += [frac(0.0, step=s, net=net, k=1) for s in range(3) for net in ("actor", "critic")]
    rows += [frac(0.0, step=s, net="combined", n=3000) for s in range(3)]
    rows += [frac(0.0, step=s, gradient="minibatch", net="critic") for s in range(3)]
    write(folder, "fractions", rows)


def test_fraction_above_and_far_above_chance(tmp_path):
    fraction_tables(tmp_path)
    card = scorecard(tmp_path)
    assert counts(card, "(ii) S_frac above chance") == ("partly", 6, 7, (5, 5, 2))
    assert counts(card, "(ii) S_frac far above chance") == ("partly", 3, 7, (2, 5, 2))
    assert stats(card, "(ii) S_frac far above chance") == pytest.approx((0.5, 5.0, 50.0))
    note = row(card, "(ii) S_frac far above chance").note
    assert "at 1 unit 10 k/n >= 1" in note
    assert "by algo/net: ppo/actor 1 of 4, ppo/critic 2 of 3" in note


def test_spectrum_share_and_top_k_decay(tmp_path):
    rows = spectrum([50, 30, 10] + [0.1] * 96 + [-10], step=5, kind="all")  # share 90 / 109.6 of |lambda|
    rows += spectrum([1.0] * 100, step=5, net="critic", kind="all")  # flat: share = k/n
    rows += spectrum([1, 1, 1], step=5)  # a top-k list beside a full spectrum: not a decay unit
    rows += [r for net in ("actor", "critic") for r in spectrum([3, 2, 1], step=5, net=net, hessian="minibatch")]
    rows += spectrum([8, 4, 0.5]) + spectrum([8, 4, 2], net="critic")  # ratios 16 and 4
    rows += spectrum([3, 1, -1], step=1) + spectrum([-1, -2, -3], step=1, net="critic")  # inf; no curvature
    write(tmp_path, "spectra", rows)
    card = scorecard(tmp_path)
    share = "(i) few large eigenvalues: full spectrum"
    assert counts(card, share) == ("partly", 1, 2, None)
    assert stats(card, share) == pytest.approx((1.0, (1 + 90 / 109.6 / 0.03) / 2, 90 / 109.6 / 0.03))
    assert "k = 3, n = 100" in row(card, share).note
    decay = "(i) few large eigenvalues: top-k decay"
    assert counts(card, decay) == ("partly", 2, 4, None)
    assert stats(card, decay) == (4.0, 16.0, math.inf)
    assert "1 unit without a value" in row(card, decay).note
    assert "no accuracy flag" in row(card, decay).note


def test_overlap_decays_and_stays_above_chance(tmp_path):
    rows = [overlap(0, t2, v) for t2, v in ((0, 1.0), (10, 0.8), (20, 0.5), (30, 0.3))]  # decays, >= 15 x
    rows += [overlap(20, 20, 1.0), overlap(20, 30, 0.6)]  # one t2 > t1: no decay unit
    rows += [overlap(0, t2, v, net="critic") for t2, v in ((10, 0.4), (20, 0.01), (30, 0.5))]  # rises, dips
    rows += [overlap(10, 20, 0.9, net="critic"), overlap(10, 30, 0.7, net="critic", resolved=False)]
    rows += [overlap(0, 10, 0.1, k=1), overlap(0, 30, 0.9, k=1)]  # a smaller k: not deciding
    write(tmp_path, "overlaps", rows)
    card = scorecard(tmp_path)
    decay = "(iii) overlap decays with t2"
    assert counts(card, decay) == ("partly", 2, 3, (1, 2, 1))
    assert stats(card, decay) == pytest.approx((-0.5, -0.2, 0.1))
    assert "1 (run, net, t1) with a single t2 > t1 left out" in row(card, decay).note
    chance = "(iii) overlap stays above chance"
    assert counts(card, chance) == ("partly", 3, 4, (2, 3, 1))
    assert stats(card, chance) == pytest.approx((0.5, 22.5, 35.0))


def test_a_claim_that_fails_everywhere(tmp_path):
    rows = [overlap(0, t2, v, seed=s) for s in (0, 1) for t2, v in ((0, 1.0), (10, 0.2), (20, 0.4))]
    write(tmp_path, "overlaps", rows)
    card = scorecard(tmp_path)
    assert counts(card, "(iii) overlap decays with t2") == ("fails", 0, 2, (0, 2, 0))
    assert stats(card, "(iii) overlap decays with t2") == pytest.approx((0.2, 0.2, 0.2))
    assert counts(card, "(iii) overlap stays above chance") == ("holds", 2, 2, (2, 2, 0))


def test_critic_above_actor_and_precise_above_minibatch(tmp_path):
    rows = [frac(v, step=s) for s, v in enumerate((0.3, 0.5, 0.2))]
    rows += [frac(v, step=s, net="critic", n=2000, resolved=s != 2) for s, v in enumerate((0.6, 0.4, 0.9))]
    # the critic alone has k = 20: the nets are compared at k = 10, the mini-batch gradient at each net's largest k
    rows += [frac(v, step=s, net="critic", k=20, n=2000) for s, v in enumerate((0.7, 0.5, 0.95))]
    rows += [frac(v, step=s, gradient="minibatch", resolved=s != 1) for s, v in enumerate((0.1, 0.6, 0.1))]
    rows += [frac(v, step=s, net="critic", gradient="minibatch", k=20, n=2000) for s, v in enumerate((0.6, 0.6, 0.9))]
    write(tmp_path, "fractions", rows)
    card = scorecard(tmp_path)
    nets = "critic above actor"
    assert counts(card, nets) == ("partly", 2, 3, (1, 2, 1))
    assert stats(card, nets) == pytest.approx((-0.1, 0.3, 0.7))
    gradients = "precise gradient above mini-batch gradient"
    assert counts(card, gradients) == ("partly", 4, 6, (4, 5, 1))
    assert stats(card, gradients) == pytest.approx((-0.1, 0.075, 0.2))
    assert "by algo/net: ppo/actor 2 of 3, ppo/critic 2 of 3" in row(card, gradients).note


def test_sac_early_and_ppo_rise(tmp_path):
    rows = [
        frac(0.1, step=0), frac(0.3, step=1),  # task T, PPO seed 0: initial mean 0.2 ...
        frac(0.5, step=2, phase="training"), frac(0.7, step=3, phase="convergence"),  # ... later 0.6: rises
        frac(0.0, step=9, phase=None),  # no phase: not deciding
        frac(0.5, step=0, net="critic"), frac(0.4, step=1, net="critic", phase="training"),  # falls
        frac(0.4, step=0, seed=1), frac(0.2, step=1, seed=1, phase="training"),  # falls
        frac(0.6, algo="sac"), frac(0.8, algo="sac", seed=1), frac(0.6, step=1, algo="sac", seed=1),
        frac(0.5, task="B"), frac(0.4, task="B", algo="sac"),  # B: no later PPO phase; SAC below PPO
        frac(0.1, task="C"), frac(0.3, step=1, task="C", phase="convergence", resolved=False),  # C: no SAC
    ]  # fmt: skip
    write(tmp_path, "fractions", rows)
    card = scorecard(tmp_path)
    early = "SAC actor above PPO actor early"
    assert counts(card, early) == ("partly", 1, 2, (1, 2, 0))
    # T: SAC (0.6 + 0.7) / 2 against PPO (0.2 + 0.4) / 2, means of seed means
    assert stats(card, early) == pytest.approx((-0.1, 0.125, 0.35))
    assert row(card, early).note == "tasks: B, T"
    rise = "PPO fraction rises after the initial phase"
    assert counts(card, rise) == ("partly", 2, 4, (1, 3, 1))
    assert stats(card, rise) == pytest.approx((-0.2, 0.05, 0.4))
    assert row(card, rise).note.startswith("1 (run, net) without checkpoints in both")


def test_claims_without_data_say_so(tmp_path):
    write(tmp_path, "fractions", [frac(0.5, phase=None), frac(0.5, net="critic", phase=None)])
    write(tmp_path, "spectra", [])  # header only
    card = scorecard(tmp_path)
    assert counts(card, "(ii) S_frac above chance") == ("holds", 2, 2, (2, 2, 0))
    for claim in (
        "(i) few large eigenvalues: full spectrum",
        "(i) few large eigenvalues: top-k decay",
        "(iii) overlap decays with t2",
        "(iii) overlap stays above chance",
        "SAC actor above PPO actor early",
        "PPO fraction rises after the initial phase",
        "precise gradient above mini-batch gradient",
    ):
        assert counts(card, claim) == ("no data", 0, 0, None), claim
        assert all(math.isnan(v) for v in stats(card, claim)), claim
    assert (scorecard(tmp_path / "missing").verdict == "no data").all()


def test_tables_without_accuracy_columns_are_refused(tmp_path):
    pd.DataFrame([frac(0.5)], columns=COLUMNS["fractions"]).drop(columns="resolved").to_csv(
        tmp_path / "fractions.csv", index=False
    )
    with pytest.raises(ValueError, match="fractions.csv: no column resolved"):
        scorecard(tmp_path)


def test_command_line_writes_csv_markdown_html(tmp_path, capsys):
    fraction_tables(tmp_path)
    out = tmp_path / "out"
    main([str(tmp_path), "--out", str(out / "scorecard.csv"), "--markdown", str(out / "scorecard.md"),
          "--html", str(out / "scorecard.html")])  # fmt: skip
    printed = capsys.readouterr().out
    assert "(ii) S_frac far above chance: partly, 3 of 7 (resolved: 2 of 5, 2 unresolved)" in printed
    assert "S_frac / (k/n): min 0.5, median 5, max 50" in printed
    card = pd.read_csv(out / "scorecard.csv")
    assert len(card) == 10 and list(card.verdict).count("no data") == 6
    far = card.set_index("claim").loc["(ii) S_frac far above chance"]
    assert (far.holds, far.total, far.holds_resolved, far.total_resolved) == (3, 7, 2, 5)
    markdown = (out / "scorecard.md").read_text()
    assert "| (ii) S_frac far above chance | partly | 3 of 7 | 2 of 5 | 2 |" in markdown
    assert "share of sum\\|lambda\\|" in markdown  # pipes in cells escaped
    html = (out / "scorecard.html").read_text()
    assert "<td>(ii) S_frac far above chance</td>" in html and "NA" not in html and "nan" not in html
