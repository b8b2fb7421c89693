"""Hessian-vector products of a ``FlatLoss`` over a whole dataset, chunk by chunk.

H v = sum_c (n_c / N) H_c v, H_c the Hessian of the mean loss over chunk c. For each chunk the gradient
graph (``create_graph=True``) is built once and reused by every matvec while a memory budget allows;
chunks beyond the budget rebuild theirs at every matvec. Measured on CPU (reference platform notes) this
is the fastest double-backward path and bounds memory; on any device the same code runs.
"""

from __future__ import annotations

import dataclasses
import time

import torch as th

from pgsubspaces.losses import FlatLoss


@dataclasses.dataclass
class _Chunk:
    start: int
    stop: int
    theta: th.Tensor | None = None  # the leaf the cached graph hangs on
    grad: th.Tensor | None = None  # its gradient, with graph


def graph_bytes(loss: FlatLoss, theta: th.Tensor, start: int, stop: int) -> tuple[th.Tensor, th.Tensor, int]:
    """Build one chunk's gradient graph and count the bytes of the tensors it saves for backward."""
    counted = 0

    def pack(tensor: th.Tensor) -> th.Tensor:
        nonlocal counted
        counted += tensor.numel() * tensor.element_size()
        return tensor

    leaf = theta.detach().clone().requires_grad_(True)
    with th.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        grad = th.autograd.grad(loss.chunk_loss(leaf, start, stop), leaf, create_graph=True)[0]
    return leaf, grad, counted


class HessianOperator:
    """The Hessian of ``loss`` at ``theta`` as a linear operator on flat vectors.

    Args:
        loss: the loss; its batch tensors must already be on the device and in the dtype wanted.
        theta: the flat parameters to take the Hessian at, shape (n,).
        chunk_size: samples per chunk (the graph of one chunk is the unit of memory).
        memory_budget: bytes of gradient graphs to keep alive across matvecs.

    Attributes:
        n: number of parameters. n_matvecs, seconds: work done by ``matvec`` so far.
        cached_chunks: how many chunks keep their graph.
    """

    def __init__(self, loss: FlatLoss, theta: th.Tensor, chunk_size: int = 8192, memory_budget: float = 2e9):
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        self.loss, self.theta = loss, theta.detach()
        self.n = theta.numel()
        n_samples = loss.n_samples
        bounds = list(range(0, n_samples, chunk_size)) + [n_samples]
        self.chunks = [_Chunk(a, b) for a, b in zip(bounds, bounds[1:])]
        self.weights = [(c.stop - c.start) / n_samples for c in self.chunks]
        self.n_matvecs, self.seconds = 0, 0.0
        self._gradient = th.zeros_like(self.theta)
        spent = 0.0
        for chunk, weight in zip(self.chunks, self.weights):
            leaf, grad, size = graph_bytes(loss, self.theta, chunk.start, chunk.stop)
            self._gradient += weight * grad.detach()
            if spent + size <= memory_budget:
                chunk.theta, chunk.grad = leaf, grad
                spent += size
        self.cached_chunks = sum(c.grad is not None for c in self.chunks)
        self.cached_bytes = spent

    @property
    def device(self) -> th.device:
        return self.theta.device

    @property
    def dtype(self) -> th.dtype:
        return self.theta.dtype

    def gradient(self) -> th.Tensor:
        """The gradient of the loss at theta, shape (n,)."""
        return self._gradient.clone()

    def matvec(self, v: th.Tensor) -> th.Tensor:
        """H v, shape (n,)."""
        started = time.perf_counter()
        v = v.to(device=self.device, dtype=self.dtype).reshape(-1)
        out = th.zeros_like(self.theta)
        for chunk, weight in zip(self.chunks, self.weights):
            if chunk.grad is not None:
                hv = th.autograd.grad(chunk.grad, chunk.theta, v, retain_graph=True)[0]
            else:
                leaf = self.theta.clone().requires_grad_(True)
                grad = th.autograd.grad(self.loss.chunk_loss(leaf, chunk.start, chunk.stop), leaf, create_graph=True)[0]
                hv = th.autograd.grad(grad, leaf, v)[0]
            out += weight * hv
        self.n_matvecs += 1
        self.seconds += time.perf_counter() - started
        return out.detach()

    def matmat(self, vectors: th.Tensor) -> th.Tensor:
        """H V for V of shape (n, m), column by column."""
        return th.stack([self.matvec(column) for column in vectors.T], dim=1)

    def dense(self, block: int = 256) -> th.Tensor:
        """The full n x n Hessian (n matvecs); only for small networks."""
        eye = th.eye(self.n, device=self.device, dtype=self.dtype)
        columns = [self.matmat(eye[:, i : i + block]) for i in range(0, self.n, block)]
        hessian = th.cat(columns, dim=1)
        return (hessian + hessian.T) / 2
