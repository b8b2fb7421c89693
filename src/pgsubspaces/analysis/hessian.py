"""Hessian-vector products of a ``FlatLoss`` over a whole dataset, chunk by chunk.

H v = sum_c (n_c / N) H_c v, H_c the Hessian of the mean loss over chunk c. For each chunk the gradient
graph (``create_graph=True``) is built once and reused by every matvec while a memory budget allows;
chunks beyond the budget rebuild theirs at every matvec. Measured on CPU (docs/reference.md P4) this
is the fastest double-backward path and bounds memory; on any device the same code runs.

On CPU, ``workers`` > 1 spreads the chunks of a matvec over that many threads, each running torch with one
thread: the per-chunk kernels are too small for torch's own threads to pay off (1.27x faster on 2 cores,
PPO actor, N = 1e6). Each worker rebuilds uncached graphs on its own copy of the loss module, since
``functional_call`` swaps a module's parameters in place.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import torch as th

from pgsubspaces.analysis.losses import FlatLoss, replica_of


@dataclasses.dataclass
class _Chunk:
    start: int
    stop: int
    theta: th.Tensor | None = None  # the leaf the cached graph hangs on
    grad: th.Tensor | None = None  # its gradient, with graph


def graph_bytes(loss: FlatLoss, theta: th.Tensor, start: int, stop: int) -> tuple[th.Tensor, th.Tensor, int]:
    """Build one chunk's gradient graph and count the bytes it keeps alive."""
    leaf = theta.detach().clone().requires_grad_(True)
    grad = th.autograd.grad(loss.chunk_loss(leaf, start, stop), leaf, create_graph=True)[0]
    outside = {tensor.untyped_storage().data_ptr() for tensor in (*loss.batch.values(), leaf)}
    return leaf, grad, saved_bytes(grad.grad_fn, outside)


def saved_bytes(root, outside: set[int]) -> int:
    """Bytes of the storages a graph saved for backward, each counted once (nodes share many: counting
    every saved tensor overstated the PPO actor's 2.4x), storages in ``outside`` not at all.

    Walks the nodes' ``_saved_*`` attributes rather than using saved-tensor hooks: a hook that keeps the
    tensor makes reference cycles, and graphs meant to be dropped then stay in memory until a gc pass.
    """
    seen, nodes, stack, counted = set(outside), set(), [root], 0
    while stack:
        node = stack.pop()
        if node is None or node in nodes:
            continue
        nodes.add(node)
        for name in dir(node):
            if name.startswith("_saved_"):
                value = getattr(node, name)
                for tensor in value if isinstance(value, (tuple, list)) else (value,):
                    if isinstance(tensor, th.Tensor) and tensor.untyped_storage().data_ptr() not in seen:
                        seen.add(tensor.untyped_storage().data_ptr())
                        counted += tensor.untyped_storage().nbytes()
        stack.extend(next_node for next_node, _ in node.next_functions)
    return counted


class HessianOperator:
    """The Hessian of ``loss`` at ``theta`` as a linear operator on flat vectors.

    Args:
        loss: the loss; its batch tensors must already be on the device and in the dtype wanted.
        theta: the flat parameters to take the Hessian at, shape (n,).
        chunk_size: samples per chunk (the graph of one chunk is the unit of memory).
        memory_budget: bytes of gradient graphs to keep alive across matvecs.
        workers: threads to spread a matvec's chunks over (CPU only; GPU kernels queue on one stream).

    Attributes:
        n: number of parameters. n_matvecs, seconds: work done by ``matvec`` so far.
        cached_chunks: how many chunks keep their graph.
    """

    def __init__(
        self,
        loss: FlatLoss,
        theta: th.Tensor,
        chunk_size: int,
        memory_budget: float = 0.0,
        workers: int = 1,
    ):
        if chunk_size < 1 or workers < 1:
            raise ValueError(f"chunk_size and workers must be positive, got {chunk_size} and {workers}")
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
        self.workers = workers if self.device.type == "cpu" and len(self.chunks) > 1 else 1
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(self.workers) if self.workers > 1 else None

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
        if self.workers == 1:
            products = [self._chunk_product(chunk, v, self.loss) for chunk in self.chunks]
        else:
            threads = th.get_num_threads()
            th.set_num_threads(1)
            try:
                products = list(self._pool.map(lambda c: self._chunk_product(c, v, self._replica()), self.chunks))
            finally:
                th.set_num_threads(threads)
        out = th.zeros_like(self.theta)
        for weight, hv in zip(self.weights, products):  # in chunk order: the same sum whatever the workers
            out += weight * hv
        self.n_matvecs += 1
        self.seconds += time.perf_counter() - started
        return out.detach()

    def _chunk_product(self, chunk: _Chunk, v: th.Tensor, loss: FlatLoss) -> th.Tensor:
        if chunk.grad is not None:
            return th.autograd.grad(chunk.grad, chunk.theta, v, retain_graph=True)[0]
        leaf = self.theta.clone().requires_grad_(True)
        grad = th.autograd.grad(loss.chunk_loss(leaf, chunk.start, chunk.stop), leaf, create_graph=True)[0]
        return th.autograd.grad(grad, leaf, v)[0]

    def _replica(self) -> FlatLoss:
        """This worker thread's copy of the loss: its own modules, the same batch tensors."""
        if not hasattr(self._local, "loss"):
            replica = copy.copy(self.loss)
            replica._modules = dict(self.loss._modules)  # its own dict, so the assignment below stays its own
            replica.policy = replica_of(self.loss.policy)
            self._local.loss = replica
        return self._local.loss

    def matmat(self, vectors: th.Tensor, batched: bool | None = None) -> th.Tensor:
        """H V for V of shape (n, m): column by column, or (``batched``) each chunk's backward once for the
        whole block (``is_grads_batched``, a vmap over the tangents). Batched is the default on CUDA only,
        where one wide kernel beats m narrow ones; on CPU the per-chunk kernels already fill the cores."""
        if batched is None:
            batched = self.device.type == "cuda"
        if not batched or vectors.shape[1] == 1:
            return th.stack([self.matvec(column) for column in vectors.T], dim=1)
        return self.block_product(vectors)

    def block_product(self, vectors: th.Tensor) -> th.Tensor:
        """H V, shape (n, m), with one batched backward per chunk (counts m products)."""
        started = time.perf_counter()
        block = vectors.to(device=self.device, dtype=self.dtype).T.contiguous()  # (m, n): one tangent per row
        out = th.zeros_like(block)
        for chunk, weight in zip(self.chunks, self.weights):
            if chunk.grad is not None:
                leaf, grad, keep = chunk.theta, chunk.grad, True
            else:
                leaf = self.theta.clone().requires_grad_(True)
                loss = self.loss.chunk_loss(leaf, chunk.start, chunk.stop)
                grad, keep = th.autograd.grad(loss, leaf, create_graph=True)[0], False
            out += weight * th.autograd.grad(grad, leaf, block, retain_graph=keep, is_grads_batched=True)[0]
        self.n_matvecs += block.shape[0]
        self.seconds += time.perf_counter() - started
        return out.T.detach()

    def dense(self, block: int = 256) -> th.Tensor:
        """The full n x n Hessian (n matvecs); only for small networks."""
        eye = th.eye(self.n, device=self.device, dtype=self.dtype)
        columns = [self.matmat(eye[:, i : i + block]) for i in range(0, self.n, block)]
        hessian = th.cat(columns, dim=1)
        return (hessian + hessian.T) / 2
