"""The cross-lens on real run files and real eigen files: its rows against an independent recomputation (numpy's
SVD, principal angles), the overlap's identities and chance level, refused inputs, the merge and the figures."""

from __future__ import annotations

import json
import logging
import re

import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.linalg
import torch as th
from conftest import REPO
from path_runs import path_runs  # noqa: F401 (the session fixture)

from pgsubspaces import h5io
from pgsubspaces.analysis.data import make_data
from pgsubspaces.analysis.eigen import analyse
from pgsubspaces.config import PATH_STAGES, AnalysisSpec, load_config, path_settings, validate_config
from pgsubspaces.export.runfile import RunFile
from pgsubspaces.figures import figures
from pgsubspaces.figures.figures import CAPTIONS, CHANCE_GID, FIGURE_TABLES, PATH_FIGURES, UNRESOLVED_GID
from pgsubspaces.path import crosslens
from pgsubspaces.path.columns import CROSSLENS_COLUMNS
from pgsubspaces.path.crosslens import CrossLensSettings, overlap_chance, path_window, subspace_overlap
from pgsubspaces.tables.metrics import subspace_fraction

# window 70: PPO step 1024 has 96 snapshots after it (W = 70), step 2048 has 64 (W = 64), step 4096 none
# (skipped); SAC step 150 has 90. The ranks' 100 is capped at the window's rank, the ks' 20 at the files' k = 8.
SETTINGS = {"window_snapshots": 70, "ranks": [1, 2, 4, 8, 100], "ks": [1, 4, 8, 20]}
STEPS = {"ppo": (1024, 2048, 4096), "sac": (150,)}
EIGEN_K = 8


@pytest.fixture(scope="module")
def eigen_files(path_runs, tmp_path_factory):  # noqa: F811
    """Real eigen files (k = 8) of the path runs' checkpoints, laid out as the workflow does."""
    th.set_num_threads(1)
    base = tmp_path_factory.mktemp("crosslens")
    spec = AnalysisSpec.from_settings({"k": EIGEN_K, "ppo_samples": 1000, "device": "cpu", "k_levels": [1, 2, 4, 8]})
    files = {}
    for algo, steps in STEPS.items():
        for step in steps:
            data = base / f"data/{algo}/step{step:09d}.h5"
            eigen = base / f"eigen/corrected/{algo}/Pendulum/seed0/step{step:09d}.h5"
            data.parent.mkdir(parents=True, exist_ok=True)
            eigen.parent.mkdir(parents=True, exist_ok=True)
            make_data(path_runs[algo], step, data, spec)
            analyse(path_runs[algo], data, eigen, spec)
            files[algo, step] = eigen
    return base, files


@pytest.fixture(scope="module")
def tables(path_runs, eigen_files):  # noqa: F811
    """crosslens.csv per run through the command line, and merged."""
    base, files = eigen_files
    for algo, steps in STEPS.items():
        crosslens.main(
            ["--run", str(path_runs[algo]), "--eigen", *(str(files[algo, s]) for s in steps),
             "--out", str(base / f"tables/{algo}/crosslens.csv"), "--settings", json.dumps(SETTINGS)]
        )  # fmt: skip
    merged = base / "tables/merged/crosslens.csv"
    crosslens.main(["merge", str(base / "tables/ppo/crosslens.csv"), str(base / "tables/sac/crosslens.csv"),
                    "--out", str(merged)])  # fmt: skip
    return base / "tables"


def test_settings_are_exactly_the_config_stage_and_refused_by_name(tmp_path):
    assert tuple(CrossLensSettings.__dataclass_fields__) == PATH_STAGES["crosslens"]
    config = validate_config(load_config(REPO / "config" / "smoke.yaml"))
    settings = CrossLensSettings.from_json(path_settings(config, "crosslens"))
    assert settings.window_snapshots >= 2 and all(k <= config["analysis"]["k"] for k in settings.ks)
    bad = {
        "window_snapshots": {**SETTINGS, "window_snapshots": 1},
        "ranks": {**SETTINGS, "ranks": []},
        "ks": {**SETTINGS, "ks": [4, 4]},
    }
    for key, values in bad.items():
        with pytest.raises(ValueError, match=f"'{key}'"):
            CrossLensSettings.from_dict(values)
    with pytest.raises(ValueError, match=r"missing \['ks'\], unknown \['k'\]"):
        CrossLensSettings.from_dict({"window_snapshots": 2, "ranks": [1], "k": [1]})
    # before any file is read: the run file does not exist, the error is the setting's
    with pytest.raises(SystemExit) as stop:
        crosslens.main(["--run", str(tmp_path / "none.h5"), "--eigen", str(tmp_path / "e.h5"), "--out",
                        str(tmp_path / "x.csv"), "--settings", json.dumps({**SETTINGS, "ranks": [0]})])  # fmt: skip
    assert stop.value.code == 2 and not list(tmp_path.iterdir())


def _random_basis(rng: np.random.Generator, n: int, r: int) -> np.ndarray:
    return np.linalg.qr(rng.standard_normal((n, r)))[0]


def test_overlap_is_one_for_contained_spaces_and_chance_for_random_ones(eigen_files):
    _, files = eigen_files
    with h5py.File(files["ppo", 1024]) as f:
        v = f["actor/precise/eigenvectors"][()].astype(np.float64)
    n, k = v.shape
    rng = np.random.default_rng(0)
    assert subspace_overlap(v, v) == pytest.approx(1, abs=1e-5)  # float32 Lanczos vectors: orthonormal to ~1e-6
    larger = np.linalg.qr(np.c_[v[:, :3], rng.standard_normal((n, 5))])[0]  # holds v_1..v_3
    assert subspace_overlap(v[:, :3], larger) == pytest.approx(1, abs=1e-5)
    assert subspace_overlap(larger, v[:, :3]) == pytest.approx(1, abs=1e-5)
    assert overlap_chance(8, 4, n) == pytest.approx(8 / n) and overlap_chance(2, 5, n) == pytest.approx(5 / n)
    # the real Hessian subspace against uniformly random r-spaces, and a random pair in a small space
    for basis, r in ((v, 4), (v[:, :2], 16), (_random_basis(rng, 30, 3), 5)):
        draws = np.array([subspace_overlap(basis, _random_basis(rng, basis.shape[0], r)) for _ in range(200)])
        error = draws.std(ddof=1) / np.sqrt(len(draws))
        expected = overlap_chance(basis.shape[1], r, basis.shape[0])
        assert abs(draws.mean() - expected) < 3 * error, (basis.shape, r, draws.mean(), expected, error)
    # and the share of a random displacement in V_k: k/n
    shares = np.array([subspace_fraction(v, rng.standard_normal(n)) for _ in range(200)])
    assert abs(shares.mean() - k / n) < 3 * shares.std(ddof=1) / np.sqrt(200)


def test_path_window_spans_its_displacements():
    rng = np.random.default_rng(1)
    theta, steps = rng.standard_normal(50), rng.standard_normal((6, 50))
    snapshots = theta + np.cumsum(steps, axis=0)
    window = path_window(theta, snapshots)
    assert window.rank == 6 and window.directions.shape == (50, 6)
    np.testing.assert_allclose(window.directions.T @ window.directions, np.eye(6), atol=1e-12)
    np.testing.assert_allclose(window.end, snapshots[-1] - theta)
    assert subspace_fraction(window.directions, window.end) == pytest.approx(1, abs=1e-12)
    rank_two = theta + np.outer(np.arange(1, 7), steps[0]) + np.outer(np.arange(6) % 2, steps[1])
    assert path_window(theta, rank_two).rank == 2


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_rows_equal_an_independent_recomputation(path_runs, eigen_files, tables, algo):  # noqa: F811
    _, files = eigen_files
    frame = pd.read_csv(tables / algo / "crosslens.csv", keep_default_na=False, na_values=[""])
    assert tuple(frame.columns) == CROSSLENS_COLUMNS
    assert set(frame.algo) == {algo} and set(frame.task) == {"Pendulum"} and set(frame.seed) == {0}
    assert set(frame.measure) == {"overlap", "hessian_fraction", "path_fraction"}
    with RunFile(path_runs[algo]) as run:
        params = run._read("actor_path/params").astype(np.float64)
        updates = run._read("actor_path/updates")
        n = run.layout("actor").size
        checkpoints = {s: (run.vector(s, "actor"), int(run.checkpoint_attrs(s)["actor_updates"])) for s in STEPS[algo]}
    analysed = [s for s in STEPS[algo] if (updates > checkpoints[s][1]).sum() >= 2]
    assert sorted(frame.step.unique()) == analysed  # PPO's last checkpoint has no path after it
    assert set(frame.n_params) == {n}
    for step in analysed:
        theta, actor_updates = checkpoints[step]
        if algo == "ppo":  # PPO's checkpoints fall on a snapshot: the clocks agree
            np.testing.assert_array_equal(params[np.nonzero(updates == actor_updates)[0][0]], theta)
        after = np.nonzero(updates > actor_updates)[0][: SETTINGS["window_snapshots"]]
        d = params[after] - theta.astype(np.float64)
        w = len(after)
        _, s, vt = np.linalg.svd(d, full_matrices=False)
        rows = frame[frame.step == step]
        assert set(rows.window_snapshots) == {w} and w == min(SETTINGS["window_snapshots"], len(after))
        assert sorted(rows.r.dropna().unique()) == [1, 2, 4, 8, w]  # 100 capped at rank(D) = W
        assert sorted(rows.k.dropna().unique()) == [1, 4, 8]  # 20 capped at the files' k
        path = rows[rows.measure == "path_fraction"].set_index("r")
        assert path.hessian.isna().all() and path.k.isna().all() and (path.subspace_bound == 0).all()
        assert path.loc[w, "value"] == pytest.approx(1, abs=1e-12)  # Delta is a row of D
        assert np.all(np.diff(path.sort_index().value) >= -1e-12)
        delta = d[-1]
        for r in (1, 2, 4, 8):
            expected = np.sum((vt[:r] @ delta) ** 2) / (delta @ delta)
            assert path.loc[r, "value"] == pytest.approx(expected, rel=1e-9)
            assert path.loc[r, "chance"] == pytest.approx(r / n)
        with h5py.File(files[algo, step]) as f:
            for hessian in ("precise", "minibatch"):
                v = f[f"actor/{hessian}/eigenvectors"][()].astype(np.float64)
                bounds = f[f"actor/{hessian}/subspace_bounds"][()]
                own = rows[rows.hessian == hessian]
                for k in (1, 4, 8):
                    fraction = own[(own.measure == "hessian_fraction") & (own.k == k)].iloc[0]
                    share = np.sum((v[:, :k].T @ delta) ** 2) / np.sum(delta**2)
                    assert fraction.value == pytest.approx(share, rel=1e-9) and np.isnan(fraction.r)
                    assert fraction.chance == pytest.approx(k / n)
                    for r in (1, 4, 8, w):
                        row = own[(own.measure == "overlap") & (own.k == k) & (own.r == r)].iloc[0]
                        cosines = np.cos(scipy.linalg.subspace_angles(v[:, :k], vt[:r].T))
                        # subspace_angles orthonormalises the float32 eigenvectors (~1e-6 off orthonormal)
                        assert row.value == pytest.approx(np.sum(cosines**2) / min(k, r), rel=1e-5, abs=1e-9)
                        assert row.chance == pytest.approx(max(k, r) / n)
                        assert row.subspace_bound == pytest.approx(bounds[k - 1]) and bool(row.resolved)
    values = frame.value.to_numpy()
    assert np.all((values >= 0) & (values <= 1 + 1e-5))  # float32 eigenvectors: ~1e-6 off orthonormal


def test_short_windows_are_skipped_with_a_reason(path_runs, eigen_files, tmp_path, caplog):  # noqa: F811
    _, files = eigen_files
    with caplog.at_level(logging.WARNING, logger="pgsubspaces.path.crosslens"):
        rows = crosslens.crosslens_rows(path_runs["ppo"], [files["ppo", 4096]], CrossLensSettings.from_dict(SETTINGS))
    assert rows == [] and "checkpoint step 4096: 0 path snapshot(s) after its 560 actor updates" in caplog.text
    assert str(files["ppo", 4096]) in caplog.text


def _rewritten(source, target, attrs=None, truncate=0):
    """A sealed copy of an eigen file with changed root attributes or the actor's eigenvectors cut short."""
    with h5py.File(source) as f, h5io.write_h5(target) as out:
        out.attrs.update({key: value for key, value in f.attrs.items() if key != h5io.DIGEST})
        out.attrs.update(attrs or {})

        def copy(name, obj):
            if isinstance(obj, h5py.Group):
                out.require_group(name)
            else:
                data = obj[()]
                if truncate and name.startswith("actor/") and name.endswith("eigenvectors"):
                    data = data[:-truncate]
                h5io.create_dataset(out, name, data)
            out[name].attrs.update(obj.attrs)

        f.visititems(copy)
    return target


def test_eigen_files_of_other_runs_or_layouts_are_refused(path_runs, eigen_files, tmp_path, capsys):  # noqa: F811
    _, files = eigen_files
    good = files["ppo", 1024]
    cases = {
        "sac": (files["sac", 150], r"\(algo, task, seed\) = \('sac', 'Pendulum', 0\), not of"),
        "seed": (_rewritten(good, tmp_path / "seed.h5", {"seed": 1}), r"= \('ppo', 'Pendulum', 1\), not of"),
        "layout": (_rewritten(good, tmp_path / "layout.h5", truncate=1), r"has shape \(4544, 8\).*4545 parameters"),
    }
    for name, (eigen, message) in cases.items():
        out = tmp_path / f"{name}.csv"
        with pytest.raises(SystemExit) as stop:
            crosslens.main(["--run", str(path_runs["ppo"]), "--eigen", str(good), str(eigen), "--out", str(out),
                            "--settings", json.dumps(SETTINGS)])  # fmt: skip
        error = capsys.readouterr().err
        assert stop.value.code == 1 and f"error: {eigen}:" in error, error
        assert re.search(message, error), error
        assert not out.exists()
    with pytest.raises(SystemExit):
        crosslens.main(["--run", str(path_runs["plain"]), "--eigen", str(good), "--out", str(tmp_path / "p.csv"),
                        "--settings", json.dumps(SETTINGS)])  # fmt: skip
    assert "no '/actor_path'" in capsys.readouterr().err


def test_merge_concatenates_the_runs(tables, tmp_path):
    merged = pd.read_csv(tables / "merged/crosslens.csv")
    parts = [pd.read_csv(tables / algo / "crosslens.csv") for algo in ("ppo", "sac")]
    assert len(merged) == sum(map(len, parts)) and list(merged.algo.unique()) == ["ppo", "sac"]
    (tmp_path / "bad.csv").write_text("algo,task\nppo,Pendulum\n")
    with pytest.raises(SystemExit):
        crosslens.main(["merge", str(tables / "ppo/crosslens.csv"), str(tmp_path / "bad.csv"), "--out",
                        str(tmp_path / "m.csv")])  # fmt: skip
    assert not (tmp_path / "m.csv").exists()


def test_figures_draw_the_table(tables, tmp_path, monkeypatch):
    names = ("crosslens_ppo", "crosslens_sac", "crosslens_td3")
    assert set(names) <= set(PATH_FIGURES) and set(names) <= set(CAPTIONS)
    assert all(FIGURE_TABLES[name] == ("crosslens",) for name in names)
    frame = pd.read_csv(tables / "merged/crosslens.csv")
    frame.loc[(frame.algo == "sac") & (frame.measure == "overlap") & (frame.k == 4), "resolved"] = False
    frame.to_csv(tmp_path / "crosslens.csv", index=False)
    built = {}
    monkeypatch.setattr(figures, "save", lambda fig, pdf: built.setdefault(pdf.stem, fig))
    for name in names:
        figures.main([name, "--tables", str(tmp_path / "crosslens.csv"), "--out", str(tmp_path / f"{name}.pdf")])
    top, bottom = built["crosslens_ppo"].axes[:2]
    lines = {line.get_label(): line for line in top.get_lines()}
    ppo = frame[(frame.algo == "ppo") & (frame.hessian == "precise")]
    expected = ppo[(ppo.measure == "overlap") & (ppo.k == 4) & (ppo.r == 4)].sort_values("step")
    np.testing.assert_allclose(lines["overlap, k = 4, r = 4"].get_ydata(), expected.value)
    np.testing.assert_allclose(lines["overlap, k = 4, r = 4"].get_xdata(), expected.step)
    assert "overlap, k = 8, r = 8" in lines and "overlap, k = 1, r = 1" in lines
    lines = {line.get_label(): line for line in bottom.get_lines()}
    path = frame[(frame.algo == "ppo") & (frame.measure == "path_fraction") & (frame.r == 2)].sort_values("step")
    np.testing.assert_allclose(lines["path $P_r$, r = 2"].get_ydata(), path.value)
    chances = {round(line.get_ydata()[0], 12) for line in bottom.get_lines() if line.get_gid() == CHANCE_GID}
    assert round(8 / 4545, 12) in chances and round(2 / 4545, 12) in chances
    assert not any(line.get_gid() == UNRESOLVED_GID for ax in built["crosslens_ppo"].axes for line in ax.get_lines())
    sac_top = built["crosslens_sac"].axes[0]
    hollow = [line for line in sac_top.get_lines() if line.get_gid() == UNRESOLVED_GID]
    assert len(hollow) == 1 and hollow[0].get_markerfacecolor() == "white"
    assert "no TD3 runs in crosslens.csv" in built["crosslens_td3"].axes[0].texts[0].get_text()
    figures.main(["crosslens_ppo", "--tables", str(tables / "ppo"), "--out", str(tmp_path / "x.pdf")])
    figures.main(["crosslens_ppo", "--tables", str(tmp_path / "none.csv"), "--out", str(tmp_path / "y.pdf")])
    assert "no policy-path tables" in built["y"].axes[0].texts[0].get_text()
