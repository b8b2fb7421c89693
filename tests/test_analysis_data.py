"""A PPO checkpoint's analysis data: exactly N precise samples, bootstrapped where episodes are cut (the time
limit and the end of the set), and one n_steps rollout split at batch_size offsets. Off-policy (SAC, TD3):
the replay buffer at the checkpoint, or fresh transitions at step 0, with the losses' noise and the
mini-batch draws. Rewards and the states after each step come from Pendulum's own dynamics applied to the
stored observation and action."""

from __future__ import annotations

import gymnasium as gym
import h5py
import numpy as np
import pytest
import torch as th

from pgsubspaces.analysis.checkpoint_losses import read_batches
from pgsubspaces.analysis.data import NOISE_FIELDS, PPO_FIELDS, SAC_MINIBATCH_SAMPLES, make_data
from pgsubspaces.config import AnalysisSpec
from pgsubspaces.export.runfile import RunFile, build_policy
from pgsubspaces.train.checkpoints import REPLAY_FIELDS

EPISODE = 200  # Pendulum-v1's time limit


def pendulum_steps(observations: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reward and next observation of each (observation, action) by the env's step from that state."""
    env = gym.make("Pendulum-v1").unwrapped
    env.reset(seed=0)
    rewards, next_observations = [], []
    for obs, action in zip(observations.astype(np.float64), actions.astype(np.float64)):
        env.state = np.array([np.arctan2(obs[1], obs[0]), obs[2]])
        next_obs, reward, *_ = env.step(np.clip(action, -2.0, 2.0))  # SB3 clips to the action space
        rewards.append(reward)
        next_observations.append(next_obs)
    return np.array(rewards), np.array(next_observations)


def successors(observations: np.ndarray, next_observations: np.ndarray) -> np.ndarray:
    """For each next observation the index of the stored observation equal to it, or -1."""
    distance = np.abs(next_observations[:, None, :] - observations[None, :, :]).max(axis=2)
    found = distance.min(axis=1) < 1e-4
    return np.where(found, distance.argmin(axis=1), -1)


def hand_gae(rewards, values, next_values, episode_ends, gamma, gae_lambda) -> np.ndarray:
    """GAE with the recursion cut after each episode end (next_values: the bootstrap V of every step)."""
    advantages, running = np.zeros(len(values)), 0.0
    for t in reversed(range(len(values))):
        carry = 0.0 if t in episode_ends else gamma * gae_lambda * running
        running = rewards[t] + gamma * next_values[t] - values[t] + carry
        advantages[t] = running
    return advantages


def read_data(path) -> tuple[dict, dict, np.ndarray]:
    with h5py.File(path) as f:
        precise = {key: value[()] for key, value in f["precise"].items()}
        minibatch = {key: value[()] for key, value in f["minibatch"].items()}
    return precise, minibatch, minibatch.pop("batch_offsets")


def values_of(policy, observations: np.ndarray) -> np.ndarray:
    with th.no_grad():
        return policy.predict_values(th.as_tensor(observations, dtype=th.float32)).flatten().double().numpy()


@pytest.mark.parametrize("n_samples", [450, 400])  # 2.25 episodes; exactly 2, the set ending at a truncation
def test_ppo_precise_set_has_n_samples_and_bootstraps_every_cut(tiny_runs, tmp_path, n_samples):
    run_path, _, step = tiny_runs["ppo"]
    make_data(run_path, step, tmp_path / "data.h5", AnalysisSpec.from_settings({"ppo_samples": n_samples}))
    precise, _, _ = read_data(tmp_path / "data.h5")
    with RunFile(run_path) as run:
        hyper, policy = run.config("hyperparameters"), build_policy(run, step)
    assert sorted(precise) == sorted(PPO_FIELDS)
    assert {key: len(value) for key, value in precise.items()} == {key: n_samples for key in PPO_FIELDS}
    obs, values = precise["observations"], precise["old_values"].astype(np.float64)
    rewards, next_obs = pendulum_steps(obs, precise["actions"])
    continues = successors(obs, next_obs) == np.arange(1, n_samples + 1)
    ends = [t for t in range(EPISODE - 1, n_samples, EPISODE)]  # the time limit; the set's end is no reset
    assert np.flatnonzero(~continues[:-1]).tolist() == [t for t in ends if t < n_samples - 1]
    np.testing.assert_allclose(values, values_of(policy, obs), rtol=1e-5, atol=1e-5)
    # within an episode V(s_t+1) is the next stored value; where it is cut, V of the state the env reached
    next_values = np.append(values[1:], 0.0)
    cut = np.flatnonzero(~continues)
    next_values[cut] = values_of(policy, next_obs[cut])
    expected = hand_gae(rewards, values, next_values, set(ends), hyper["gamma"], hyper["gae_lambda"])
    scale = np.abs(expected).max()
    np.testing.assert_allclose(precise["advantages"], expected, rtol=0, atol=1e-5 * scale)
    np.testing.assert_allclose(precise["returns"], expected + values, rtol=0, atol=1e-5 * scale)
    # each bootstrap matters far above the tolerance (measured: 0.7 to 4.7% of the scale)
    unbootstrapped = np.where(continues, next_values, 0.0)
    unbootstrapped = hand_gae(rewards, values, unbootstrapped, set(ends), hyper["gamma"], hyper["gae_lambda"])
    assert np.all(np.abs(unbootstrapped - expected)[cut] > 1e-3 * scale)


def test_ppo_minibatch_set_is_one_rollout_of_n_steps_split_at_batch_size(tiny_runs, tmp_path):
    run_path, _, step = tiny_runs["ppo"]
    make_data(run_path, step, tmp_path / "data.h5", AnalysisSpec.from_settings({"ppo_samples": 300}))
    _, minibatch, offsets = read_data(tmp_path / "data.h5")
    with RunFile(run_path) as run:
        n_steps, batch_size = run.config("hyperparameters")["n_steps"], run.config("hyperparameters")["batch_size"]
    assert (n_steps, batch_size) == (512, 64)
    assert {key: len(value) for key, value in minibatch.items()} == {key: n_steps for key in PPO_FIELDS}
    assert offsets.tolist() == list(range(0, n_steps + 1, batch_size))
    # n_steps consecutive steps, shuffled: every state has its successor in the set except at the 2 time
    # limits and the rollout's end, and no state is anyone's successor twice
    _, next_obs = pendulum_steps(minibatch["observations"], minibatch["actions"])
    found = successors(minibatch["observations"], next_obs)
    assert (found < 0).sum() == n_steps // EPISODE + 1
    assert len(set(found[found >= 0].tolist())) == (found >= 0).sum()


OFF_POLICY_RUNS = ["sac", "td3"]


def assert_pendulum_transitions(transitions: dict, episode_ends: list[int]) -> None:
    """Rewards and next states follow from Pendulum's dynamics (buffer actions are scaled to [-1, 1], the
    env's are twice that); episodes end at the time limit only, as truncations."""
    rewards, next_obs = pendulum_steps(transitions["observations"], 2.0 * transitions["actions"])
    np.testing.assert_allclose(transitions["rewards"], rewards, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(transitions["next_observations"], next_obs, rtol=1e-5, atol=1e-5)
    assert np.flatnonzero(transitions["dones"]).tolist() == episode_ends
    assert np.flatnonzero(transitions["timeouts"]).tolist() == episode_ends


def assert_noise_and_draws(batches, n: int, algo: str, batch_size: int) -> None:
    """Standard-normal noise of the algorithm's losses only; mini-batches are rows of the precise set."""
    noise = NOISE_FIELDS[algo]
    assert sorted(batches.precise) == sorted((*REPLAY_FIELDS, *noise))
    assert sorted(batches.minibatch) == sorted((*REPLAY_FIELDS, *noise))
    draws = SAC_MINIBATCH_SAMPLES // batch_size * batch_size
    assert batches.offsets.tolist() == list(range(0, draws + 1, batch_size))
    for key in noise:
        for values, rows in ((batches.precise[key], n), (batches.minibatch[key], draws)):
            assert values.shape == (rows, 1) and values.dtype == np.float32
            assert abs(values.mean()) < 4 / np.sqrt(rows) and abs(values.std() - 1) < 4 / np.sqrt(rows)
    if len(noise) == 2:  # SAC's two noises are independent draws
        assert (
            abs(np.corrcoef(batches.precise["actor_noise"][:, 0], batches.precise["target_noise"][:, 0])[0, 1]) < 0.25
        )
    # each mini-batch row is a precise row (its transition fields); the draws cover most of the set
    rows = successors(batches.precise["observations"], batches.minibatch["observations"])
    assert np.all(rows >= 0)
    for field in REPLAY_FIELDS:
        np.testing.assert_array_equal(batches.minibatch[field], batches.precise[field][rows])
    assert len(set(rows.tolist())) > 0.9 * n * (1 - np.exp(-draws / n))


@pytest.mark.parametrize("algo", OFF_POLICY_RUNS)
def test_off_policy_precise_set_is_the_replay_buffer_at_the_checkpoint(tiny_runs, algo):
    run_path, data_path, step = tiny_runs[algo]
    with RunFile(run_path) as run, h5py.File(data_path) as f:
        batches = read_batches(run, data_path)
        hyper = run.config("hyperparameters")
        source = dict(f["precise"].attrs)
        assert "transitions" not in f["precise"]
    # T - 1 transitions at step T (SB3 checkpoints before storing step T's, docs/reference.md §4.3)
    assert step == 300 and source == {"kind": "replay", "replay_start": 0, "replay_end": 299}
    assert len(batches.precise["rewards"]) == 299
    assert_pendulum_transitions(batches.precise, [199])
    assert_noise_and_draws(batches, 299, algo, hyper["batch_size"])


@pytest.mark.parametrize("algo", OFF_POLICY_RUNS)
def test_off_policy_step_0_collects_fresh_transitions_random_for_learning_starts(tiny_runs, tmp_path, algo):
    run_path = tiny_runs[algo][0]
    make_data(run_path, 0, tmp_path / "data.h5", AnalysisSpec.from_settings({"sac_fresh_samples": 300}))
    with RunFile(run_path) as run, h5py.File(tmp_path / "data.h5") as f:
        batches = read_batches(run, tmp_path / "data.h5")
        hyper, policy = run.config("hyperparameters"), build_policy(run, 0)
        assert dict(f["precise"].attrs) == {"kind": "collected"}
    precise, start = batches.precise, hyper["learning_starts"]
    assert start == 100 and len(precise["rewards"]) == 300
    assert_pendulum_transitions(precise, [199])
    assert_noise_and_draws(batches, 300, algo, hyper["batch_size"])
    with th.no_grad():  # the step-0 actor's deterministic action (SAC: tanh of its mean)
        mean = policy._predict(th.as_tensor(precise["observations"]), deterministic=True).numpy()
    off_policy = np.abs(precise["actions"] - mean).max(axis=1) > 1e-3
    assert off_policy[:start].mean() > 0.95  # the first learning_starts are uniformly random
    # then TD3 takes its actor's action exactly (no exploration noise), SAC samples around its mean
    assert off_policy[start:].mean() == (0.0 if algo == "td3" else pytest.approx(1.0, abs=0.05))
    assert precise["actions"][:start].std() > 0.5  # uniform on [-1, 1]: std 0.58


def test_td3_data_refuses_the_original_variant(tiny_runs, tmp_path):
    """The paper-era code had no TD3 (docs/reference.md §3.3): no 'original' TD3 data, and no file."""
    run_path, _, step = tiny_runs["td3"]
    with pytest.raises(ValueError, match="'original' is not defined for td3"):
        make_data(run_path, step, tmp_path / "data.h5", AnalysisSpec.from_settings({"variant": "original"}))
    assert not (tmp_path / "data.h5").exists()
