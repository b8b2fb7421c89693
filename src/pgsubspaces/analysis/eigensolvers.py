"""Top-k eigenpairs ('LA': largest algebraic, descending) of a symmetric operator given by matvecs, and how
well each top-j eigenspace is determined (docs/eigen-accuracy.md).

Three solvers, one result type:
- ``arpack``: scipy ``eigsh`` (implicitly restarted Lanczos), its BLAS threads limited to one so that they
  do not fight torch's (69 s instead of 21 s otherwise, measured on the benchmark's PPO actor). Vectors
  cross to numpy. Its budget counts products, not ARPACK restarts.
- ``lanczos``: Lanczos with full reorthogonalisation in torch, entirely on the operator's device; residuals
  come from the recorded Gram-Schmidt coefficients, so they cost no matvecs. No restarts: memory is
  (matvecs x n).
- ``explicit``: the dense Hessian and ``eigh``, all eigenvalues; only for small networks.

Every solver computes ``guard`` Ritz pairs below the top k, so that each level j <= k has a gap estimate
delta_j = theta_j - (theta_{j+1} + rho_{j+1}) and a Davis-Kahan bound on the sine of the largest principal
angle between the computed and the true top-j eigenspace, bound_j = min(1, sqrt(sum_{i<=j} rho_i^2) / delta_j)
(1 when delta_j <= 0), with rho_i = residual_i + rounding floor. docs/eigen-accuracy.md states the
assumptions and derives what the bound implies for the gradient fraction and the subspace overlap.

The iterative solvers stop when the top k meet ARPACK's per-eigenvalue rule and bound_j <= subspace_tol for
every j in ``levels``, or when that is impossible: the budget is spent, or the residuals have reached the
rounding floor and still cannot resolve a level (a cluster). ``stop_reason`` says which; unresolved levels
are flagged, not raised. Only the all-solver residual criterion raises ``EigenConvergenceError``:
||H v_i - lambda_i v_i|| <= tol * max_j |lambda_j| for the top k.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable

import numpy as np
import scipy.sparse.linalg as sla
import torch as th
from scipy.linalg import eigh_tridiagonal
from threadpoolctl import threadpool_limits

SOLVERS = ("arpack", "lanczos", "explicit")
STOP_REASONS = ("resolved", "gap-limited", "budget", "invariant", "exact")


class EigenConvergenceError(RuntimeError):
    """The solve did not converge; ``result`` holds what it found and its residuals (None if nothing)."""

    def __init__(self, message: str, result: EigenResult | None = None):
        super().__init__(message)
        self.result = result


@dataclasses.dataclass(frozen=True)
class EigenResult:
    """Top-k eigenpairs of a symmetric operator, with the accuracy of every top-j eigenspace.

    Attributes:
        eigenvalues: float64, shape (k,), descending.
        eigenvectors: shape (n, k), unit-norm orthogonal columns (sign arbitrary), the operator's dtype.
        residuals: float64, shape (k,): ||H v_i - lambda_i v_i||.
        n_matvecs: operator applications, residual checks included.
        seconds: wall time.
        solver: one of SOLVERS.
        converged: bool, shape (k,): ARPACK's per-eigenvalue rule, residual_i <= max(tol |lambda_i|, floor).
        guard_eigenvalues: float64, shape (g,), the Ritz values k+1..k+g below the top k (g = guard, fewer
            only when the space has fewer dimensions).
        guard_residuals: float64, shape (g,).
        gaps: float64, shape (k,): delta_j (nan where no eigenvalue below j is known).
        subspace_bounds: float64, shape (k,): bound_j >= sin(largest principal angle) between the computed
            and the true top-j eigenspace, under the assumptions of docs/eigen-accuracy.md.
        stop_reason: one of STOP_REASONS.
        subspace_tol: the bound each level in ``levels`` had to reach.
        levels: the levels j the stopping rule looked at (k included).
        tol: the per-eigenvalue tolerance.
        residual_floor: the rounding floor: computed residuals may be this much below the true ones, so the
            bounds use rho_i = residual_i + residual_floor.
        all_eigenvalues: float64, shape (n,), descending; ``explicit`` only.
    """

    eigenvalues: np.ndarray
    eigenvectors: th.Tensor
    residuals: np.ndarray
    n_matvecs: int
    seconds: float
    solver: str
    converged: np.ndarray
    guard_eigenvalues: np.ndarray
    guard_residuals: np.ndarray
    gaps: np.ndarray
    subspace_bounds: np.ndarray
    stop_reason: str
    subspace_tol: float
    levels: tuple[int, ...]
    tol: float
    residual_floor: float
    all_eigenvalues: np.ndarray | None = None

    @property
    def max_relative_residual(self) -> float:
        scale = max(float(np.max(np.abs(self.eigenvalues))), np.finfo(np.float64).tiny)
        return float(np.max(self.residuals) / scale) if len(self.residuals) else 0.0

    def unresolved_levels(self) -> list[int]:
        """The levels whose subspace bound exceeds ``subspace_tol``."""
        return [j for j in self.levels if self.subspace_bounds[j - 1] > self.subspace_tol]


Matvec = Callable[[th.Tensor], th.Tensor]


def residuals(matvec: Matvec, eigenvalues: np.ndarray, eigenvectors: th.Tensor) -> np.ndarray:
    """||H v_i - lambda_i v_i|| per column (k matvecs)."""
    out = []
    for value, vector in zip(eigenvalues, eigenvectors.T):
        out.append(float(th.linalg.vector_norm(matvec(vector) - float(value) * vector)))
    return np.array(out, dtype=np.float64)


# ------------------------------------------------------------------------------------ accuracy of a result

MARGIN, ROUNDING = 0.1, 10


def rounding_floor(scale: float, dtype: th.dtype) -> float:
    """ROUNDING * eps * ||H|| (``scale`` estimates ||H||): the level at which float rounding in the products
    stops residuals from falling (3e-7 of max|theta| on a float32 PPO critic whose 50th eigenvalue is 0.2% of
    the first). The bounds take it as the possible error of a computed residual (rho_i = r_i + floor)."""
    return ROUNDING * float(th.finfo(dtype).eps) * scale


def _levels(levels: Iterable[int] | None, k: int) -> tuple[int, ...]:
    """Sorted levels <= k with k added; levels above k are dropped (the caller may have clamped k to n - 1)."""
    levels = tuple(levels or ())
    if any(j < 1 for j in levels):
        raise ValueError(f"levels must be >= 1, got {levels}")
    return tuple(sorted({j for j in levels if j <= k} | {k}))


def ritz_gaps(values: np.ndarray, res: np.ndarray, k: int, tol: float, floor: float) -> np.ndarray:
    """delta_j = theta_j - (theta_{j+1} + rho_{j+1}), j = 1..k; nan where theta_{j+1} is unknown or where a
    pair i <= j + 1 misses the per-eigenvalue rule (the space above theta_{j+1} is not yet explored well
    enough to trust that no eigenvalue there was missed: docs/eigen-accuracy.md, assumption A3)."""
    rho = res + floor
    gaps = np.full(k, np.nan)
    known = min(k, len(values) - 1)
    gaps[:known] = values[:known] - values[1 : known + 1] - rho[1 : known + 1]
    explored = np.cumprod(_converged(values, res, tol, floor))[1 : known + 1].astype(bool)
    gaps[:known][~explored] = np.nan
    return gaps


def subspace_bounds(res: np.ndarray, gaps: np.ndarray, floor: float) -> np.ndarray:
    """bound_j = min(1, ||R_j||_F / delta_j), ||R_j||_F = sqrt(sum_{i<=j} rho_i^2); 1 where delta_j <= 0."""
    frobenius = np.sqrt(np.cumsum((res[: len(gaps)] + floor) ** 2))
    positive = np.nan_to_num(gaps, nan=-1.0) > 0
    return np.where(positive, np.minimum(1.0, frobenius / np.where(positive, gaps, 1.0)), 1.0)


def _converged(values: np.ndarray, res: np.ndarray, tol: float, floor: float) -> np.ndarray:
    return res <= np.maximum(tol * np.abs(values), floor)


def _gap_limited(values: np.ndarray, res: np.ndarray, j: int, floor: float, subspace_tol: float) -> bool:
    """Level j cannot be resolved by more products: theta_j and theta_{j+1} have residuals at the floor (they
    will not move), and even with every computed residual 0 (rho_i = floor) the bound would exceed subspace_tol."""
    if j >= len(values) or res[j - 1] > floor or res[j] > floor:
        return False
    best_gap = values[j - 1] - values[j] - floor
    return best_gap <= 0 or np.sqrt(j) * floor / best_gap > subspace_tol


def _assemble(
    solver: str,
    values: np.ndarray,
    vectors: th.Tensor,
    res: np.ndarray,
    k: int,
    *,
    tol: float,
    subspace_tol: float,
    levels: tuple[int, ...],
    floor: float,
    n_matvecs: int,
    started: float,
    stop_reason: str,
    gaps: np.ndarray | None = None,
    all_eigenvalues: np.ndarray | None = None,
) -> EigenResult:
    """The result from the top-k-plus-guard values and residuals (descending) and the top-k vectors."""
    gaps = ritz_gaps(values, res, k, tol, floor) if gaps is None else gaps
    return EigenResult(
        eigenvalues=values[:k],
        eigenvectors=vectors,
        residuals=res[:k],
        n_matvecs=n_matvecs,
        seconds=time.perf_counter() - started,
        solver=solver,
        converged=_converged(values[:k], res[:k], tol, floor),
        guard_eigenvalues=values[k:],
        guard_residuals=res[k:],
        gaps=gaps,
        subspace_bounds=subspace_bounds(res, gaps, floor),
        stop_reason=stop_reason,
        subspace_tol=subspace_tol,
        levels=levels,
        tol=tol,
        residual_floor=floor,
        all_eigenvalues=all_eigenvalues,
    )


def _check(result: EigenResult, tol: float) -> EigenResult:
    if result.max_relative_residual > tol:
        worst = np.argsort(result.residuals)[::-1][:5]
        detail = ", ".join(f"lambda_{i}={result.eigenvalues[i]:.4g}: {result.residuals[i]:.3g}" for i in worst)
        raise EigenConvergenceError(
            f"{result.solver} did not converge: max residual / max|lambda| = {result.max_relative_residual:.3g} "
            f"> tol {tol:g} after {result.n_matvecs} matvecs (largest residuals: {detail})",
            result,
        )
    return result


# ------------------------------------------------------------------------------------------------- arpack


class _BudgetSpent(Exception):
    """Raised inside ARPACK's matvec to stop it at the product budget."""


class _CountingOperator:
    """The operator for ARPACK: counts every product, estimates ||H|| from them (max ||Hx|| / ||x||), and
    stops ARPACK (``_BudgetSpent``) before a product would leave no room for ``reserve`` more under ``cap``."""

    def __init__(self, matvec: Matvec, dtype: th.dtype, device, reserve: int):
        self.matvec, self.dtype, self.device, self.reserve = matvec, dtype, device, reserve
        self.np_dtype = np.float32 if dtype == th.float32 else np.float64
        self.count, self.scale, self.cap = 0, 0.0, np.inf

    def product(self, vector: th.Tensor) -> th.Tensor:
        self.count += 1
        out = self.matvec(vector)
        self.scale = max(self.scale, float(th.linalg.vector_norm(out) / th.linalg.vector_norm(vector)))
        return out

    def numpy_product(self, x: np.ndarray) -> np.ndarray:
        if self.count + 1 + self.reserve > self.cap:
            raise _BudgetSpent
        vector = th.as_tensor(np.ascontiguousarray(x, dtype=self.np_dtype).reshape(-1), device=self.device)
        return self.product(vector).cpu().numpy().astype(self.np_dtype, copy=False)


def arpack(
    matvec: Matvec,
    n: int,
    k: int,
    tol: float,
    dtype: th.dtype,
    device,
    *,
    subspace_tol: float,
    guard: int,
    levels: Iterable[int] | None = None,
    max_matvecs: int | None = None,
    ncv: int | None = None,
    seed: int = 0,
) -> EigenResult:
    """scipy eigsh(which='LA') for k + guard pairs, in the operator's dtype (float32 runs single precision).

    ``max_matvecs`` bounds all products, the k + guard residual products of each round included: the
    counting operator stops ARPACK before it would leave no room for them, so the count never exceeds the
    budget. None: no product budget; eigsh's own iteration limit (maxiter default, 10 n restarts) applies.
    A first round at ``tol``. While a level is unresolved but not gap-limited (or a true residual misses the
    per-eigenvalue rule), another round with a tighter tol (``_next_round``) from a start vector that mixes
    the found Ritz vectors with the random one; a later round may take at most as many products as the first
    (more means ARPACK cannot reach its tol), and a round that does not halve the worst open bound ends the
    solve as 'gap-limited' (the residuals have stopped falling). A budget or iteration limit hit in the first
    round raises EigenConvergenceError naming the count; in a later round the previous round's result is
    returned with stop_reason 'budget'.
    """
    started = time.perf_counter()
    levels = _levels(levels, k)
    wanted = min(k + guard, n - 1)
    counting = _CountingOperator(matvec, dtype, device, reserve=wanted)
    budget = np.inf if max_matvecs is None else max_matvecs
    operator = sla.LinearOperator((n, n), matvec=counting.numpy_product, dtype=counting.np_dtype)
    random_start = np.random.default_rng(seed).standard_normal(n)
    v0, round_tol, previous, first_round = random_start, tol, None, None
    # each ARPACK iteration costs at least one product, so with a budget the product count binds first
    maxiter = None if max_matvecs is None else max(max_matvecs, 1)
    while True:
        round_start = counting.count
        counting.cap = budget if first_round is None else min(budget, round_start + first_round + wanted)
        try:
            with threadpool_limits(limits=1, user_api="blas"):
                values, vectors = sla.eigsh(
                    operator,
                    k=wanted,
                    which="LA",
                    tol=round_tol,
                    maxiter=maxiter,
                    ncv=ncv,
                    v0=v0.astype(counting.np_dtype),
                )
        except (_BudgetSpent, sla.ArpackNoConvergence) as error:
            if previous is None:
                limit = f"the budget max_matvecs = {max_matvecs}" if isinstance(error, _BudgetSpent) else "maxiter"
                raise EigenConvergenceError(
                    f"arpack stopped at {limit} after {counting.count} matvecs without {wanted} converged "
                    f"eigenpairs (k = {k} + guard {wanted - k})"
                ) from None
            spent = {"n_matvecs": counting.count, "seconds": time.perf_counter() - started}
            return _check(dataclasses.replace(previous, stop_reason="budget", **spent), tol)
        first_round = first_round or counting.count - round_start
        order = np.argsort(values)[::-1]
        values = values[order].astype(np.float64)
        tensors = th.as_tensor(np.ascontiguousarray(vectors[:, order]), device=device, dtype=dtype)
        res = residuals(counting.product, values, tensors)
        floor = rounding_floor(max(counting.scale, float(np.max(np.abs(values)))), dtype)
        result = _assemble(
            "arpack",
            values,
            tensors[:, :k],
            res,
            k,
            tol=tol,
            subspace_tol=subspace_tol,
            levels=levels,
            floor=floor,
            n_matvecs=counting.count,
            started=started,
            stop_reason="resolved",
        )
        reason, round_tol = _next_round(result, previous, values, res, round_tol, dtype)
        if reason is not None:
            return _check(dataclasses.replace(result, stop_reason=reason), tol)
        previous = result
        mixed = vectors.astype(np.float64).sum(axis=1) / np.sqrt(wanted)
        v0 = mixed + random_start / np.linalg.norm(random_start)


def _open_levels(result: EigenResult, values: np.ndarray, res: np.ndarray) -> list[int]:
    """Unresolved levels that more accuracy could still resolve."""
    floor, tol = result.residual_floor, result.subspace_tol
    return [j for j in result.unresolved_levels() if not _gap_limited(values, res, j, floor, tol)]


def _next_round(
    result: EigenResult, previous: EigenResult | None, values: np.ndarray, res: np.ndarray, round_tol: float, dtype
) -> tuple[str | None, float]:
    """ARPACK: a stop reason, or None and the tol of the next round (shrunk to what the worst level needs)."""
    open_levels = _open_levels(result, values, res)
    if not open_levels and result.converged.all():
        return ("gap-limited" if result.unresolved_levels() else "resolved"), round_tol
    worst = max((result.subspace_bounds[j - 1] for j in open_levels), default=0.0)
    if previous is not None:
        earlier = max((previous.subspace_bounds[j - 1] for j in open_levels), default=0.0)
        if worst > 0.5 * earlier:  # a tighter tol did not help: the residuals have stopped falling
            return "gap-limited", round_tol
    eps = float(th.finfo(dtype).eps)
    if round_tol <= eps:  # ARPACK cannot be asked for more than its precision
        return "gap-limited", round_tol
    # the residuals must shrink by about subspace_tol / bound_j; by 100 where the gap is not yet positive
    subspace_tol = result.subspace_tol
    needed = [subspace_tol / result.subspace_bounds[j - 1] if result.gaps[j - 1] > 0 else 0.01 for j in open_levels]
    return None, max(eps, round_tol * float(np.clip(0.5 * min(needed, default=0.1), 1e-3, 0.1)))


# ------------------------------------------------------------------------------------------------ lanczos


def lanczos(
    matvec: Matvec,
    n: int,
    k: int,
    tol: float,
    dtype: th.dtype,
    device,
    *,
    subspace_tol: float,
    guard: int,
    levels: Iterable[int] | None = None,
    max_matvecs: int | None = None,
    check_every: int = 5,
    seed: int = 0,
) -> EigenResult:
    """Lanczos with full (twice-applied Gram-Schmidt) reorthogonalisation, on the operator's device.

    Every product H q_j is kept as its Gram-Schmidt coefficients: H q_j = sum_i C_ij q_i exactly up to
    rounding (C holds alpha, beta and the reorthogonalisation terms). So a Ritz vector y = Q s has the true
    residual ||H y - theta y|| = ||C s - theta s|| without another matvec. Every ``check_every`` products
    (from k + guard on) the top k + guard Ritz pairs are checked; the basis grows until the top k meet
    ARPACK's per-eigenvalue rule with a margin, ``residual_i <= MARGIN * tol * |theta_i|`` (floored at the
    rounding level), and every level is resolved or gap-limited (``_gap_limited``), or the budget
    ``max_matvecs`` (None: max(10 (k + guard), 500)) is spent, or the Krylov space closes.
    The margin is cheap: at the end Ritz residuals fall steeply (7.6e-6 to 1.7e-7 of max|theta| in 15
    matvecs on the benchmark's PPO actor), and with it the residuals are at least as small as ARPACK's.
    """
    started = time.perf_counter()
    levels = _levels(levels, k)
    wanted = k + guard
    limit = min(n, max_matvecs or max(10 * wanted, 500))
    # numpy/scipy's OpenBLAS threads spin after each small call and halve the speed of torch's matvecs
    # on 2 cores (measured: 0.022 vs 0.012 s per product); the tridiagonal work needs no threads
    with threadpool_limits(limits=1, user_api="blas"):
        generator = th.Generator(device="cpu").manual_seed(seed)
        basis = th.empty((limit + 1, n), dtype=dtype, device=device)
        q = th.randn(n, generator=generator, dtype=th.float64).to(device=device, dtype=dtype)
        basis[0] = q / th.linalg.vector_norm(q)
        coefficients = np.zeros((limit + 1, limit))
        steps, ritz, reason, scale = 0, None, None, 0.0
        while steps < limit:
            w = matvec(basis[steps])
            scale = max(scale, float(th.linalg.vector_norm(w)))  # ||H q|| <= ||H||: sets the rounding floor
            active = basis[: steps + 1]
            for _ in range(2):
                projections = active @ w
                w = w - active.T @ projections
                coefficients[: steps + 1, steps] += projections.double().cpu().numpy()
            beta = float(th.linalg.vector_norm(w))
            coefficients[steps + 1, steps] = beta
            steps += 1
            invariant = beta <= 1e-10 * np.max(np.abs(np.diag(coefficients)[:steps]))
            if not invariant:
                basis[steps] = w / beta
            last = invariant or steps == limit
            if steps >= k and (last or (steps >= wanted and steps % check_every == 0)):
                ritz = _ritz_pairs(coefficients[: steps + 1, :steps], min(wanted, steps))
                floor = rounding_floor(max(scale, float(np.max(np.abs(ritz[0])))), dtype)
                reason = _lanczos_stop(ritz[0], ritz[2], k, tol, floor, subspace_tol, levels)
                if invariant:
                    reason = "exact" if steps == n else "invariant"
                if reason is not None or last:
                    break
    if ritz is None:
        if max_matvecs is not None and steps == max_matvecs:
            cause = f"the budget max_matvecs = {max_matvecs} ended"
        else:
            cause = "the Krylov space closed (an invariant subspace of the start vector)"
        raise EigenConvergenceError(f"lanczos: {cause} at dimension {steps} < k = {k}")
    values, vectors, res = ritz
    eigenvectors = basis[:steps].T @ th.as_tensor(vectors[:, :k], dtype=dtype, device=device)
    eigenvectors = eigenvectors / th.linalg.vector_norm(eigenvectors, dim=0)
    result = _assemble(
        "lanczos",
        values,
        eigenvectors,
        res,
        k,
        tol=tol,
        subspace_tol=subspace_tol,
        levels=levels,
        floor=floor,
        n_matvecs=steps,
        started=started,
        stop_reason=reason or "budget",
    )
    return _check(result, tol)


def _lanczos_stop(
    values: np.ndarray, res: np.ndarray, k: int, tol: float, floor: float, subspace_tol: float, levels
) -> str | None:
    """'resolved', 'gap-limited' or None (go on): the top k must meet the per-eigenvalue rule with MARGIN,
    and every level must be resolved (bound <= subspace_tol) or beyond help (``_gap_limited``)."""
    if not np.all(res[:k] <= np.maximum(MARGIN * tol * np.abs(values[:k]), floor)):
        return None
    bounds = subspace_bounds(res, ritz_gaps(values, res, k, tol, floor), floor)
    unresolved = [j for j in levels if bounds[j - 1] > subspace_tol]
    if not unresolved:
        return "resolved"
    if all(_gap_limited(values, res, j, floor, subspace_tol) for j in unresolved):
        return "gap-limited"
    return None


def _ritz_pairs(coefficients: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The top ``count`` Ritz values (descending), their vectors in the Krylov basis and true residuals.

    ``coefficients``: (m + 1, m), H Q_m = Q_{m+1} C. The Ritz pairs are those of the symmetric tridiagonal
    part; the residuals use all of C, so reorthogonalisation terms are accounted for.
    """
    m = coefficients.shape[1]
    diagonal, off = np.diag(coefficients), np.diag(coefficients, -1)[: m - 1]
    values, vectors = eigh_tridiagonal(diagonal, off, select="i", select_range=(m - count, m - 1))
    values, vectors = values[::-1], vectors[:, ::-1]
    padded = np.vstack([vectors, np.zeros((1, vectors.shape[1]))])
    res = np.linalg.norm(coefficients @ vectors - values * padded, axis=0)
    return values.astype(np.float64), np.ascontiguousarray(vectors), res


# ----------------------------------------------------------------------------------------------- explicit


def explicit(
    dense: th.Tensor,
    k: int,
    *,
    tol: float,
    subspace_tol: float,
    guard: int,
    levels: Iterable[int] | None = None,
) -> EigenResult:
    """All eigenpairs of a dense symmetric matrix (eigh in float64); the top k kept as vectors.

    The gaps are exact, delta_j = lambda_j - lambda_{j+1} from all eigenvalues (no residual term: the
    eigenvalue below is known); residuals are those of the returned vectors in ``dense``'s dtype, computed
    in float64, and the floor is that dtype's rounding level. ``tol`` only sets ``converged``.
    """
    started = time.perf_counter()
    levels = _levels(levels, k)
    matrix = dense.double()
    values, vectors = th.linalg.eigh(matrix)
    order = th.argsort(values, descending=True)
    values, vectors = values[order], vectors[:, order]
    wanted = min(k + guard, len(values))
    top = vectors[:, :k].to(dense.dtype)
    kept = th.cat([top.double(), vectors[:, k:wanted]], dim=1)  # guards: eigh's own float64 vectors
    res = th.linalg.vector_norm(matrix @ kept - kept * values[:wanted], dim=0).cpu().numpy()
    every = values.cpu().numpy()
    gaps = np.full(k, np.inf)  # j = n: nothing below
    below = min(k, len(every) - 1)
    gaps[:below] = every[:below] - every[1 : below + 1]
    return _assemble(
        "explicit",
        every[:wanted],
        top,
        res,
        k,
        tol=tol,
        subspace_tol=subspace_tol,
        levels=levels,
        floor=rounding_floor(float(np.max(np.abs(every))), dense.dtype),
        n_matvecs=0,
        started=started,
        stop_reason="exact",
        gaps=gaps,
        all_eigenvalues=every,
    )
