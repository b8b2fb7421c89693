"""Top-k eigenpairs of both solver paths against an explicit Hessian (torch.func.hessian, then eigh)."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
import torch as th
from test_hessian import real_loss

from pgsubspaces.eigen import analyse
from pgsubspaces.eigensolvers import EigenConvergenceError, arpack, explicit, lanczos, residuals
from pgsubspaces.hessian import HessianOperator
from pgsubspaces.runfile import RunFileError
from pgsubspaces.spectrum import full_spectrum

K = 10


def reference(tiny_runs, algo, net):
    """All eigenpairs of the float64 Hessian built by torch.func.hessian, descending."""
    loss = real_loss(tiny_runs, algo, net, th.float64)
    hessian = th.func.hessian(loss.loss)(loss.theta0())
    values, vectors = th.linalg.eigh((hessian + hessian.T) / 2)
    return values.flip(0).numpy(), vectors.flip(1).numpy()


@pytest.mark.parametrize("algo", ["ppo", "sac"])
@pytest.mark.parametrize("net", ["actor", "critic"])
@pytest.mark.parametrize("dtype", [th.float32, th.float64])
@pytest.mark.parametrize("solver", [arpack, lanczos])
def test_top_eigenpairs_match_the_explicit_hessian(tiny_runs, algo, net, dtype, solver):
    values, vectors = reference(tiny_runs, algo, net)
    loss = real_loss(tiny_runs, algo, net, dtype)
    operator = HessianOperator(loss, loss.theta0(), chunk_size=300)
    result = solver(operator.matvec, operator.n, K, 1e-6 if dtype == th.float64 else 1e-4, dtype, "cpu")
    np.testing.assert_allclose(result.eigenvalues, values[:K], rtol=1e-4, atol=1e-4 * abs(values[0]))
    cosines = np.abs(vectors[:, :K].T @ result.eigenvectors.double().numpy()).diagonal()
    gaps = np.minimum(np.abs(np.diff(values[: K + 1]))[:K], np.abs(np.diff(values[:K], prepend=np.inf)))
    separated = gaps > 1e-3 * abs(values[0])
    assert separated.sum() >= 3
    assert np.all(cosines[separated] >= 0.999), cosines
    np.testing.assert_allclose(np.linalg.norm(result.eigenvectors.double().numpy(), axis=0), 1.0, atol=1e-5)
    assert result.max_relative_residual <= 1e-4
    true = residuals(operator.matvec, result.eigenvalues, result.eigenvectors)
    floor = (1e-12 if dtype == th.float64 else 1e-6) * abs(values[0])
    np.testing.assert_allclose(result.residuals, true, rtol=1e-2, atol=floor)


def test_explicit_solver_gives_every_eigenvalue(tiny_runs):
    values, _ = reference(tiny_runs, "ppo", "actor")
    loss = real_loss(tiny_runs, "ppo", "actor", th.float64)
    result = explicit(HessianOperator(loss, loss.theta0()).dense(), K)
    assert result.all_eigenvalues.shape == values.shape
    np.testing.assert_allclose(result.all_eigenvalues, values, atol=1e-9 * abs(values[0]))


def test_non_convergence_names_its_residuals(tiny_runs):
    loss = real_loss(tiny_runs, "ppo", "actor", th.float32)
    operator = HessianOperator(loss, loss.theta0())
    with pytest.raises(
        EigenConvergenceError,
        match=r"lanczos did not converge: max residual / max\|lambda\| = .* "
        r"after \d+ matvecs \(largest residuals: lambda_\d+=",
    ):
        lanczos(operator.matvec, operator.n, K, 1e-8, th.float32, "cpu", max_matvecs=K + 2)
    with pytest.raises(EigenConvergenceError, match="arpack"):
        arpack(operator.matvec, operator.n, K, 1e-8, th.float32, "cpu", maxiter=2)


def test_eigen_stage_writes_both_nets_and_refuses_corrupt_inputs(tiny_runs, tmp_path):
    run_path, data_path, step = tiny_runs["sac"]
    analyse(run_path, data_path, tmp_path / "eigen.h5", k=5, device="cpu")
    with h5py.File(tmp_path / "eigen.h5") as f:
        assert f.attrs["step"] == step and f.attrs["device"] == "cpu" and f.attrs["variant"] == "corrected"
        for net in ("actor", "critic"):
            values = f[f"{net}/precise/eigenvalues"][()]
            assert values.shape == (5,) and np.all(np.diff(values) <= 0)
            n = f[f"{net}/precise/gradient"].shape[0]
            assert f[f"{net}/precise/eigenvectors"].shape == (n, 5) and f[f"{net}/minibatch/eigenvectors"].shape == (
                n,
                5,
            )
            assert f[f"{net}/minibatch/gradients"].shape == (2048 // 256, n)
            assert f[f"{net}/precise"].attrs["max_relative_residual"] <= 1e-4
    for original in (data_path, run_path):
        broken = tmp_path / f"broken_{original.name}"
        data = original.read_bytes()
        broken.write_bytes(data[: len(data) // 3])
        paths = {
            "run_path": broken if original == run_path else run_path,
            "data_path": broken if original == data_path else data_path,
        }
        with pytest.raises(RunFileError, match=str(broken)):
            analyse(paths["run_path"], paths["data_path"], tmp_path / "never.h5", k=5, device="cpu")
    assert not (tmp_path / "never.h5").exists()
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_spectrum_file_holds_every_eigenvalue_and_refuses_large_networks(tiny_runs, tmp_path):
    run_path, data_path, step = tiny_runs["ppo"]
    full_spectrum(run_path, data_path, tmp_path / "spectrum.h5", dtype="float64", device="cpu", chunk_size=300)
    with h5py.File(tmp_path / "spectrum.h5") as f:
        assert f.attrs["step"] == step and f.attrs["format"] == "pgsubspaces-spectrum"
        for net in ("actor", "critic"):
            values, _ = reference(tiny_runs, "ppo", net)
            np.testing.assert_allclose(f[f"{net}/eigenvalues"][()], values, atol=1e-9 * abs(values[0]))
    with pytest.raises(ValueError, match=rf"{run_path}: the actor has \d+ parameters, above max_parameters = 10"):
        full_spectrum(run_path, data_path, tmp_path / "never.h5", max_parameters=10, device="cpu")
    assert not (tmp_path / "never.h5").exists()
