"""The actor and critic losses of PPO, SAC and TD3 as functions of one network's flat parameter vector.

Every loss is a mean over samples of a per-sample term, so the loss of a dataset is the size-weighted sum
of its chunks' losses: that is what lets ``hessian.HessianOperator`` work chunk by chunk. All are losses to
be *minimised* (docs/reference.md §3):

- PPO actor: -mean(min(A r, A clip(r, 1-eps, 1+eps))) + ent_coef * (-mean(entropy)), r = exp(log pi - log pi_old),
  A normalised over the batch given (SB3's ``normalize_advantage``).
- PPO critic: vf_coef * mean((R - V)^2).
- SAC actor: mean(alpha log pi(a~|s) - min_i Q_i(s, a~)), a~ reparameterised with stored noise, the critic's
  parameters held fixed. ``variant="original"`` reproduces the paper-era defect: Q without gradient.
- SAC critic: 0.5 * sum_i mean((Q_i(s, a) - y)^2), y = r + gamma (1 - terminated) (min_i Qtarget_i(s', a') -
  alpha log pi(a'|s')) computed once. ``variant="original"`` treats truncations as terminations.
- TD3 actor: -mean(Q_1(s, mu(s))), the critic's parameters held fixed (SB3's ``q1_forward``).
- TD3 critic: sum_i mean((Q_i(s, a) - y)^2) (SB3's sum of MSEs: no 0.5), y = r + gamma (1 - terminated)
  min_i Qtarget_i(s', clip(mu_target(s') + clip(sigma eps, -c, c), -1, 1)) computed once, eps stored noise.
  TD3 has no paper-era code, so it has no ``variant="original"`` (refused, docs/reference.md §3.3).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch as th
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import ActorCriticPolicy, BaseModel, BasePolicy
from stable_baselines3.sac.policies import SACPolicy
from stable_baselines3.td3.policies import TD3Policy
from torch import nn

from pgsubspaces.train.parameters import ParameterLayout, layout_of, split_parameters

VARIANTS = ("corrected", "original")


class FlatLoss(nn.Module):
    """L(theta) = mean_i l_i(theta) over a fixed batch, theta the flat parameters of one network.

    Subclasses implement ``forward(batch) -> per-sample losses`` using ``self.policy``; ``chunk_loss``
    evaluates it with theta substituted for the network's parameters (``torch.func.functional_call``).

    Attributes:
        layout: where each parameter tensor of the network sits in theta.
        n_samples: batch size N.
    """

    def __init__(self, policy: BasePolicy, algo: str, net: str, batch: Mapping[str, th.Tensor]):
        super().__init__()
        self.policy = take_over(policy)
        named = split_parameters(self.policy, algo)[net]
        self.layout: ParameterLayout = layout_of(named)
        self.batch = dict(batch)
        self.n_samples = len(next(iter(self.batch.values())))

    def theta0(self) -> th.Tensor:
        """The network's current parameters as a flat vector (the point the Hessian is taken at)."""
        return th.cat([self.policy.get_parameter(name).detach().reshape(-1) for name in self.layout.names])

    def _bind(self, theta: th.Tensor) -> dict[str, th.Tensor]:
        offsets = self.layout.offsets
        return {
            f"policy.{name}": theta[start:stop].view(shape)
            for name, start, stop, shape in zip(self.layout.names, offsets, offsets[1:], self.layout.shapes)
        }

    def chunk_loss(self, theta: th.Tensor, start: int = 0, stop: int | None = None) -> th.Tensor:
        """Mean loss over samples ``start:stop`` at parameters ``theta`` (scalar)."""
        chunk = {key: value[start:stop] for key, value in self.batch.items()}
        return th.func.functional_call(self, self._bind(theta), (chunk,)).mean()

    def loss(self, theta: th.Tensor) -> th.Tensor:
        return self.chunk_loss(theta)


def take_over(policy: BasePolicy) -> BasePolicy:
    """Prepare a policy for the losses: eval mode, parameters frozen (theta is the only leaf needing
    gradients), and observations kept in the batch's dtype (SB3 casts them to float32)."""
    policy.set_training_mode(False)
    policy.requires_grad_(False)
    for module in policy.modules():
        if isinstance(module, BaseModel):
            module.extract_features = _features_without_cast(module)
    return policy


def replica_of(policy: BasePolicy) -> BasePolicy:
    """A deep copy of a taken-over policy, for another thread. SB3's action distributions keep the last
    forward's torch distribution (tensors with graph, which deepcopy refuses): the copy starts without."""
    memo = {}
    for module in policy.modules():
        for value in vars(module).values():
            if isinstance(value, Distribution):
                for attribute in vars(value).values():
                    if isinstance(attribute, th.distributions.Distribution) or (
                        isinstance(attribute, th.Tensor) and attribute.grad_fn is not None
                    ):
                        memo[id(attribute)] = None
    return take_over(copy.deepcopy(policy, memo))


def _features_without_cast(module: BaseModel):
    """``BaseModel.extract_features`` minus SB3's ``obs.float()`` (the only preprocessing of Box observations)."""

    def extract_features(obs: th.Tensor, features_extractor: nn.Module | None = None) -> th.Tensor:
        return (features_extractor or module.features_extractor)(obs)

    return extract_features


def normalized(advantages: th.Tensor) -> th.Tensor:
    """SB3's advantage normalisation over the batch given."""
    return (advantages - advantages.mean()) / (advantages.std() + 1e-8)


class PPOActorLoss(FlatLoss):
    """Clipped surrogate plus entropy term; batch keys observations, actions, old_log_prob, advantages."""

    def __init__(self, policy: ActorCriticPolicy, batch, clip_range: float, ent_coef: float, normalize_advantage=True):
        batch = dict(batch)
        if normalize_advantage and len(batch["advantages"]) > 1:
            batch["advantages"] = normalized(batch["advantages"])
        super().__init__(policy, "ppo", "actor", batch)
        self.clip_range, self.ent_coef = clip_range, ent_coef

    def forward(self, b: dict[str, th.Tensor]) -> th.Tensor:
        policy = self.policy  # ActorCriticPolicy.get_distribution, without the dtype cast
        latent = policy.mlp_extractor.forward_actor(policy.pi_features_extractor(b["observations"]))
        distribution = policy._get_action_dist_from_latent(latent)
        log_prob = distribution.log_prob(b["actions"])
        ratio = th.exp(log_prob - b["old_log_prob"])
        advantages = b["advantages"]
        surrogate = th.min(advantages * ratio, advantages * th.clamp(ratio, 1 - self.clip_range, 1 + self.clip_range))
        entropy = distribution.entropy()
        entropy = -log_prob if entropy is None else entropy
        return -surrogate - self.ent_coef * entropy


class PPOCriticLoss(FlatLoss):
    """vf_coef times the squared error of V against the returns; batch keys observations, returns."""

    def __init__(self, policy: ActorCriticPolicy, batch, vf_coef: float):
        super().__init__(policy, "ppo", "critic", batch)
        self.vf_coef = vf_coef

    def forward(self, b: dict[str, th.Tensor]) -> th.Tensor:
        policy = self.policy  # ActorCriticPolicy.predict_values, without the dtype cast
        latent = policy.mlp_extractor.forward_critic(policy.vf_features_extractor(b["observations"]))
        values = policy.value_net(latent).flatten()
        return self.vf_coef * (b["returns"] - values) ** 2


def squashed_sample(policy: SACPolicy, observations: th.Tensor, noise: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
    """SAC's reparameterised action and its log-probability with given standard-normal noise.

    The same operations as SB3's ``actor.action_log_prob``, with the noise supplied instead of drawn.
    """
    actor = policy.actor
    if actor.use_sde:
        raise NotImplementedError("SAC with gSDE is not supported by the analysis")
    mean_actions, log_std, _ = actor.get_action_dist_params(observations)
    distribution = actor.action_dist.proba_distribution(mean_actions, log_std)
    gaussian = distribution.distribution.mean + noise * distribution.distribution.stddev
    actions = th.tanh(gaussian)
    return actions, distribution.log_prob(actions, gaussian)


class SACActorLoss(FlatLoss):
    """alpha log pi - min Q at reparameterised actions; batch keys observations, actor_noise."""

    def __init__(self, policy: SACPolicy, batch, ent_coef: float, variant: str):
        super().__init__(policy, "sac", "actor", batch)
        self.ent_coef, self.q_has_gradient = ent_coef, check_variant(variant) == "corrected"

    def forward(self, b: dict[str, th.Tensor]) -> th.Tensor:
        actions, log_prob = squashed_sample(self.policy, b["observations"], b["actor_noise"])
        if not self.q_has_gradient:  # the paper-era code computed Q under no_grad (docs/reference.md §3.2)
            actions = actions.detach()
        q = th.min(th.cat(self.policy.critic(b["observations"], actions), dim=1), dim=1).values
        return self.ent_coef * log_prob - q


def sac_targets(policy: SACPolicy, batch, ent_coef: float, gamma: float, variant: str) -> th.Tensor:
    """y = r + gamma (1 - done) (min_i Qtarget_i(s', a') - alpha log pi(a'|s')), shape (n,), no gradient.

    ``done`` is a termination (dones without timeouts) in the corrected variant, any episode end in the
    original one (its analysis buffer lost the timeouts, docs/reference.md §2.4).
    """
    done = batch["dones"].float()
    if check_variant(variant) == "corrected":
        done = done * (1 - batch["timeouts"].float())
    take_over(policy)
    with th.no_grad():
        next_actions, next_log_prob = squashed_sample(policy, batch["next_observations"], batch["target_noise"])
        next_q = th.min(th.cat(policy.critic_target(batch["next_observations"], next_actions), dim=1), dim=1).values
        return batch["rewards"] + (1 - done) * gamma * (next_q - ent_coef * next_log_prob)


class SACCriticLoss(FlatLoss):
    """0.5 * sum over both Q-networks of the squared TD error; batch keys observations, actions, targets."""

    def __init__(self, policy: SACPolicy, batch):
        super().__init__(policy, "sac", "critic", batch)

    def forward(self, b: dict[str, th.Tensor]) -> th.Tensor:
        qs = self.policy.critic(b["observations"], b["actions"])
        return 0.5 * sum((q.flatten() - b["targets"]) ** 2 for q in qs)


class TD3ActorLoss(FlatLoss):
    """-Q_1 at the deterministic action mu(s); batch key observations."""

    def __init__(self, policy: TD3Policy, batch):
        super().__init__(policy, "td3", "actor", batch)

    def forward(self, b: dict[str, th.Tensor]) -> th.Tensor:
        observations = b["observations"]
        return -self.policy.critic.q1_forward(observations, self.policy.actor(observations)).flatten()


def td3_targets(policy: TD3Policy, batch, gamma: float, target_policy_noise: float, target_noise_clip: float):
    """y = r + gamma (1 - terminated) min_i Qtarget_i(s', a'), a' the target actor's smoothed action, shape
    (n,), no gradient. ``target_noise`` is the standard-normal eps before scaling by sigma and clipping;
    ``terminated`` = dones without timeouts (SB3's buffer with ``handle_timeout_termination``)."""
    terminated = batch["dones"].float() * (1 - batch["timeouts"].float())
    take_over(policy)
    with th.no_grad():
        noise = (target_policy_noise * batch["target_noise"]).clamp(-target_noise_clip, target_noise_clip)
        next_actions = (policy.actor_target(batch["next_observations"]) + noise).clamp(-1, 1)
        next_q = th.min(th.cat(policy.critic_target(batch["next_observations"], next_actions), dim=1), dim=1).values
        return batch["rewards"] + (1 - terminated) * gamma * next_q


class TD3CriticLoss(FlatLoss):
    """Sum over both Q-networks of the squared TD error; batch keys observations, actions, targets."""

    def __init__(self, policy: TD3Policy, batch):
        super().__init__(policy, "td3", "critic", batch)

    def forward(self, b: dict[str, th.Tensor]) -> th.Tensor:
        qs = self.policy.critic(b["observations"], b["actions"])
        return sum((q.flatten() - b["targets"]) ** 2 for q in qs)


def check_variant(variant: str, algo: str | None = None) -> str:
    """``variant`` if known (and, given ``algo``, defined for it: TD3 has no paper-era "original")."""
    if variant not in VARIANTS:
        raise ValueError(f"loss variant {variant!r}; expected one of {VARIANTS}")
    if algo == "td3" and variant == "original":
        raise ValueError(
            "loss variant 'original' is not defined for td3: the paper-era code had no TD3 (docs/reference.md "
            "§3.3); analyse TD3 runs with variant 'corrected'"
        )
    return variant


def make_loss(
    algo: str, net: str, policy: BasePolicy, batch: Mapping[str, th.Tensor], settings: Mapping, variant: str
) -> FlatLoss:
    """The loss of ``net`` ('actor' or 'critic') for a batch of analysis data.

    Args:
        settings: hyperparameters (PPO: clip_range, ent_coef, vf_coef, normalize_advantage; SAC: gamma and
            ``ent_coef_value``, the checkpoint's entropy coefficient alpha; TD3: gamma, target_policy_noise,
            target_noise_clip).
    """
    check_variant(variant, algo)
    if algo == "ppo":
        if net == "actor":
            return PPOActorLoss(
                policy, batch, settings["clip_range"], settings["ent_coef"], settings.get("normalize_advantage", True)
            )
        return PPOCriticLoss(policy, batch, settings["vf_coef"])
    if algo == "td3":
        if net == "actor":
            return TD3ActorLoss(policy, {"observations": batch["observations"]})
        keys = ("gamma", "target_policy_noise", "target_noise_clip")
        missing = [key for key in keys if key not in settings]
        if missing:
            raise KeyError(f"td3 critic loss: hyperparameters {missing} missing from the settings")
        targets = td3_targets(policy, batch, *(float(settings[key]) for key in keys))
        return TD3CriticLoss(
            policy, {"observations": batch["observations"], "actions": batch["actions"], "targets": targets}
        )
    alpha = settings["ent_coef_value"]
    if net == "actor":
        return SACActorLoss(policy, batch, alpha, variant)
    targets = sac_targets(policy, batch, alpha, settings["gamma"], variant)
    return SACCriticLoss(
        policy, {"observations": batch["observations"], "actions": batch["actions"], "targets": targets}
    )
