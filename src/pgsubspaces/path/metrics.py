"""The policy-path paper's metrics of a path (docs/path.md): per-parameter changes and detours, and the
temporal SVD's components, their detours and final changes.

A path is a (snapshots, parameters) matrix, one row per recorded policy, in recording order.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from pgsubspaces.path.svd import TemporalSVD, temporal_svd

# A parameter "barely moves" when its accumulated change is at most this fraction of its layer's median
# accumulated change (over the same period): the measure of phenomenon 1.1 (docs/path.md).
BARELY_MOVING = 0.1


class Period(NamedTuple):
    """A stretch of the path: snapshots ``first..last`` inclusive."""

    label: str
    first: int
    last: int


def periods(n_snapshots: int, count: int) -> list[Period]:
    """``count`` consecutive periods ``p1 .. p<count>`` of near-equal length, then ``all``.

    Neighbouring periods share their border snapshot, so every step between two snapshots lies in exactly
    one period and the periods' accumulated changes add up to the whole path's.
    """
    if count < 1 or n_snapshots - 1 < count:
        raise ValueError(f"a path of {n_snapshots} snapshots has {n_snapshots - 1} steps, too few for {count} periods")
    borders = np.rint(np.linspace(0, n_snapshots - 1, count + 1)).astype(int)
    split = [Period(f"p{i + 1}", int(borders[i]), int(borders[i + 1])) for i in range(count)]
    return [*split, Period("all", 0, n_snapshots - 1)]


def accumulated_change(path: np.ndarray) -> np.ndarray:
    """Delta_apc = sum_i |theta_{i+1} - theta_i| per column, float64."""
    return np.abs(np.diff(np.asarray(path, dtype=np.float64), axis=0)).sum(axis=0)


def final_change(path: np.ndarray) -> np.ndarray:
    """Delta_fpc = |theta_n - theta_1| per column, float64."""
    path = np.asarray(path, dtype=np.float64)
    return np.abs(path[-1] - path[0])


def ratio(apc: np.ndarray, fpc: np.ndarray) -> np.ndarray:
    """apc / fpc; inf where fpc = 0 < apc (a round trip), nan where both are 0 (no movement)."""
    apc, fpc = np.asarray(apc, dtype=np.float64), np.asarray(fpc, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(fpc > 0, apc / np.where(fpc > 0, fpc, 1.0), np.where(apc > 0, np.inf, np.nan))


def detour_selection(apc: np.ndarray, top_fraction: float) -> np.ndarray:
    """Boolean mask of the parameters whose detour ratio is reported: the upper ``top_fraction`` by apc
    (the ceil(top_fraction * m) largest; ties at the border broken by position), never one with apc = 0."""
    if not 0 < top_fraction <= 1:
        raise ValueError(f"detour_top_fraction={top_fraction}; expected 0 < fraction <= 1")
    apc = np.asarray(apc, dtype=np.float64)
    keep = int(np.ceil(top_fraction * apc.size))
    mask = np.zeros(apc.size, dtype=bool)
    mask[np.argsort(-apc, kind="stable")[:keep]] = True
    return mask & (apc > 0)


def barely_moving(apc: np.ndarray) -> tuple[float, float]:
    """(share of parameters with apc <= BARELY_MOVING x median apc, that threshold)."""
    threshold = BARELY_MOVING * float(np.median(apc))
    return float(np.mean(apc <= threshold)), threshold


def gini(values: np.ndarray) -> float:
    """The Gini coefficient of non-negative values (0: all equal; towards 1: one value holds everything)."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    total = x.sum()
    if x.size == 0 or not total > 0:
        return float("nan")
    ranks = np.arange(1, x.size + 1)
    return float(np.sum((2 * ranks - x.size - 1) * x) / (x.size * total))


def oriented_svd(path: np.ndarray) -> TemporalSVD:
    """The temporal SVD (uncentred) with each component's sign fixed: u_{n,k} - u_{1,k} >= 0, i.e. every
    coordinate ends at least where it starts; where it ends exactly there, sum_i u_{i,k} >= 0. Flipping a
    column of U together with its row of Vt leaves Theta = U diag(s) Vt unchanged."""
    svd = temporal_svd(path)
    travel = svd.u[-1] - svd.u[0]
    sign = np.where(travel != 0, np.sign(travel), np.where(svd.u.sum(axis=0) < 0, -1.0, 1.0))
    return TemporalSVD(svd.u * sign, svd.s, svd.vt * sign[:, None])


class ComponentStats(NamedTuple):
    """Per component k (columns of U), each (K,): apc, final change and their ratio along the path."""

    apc: np.ndarray
    final_change: np.ndarray
    detour: np.ndarray


def component_stats(u: np.ndarray) -> ComponentStats:
    """The path metrics of the coordinates u_{*,k}: the same definitions as for the parameters."""
    apc, fpc = accumulated_change(u), final_change(u)
    return ComponentStats(apc, fpc, ratio(apc, fpc))
