"""The smoke config through Snakemake: training and export of PPO and SAC, checked against SB3 itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from conftest import REPO, BufferSnapshots

from pgsubspaces.analysis.hessian import HessianOperator
from pgsubspaces.config import load_config, run_specs, validate_config
from pgsubspaces.export.runfile import RunFile, build_policy
from pgsubspaces.train.agents import algorithm_class, new_agent
from pgsubspaces.train.checkpoints import checkpoint_dir
from pgsubspaces.train.envs import make_vec_env

SPECS = run_specs(validate_config(load_config(REPO / "config" / "smoke.yaml")))


def run_file(workdir, algo):
    return RunFile(workdir / f"results/smoke/runs/{algo}/Pendulum/seed0.h5")


def observations(run: RunFile, n: int = 256) -> np.ndarray:
    space = run.space("observation")
    rng = np.random.default_rng(0)
    return rng.uniform(np.maximum(space.low, -5), np.minimum(space.high, 5), size=(n, *space.shape)).astype(np.float32)


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_export_holds_every_checkpoint_of_the_grid(smoke_workflow, algo):
    with run_file(smoke_workflow, algo) as run:
        assert run.steps.tolist() == list(SPECS[algo, "Pendulum", 0].checkpoint_steps)
        assert run.attrs["algo"] == algo and run.attrs["env_id"] == "Pendulum-v1" and run.attrs["seed"] == 0
        assert run.config("hyperparameters") == SPECS[algo, "Pendulum", 0].hyperparameters


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_flat_vectors_rebuild_the_saved_policy_exactly(smoke_workflow, algo):
    """Actions and values of a policy rebuilt from the HDF5 vectors equal those of SB3's own model zip."""
    th.set_num_threads(1)
    run_dir = smoke_workflow / f"results/smoke/runs/{algo}/Pendulum/seed0"
    with run_file(smoke_workflow, algo) as run:
        obs = observations(run)
        for step in run.steps.tolist():
            saved = algorithm_class(algo).load(checkpoint_dir(run_dir, step) / "model.zip", device="cpu").policy
            rebuilt = build_policy(run, step)
            actions, _ = saved.predict(obs, deterministic=True)
            np.testing.assert_array_equal(rebuilt.predict(obs, deterministic=True)[0], actions)
            obs_t, act_t = th.as_tensor(obs), th.as_tensor(actions)
            with th.no_grad():
                if algo == "ppo":
                    np.testing.assert_array_equal(rebuilt.predict_values(obs_t), saved.predict_values(obs_t))
                else:
                    for ours, theirs in zip(rebuilt.critic(obs_t, act_t), saved.critic(obs_t, act_t)):
                        np.testing.assert_array_equal(ours, theirs)
                    for ours, theirs in zip(rebuilt.critic_target(obs_t, act_t), saved.critic_target(obs_t, act_t)):
                        np.testing.assert_array_equal(ours, theirs)
        assert not np.array_equal(run.vector(run.steps[-1], "actor"), run.vector(0, "actor"))  # it did train


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_training_equals_plain_sb3_with_the_same_seed(smoke_workflow, algo):
    """Same seed, same numbers: plain SB3 reproduces the exported actors, and SAC's buffer at each checkpoint."""
    th.set_num_threads(1)
    spec = SPECS[algo, "Pendulum", 0]
    model = new_agent(algo, make_vec_env(spec.env_id), spec.hyperparameters, spec.policy, spec.seed, "cpu")
    snapshots = BufferSnapshots(algo, spec.checkpoint_steps)
    model.learn(total_timesteps=spec.total_steps, callback=snapshots)
    with run_file(smoke_workflow, algo) as run:
        for step in spec.checkpoint_steps[1:]:
            np.testing.assert_array_equal(run.vector(step, "actor"), snapshots.actors[step])
            if algo == "sac":
                replay = run.replay(step)
                for field, theirs in snapshots.buffers[step].items():
                    np.testing.assert_array_equal(
                        replay[field], theirs.astype(replay[field].dtype), err_msg=f"{field} at {step}"
                    )
        if algo == "sac":
            # Pendulum truncates every 200 steps; SB3 bootstraps through those, so they are timeouts, not terminations
            final = run.replay(spec.total_steps)
            assert len(final["rewards"]) == spec.hyperparameters["buffer_size"]  # the 400-transition buffer wrapped
            assert final["timeouts"].sum() >= 1 and np.array_equal(final["timeouts"], final["dones"])
            assert len(run.replay(0)["rewards"]) == 0


def test_learning_curves_follow_the_episodes(smoke_workflow):
    """PPO on Pendulum: 200-step episodes, evaluations every 512 steps, rollouts of n_steps = 512."""
    with run_file(smoke_workflow, "ppo") as run:
        curves = run.curves()
    assert curves["eval/step"].tolist() == [0, 512, 1024, 1536, 2048]
    assert curves["episodes/step"].tolist() == list(range(200, 2001, 200))
    assert set(curves["episodes/length"].tolist()) == {200}
    assert curves["rollouts/step"].tolist() == [512, 1024, 1536, 2048]
    assert curves["rollouts/n_episodes"].tolist() == [2, 3, 2, 3]
    returns = curves["episodes/return"]
    np.testing.assert_allclose(
        curves["rollouts/mean_return"],
        [returns[0:2].mean(), returns[2:5].mean(), returns[5:7].mean(), returns[7:10].mean()],
    )
    assert np.all(curves["eval/mean_return"] < 0) and np.isnan(curves["eval/success_rate"]).all()


def deflated_top(operator: HessianOperator, vectors: th.Tensor) -> float:
    """A Ritz value (a lower bound) of the largest eigenvalue of H restricted to the complement of the
    columns of ``vectors``: ARPACK, so independent of the project's Lanczos."""
    import scipy.sparse.linalg as sla
    from threadpoolctl import threadpool_limits

    basis = th.linalg.qr(vectors)[0]

    def project(x: th.Tensor) -> th.Tensor:
        return x - basis @ (basis.T @ x)

    def matvec(x: np.ndarray) -> np.ndarray:
        return project(operator.matvec(project(th.as_tensor(x.reshape(-1))))).numpy()

    linear = sla.LinearOperator((operator.n, operator.n), matvec=matvec, dtype=np.float64)
    v0 = np.random.default_rng(0).standard_normal(operator.n)
    with threadpool_limits(limits=1, user_api="blas"):  # ARPACK's small BLAS calls: threads only contend
        return float(sla.eigsh(linear, k=1, which="LA", tol=1e-2, v0=v0, return_eigenvectors=False)[0])


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_eigen_files_hold_the_top_eigenpairs_of_every_checkpoint(smoke_workflow, algo):
    """The stored eigenpairs checked with fresh float64 Hessian-vector products (the eigen stage ran in float32):
    residuals within tol, orthonormal vectors, and nothing left above lambda_k outside their span."""
    import h5py

    from pgsubspaces.analysis.checkpoint_losses import checkpoint_loss, read_batches, to_tensors

    th.set_num_threads(1)
    spec = SPECS[algo, "Pendulum", 0]
    folder = smoke_workflow / f"results/smoke/eigen/corrected/{algo}/Pendulum/seed0"
    assert sorted(p.name for p in folder.iterdir()) == [f"step{s:09d}.h5" for s in spec.checkpoint_steps]
    with run_file(smoke_workflow, algo) as run:
        for step in spec.checkpoint_steps:
            with h5py.File(folder / f"step{step:09d}.h5") as f:
                assert f.attrs["step"] == step and f.attrs["k"] == 10 and f.attrs["solver"] == "lanczos"
                tol = float(f.attrs["tol"])
                batches = read_batches(run, smoke_workflow / f.attrs["data_file"])
                for net in ("actor", "critic"):
                    assert f[f"{net}/precise/gradient"].shape == (run.layout(net).size,)
                    for hessian, batch in (("precise", batches.precise), ("minibatch", batches.minibatch)):
                        where = f"step {step} {net} {hessian}"
                        tensors = to_tensors(batch, "cpu", th.float64)
                        loss = checkpoint_loss(run, step, net, tensors, "corrected", "cpu", th.float64)
                        operator = HessianOperator(loss, loss.theta0(), chunk_size=4096)
                        values = f[f"{net}/{hessian}/eigenvalues"][()]
                        vectors = th.as_tensor(f[f"{net}/{hessian}/eigenvectors"][()]).double()
                        assert vectors.shape == (run.layout(net).size, 10) and np.all(np.diff(values) <= 0), where
                        scale = np.abs(values).max()
                        products = operator.matmat(vectors)
                        residuals = th.linalg.vector_norm(products - vectors * th.as_tensor(values), dim=0) / scale
                        assert residuals.max() <= tol, (where, residuals)  # measured <= 1e-5
                        gram = vectors.T @ vectors
                        np.testing.assert_allclose(gram.numpy(), np.eye(10), rtol=0, atol=1e-4, err_msg=where)
                        top = deflated_top(operator, vectors)  # measured: at most 0.999 lambda_k
                        assert top <= values[-1] + tol * scale, (where, top, values[-1])


def check_single_network_rows(workdir, fractions, overlaps) -> None:
    """The actor and critic rows of the tables recomputed from the eigen files another way: projections on an
    orthonormalised basis (QR), and overlaps as mean squared cosines of the principal angles."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):  # small factorisations: threads only contend
        _check_single_network_rows(workdir, fractions, overlaps)


def _check_single_network_rows(workdir, fractions, overlaps) -> None:
    import h5py
    from scipy.linalg import subspace_angles

    cache = {}

    def eigen(algo, step, net):
        if (algo, step, net) not in cache:
            path = workdir / f"results/smoke/eigen/corrected/{algo}/Pendulum/seed0/step{step:09d}.h5"
            with h5py.File(path) as f:
                cache[algo, step, net] = {
                    hessian: f[f"{net}/{hessian}/eigenvectors"][()].astype(np.float64)
                    for hessian in ("precise", "minibatch")
                }
                cache[algo, step, net]["orthonormal"] = {  # Q's first k columns span the first k vectors
                    hessian: np.linalg.qr(cache[algo, step, net][hessian])[0] for hessian in ("precise", "minibatch")
                }
                cache[algo, step, net]["gradients"] = {
                    "precise": np.atleast_2d(f[f"{net}/precise/gradient"][()]).astype(np.float64),
                    "minibatch": f[f"{net}/minibatch/gradients"][()].astype(np.float64),
                }
        return cache[algo, step, net]

    rows = fractions[fractions.net != "combined"]
    assert len(rows) == 2 * 4 * 2 * 2 * 3 * 2  # algos, steps, nets, Hessians, k, gradients
    for row in rows.itertuples():
        stored = eigen(row.algo, row.step, row.net)
        basis = stored["orthonormal"][row.hessian][:, : row.k]
        g = stored["gradients"][row.gradient]
        expected = np.mean(np.sum((g @ basis) ** 2, axis=1) / np.sum(g**2, axis=1))
        assert abs(row.fraction - expected) <= 1e-5, row
    rows = overlaps[overlaps.net != "combined"]
    assert (rows.t1 != rows.t2).sum() >= 2 * 2 * 3 * 2  # algos, nets, k, at least two later checkpoints
    for row in rows.itertuples():
        first = eigen(row.algo, row.t1, row.net)["precise"][:, : row.k]
        second = eigen(row.algo, row.t2, row.net)["precise"][:, : row.k]
        expected = np.mean(np.cos(subspace_angles(first, second)) ** 2)
        assert abs(row.overlap - expected) <= 1e-5, row


def test_tables_cover_every_checkpoint(smoke_workflow):
    import pandas as pd

    folder = smoke_workflow / "results/smoke/tables/corrected"
    fractions = pd.read_csv(folder / "fractions.csv")
    for algo in ("ppo", "sac"):
        steps = set(fractions[fractions.algo == algo].step)
        assert steps == set(SPECS[algo, "Pendulum", 0].checkpoint_steps)
    assert set(fractions.k) == {1, 5, 10} and set(fractions.net) == {"actor", "critic", "combined"}
    assert fractions.fraction.between(0, 1 + 1e-5).all()  # float32 eigenvectors
    for (algo, net), n_params in fractions.groupby(["algo", "net"]).n_params.unique().items():
        with run_file(smoke_workflow, algo) as run:
            sizes = {name: run.layout(name).size for name in ("actor", "critic")}
        assert n_params.tolist() == [sizes[net] if net in sizes else sum(sizes.values())], (algo, net)
    np.testing.assert_allclose(fractions.chance, fractions.k / fractions.n_params)
    overlaps = pd.read_csv(folder / "overlaps.csv")
    assert overlaps.overlap.between(0, 1 + 1e-5).all() and (overlaps.t2 >= overlaps.t1).all()
    check_single_network_rows(smoke_workflow, fractions, overlaps)
    assert set(overlaps.t1) == {0, 150, 512}  # the configured t1 that lie on a grid
    phases = pd.read_csv(folder / "phases.csv")
    assert len(phases) == 2
    assert (phases[["n_initial", "n_training", "n_convergence"]].sum(axis=1) == 4).all()
    spectra = pd.read_csv(folder / "spectra.csv")
    last = SPECS["ppo", "Pendulum", 0].checkpoint_steps[-1]
    for net, n_params in fractions[fractions.algo == "ppo"].groupby("net").n_params.first().items():
        if net == "combined":
            continue
        at = spectra[(spectra.algo == "ppo") & (spectra.step == last) & (spectra.net == net)]
        full = at[at.kind == "all"].eigenvalue.to_numpy()  # the spectrum rule: every eigenvalue
        top = at[(at.kind == "top_k") & (at.hessian == "precise")].eigenvalue.to_numpy()  # Lanczos
        assert len(full) == n_params and np.all(np.diff(full) <= 0) and len(top) == 10
        np.testing.assert_allclose(top, full[:10], rtol=1e-3, atol=1e-4 * abs(full[0]))
    curves = pd.read_csv(folder / "curves.csv")
    with run_file(smoke_workflow, "ppo") as run:
        evals = curves[(curves.algo == "ppo") & (curves.curve == "eval")]
        np.testing.assert_allclose(evals.value, run.curves()["eval/mean_return"])


def dry_run_jobs(workdir, *targets) -> dict[str, int]:
    """Job counts per rule of a dry run with the smoke config."""
    from conftest import job_counts, snakemake

    return job_counts(snakemake(workdir, *targets, "-n", "--configfile", "config/smoke.yaml").stdout)


def test_only_what_depends_on_a_change_reruns(smoke_workflow):
    figure = smoke_workflow / "figures/smoke/fig3_overlap.pdf"
    assert figure.exists() and (smoke_workflow / "figures/smoke/fig3_overlap.png").exists()
    assert dry_run_jobs(smoke_workflow) == {}  # everything is cached
    figure.unlink()
    assert dry_run_jobs(smoke_workflow, "figures/smoke/fig3_overlap.pdf") == {"figure": 1}
    eigen = smoke_workflow / "results/smoke/eigen/corrected/sac/Pendulum/seed0/step000000300.h5"
    eigen.unlink()
    # that eigen job, its run's tables, the merge and every figure: not the data, not the other run
    assert dry_run_jobs(smoke_workflow) == {
        "eigen": 1,
        "run_tables": 1,
        "tables": 1,
        "scorecard": 1,
        "figure": 10,
        "all": 1,
    }
    from conftest import snakemake

    snakemake(smoke_workflow, "--cores", "2", "--configfile", "config/smoke.yaml")  # and the rerun restores them
    assert eigen.exists() and figure.exists() and dry_run_jobs(smoke_workflow) == {}


def test_report_holds_every_figure_and_table(smoke_workflow):
    from conftest import snakemake

    from pgsubspaces.figures.figures import FIGURES, PATH_FIGURES

    snakemake(smoke_workflow, "--configfile", "config/smoke.yaml", "--report", "report.html")
    html = (smoke_workflow / "report.html").read_text(errors="replace")
    figures = [name for name in FIGURES if name not in PATH_FIGURES]  # no path-lens rules yet
    missing = [name for name in (*figures, "fractions.csv", "spectra.csv") if name not in html]
    assert not missing, missing


def test_every_job_leaves_a_benchmark_and_the_stage_times_count_them(smoke_workflow):
    from pgsubspaces.tables.job_times import stage_times

    rows = {row["stage"]: row for row in stage_times(smoke_workflow / "logs/smoke/benchmarks")}
    eigen_files = list((smoke_workflow / "results/smoke/eigen").rglob("*.h5"))
    assert rows["eigen"]["jobs"] == len(eigen_files) == rows["data"]["jobs"] > 0  # a sample file per eigen job
    assert rows["train"]["jobs"] == rows["export"]["jobs"] == 2
    assert rows["figures"]["jobs"] == len(list((smoke_workflow / "figures/smoke").glob("*.pdf")))
    assert all(row["seconds"] > 0 and row["max_seconds"] <= row["seconds"] for row in rows.values())
    assert rows["train"]["max_rss_mb"] > 100  # a process that imported torch
