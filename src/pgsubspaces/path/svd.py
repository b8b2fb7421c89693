"""The temporal SVD of a policy path and its singular-value information (docs/path.md).

The path is stacked as rows, Theta = [theta_1; ...; theta_n] (n snapshots, m parameters), and decomposed
uncentred, as the policy-path paper does: Theta = U diag(s) Vt, s descending, d = min(n, m) components.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np


class TemporalSVD(NamedTuple):
    """Theta = u @ diag(s) @ vt.

    Attributes:
        u: (n, d): row i is snapshot i's coordinates in the basis of SVD directions.
        s: (d,): singular values, descending.
        vt: (d, m): the directions, orthonormal rows.
    """

    u: np.ndarray
    s: np.ndarray
    vt: np.ndarray

    def reconstruct(self, r: int) -> np.ndarray:
        """Every snapshot rebuilt from the first ``r`` directions, (n, m)."""
        return (self.u[:, :r] * self.s[:r]) @ self.vt[:r]


def temporal_svd(path: np.ndarray) -> TemporalSVD:
    """Thin SVD of the stacked path (n, m), in float64 (m may be ~1e5: the thin SVD costs O(n^2 m))."""
    theta = np.asarray(path, dtype=np.float64)
    if theta.ndim != 2 or min(theta.shape) == 0:
        raise ValueError(f"a path is a non-empty (snapshots, parameters) matrix; got shape {theta.shape}")
    u, s, vt = np.linalg.svd(theta, full_matrices=False)
    return TemporalSVD(u, s, vt)


def information(s: np.ndarray) -> np.ndarray:
    """a_k = sum_{i<=k} s_i / sum_i s_i for k = 1..d (sums of singular values, not of their squares)."""
    s = np.asarray(s, dtype=np.float64)
    total = s.sum()
    if not total > 0:
        raise ValueError("the path is all zeros: its singular values sum to 0")
    return np.cumsum(s) / total


def major_dimensionality(s: np.ndarray, betas: Sequence[float]) -> np.ndarray:
    """D(beta) = min{k : a_k >= beta} per beta (1-based; int64)."""
    a = information(s)
    # a_d is 1 up to rounding: clip so that beta = 1 gives d
    a[-1] = max(a[-1], 1.0)
    return np.array([int(np.searchsorted(a, beta - 1e-12 * beta) + 1) for beta in betas], dtype=np.int64)
