"""Random hyperparameter configurations (paper Appendix C): reproducible, in range, evenly spread."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from pgsubspaces.sweep import SPACES, Choice, Range, sample_configurations, write_configurations


@pytest.mark.parametrize("algo", sorted(SPACES))
def test_the_same_seed_gives_the_same_table_and_another_seed_another(algo, tmp_path):
    write_configurations(tmp_path / "a.csv", algo, sample_configurations(algo, 100, seed=3))
    write_configurations(tmp_path / "b.csv", algo, sample_configurations(algo, 100, seed=3))
    write_configurations(tmp_path / "c.csv", algo, sample_configurations(algo, 100, seed=4))
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.csv").read_bytes() != (tmp_path / "c.csv").read_bytes()
    with open(tmp_path / "a.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 100 and [int(r["configuration"]) for r in rows] == list(range(100))


@pytest.mark.parametrize("algo", sorted(SPACES))
def test_every_value_lies_in_its_range_and_every_choice_is_drawn(algo):
    rows = sample_configurations(algo, 100, seed=0)
    for name, parameter in SPACES[algo].items():
        values = [row[name] for row in rows]
        if isinstance(parameter, Range):
            assert min(values) >= parameter.low and max(values) <= parameter.high, name
        else:
            assert set(values) == set(parameter.values), name  # 100 Sobol points hit every choice
            counts = np.array([values.count(v) for v in parameter.values])
            assert counts.min() >= 0.6 * 100 / len(parameter.values), (name, counts)


@pytest.mark.parametrize("algo", sorted(SPACES))
def test_log_scale_parameters_are_spread_evenly_in_log_space(algo):
    rows = sample_configurations(algo, 128, seed=1)
    for name, parameter in SPACES[algo].items():
        if not (isinstance(parameter, Range) and parameter.log):
            continue
        logs = np.log10([row[name] for row in rows])
        low, high = np.log10(parameter.low), np.log10(parameter.high)
        for q in (0.1, 0.25, 0.5, 0.75, 0.9):  # the quantiles of a uniform law on [low, high], within 0.03
            assert abs(np.quantile(logs, q) - (low + q * (high - low))) <= 0.03 * (high - low), (name, q)
        # and not evenly in linear space: half of the values lie below the geometric mean
        assert np.mean(np.asarray([row[name] for row in rows]) < np.sqrt(parameter.low * parameter.high)) == 0.5


def test_a_choice_maps_the_unit_interval_onto_its_values():
    choice = Choice((1, 2, 3))
    assert list(choice.draw(np.array([0.0, 0.33, 0.34, 0.66, 0.67, 0.999999, 1.0]))) == [1, 1, 2, 2, 3, 3, 3]
