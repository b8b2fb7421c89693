"""The path lens on real run files: its CLI's tables against a direct recomputation from ``/actor_path``,
the merge, the figures drawn from those tables and the phenomena check."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from path_runs import path_runs  # noqa: F401 (the session fixture)

from pgsubspaces.export.runfile import RunFile
from pgsubspaces.figures import figures
from pgsubspaces.figures.figures import CAPTIONS, FIGURE_TABLES, PATH_FIGURES, PPTB_FIGURES
from pgsubspaces.path import lens
from pgsubspaces.path.columns import PATH_TABLES
from pgsubspaces.path.findings import COLUMNS, path_findings
from pgsubspaces.path.layers import actor_layers
from pgsubspaces.path.svd import major_dimensionality, temporal_svd
from pgsubspaces.tables import tables

SETTINGS = {
    "periods": 3,
    "betas": [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99],
    "components": 8,
    "detour_top_fraction": 0.8,
    "histogram_bins": 40,
}


@pytest.fixture(scope="module")
def path_tables(path_runs, tmp_path_factory):  # noqa: F811
    """The lens's tables per run (through its command line) and merged."""
    base = tmp_path_factory.mktemp("path_tables")
    for algo in ("ppo", "sac"):
        lens.main(["--run", str(path_runs[algo]), "--out-dir", str(base / algo), "--settings", json.dumps(SETTINGS)])
    lens.main(["merge", str(base / "ppo"), str(base / "sac"), "--out-dir", str(base / "merged")])
    return base


def _read(folder, name):
    return pd.read_csv(folder / f"{name}.csv")


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_tables_equal_a_direct_recomputation(path_runs, path_tables, algo):  # noqa: F811
    with RunFile(path_runs[algo]) as run:
        params = run._read("actor_path/params").astype(np.float64)
        updates, steps = run._read("actor_path/updates"), run._read("actor_path/env_steps")
        layout = run.layout("actor")
    folder = path_tables / algo
    for name, columns in PATH_TABLES.items():
        frame = _read(folder, name)
        assert tuple(frame.columns) == columns and len(frame), name
        if "algo" in frame:
            assert set(frame.algo) == {algo} and set(frame.task) == {"Pendulum"} and set(frame.seed) == {0}
    layers = _read(folder, "path_layers")
    assert layers.n_params.sum() == layout.size and list(layers.layer) == ["layer1", "layer2", "layer3", "extra"]

    periods = _read(folder, "path_periods").set_index("period")
    n = len(updates)
    assert periods.loc["all", "n_snapshots"] == n and periods.loc["p3", "last_snapshot"] == n - 1
    assert periods.loc["p2", "first_snapshot"] == periods.loc["p1", "last_snapshot"]
    assert periods.loc["p2", "first_env_step"] == steps[periods.loc["p2", "first_snapshot"]]

    index = actor_layers(layout)[1].index  # layer 2: hidden -> hidden
    first, last = periods.loc["p2", ["first_snapshot", "last_snapshot"]]
    block = params[first : last + 1, index]
    apc = np.abs(np.diff(block, axis=0)).sum(axis=0)
    fpc = np.abs(block[-1] - block[0])
    stats = _read(folder, "parameter_stats").set_index(["layer", "period"]).loc[("layer2", "p2")]
    assert stats.n_params == index.size == 4160 and stats.n_snapshots == last - first + 1
    np.testing.assert_allclose(
        stats[["apc_q50", "apc_q95", "apc_max"]].astype(float), np.quantile(apc, [0.5, 0.95, 1]), rtol=1e-12
    )
    np.testing.assert_allclose(stats.fpc_mean, fpc.mean(), rtol=1e-12)
    top = np.argsort(-apc)[: int(np.ceil(0.8 * apc.size))]
    top = top[apc[top] > 0]  # SAC: dead units' parameters never move, not even in the upper 80 %
    detour = apc[top] / fpc[top]
    assert stats.detour_n + stats.detour_infinite == top.size
    np.testing.assert_allclose(stats.detour_q50, np.median(detour[np.isfinite(detour)]), rtol=1e-12)
    assert stats.barely_moving == pytest.approx(np.mean(apc <= 0.1 * np.median(apc)))

    hist = _read(folder, "parameter_hist")
    hist = hist[(hist.layer == "layer2") & (hist.period == "p2")]
    assert hist[hist.quantity == "apc"]["count"].sum() == 4160 and hist[hist.quantity == "apc"].cdf.iloc[-1] == 1
    assert hist[hist.quantity == "detour"]["count"].sum() == top.size

    u, s, _ = np.linalg.svd(block, full_matrices=False)  # uncentred
    dims = _read(folder, "dimensionality")
    dims = dims[(dims.layer == "layer2") & (dims.period == "p2")]
    np.testing.assert_array_equal(dims.D, major_dimensionality(s, SETTINGS["betas"]))
    assert set(dims.d) == {min(block.shape)}
    comps = _read(folder, "components")
    comps = comps[(comps.layer == "layer2") & (comps.period == "p2")].sort_values("k")
    np.testing.assert_allclose(comps.singular_value, s[:8], rtol=1e-10)
    np.testing.assert_allclose(comps.information, np.cumsum(s)[:8] / s.sum(), rtol=1e-12)
    travel = np.abs(u[-1, :8] - u[0, :8])  # the sign convention leaves |u_n - u_1| as it is
    np.testing.assert_allclose(comps.final_change, travel, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(comps.detour, np.abs(np.diff(u[:, :8], axis=0)).sum(axis=0) / travel, rtol=1e-6)

    curves = _read(folder, "component_curves")
    curves = curves[curves.layer == "layer2"]
    whole = temporal_svd(params[:, index]).u[:, :8]
    for k in range(1, 9):
        line = curves[curves.k == k].sort_values("snapshot")
        np.testing.assert_allclose(np.abs(line.u), np.abs(whole[:, k - 1]), rtol=1e-8, atol=1e-12)
        assert line.u.iloc[-1] >= line.u.iloc[0]  # the sign convention
        np.testing.assert_array_equal(line.actor_updates, updates)
        np.testing.assert_array_equal(line.env_step, steps)


def test_merge_concatenates_the_runs(path_tables):
    for name in PATH_TABLES:
        merged = _read(path_tables / "merged", name)
        assert len(merged) == len(_read(path_tables / "ppo", name)) + len(_read(path_tables / "sac", name))
    assert set(_read(path_tables / "merged", "components").algo) == {"ppo", "sac"}


def test_cli_refuses_bad_settings_and_runs_without_a_path(path_runs, tmp_path):  # noqa: F811
    command = [
        sys.executable,
        "-m",
        "pgsubspaces.path.lens",
        "--run",
        str(path_runs["ppo"]),
        "--out-dir",
        str(tmp_path),
    ]
    bad = subprocess.run([*command, "--settings", json.dumps({**SETTINGS, "betas": [0, 0.5]})], capture_output=True,
                         text=True)  # fmt: skip
    assert bad.returncode == 2 and "'betas' holds 0" in bad.stderr
    few = subprocess.run([*command, "--settings", json.dumps({**SETTINGS, "periods": 500})], capture_output=True,
                         text=True)  # fmt: skip
    assert few.returncode == 1 and "too few for 500 periods" in few.stderr and str(path_runs["ppo"]) in few.stderr
    command[command.index(str(path_runs["ppo"]))] = str(path_runs["plain"])
    none = subprocess.run([*command, "--settings", json.dumps(SETTINGS)], capture_output=True, text=True)
    assert none.returncode == 1 and "no '/actor_path'" in none.stderr and "every_updates" in none.stderr
    assert not list(tmp_path.iterdir())  # nothing written


def test_figures_render_from_the_real_tables(path_tables, tmp_path, monkeypatch):
    assert set(PATH_FIGURES) == set(FIGURE_TABLES) - set(PPTB_FIGURES) and set(FIGURE_TABLES) <= set(CAPTIONS)
    built = {}
    monkeypatch.setattr(figures, "save", lambda fig, pdf: built.setdefault(pdf.stem, fig))
    for name in PATH_FIGURES:
        figures.main([name, "--tables", str(path_tables / "merged"), "--out", str(tmp_path / f"{name}.pdf")])
    fig1, fig2a, fig2b = (built[name] for name in ("path_fig1", "path_fig2a", "path_fig2b"))
    hist = _read(path_tables / "merged", "parameter_hist")
    apc = hist[(hist.algo == "ppo") & (hist.layer == "layer2") & (hist.period == "all") & (hist.quantity == "apc")]
    panel = fig1.axes[1]  # PPO, layer 2, apc (the CDF twins come after the grid's axes)
    assert "PPO" in panel.get_title() and "layer 2" in panel.get_title()
    np.testing.assert_allclose([bar.get_height() for bar in panel.patches], apc["count"])
    dims = _read(path_tables / "merged", "dimensionality")
    late = dims[(dims.algo == "sac") & (dims.layer == "layer1") & (dims.period == "p3")]
    lines = {line.get_label(): line for line in fig2a.axes[3].get_lines()}  # SAC, layer 1
    np.testing.assert_allclose(lines["late"].get_ydata(), late.D)
    curves = _read(path_tables / "merged", "component_curves")
    first = curves[(curves.algo == "ppo") & (curves.layer == "layer1") & (curves.k == 1)]
    u_panel = fig2b.axes[3]  # PPO's second row: u_{*,k} of layer 1
    np.testing.assert_allclose(u_panel.get_lines()[0].get_ydata(), first.u)
    monkeypatch.undo()
    figures.main(["path_fig2b", "--tables", str(path_tables / "merged"), "--out", str(tmp_path / "f.pdf")])
    assert (tmp_path / "f.pdf").stat().st_size > 0 and (tmp_path / "f.png").stat().st_size > 0


def test_figures_without_path_tables_say_so(path_tables, tmp_path, monkeypatch):
    built = {}
    monkeypatch.setattr(figures, "save", lambda fig, pdf: built.setdefault(pdf.stem, fig))
    only = path_tables / "merged" / "components.csv"
    figures.main(["path_fig2b", "--tables", str(only), "--out", str(tmp_path / "x.pdf")])
    assert "no policy-path tables" in built["x"].axes[0].texts[0].get_text()


def test_findings_print_the_numbers_of_the_tables(path_tables, tmp_path, capsys):
    tables.main(["path-findings", str(path_tables / "merged"), "--out", str(tmp_path / "findings.csv")])
    printed = capsys.readouterr().out
    findings = pd.read_csv(tmp_path / "findings.csv")
    assert tuple(findings.columns) == COLUMNS
    phenomena = set(findings.phenomenon)
    assert {"1.1 apc very unequal", "1.2 severe detours", "2.1 information in few directions"} <= phenomena
    assert {"2.2 u1 almost monotone", "2.2 detour rises with k"} <= phenomena
    stats = _read(path_tables / "merged", "parameter_stats")
    for algo in ("ppo", "sac"):
        row = stats[(stats.algo == algo) & (stats.layer == "layer2") & (stats.period == "all")].iloc[0]
        found = findings[(findings.algo == algo) & (findings.layer == "layer2") & (findings.measure == "barely_moving")]
        assert found.value.iloc[0] == pytest.approx(row.barely_moving)
        verdict = found.holds.iloc[0]
        layer3 = stats[(stats.algo == algo) & (stats.layer == "layer3") & (stats.period == "all")].iloc[0]
        assert verdict == (row.barely_moving >= 0.1 and layer3.barely_moving >= 0.1)
        assert f"{algo} Pendulum seed 0" in printed and f"barely_moving = {row.barely_moving:.4g}" in printed
    assert "holds" in printed


def test_findings_verdicts_follow_the_paths(tmp_path):
    """A monotone, rank-1 path: no detours anywhere (1.2 fails), one direction holds everything (2.1 holds)."""
    rng = np.random.default_rng(0)
    direction = rng.standard_normal(4 * 3 + 4 + 4 * 4 + 4 + 2 * 4 + 2)
    path = np.outer(1 + np.cumsum(rng.exponential(size=31)), direction)
    names = ("mu.0.weight", "mu.0.bias", "mu.2.weight", "mu.2.bias", "mu.4.weight", "mu.4.bias")
    shapes = ((4, 3), (4,), (4, 4), (4,), (2, 4), (2,))
    offsets = tuple(np.r_[0, np.cumsum([np.prod(s) for s in shapes])].astype(int).tolist())
    from pgsubspaces.train.parameters import ParameterLayout

    layers = actor_layers(ParameterLayout(names, shapes, offsets))
    actor_path = lens.ActorPath(("td3", "Synthetic", 3), np.arange(31) * 25, np.arange(31) * 100, path, layers, {})
    lens.write_tables(lens.path_tables(actor_path, lens.PathSettings.from_dict(SETTINGS)), tmp_path)
    verdicts = path_findings(tmp_path).groupby("phenomenon").holds.first()
    assert not verdicts["1.2 severe detours"] and verdicts["2.1 information in few directions"]
    assert not verdicts["1.1 apc very unequal"]
