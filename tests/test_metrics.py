"""The metrics' identities on constructed inputs."""

from __future__ import annotations

import numpy as np
import pytest

from pgsubspaces.tables.metrics import (
    Phases,
    combined_eigenvectors,
    random_subspace_fraction,
    subspace_fraction,
    subspace_overlap,
    training_phases,
)

E = np.eye(5)


def span(*columns):
    return np.stack(columns, axis=1)


def test_overlap_identities():
    s12 = span(E[0], E[1])
    assert subspace_overlap(s12, s12) == pytest.approx(1.0)
    assert subspace_overlap(s12, span(E[0], E[2])) == pytest.approx(0.5)
    assert subspace_overlap(s12, span(E[2], E[3])) == pytest.approx(0.0)
    diagonal = span((E[0] + E[1]) / np.sqrt(2), (E[1] + E[2]) / np.sqrt(2))
    assert subspace_overlap(s12, diagonal) == pytest.approx(0.75)  # (1 + 0.5) / 2
    with pytest.raises(ValueError, match=r"shapes \(5, 2\) and \(5, 1\)"):
        subspace_overlap(s12, span(E[0]))


def test_fraction_identities():
    s12 = span(E[0], E[1])
    assert subspace_fraction(s12, 3 * E[0] - 2 * E[1]) == pytest.approx(1.0)
    assert subspace_fraction(s12, E[3] + E[4]) == pytest.approx(0.0)
    assert subspace_fraction(s12, E[0] + E[2]) == pytest.approx(0.5)
    # several gradients: the mean of their fractions, not the fraction of their mean
    assert subspace_fraction(s12, np.stack([E[0], E[3]])) == pytest.approx(0.5)
    assert subspace_fraction(s12, np.stack([E[0], 100 * E[3]])) == pytest.approx(0.5)


def test_random_subspace_control_averages_k_over_n():
    rng = np.random.default_rng(0)
    n, k, trials = 200, 10, 400
    gradient = rng.standard_normal(n)
    fractions = [random_subspace_fraction(gradient, k, rng) for _ in range(trials)]
    # a random k-subspace captures Beta(k/2, (n-k)/2) of a fixed vector: mean k/n, std ~ 0.02 here
    standard_error = np.std(fractions) / np.sqrt(trials)
    assert abs(np.mean(fractions) - k / n) < 4 * standard_error


def test_combined_subspace_merges_by_eigenvalue():
    actor_vectors, critic_vectors = np.eye(3), np.eye(2)
    values, vectors = combined_eigenvectors(
        np.array([5.0, 2.0, 1.0]), actor_vectors, np.array([3.0, 2.0]), critic_vectors, k=4
    )
    assert values.tolist() == [5.0, 3.0, 2.0, 2.0]  # the tie at 2.0 goes to the critic first
    assert vectors.shape == (5, 4)
    np.testing.assert_array_equal(vectors[:, 2], [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(vectors[:, 3], [0, 1, 0, 0, 0])
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(4))


def test_phase_criterion_on_a_synthetic_curve():
    # flat at 0 until 100k, linear to 1 at 200k, flat after; points every 10k; window 10k -> w = 1
    steps = np.arange(0, 310_000, 10_000)
    returns = np.clip((steps - 100_000) / 100_000, 0, 1)
    phases = training_phases(steps, returns, 10_000, 0.1, 0.9)
    # smoothed s_i = mean(r[i-1], r[i]); s_0 = 0, max 1. rel first > 0.1 at 120k (s = 0.15), so the
    # initial phase ends at 110k. Going back from the last maximum (300k), s first < 0.9 at 190k
    # (s = 0.85): the original's convergence phase starts there, inclusive.
    assert phases == Phases(110_000, 190_000)
    assert [phases.of(s) for s in (0, 110_000, 150_000, 190_000, 300_000)] == [
        "initial",
        "initial",
        "training",
        "convergence",
        "convergence",
    ]
