"""The project's losses give the gradients stable-baselines3's own training computes on the same batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from stable_baselines3 import PPO, SAC, TD3
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.noise import NormalActionNoise
from torch.distributions.utils import _standard_normal

from pgsubspaces.analysis.losses import VARIANTS, make_loss, sac_targets, td3_targets
from pgsubspaces.train.agents import new_policy
from pgsubspaces.train.envs import make_vec_env
from pgsubspaces.train.parameters import split_parameters


def clone_policy(algo, model, hyperparameters, policy):
    """A separate policy with the model's parameters (a loss takes its policy over)."""
    copy = new_policy(algo, model.observation_space, model.action_space, hyperparameters, policy)
    copy.load_state_dict(model.policy.state_dict())
    return copy


def capture_gradients(optimizer, into: dict) -> None:
    """Replace ``optimizer.step`` by a recorder of the gradients SB3 computed (parameters stay put)."""

    def record(*_args, **_kwargs):
        for group in optimizer.param_groups:
            for parameter in group["params"]:
                into[id(parameter)] = parameter.grad.detach().clone()

    optimizer.step = record


def assert_gradients_equal(ours, theirs, rtol=1e-5, name=""):
    """Equal up to float32 summation order: ||ours - theirs|| <= rtol ||theirs||, and entrywise to rtol max|g|."""
    ours, theirs = ours.double(), theirs.double()
    assert th.linalg.vector_norm(theirs) > 0, name
    error = float(th.linalg.vector_norm(ours - theirs) / th.linalg.vector_norm(theirs))
    assert error <= rtol, f"{name}: relative error {error:.2e}"
    np.testing.assert_allclose(
        ours.numpy(), theirs.numpy(), rtol=0, atol=rtol * float(theirs.abs().max()), err_msg=name
    )


def our_gradient(loss):
    theta = loss.theta0().requires_grad_(True)
    return th.autograd.grad(loss.loss(theta), theta)[0]


def sb3_gradient(model, algo, net, grads):
    return th.cat([grads[id(p)].reshape(-1) for _, p in split_parameters(model.policy, algo)[net]])


@pytest.mark.parametrize("use_sde", [False, True])
def test_ppo_gradients_equal_sb3_training(use_sde):
    th.manual_seed(0)
    hyper = {
        "n_steps": 256,
        "batch_size": 256,
        "n_epochs": 1,
        "max_grad_norm": 1e9,
        "ent_coef": 0.01,
        "vf_coef": 0.7,
        "clip_range": 0.2,
        "use_sde": use_sde,
    }
    policy = {"net_arch": {"pi": [16, 16], "vf": [16, 16]}}
    model = PPO("MlpPolicy", make_vec_env("Pendulum-v1"), policy_kwargs=policy, seed=0, device="cpu", **hyper)
    before = clone_policy("ppo", model, hyper, policy)  # SB3 computes its gradient at these parameters
    grads: dict = {}
    capture_gradients(model.policy.optimizer, grads)
    model.learn(256)  # one rollout, then one gradient step on the whole rollout as a single mini-batch
    buffer = model.rollout_buffer
    batch = {
        "observations": th.as_tensor(buffer.observations.reshape(256, -1)),
        "actions": th.as_tensor(buffer.actions.reshape(256, -1)),
        "old_log_prob": th.as_tensor(buffer.log_probs.reshape(-1)),
        "advantages": th.as_tensor(buffer.advantages.reshape(-1)),
        "returns": th.as_tensor(buffer.returns.reshape(-1)),
    }
    for net in ("actor", "critic"):
        policy_copy = new_policy("ppo", model.observation_space, model.action_space, hyper, policy)
        policy_copy.load_state_dict(before.state_dict())
        ours = our_gradient(make_loss("ppo", net, policy_copy, batch, hyper, "corrected"))
        theirs = sb3_gradient(model, "ppo", net, grads)
        assert_gradients_equal(ours, theirs, name=net)


def test_sac_gradients_equal_sb3_training():
    policy = {"net_arch": [32, 32]}
    hyper = {"learning_starts": 100, "batch_size": 64, "buffer_size": 1000, "gamma": 0.97}
    model = SAC("MlpPolicy", make_vec_env("Pendulum-v1"), policy_kwargs=policy, seed=0, device="cpu", **hyper)
    model.learn(400)  # some training, and 200-step episodes ending in timeouts
    model.lr_schedule = lambda _: 0.0  # SB3's step must not move the critic before the actor loss uses it
    grads: dict = {}
    capture_gradients(model.actor.optimizer, grads)
    capture_gradients(model.critic.optimizer, grads)
    samples = []
    sample = model.replay_buffer.sample
    model.replay_buffer.sample = lambda *a, **k: samples.append(sample(*a, **k)) or samples[-1]
    snapshot = clone_policy("sac", model, hyper, policy)
    alpha = float(th.exp(model.log_ent_coef.detach()))
    th.manual_seed(123)
    model.train(gradient_steps=1, batch_size=64)
    th.manual_seed(123)  # SB3 draws the actor noise, then the next-action noise, in this order
    actor_noise = _standard_normal((64, 1), dtype=th.float32, device="cpu")
    target_noise = _standard_normal((64, 1), dtype=th.float32, device="cpu")
    data = samples[0]
    batch = {
        "observations": data.observations,
        "actions": data.actions,
        "next_observations": data.next_observations,
        "rewards": data.rewards.flatten(),
        "dones": data.dones.flatten(),  # SB3 already masked the timeouts
        "timeouts": th.zeros(64),
        "actor_noise": actor_noise,
        "target_noise": target_noise,
    }
    assert data.dones.sum() < 64
    settings = {"gamma": hyper["gamma"], "ent_coef_value": alpha}
    for net in ("actor", "critic"):
        policy_copy = new_policy("sac", model.observation_space, model.action_space, hyper, policy)
        policy_copy.load_state_dict(snapshot.state_dict())
        ours = our_gradient(make_loss("sac", net, policy_copy, batch, settings, "corrected"))
        theirs = sb3_gradient(model, "sac", net, grads)
        assert_gradients_equal(ours, theirs, name=net)


def test_original_variant_drops_the_q_gradient_of_the_sac_actor():
    policy = {"net_arch": [16, 16]}
    venv = make_vec_env("Pendulum-v1")
    model = SAC("MlpPolicy", venv, policy_kwargs=policy, seed=0, device="cpu", buffer_size=10)
    obs = th.randn(32, 3)
    noise = th.randn(32, 1)
    batch = {"observations": obs, "actor_noise": noise}
    settings = {"ent_coef_value": 0.0, "gamma": 0.99}  # alpha 0: only the Q term is left
    grads = {}
    for variant in ("corrected", "original"):
        policy_copy = clone_policy("sac", model, {}, policy)
        grads[variant] = our_gradient(make_loss("sac", "actor", policy_copy, batch, settings, variant))
    assert th.linalg.vector_norm(grads["corrected"]) > 0 and th.count_nonzero(grads["original"]) == 0


@pytest.fixture(scope="module")
def trained_sac():
    """A briefly trained SAC on Pendulum (critic and target far from their initialisation): its hyperparameters,
    policy kwargs, state (policy and log alpha) and the transitions it collected."""
    policy = {"net_arch": [32, 32]}
    hyper = {"learning_starts": 100, "batch_size": 64, "buffer_size": 1000, "gamma": 0.97}
    model = SAC("MlpPolicy", make_vec_env("Pendulum-v1"), policy_kwargs=policy, seed=0, device="cpu", **hyper)
    model.learn(400)
    fields = ("observations", "next_observations", "actions", "rewards")
    transitions = {field: getattr(model.replay_buffer, field)[100:400, 0].copy() for field in fields}
    return hyper, policy, model.policy.state_dict(), model.log_ent_coef.detach().clone(), transitions


def sac_with_episode_ends(trained, n: int, handle_timeout_termination: bool):
    """The trained SAC with a ReplayBuffer of n of its transitions, transition 0 terminated and transition 1
    truncated, added through SB3's own ``add`` (which records timeouts only with handle_timeout_termination)."""
    from stable_baselines3.common.buffers import ReplayBuffer
    from stable_baselines3.common.logger import Logger

    hyper, policy, state, log_ent_coef, transitions = trained
    model = SAC("MlpPolicy", make_vec_env("Pendulum-v1"), policy_kwargs=policy, seed=0, device="cpu", **hyper)
    model.policy.load_state_dict(state)
    model.log_ent_coef.data.copy_(log_ent_coef)
    model.lr_schedule = lambda _: 0.0  # SB3's step must leave the networks as they are
    model.set_logger(Logger(None, []))  # train() logs; learn() would have set one up
    buffer = ReplayBuffer(
        n,
        model.observation_space,
        model.action_space,
        device="cpu",
        n_envs=1,
        handle_timeout_termination=handle_timeout_termination,
    )
    fields = ("observations", "next_observations", "actions", "rewards")
    for i in range(n):
        obs, next_obs, action, reward = (transitions[field][i : i + 1] for field in fields)
        buffer.add(obs, next_obs, action, reward, np.array([i < 2]), [{"TimeLimit.truncated": i == 1}])
    model.replay_buffer = buffer
    buffer.sample = lambda batch_size, env=None: buffer._get_samples(np.arange(n), env)  # the whole buffer, in order
    return model


def sb3_sac_step(model, n: int, monkeypatch) -> tuple[th.Tensor, th.Tensor]:
    """SB3's SAC.train() once on the whole buffer: the critic gradient and the TD targets it used."""
    import stable_baselines3.sac.sac as sac_module

    grads: dict = {}
    targets = []
    mse_loss = th.nn.functional.mse_loss

    def recording_mse_loss(current, target):
        targets.append(target.detach().flatten().clone())
        return mse_loss(current, target)

    monkeypatch.setattr(sac_module, "F", type("F", (), {"mse_loss": staticmethod(recording_mse_loss)}))
    capture_gradients(model.actor.optimizer, grads)
    capture_gradients(model.critic.optimizer, grads)
    th.manual_seed(7)
    model.train(gradient_steps=1, batch_size=n)
    return sb3_gradient(model, "sac", "critic", grads), targets[0]


@pytest.mark.parametrize("variant, handle_timeouts", [("corrected", True), ("original", False)])
def test_sac_critic_with_a_terminated_and_a_truncated_transition_equals_sb3(
    trained_sac, variant, handle_timeouts, monkeypatch
):
    """corrected = SB3 with timeouts handled (dones * (1 - timeouts)); original = SB3 without them (a
    truncation treated as a termination). The variants' targets differ on the truncated transition only."""
    n = 32
    hyper, policy = trained_sac[:2]
    model = sac_with_episode_ends(trained_sac, n, handle_timeouts)
    buffer = model.replay_buffer
    assert buffer.timeouts[:n, 0].tolist() == [0, handle_timeouts] + [0] * (n - 2)
    snapshot = clone_policy("sac", model, hyper, policy)  # before SB3's step moves the target networks
    alpha = float(th.exp(model.log_ent_coef.detach()))
    theirs, sb3_targets = sb3_sac_step(model, n, monkeypatch)
    th.manual_seed(7)
    _standard_normal((n, 1), dtype=th.float32, device="cpu")  # SB3 draws the actor's noise first
    batch = {
        "observations": th.as_tensor(buffer.observations[:n, 0]),
        "actions": th.as_tensor(buffer.actions[:n, 0]),
        "next_observations": th.as_tensor(buffer.next_observations[:n, 0]),
        "rewards": th.as_tensor(buffer.rewards[:n, 0]),
        "dones": th.as_tensor(buffer.dones[:n, 0]),  # raw episode ends, terminated and truncated alike
        "timeouts": th.as_tensor([0.0, 1.0] + [0.0] * (n - 2)),  # as the run file stores them
        "target_noise": _standard_normal((n, 1), dtype=th.float32, device="cpu"),
    }

    def policy_copy():
        copy = new_policy("sac", model.observation_space, model.action_space, hyper, policy)
        copy.load_state_dict(snapshot.state_dict())
        return copy

    targets = {v: sac_targets(policy_copy(), batch, alpha, hyper["gamma"], v) for v in VARIANTS}
    np.testing.assert_allclose(targets[variant].numpy(), sb3_targets.numpy(), rtol=1e-6, atol=1e-6)
    assert np.flatnonzero((targets["corrected"] != targets["original"]).numpy()).tolist() == [1]
    assert targets["corrected"][0] == batch["rewards"][0] and targets["original"][1] == batch["rewards"][1]
    bootstrap = float(targets["corrected"][1] - batch["rewards"][1])
    assert abs(bootstrap) > 1.0, bootstrap  # the truncated transition's target really bootstraps
    settings = {"gamma": hyper["gamma"], "ent_coef_value": alpha}
    gradients = {v: our_gradient(make_loss("sac", "critic", policy_copy(), batch, settings, v)) for v in VARIANTS}
    assert_gradients_equal(gradients[variant], theirs, name=variant)
    other = gradients[VARIANTS[1 - VARIANTS.index(variant)]]  # one target apart: far outside the tolerance
    assert th.linalg.vector_norm(other - theirs) > 1e-2 * th.linalg.vector_norm(theirs)  # measured 0.24


TD3_HYPER = {
    "learning_starts": 100,
    "batch_size": 64,
    "buffer_size": 1000,
    "gamma": 0.97,
    "target_policy_noise": 0.4,  # sigma eps beyond the clip for |eps| > 1.25: the clip is exercised
    "target_noise_clip": 0.5,
}
TD3_POLICY = {"net_arch": [32, 32]}


@pytest.fixture(scope="module")
def trained_td3():
    """A briefly trained TD3 on Pendulum (exploration noise 0.1 as rl-zoo's): its policy state and replay buffer."""
    venv = make_vec_env("Pendulum-v1")
    noise = NormalActionNoise(np.zeros(1), 0.1 * np.ones(1))
    model = TD3("MlpPolicy", venv, policy_kwargs=TD3_POLICY, seed=0, device="cpu", action_noise=noise, **TD3_HYPER)
    model.learn(400)
    return model.policy.state_dict(), model.replay_buffer


def td3_model(trained, buffer: ReplayBuffer | None = None):
    """A TD3 carrying the trained parameters, whose next ``train`` step updates the actor too (policy_delay
    2) and whose optimizers only record the gradients."""
    state, trained_buffer = trained
    model = TD3("MlpPolicy", make_vec_env("Pendulum-v1"), policy_kwargs=TD3_POLICY, seed=0, device="cpu", **TD3_HYPER)
    model.policy.load_state_dict(state)
    model.replay_buffer = buffer or trained_buffer
    model.set_logger(Logger(None, []))
    model._n_updates = 1  # train() counts this step as update 2: 2 % policy_delay == 0, the actor is updated
    grads: dict = {}
    capture_gradients(model.actor.optimizer, grads)
    capture_gradients(model.critic.optimizer, grads)
    return model, grads


def td3_copy(snapshot, model):
    copy = new_policy("td3", model.observation_space, model.action_space, TD3_HYPER, TD3_POLICY)
    copy.load_state_dict(snapshot.state_dict())
    return copy


def test_td3_gradients_equal_sb3_training(trained_td3):
    model, grads = td3_model(trained_td3)
    th.manual_seed(5)
    data = model.replay_buffer.sample(64)
    model.replay_buffer.sample = lambda *a, **k: data
    snapshot = clone_policy("td3", model, TD3_HYPER, TD3_POLICY)  # before the step's Polyak update
    th.manual_seed(123)
    model.train(gradient_steps=1, batch_size=64)
    th.manual_seed(123)  # SB3's only draw: the smoothing noise, normal_(0, sigma) in the actions' shape
    target_noise = th.empty((64, 1)).normal_()
    assert th.any(0.4 * target_noise.abs() > 0.5)
    batch = {
        "observations": data.observations,
        "actions": data.actions,
        "next_observations": data.next_observations,
        "rewards": data.rewards.flatten(),
        "dones": data.dones.flatten(),  # SB3 already masked the timeouts
        "timeouts": th.zeros(64),
        "target_noise": target_noise,
    }
    assert data.dones.sum() < 64
    for net in ("actor", "critic"):
        ours = our_gradient(make_loss("td3", net, td3_copy(snapshot, model), batch, TD3_HYPER, "corrected"))
        assert_gradients_equal(ours, sb3_gradient(model, "td3", net, grads), name=net)


def test_td3_critic_with_a_terminated_and_a_truncated_transition_equals_sb3(trained_td3, monkeypatch):
    """Transition 0 terminated, transition 1 truncated (added through SB3's own ``add``, timeouts handled):
    the target of the first is its reward, the second bootstraps."""
    import stable_baselines3.td3.td3 as td3_module

    n, trained_buffer = 32, trained_td3[1]
    model, grads = td3_model(trained_td3)
    buffer = ReplayBuffer(n, model.observation_space, model.action_space, device="cpu", n_envs=1)
    fields = ("observations", "next_observations", "actions", "rewards")
    for i in range(n):
        obs, next_obs, action, reward = (getattr(trained_buffer, field)[100 + i] for field in fields)
        buffer.add(obs, next_obs, action, reward, np.array([i < 2]), [{"TimeLimit.truncated": i == 1}])
    assert buffer.timeouts[:n, 0].tolist() == [0, 1] + [0] * (n - 2)
    model.replay_buffer = buffer
    buffer.sample = lambda batch_size, env=None: buffer._get_samples(np.arange(n), env)  # all, in order
    targets = []
    mse_loss = th.nn.functional.mse_loss

    def recording_mse_loss(current, target):
        targets.append(target.detach().flatten().clone())
        return mse_loss(current, target)

    monkeypatch.setattr(td3_module, "F", type("F", (), {"mse_loss": staticmethod(recording_mse_loss)}))
    snapshot = clone_policy("td3", model, TD3_HYPER, TD3_POLICY)
    th.manual_seed(7)
    model.train(gradient_steps=1, batch_size=n)
    th.manual_seed(7)
    batch = {
        "observations": th.as_tensor(buffer.observations[:n, 0]),
        "actions": th.as_tensor(buffer.actions[:n, 0]),
        "next_observations": th.as_tensor(buffer.next_observations[:n, 0]),
        "rewards": th.as_tensor(buffer.rewards[:n, 0]),
        "dones": th.as_tensor(buffer.dones[:n, 0]),  # raw episode ends, terminated and truncated alike
        "timeouts": th.as_tensor([0.0, 1.0] + [0.0] * (n - 2)),  # as the run file stores them
        "target_noise": th.empty((n, 1)).normal_(),
    }
    ours = td3_targets(td3_copy(snapshot, model), batch, 0.97, 0.4, 0.5)
    np.testing.assert_allclose(ours.numpy(), targets[0].numpy(), rtol=1e-6, atol=1e-6)
    assert ours[0] == batch["rewards"][0]
    assert abs(float(ours[1] - batch["rewards"][1])) > 1.0  # the truncated transition really bootstraps
    loss = make_loss("td3", "critic", td3_copy(snapshot, model), batch, TD3_HYPER, "corrected")
    assert_gradients_equal(our_gradient(loss), sb3_gradient(model, "td3", "critic", grads), name="critic")


def test_td3_refuses_the_original_variant():
    model = TD3("MlpPolicy", make_vec_env("Pendulum-v1"), policy_kwargs={"net_arch": [4]}, device="cpu", buffer_size=10)
    batch = {"observations": th.zeros(2, 3)}
    with pytest.raises(ValueError, match="not defined for td3"):
        make_loss("td3", "actor", clone_policy("td3", model, {}, {"net_arch": [4]}), batch, TD3_HYPER, "original")
