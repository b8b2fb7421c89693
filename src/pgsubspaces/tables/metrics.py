"""The paper's metrics (docs/reference.md §6-7): gradient subspace fraction, subspace overlap, training phases.

Symbols follow the paper: V_k holds the top-k eigenvectors as orthonormal columns, g is a gradient.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


def subspace_fraction(eigenvectors: np.ndarray, gradients: np.ndarray) -> float:
    """S_frac(P_k, g) = ||V_k^T g||^2 / ||g||^2, averaged over gradients given as rows.

    Args:
        eigenvectors: shape (n, k), orthonormal columns.
        gradients: shape (n,) or (m, n); for several (mini-batch) gradients the mean of the per-gradient
            fractions, as the original (not the fraction of the mean gradient).
    """
    g = np.atleast_2d(np.asarray(gradients, dtype=np.float64))
    v = np.asarray(eigenvectors, dtype=np.float64)
    projected = np.sum((g @ v) ** 2, axis=1)
    return float(np.mean(projected / np.sum(g**2, axis=1)))


def subspace_overlap(first: np.ndarray, second: np.ndarray) -> float:
    """S_overlap = ||V_1^T V_2||_F^2 / k for two (n, k) matrices of orthonormal columns."""
    if first.shape != second.shape:
        raise ValueError(f"subspaces of shapes {first.shape} and {second.shape}; expected equal (n, k)")
    product = np.asarray(first, dtype=np.float64).T @ np.asarray(second, dtype=np.float64)
    return float(np.sum(product**2) / first.shape[1])


def random_subspace_fraction(gradients: np.ndarray, k: int, rng: np.random.Generator) -> float:
    """The control: S_frac of the same gradients in a uniformly random k-dimensional subspace (mean k/n)."""
    g = np.atleast_2d(gradients)
    basis, _ = np.linalg.qr(rng.standard_normal((g.shape[1], k)))
    return subspace_fraction(basis, g)


def combined_order(actor_values: np.ndarray, critic_values: np.ndarray, k: int) -> list[tuple[str, int]]:
    """The original's "combined loss" merge: the top k of both descending lists by eigenvalue (ties go to
    the critic), as (network, index) pairs."""
    order: list[tuple[str, int]] = []
    i = j = 0
    while len(order) < k and (i < len(actor_values) or j < len(critic_values)):
        if i >= len(actor_values) or (j < len(critic_values) and critic_values[j] >= actor_values[i]):
            order.append(("critic", j))
            j += 1
        else:
            order.append(("actor", i))
            i += 1
    return order


def combined_eigenvectors(
    actor_values: np.ndarray, actor_vectors: np.ndarray, critic_values: np.ndarray, critic_vectors: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The combined subspace (``combined_order``), each vector zero-padded into [actor; critic] coordinates.

    Returns:
        eigenvalues (k,) descending and eigenvectors (n_actor + n_critic, k), orthonormal.
    """
    n_actor, n_critic = actor_vectors.shape[0], critic_vectors.shape[0]
    values, vectors = [], []
    for net, index in combined_order(actor_values, critic_values, k):
        column = np.zeros(n_actor + n_critic)
        if net == "critic":
            values.append(critic_values[index])
            column[n_actor:] = critic_vectors[:, index]
        else:
            values.append(actor_values[index])
            column[:n_actor] = actor_vectors[:, index]
        vectors.append(column)
    return np.array(values), np.stack(vectors, axis=1)


class Phases(NamedTuple):
    """Phase borders of one learning curve (env steps): initial is step <= end_initial, convergence is
    step >= start_convergence, training in between."""

    end_initial: float
    start_convergence: float

    def of(self, step: float) -> str:
        if step <= self.end_initial:
            return "initial"
        if step >= self.start_convergence:
            return "convergence"
        return "training"


def smoothed(steps: np.ndarray, values: np.ndarray, smoothing_steps: float) -> np.ndarray:
    """The original's moving mean: values[max(i-w, 0):i+w], w from the spacing of the first two points."""
    steps, values = np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64)
    w = max(int(round(smoothing_steps / (steps[1] - steps[0]))), 1) if len(steps) > 1 else 1
    return np.array([values[max(i - w, 0) : i + w].mean() for i in range(len(values))])


def training_phases(
    steps: np.ndarray,
    returns: np.ndarray,
    smoothing_steps: float,
    training_threshold: float,
    convergence_threshold: float,
) -> Phases:
    """The paper's phase criterion (paper section 4.2, docs/reference.md §7) on one seed's training-return curve.

    The curve is smoothed with a window of ``smoothing_steps`` (``smoothed``) and rescaled to
    rel_i = (s_i - s_0) / (max s - s_0). Training starts at the first rel > ``training_threshold``; convergence
    starts, inclusively, at the first index below ``convergence_threshold`` met going back from the (last)
    maximum, as the original's criterion.
    """
    steps = np.asarray(steps, dtype=np.float64)
    if len(steps) < 2:
        raise ValueError(f"a learning curve of {len(steps)} points has no phases")
    smooth = smoothed(steps, returns, smoothing_steps)
    span = smooth.max() - smooth[0]
    relative = (smooth - smooth[0]) / span if span > 0 else np.zeros_like(smooth)
    above = np.nonzero(relative > training_threshold)[0]
    start_training = above[0] if len(above) else len(steps) - 1
    end_initial = steps[start_training - 1] if start_training > 0 else steps[0] - 1
    index = len(relative) - 1 - int(np.argmax(relative[::-1]))  # the last maximum, reached from the end
    while index > 0 and relative[index] >= convergence_threshold:
        index -= 1
    return Phases(float(end_initial), float(steps[index]))
