"""Chunked Hessian-vector products agree with one unchunked product and with torch.func.hessian."""

from __future__ import annotations

import ctypes
import gc

import numpy as np
import pytest
import torch as th

from pgsubspaces.analysis.checkpoint_losses import checkpoint_loss, read_batches, to_tensors
from pgsubspaces.analysis.eigensolvers import lanczos
from pgsubspaces.analysis.hessian import HessianOperator
from pgsubspaces.export.runfile import RunFile


def real_loss(tiny_runs, algo, net, dtype=th.float64):
    run_path, data_path, step = tiny_runs[algo]
    with RunFile(run_path) as run:
        precise = read_batches(run, data_path).precise
        return checkpoint_loss(run, step, net, to_tensors(precise, "cpu", dtype), "corrected", "cpu", dtype)


@pytest.mark.parametrize("algo", ["ppo", "sac", "td3"])
@pytest.mark.parametrize("net", ["actor", "critic"])
def test_chunked_products_equal_the_unchunked_one(tiny_runs, algo, net):
    loss = real_loss(tiny_runs, algo, net)
    theta = loss.theta0()
    n_samples = loss.n_samples
    whole = HessianOperator(loss, theta, chunk_size=n_samples)
    vectors = th.randn(whole.n, 3, generator=th.Generator().manual_seed(0), dtype=th.float64)
    reference = whole.matmat(vectors)
    # chunk sizes with a short last chunk, one sample per chunk at the edge, and graphs rebuilt every matvec
    # and two worker threads, over cached and rebuilt graphs at once
    cases = [(300, 2e9, 1), (7, 2e9, 1), (n_samples - 1, 2e9, 1), (128, 0.0, 1), (128, 3e5, 1), (128, 3e5, 2)]
    for chunk_size, budget, workers in cases:
        chunked = HessianOperator(loss, theta, chunk_size=chunk_size, memory_budget=budget, workers=workers)
        error = th.linalg.vector_norm(chunked.matmat(vectors) - reference) / th.linalg.vector_norm(reference)
        assert error < 1e-5, (chunk_size, budget, workers, float(error))
        np.testing.assert_allclose(chunked.gradient().numpy(), whole.gradient().numpy(), rtol=1e-7, atol=1e-12)
    assert HessianOperator(loss, theta, chunk_size=128, memory_budget=0.0).cached_chunks == 0


@pytest.mark.parametrize("algo", ["ppo", "sac", "td3"])
@pytest.mark.parametrize("dtype", [th.float32, th.float64])
def test_the_block_product_equals_column_by_column_products(tiny_runs, algo, dtype):
    """One batched backward per chunk for a block of tangents (the GPU path) against m single products."""
    for net in ("actor", "critic"):
        loss = real_loss(tiny_runs, algo, net, dtype)
        for budget in (2e9, 0.0):  # graphs cached, and rebuilt for the block
            operator = HessianOperator(loss, loss.theta0(), chunk_size=128, memory_budget=budget)
            vectors = th.randn(operator.n, 5, generator=th.Generator().manual_seed(1), dtype=dtype)
            columns = operator.matmat(vectors, batched=False)
            block = operator.matmat(vectors, batched=True)
            assert block.shape == columns.shape == (operator.n, 5) and block.dtype == dtype
            error = float(th.linalg.vector_norm(block - columns) / th.linalg.vector_norm(columns))
            assert error < (1e-5 if dtype == th.float32 else 1e-12), (net, budget, error)
            assert operator.n_matvecs == 10  # a block of m counts m products


@pytest.mark.parametrize("algo", ["ppo", "sac", "td3"])
def test_dense_hessian_equals_torch_func_hessian(tiny_runs, algo):
    loss = real_loss(tiny_runs, algo, "actor")
    theta = loss.theta0()
    explicit = th.func.hessian(loss.loss)(theta)
    dense = HessianOperator(loss, theta, chunk_size=300).dense(block=64)
    np.testing.assert_allclose(dense.numpy(), explicit.numpy(), rtol=1e-7, atol=1e-10 * float(explicit.abs().max()))


@pytest.mark.parametrize("net", ["actor", "critic"])
def test_td3_dense_hessian_and_lanczos_eigenpairs_equal_the_explicit_hessian(tiny_runs, net):
    """TD3's losses (SB3's, docs/reference.md §3.3) on a real [8, 8] checkpoint: the chunked operator's dense
    Hessian is torch.func.hessian's, and Lanczos finds eigh's top eigenpairs."""
    loss = real_loss(tiny_runs, "td3", net)
    theta = loss.theta0()
    assert theta.numel() == {"actor": 113, "critic": 242}[net]
    explicit = th.func.hessian(loss.loss)(theta)
    operator = HessianOperator(loss, theta, chunk_size=128)  # three chunks, the last one short
    dense = operator.dense(block=64)
    scale = float(explicit.abs().max())
    assert scale > 0
    np.testing.assert_allclose(dense.numpy(), explicit.numpy(), rtol=1e-7, atol=1e-10 * scale)
    if net == "critic":  # the two Q-networks' losses are separate: no coupling between their parameters
        half = theta.numel() // 2
        assert float(explicit[:half, half:].abs().max()) == 0.0 and float(explicit[:half, :half].abs().max()) > 0
    values, vectors = np.linalg.eigh(explicit.numpy())
    values, vectors = values[::-1], vectors[:, ::-1]
    k = 5
    result = lanczos(operator.matvec, operator.n, k, 1e-8, th.float64, "cpu", subspace_tol=0.1, guard=5, seed=0)
    np.testing.assert_allclose(result.eigenvalues, values[:k], rtol=1e-6, atol=1e-8 * abs(values[0]))
    gaps = np.minimum(np.abs(np.diff(values[: k + 1])), np.abs(np.diff(values[:k], prepend=np.inf)))
    separated = gaps > 1e-3 * abs(values[0])
    assert separated.sum() >= 3, values[: k + 1]
    cosines = np.abs(vectors[:, :k].T @ result.eigenvectors.numpy()).diagonal()
    assert np.all(cosines[separated] >= 0.9999), cosines


def test_float32_products_track_float64(tiny_runs):
    loss64 = real_loss(tiny_runs, "ppo", "actor", th.float64)
    loss32 = real_loss(tiny_runs, "ppo", "actor", th.float32)
    v = th.randn(loss64.theta0().numel(), generator=th.Generator().manual_seed(1), dtype=th.float64)
    hv64 = HessianOperator(loss64, loss64.theta0(), chunk_size=256).matvec(v)
    hv32 = HessianOperator(loss32, loss32.theta0(), chunk_size=256).matvec(v.float()).double()
    assert float(th.linalg.vector_norm(hv32 - hv64) / th.linalg.vector_norm(hv64)) < 1e-4


def _rss_bytes() -> int:
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap back, so that growth is new memory only
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))


def test_memory_budget_counts_the_memory_graphs_really_hold(tiny_runs):
    """The cached graphs' counted bytes match the resident memory they add (the budget is real memory)."""
    small = real_loss(tiny_runs, "ppo", "actor", th.float32)
    repeats = -(-100_000 // small.n_samples)
    batch = {key: value.repeat(repeats, *[1] * (value.dim() - 1)).contiguous() for key, value in small.batch.items()}
    small.batch = batch
    small.n_samples = len(batch["observations"])
    before = _rss_bytes()
    operator = HessianOperator(small, small.theta0(), chunk_size=25_000, memory_budget=1e12)
    grown = _rss_bytes() - before
    assert operator.cached_chunks == len(operator.chunks)
    assert 0.75 * grown <= operator.cached_bytes <= 1.25 * grown, (operator.cached_bytes, grown)
