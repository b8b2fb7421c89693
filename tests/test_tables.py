"""The table layer against an oracle: every fraction, overlap and combined row of the smoke run recomputed
from its eigen files with plain numpy; the `original` variant end to end, showing its three defects."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest
from conftest import snakemake

from pgsubspaces import h5io
from pgsubspaces.analysis.eigen import FORMAT as EIGEN_FORMAT
from pgsubspaces.analysis.eigen import FORMAT_VERSION as EIGEN_VERSION

EIGEN = "results/smoke/eigen/{variant}/{algo}/Pendulum/seed0"
TABLES = "results/smoke/tables/{variant}"


def eigen_arrays(path):
    with h5py.File(path, "r") as f:
        out = {"step": int(f.attrs["step"]), "tol": float(f.attrs["subspace_tol"])}
        for net in ("actor", "critic"):
            for hessian in ("precise", "minibatch"):
                group = f[f"{net}/{hessian}"]
                out[net, hessian] = (group["eigenvalues"][()], group["eigenvectors"][()].astype(np.float64))
                out[net, hessian, "bounds"] = group["subspace_bounds"][()]
            out[net, "precise", "gradients"] = f[f"{net}/precise/gradient"][()][None].astype(np.float64)
            out[net, "minibatch", "gradients"] = f[f"{net}/minibatch/gradients"][()].astype(np.float64)
    return out


def oracle_subspace(e, net, hessian, k):
    """Top-k basis (and bound) written out independently of pgsubspaces.tables.metrics: for `combined`, sort the
    union of both eigenvalue lists descending (critic first on ties) and zero-pad."""
    if net != "combined":
        values, vectors = e[net, hessian]
        return vectors[:, :k], e[net, hessian, "bounds"][k - 1]
    (va, a), (vc, c) = e["actor", hessian], e["critic", hessian]
    entries = [(-v, 0, i, "critic") for i, v in enumerate(vc)] + [(-v, 1, i, "actor") for i, v in enumerate(va)]
    chosen = sorted(entries)[:k]
    basis = np.zeros((a.shape[0] + c.shape[0], k))
    for column, (_, _, i, which) in enumerate(chosen):
        if which == "actor":
            basis[: a.shape[0], column] = a[:, i]
        else:
            basis[a.shape[0] :, column] = c[:, i]
    used = {which: sum(w == which for *_, w in chosen) for which in ("actor", "critic")}
    bound = max(e[which, hessian, "bounds"][j - 1] for which, j in used.items() if j > 0)
    return basis, bound


def gradients(e, net, kind):
    if net == "combined":
        return np.hstack([e["actor", kind, "gradients"], e["critic", kind, "gradients"]])
    return e[net, kind, "gradients"]


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_fraction_and_overlap_rows_equal_a_numpy_oracle(smoke_workflow, algo):
    fractions = pd.read_csv(smoke_workflow / TABLES.format(variant="corrected") / "fractions.csv")
    overlaps = pd.read_csv(smoke_workflow / TABLES.format(variant="corrected") / "overlaps.csv")
    eigens = {}
    for path in sorted((smoke_workflow / EIGEN.format(variant="corrected", algo=algo)).glob("step*.h5")):
        e = eigen_arrays(path)
        eigens[e["step"]] = e
    rows = fractions[fractions.algo == algo]
    assert len(rows) == len(eigens) * 3 * 2 * 2 * 3  # steps x nets x hessians x gradients x k levels (1, 5, 10)
    for row in rows.itertuples():
        e = eigens[row.step]
        basis, bound = oracle_subspace(e, row.net, row.hessian, row.k)
        g = gradients(e, row.net, row.gradient)
        expected = np.mean(np.sum((g @ basis) ** 2, axis=1) / np.sum(g**2, axis=1))
        assert row.fraction == pytest.approx(expected, rel=1e-6), row
        assert row.n_params == g.shape[1] and row.chance == pytest.approx(row.k / g.shape[1])
        assert row.subspace_bound == pytest.approx(bound, rel=1e-12) and row.resolved == (bound <= e["tol"])
    rows = overlaps[overlaps.algo == algo]
    assert len(rows) > 0
    for row in rows.itertuples():
        first, bound1 = oracle_subspace(eigens[row.t1], row.net, "precise", row.k)
        second, bound2 = oracle_subspace(eigens[row.t2], row.net, "precise", row.k)
        expected = 1.0 if row.t1 == row.t2 else np.sum((first.T @ second) ** 2) / row.k
        assert row.overlap == pytest.approx(expected, rel=1e-6), row
        assert row.chance == pytest.approx(row.k / first.shape[0])
        expected_bound = 0.0 if row.t1 == row.t2 else min(1.0, bound1 + bound2)
        assert row.subspace_bound == pytest.approx(expected_bound, rel=1e-12, abs=1e-15)


def test_fractions_carry_the_phase_of_their_checkpoint(smoke_workflow):
    folder = smoke_workflow / TABLES.format(variant="corrected")
    fractions, phases = pd.read_csv(folder / "fractions.csv"), pd.read_csv(folder / "phases.csv")
    for phase in phases.itertuples():
        rows = fractions[(fractions.algo == phase.algo) & (fractions.seed == phase.seed)]
        expected = np.where(
            rows.step <= phase.end_initial,
            "initial",
            np.where(rows.step >= phase.start_convergence, "convergence", "training"),
        )
        assert list(rows.phase) == list(expected)
        counts = rows.drop_duplicates("step").phase.value_counts()
        assert [counts.get(p, 0) for p in ("initial", "training", "convergence")] == [
            phase.n_initial,
            phase.n_training,
            phase.n_convergence,
        ]


@pytest.fixture(scope="module")
def original_variant(smoke_workflow):
    (smoke_workflow / "original.yaml").write_text("analysis: {variant: original}\n")
    snakemake(
        smoke_workflow,
        "results/smoke/tables/original/fractions.csv",
        "--cores",
        "2",
        "--configfile",
        "config/smoke.yaml",
        "original.yaml",
    )
    return smoke_workflow


def data_and_eigen(workdir, variant, algo, step):
    name = f"step{step:09d}.h5"
    data = workdir / EIGEN.format(variant=variant, algo=algo).replace("/eigen/", "/data/") / name
    with h5py.File(data, "r") as f:
        arrays = {}
        for group in ("precise", "minibatch"):
            for key, value in f[group].items():
                if isinstance(value, h5py.Dataset):
                    arrays[f"{group}/{key}"] = value[()]
    with h5py.File(workdir / EIGEN.format(variant=variant, algo=algo) / name, "r") as f:
        grads = {net: f[f"{net}/precise/gradient"][()] for net in ("actor", "critic")}
        grads["actor_values"] = f["actor/precise/eigenvalues"][()]
    return arrays, grads


def test_the_original_variant_shows_its_three_defects(original_variant):
    """docs/reference.md §12 items 4-6, each where it must show and nowhere else."""
    # 6: the PPO mini-batch rollout's GAE with lambda 1, gamma 0.99: the same samples, other advantages;
    # the precise set and its Hessian are untouched
    for step in (512, 2048):
        ours, ours_eigen = data_and_eigen(original_variant, "corrected", "ppo", step)
        theirs, theirs_eigen = data_and_eigen(original_variant, "original", "ppo", step)
        for key in ours:
            same = np.array_equal(ours[key], theirs[key])
            assert same == (key not in ("minibatch/advantages", "minibatch/returns")), key
        np.testing.assert_array_equal(ours_eigen["actor_values"], theirs_eigen["actor_values"])
    # 4: the SAC actor loss without the Q gradient: another actor gradient at every checkpoint
    # 5: truncations as terminations: the critic differs once the buffer holds a truncation (Pendulum
    #    truncates at 200 steps: none in the 149 transitions at step 150, one at 300 and two at 600)
    for step, truncated in ((150, False), (300, True), (600, True)):
        ours, ours_grad = data_and_eigen(original_variant, "corrected", "sac", step)
        theirs, theirs_grad = data_and_eigen(original_variant, "original", "sac", step)
        assert all(np.array_equal(ours[key], theirs[key]) for key in ours)  # the same samples and noise
        assert not np.allclose(ours_grad["actor"], theirs_grad["actor"], rtol=1e-3)
        assert np.array_equal(ours_grad["critic"], theirs_grad["critic"]) != truncated, step


def test_each_checkpoint_has_its_own_analysis_seed(smoke_workflow):
    """PPO's checkpoint at 512 is taken before the first update, so it holds step 0's policy: only the seed,
    derived from (analysis seed, run seed, step), tells their samples apart (docs/hdf5.md, "Seeds")."""
    from pgsubspaces.config import sample_seed
    from pgsubspaces.export.runfile import RunFile

    with RunFile(smoke_workflow / "results/smoke/runs/ppo/Pendulum/seed0.h5") as run:
        np.testing.assert_array_equal(run.vector(0, "actor"), run.vector(512, "actor"))
    folder = smoke_workflow / EIGEN.format(variant="corrected", algo="ppo").replace("/eigen/", "/data/")
    observations = {}
    for step in (0, 512):
        with h5py.File(folder / f"step{step:09d}.h5", "r") as f:
            assert f.attrs["seed"] == sample_seed(0, 0, step)
            observations[step] = f["precise/observations"][()]
    assert observations[0].shape == observations[512].shape
    assert not np.allclose(observations[0][1:], observations[512][1:])


def test_an_unresolved_subspace_is_marked_in_the_file_the_log_and_the_tables(tmp_path, caplog):
    """Issue 11's operator (five outliers over a flat bulk, k = 20) through the eigen stage's writer and the
    tables: the top-5 subspace is resolved, the top-20 one is not, and each layer says so."""
    import logging
    from types import SimpleNamespace

    import torch as th
    from test_eigensolvers import issue_spectrum, synthetic

    from pgsubspaces.analysis.eigen import _log_result, _write_result
    from pgsubspaces.analysis.eigensolvers import lanczos
    from pgsubspaces.tables.tables import EigenFile, fraction_rows

    matvec, values, basis = synthetic(issue_spectrum(), th.float32)
    result = lanczos(matvec, len(values), 20, 1e-4, th.float32, "cpu", subspace_tol=0.1, guard=5, levels=(1, 5, 20))
    true_overlap = np.sum((basis[:, :20].T @ result.eigenvectors.double().numpy()) ** 2) / 20
    assert true_overlap < 0.99 and result.unresolved_levels() == [20]  # wrong, and flagged
    operator = SimpleNamespace(loss=SimpleNamespace(n_samples=1), cached_chunks=1, chunks=[0])
    path = tmp_path / "eigen.h5"
    with h5io.write_h5(path) as f, caplog.at_level(logging.WARNING, logger="pgsubspaces.analysis.eigen"):
        f.attrs.update(step=1000, subspace_tol=0.1, format=EIGEN_FORMAT, format_version=EIGEN_VERSION)
        for net in ("actor", "critic"):
            for hessian in ("precise", "minibatch"):
                _write_result(f.create_group(f"{net}/{hessian}"), result, operator)
                _log_result(1000, net, hessian, result)
            g = np.random.default_rng(0).standard_normal(len(values))
            h5io.create_dataset(f, f"{net}/precise/gradient", g)
            h5io.create_dataset(f, f"{net}/minibatch/gradients", g[None])
    assert "actor precise: top-k subspace NOT resolved to subspace_tol 0.1 at k=20" in caplog.text
    with h5py.File(path, "r") as f:
        assert list(f["actor/precise"].attrs["unresolved_levels"]) == [20]
        assert f["actor/precise"].attrs["stop_reason"] in ("gap-limited", "budget")
    rows = pd.DataFrame(
        fraction_rows(("x", "T", 0), EigenFile(path), (5, 20), "", np.random.default_rng(0)),
        columns=["algo", "task", "seed", "step", "phase", "net", "gradient", "hessian", "k", "n_params"]
        + ["fraction", "chance", "random_control", "subspace_bound", "resolved"],
    )
    assert set(rows[rows.k == 5].resolved) == {True} and set(rows[rows.k == 20].resolved) == {False}
    assert (rows[rows.k == 20].subspace_bound > 0.1).all()
