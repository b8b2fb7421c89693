"""The actor/critic split and flat vectors, checked against the paper's parameter counts."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REPO

from pgsubspaces.config import load_config, run_specs, validate_config
from pgsubspaces.train.agents import new_agent
from pgsubspaces.train.envs import make_vec_env
from pgsubspaces.train.parameters import assign, flatten, layout_of, split_parameters

SPECS = run_specs(validate_config(load_config(REPO / "config" / "paper.yaml")))


def agent(algo: str, task: str):
    spec = SPECS[algo, task, 0]
    return new_agent(algo, make_vec_env(spec.env_id), spec.hyperparameters, spec.policy, seed=0, device="cpu")


# docs/reference.md §1.7: Walker2d PPO [64,64] actor 5,708 / critic 5,377; SAC [256,256] actor 73,484 / critic 144,386.
@pytest.mark.parametrize("algo, actor, critic", [("ppo", 5_708, 5_377), ("sac", 73_484, 144_386)])
def test_walker2d_parameter_counts_match_the_paper(algo, actor, critic):
    blocks = split_parameters(agent(algo, "Walker2d").policy, algo)
    assert layout_of(blocks["actor"]).size == actor
    assert layout_of(blocks["critic"]).size == critic


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_split_is_a_partition_and_flat_vectors_round_trip(algo):
    policy = agent(algo, "Pendulum").policy
    blocks = split_parameters(policy, algo)
    names = [name for named in blocks.values() for name, _ in named]
    assert sorted(names) == sorted(name for name, _ in policy.named_parameters())
    assert "log_std" in {n for n, _ in blocks["actor"]} or algo == "sac"
    for named in blocks.values():
        layout = layout_of(named)
        flat = flatten(named)
        assert flat.dtype == np.float32 and flat.shape == (layout.size,)
        # row-major blocks in named_parameters order
        first_name, first = named[0]
        np.testing.assert_array_equal(flat[: first.numel()], first.detach().numpy().reshape(-1))
        noise = np.random.default_rng(0).standard_normal(layout.size).astype(np.float32)
        assign(named, noise, layout)
        np.testing.assert_array_equal(flatten(named), noise)


def test_assign_rejects_a_vector_of_the_wrong_size():
    named = split_parameters(agent("ppo", "Pendulum").policy, "ppo")["critic"]
    layout = layout_of(named)
    with pytest.raises(ValueError, match=rf"shape \({layout.size - 1},\), expected \({layout.size},\)"):
        assign(named, np.zeros(layout.size - 1, np.float32), layout)


def test_shared_layers_are_refused():
    from pgsubspaces.train.parameters import _net_of

    with pytest.raises(ValueError, match="'mlp_extractor.shared_net.0.weight' belongs to neither"):
        _net_of("ppo", "mlp_extractor.shared_net.0.weight")
