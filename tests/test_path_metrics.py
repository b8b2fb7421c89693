"""The path metrics on paths whose answers are known: hand-computed changes, monotone and rank-1 paths, the
SVD's reconstruction and sign convention, the layer split of real SB3 actors, and the settings' checks."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

from pgsubspaces.path.layers import EXTRA, actor_layers
from pgsubspaces.path.lens import DETOUR_CLIP_QUANTILE, PathSettings, histogram, layer_period_rows
from pgsubspaces.path.metrics import (
    BARELY_MOVING,
    accumulated_change,
    barely_moving,
    component_stats,
    detour_selection,
    final_change,
    gini,
    oriented_svd,
    periods,
    ratio,
)
from pgsubspaces.path.svd import information, major_dimensionality
from pgsubspaces.train.agents import new_policy
from pgsubspaces.train.parameters import ParameterLayout, layout_of, split_parameters

SETTINGS = {
    "periods": 3,
    "betas": [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99],
    "components": 8,
    "detour_top_fraction": 0.8,
    "histogram_bins": 40,
}


def test_hand_computed_changes_and_detours():
    path = np.array([[0.0, 1.0, 5.0], [2.0, 0.0, 5.0], [1.0, 3.0, 5.0], [1.0, 3.0, 5.0]])
    apc, fpc = accumulated_change(path), final_change(path)
    np.testing.assert_array_equal(apc, [3.0, 4.0, 0.0])  # |2-0|+|1-2|+0, |0-1|+|3-0|+0, never moves
    np.testing.assert_array_equal(fpc, [1.0, 2.0, 0.0])
    np.testing.assert_array_equal(ratio(apc, fpc)[:2], [3.0, 2.0])
    assert np.isnan(ratio(apc, fpc)[2])  # 0/0: no movement, no detour
    assert ratio(np.array([2.0]), np.array([0.0]))[0] == np.inf  # a round trip
    # the upper 2/3 by apc: both moving parameters; the never-moving one is left out even at fraction 1
    np.testing.assert_array_equal(detour_selection(apc, 2 / 3), [True, True, False])
    np.testing.assert_array_equal(detour_selection(apc, 1.0), [True, True, False])
    np.testing.assert_array_equal(detour_selection(apc, 0.3), [False, True, False])  # ceil(0.9) = 1: the largest


def test_monotone_path_has_detour_one_for_every_parameter():
    rng = np.random.default_rng(0)
    steps = rng.exponential(size=(50, 200)) * rng.choice([-1.0, 1.0], size=200)  # each column one direction
    path = np.cumsum(steps, axis=0)
    detour = ratio(accumulated_change(path), final_change(path))
    np.testing.assert_allclose(detour, 1.0, rtol=1e-12)
    steps[25] *= -1  # one step back: the detour ratio rises above 1 for every parameter
    back = np.cumsum(steps, axis=0)
    assert np.all(ratio(accumulated_change(back), final_change(back)) > 1)


def test_periods_share_their_borders_and_add_up():
    spans = periods(10, 3)
    assert [(p.label, p.first, p.last) for p in spans] == [("p1", 0, 3), ("p2", 3, 6), ("p3", 6, 9), ("all", 0, 9)]
    path = np.random.default_rng(1).standard_normal((10, 7))
    parts = sum(accumulated_change(path[p.first : p.last + 1]) for p in spans[:-1])
    np.testing.assert_allclose(parts, accumulated_change(path), rtol=1e-12)
    with pytest.raises(ValueError, match="too few for 4 periods"):
        periods(4, 4)


def test_svd_reconstructs_the_path_and_orients_each_component():
    rng = np.random.default_rng(2)
    path = rng.standard_normal((30, 80)) + np.linspace(0, 3, 30)[:, None] * rng.standard_normal(80)
    svd = oriented_svd(path)
    np.testing.assert_allclose(svd.reconstruct(len(svd.s)), path, atol=1e-10)
    np.testing.assert_allclose(svd.u.T @ svd.u, np.eye(30), atol=1e-10)
    assert np.all(svd.u[-1] - svd.u[0] >= 0)
    raw = np.linalg.svd(path, full_matrices=False)[0]
    np.testing.assert_allclose(np.abs(svd.u), np.abs(raw), atol=1e-10)  # only signs differ
    stats = component_stats(svd.u)
    np.testing.assert_allclose(stats.final_change, svd.u[-1] - svd.u[0], atol=1e-15)
    assert np.all(stats.detour >= 1 - 1e-12)


def test_rank_one_path_has_major_dimensionality_one_for_every_beta():
    rng = np.random.default_rng(3)
    path = np.outer(1 + np.cumsum(rng.exponential(size=40)), rng.standard_normal(120))
    betas = (*SETTINGS["betas"], 1.0)
    np.testing.assert_array_equal(major_dimensionality(oriented_svd(path).s, betas), 1)
    settings = PathSettings.from_dict(SETTINGS)
    rows = layer_period_rows(("ppo", "T", 0, "layer1", "all"), path, settings)
    assert [row[-2] for row in rows["dimensionality"]] == [1] * len(SETTINGS["betas"])
    first = rows["components"][0]
    assert first[5] == 1 and first[-1] == pytest.approx(1.0)  # k = 1 moves monotonically: detour 1
    assert first[7] == pytest.approx(1.0, abs=1e-9)  # a_1 = 1: the other singular values are round-off
    # two equal directions: D = 1 until beta exceeds a_1 = 1/2
    flat = np.vstack([np.eye(2)] * 5)
    np.testing.assert_array_equal(major_dimensionality(oriented_svd(flat).s, (0.5, 0.51, 1.0)), [1, 2, 2])
    np.testing.assert_allclose(information(oriented_svd(flat).s), [0.5, 1.0])


def test_barely_moving_and_gini():
    apc = np.array([0.0, 0.05, 1.0, 2.0, 3.0])  # median 1: threshold 0.1
    share, threshold = barely_moving(apc)
    assert threshold == pytest.approx(BARELY_MOVING * 1.0) and share == pytest.approx(2 / 5)
    assert gini(np.ones(10)) == pytest.approx(0.0)
    assert gini(np.array([0.0, 0.0, 0.0, 1.0])) == pytest.approx(0.75)


def test_histograms_count_every_value_and_clip_the_extreme_detours():
    rng = np.random.default_rng(4)
    detours = np.r_[1 + rng.lognormal(size=500), np.inf]
    edges, counts, clipped = histogram(detours, 40, log_bins=True)
    assert counts.sum() == detours.size and len(edges) == 41
    assert edges[0] == detours.min() and edges[-1] == pytest.approx(np.quantile(detours[:-1], DETOUR_CLIP_QUANTILE))
    assert clipped == np.count_nonzero(detours > edges[-1]) >= 6  # the top 1 % and the infinite one
    np.testing.assert_allclose(np.diff(np.log(edges)), np.log(edges[1] / edges[0]))  # log-spaced
    apc = rng.exponential(size=300)
    edges, counts, clipped = histogram(apc, 10, log_bins=False)
    assert edges[0] == 0 and edges[-1] == apc.max() and counts.sum() == 300 and clipped == 0


def _actor_layout(algo: str, net_arch: list[int]) -> ParameterLayout:
    space = gym.spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
    action = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
    policy = new_policy(algo, space, action, {}, {"net_arch": net_arch})
    return layout_of(split_parameters(policy, algo)["actor"])


@pytest.mark.parametrize(
    "algo, arch, expected",
    [
        ("ppo", [16, 8], ["policy_net.0", "policy_net.2", "action_net"]),
        ("sac", [16, 8], ["latent_pi.0", "latent_pi.2", "actor.mu"]),
        ("td3", [16, 8], ["mu.0", "mu.2", "mu.4"]),
        ("sac", [16, 8, 4], ["latent_pi.0", "latent_pi.2", "latent_pi.4", "actor.mu"]),
    ],
)
def test_layers_split_every_actor_parameter_once(algo, arch, expected):
    layout = _actor_layout(algo, arch)
    layers = actor_layers(layout)
    mlp = [layer for layer in layers if layer.name != EXTRA]
    assert [layer.name for layer in mlp] == [f"layer{i + 1}" for i in range(len(expected))]
    for layer, module in zip(mlp, expected):
        assert all(f"{module}." in name for name in layer.parameters), (layer, module)
    sizes = [(3, *arch, 2)[i] * (3, *arch, 2)[i + 1] + (3, *arch, 2)[i + 1] for i in range(len(arch) + 1)]
    assert [layer.index.size for layer in mlp] == sizes
    every = np.sort(np.concatenate([layer.index for layer in layers]))
    np.testing.assert_array_equal(every, np.arange(layout.size))  # each position exactly once
    extra = [layer for layer in layers if layer.name == EXTRA]
    assert (algo == "td3") == (not extra)  # PPO's log_std, SAC's log-std head; TD3 has none
    if extra:
        assert all("log_std" in name for name in extra[0].parameters)


def test_layers_name_the_parameter_they_do_not_understand():
    def layout(names, shapes):
        sizes = [int(np.prod(s)) for s in shapes]
        return ParameterLayout(tuple(names), tuple(shapes), tuple(np.r_[0, np.cumsum(sizes)].tolist()))

    with pytest.raises(ValueError, match="'encoder.scale'"):
        actor_layers(layout(["encoder.scale", "mu.weight", "mu.bias"], [(4,), (2, 4), (2,)]))
    with pytest.raises(ValueError, match="'mu.0.weight' has no matching bias"):
        actor_layers(layout(["mu.0.weight", "mu.2.weight", "mu.2.bias"], [(4, 3), (2, 4), (2,)]))
    with pytest.raises(ValueError, match=r"mu.2.weight \(2, 5\) takes 5 inputs"):
        actor_layers(layout(["mu.0.weight", "mu.0.bias", "mu.2.weight", "mu.2.bias"], [(4, 3), (4,), (2, 5), (2,)]))
    with pytest.raises(ValueError, match="conv.weight .* not a linear layer"):
        actor_layers(layout(["conv.weight", "conv.bias"], [(4, 3, 3, 3), (4,)]))


def test_settings_name_the_bad_key():
    assert PathSettings.from_json(json.dumps(SETTINGS)).betas == tuple(SETTINGS["betas"])
    with pytest.raises(ValueError, match=r"missing \['components'\]"):
        PathSettings.from_dict({k: v for k, v in SETTINGS.items() if k != "components"})
    with pytest.raises(ValueError, match=r"unknown \['bins'\]"):
        PathSettings.from_dict({**SETTINGS, "bins": 3})
    with pytest.raises(ValueError, match="'betas' holds 1.5"):
        PathSettings.from_dict({**SETTINGS, "betas": [0.5, 1.5]})
    with pytest.raises(ValueError, match="'periods' = 0"):
        PathSettings.from_dict({**SETTINGS, "periods": 0})
    with pytest.raises(ValueError, match="'detour_top_fraction' holds True"):
        PathSettings.from_dict({**SETTINGS, "detour_top_fraction": True})
    with pytest.raises(ValueError, match="not JSON"):
        PathSettings.from_json("{periods: 3}")
