"""PPTB: the trim-and-boost step against hand-built paths and numpy's SVD, and the callback on real SB3 runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from stable_baselines3 import PPO, SAC, TD3

from pgsubspaces.train.parameters import flatten, split_parameters
from pgsubspaces.train.pptb import PPTB, PPTBSettings, pptb_parameters


def hand_built_path(n=30, m=400, sigmas=(300.0, 20.0, 7.0, 3.0, 1.0, 0.5), seed=0):
    """B = U diag(σ) Vᵀ with known orthonormal U (n × d), V (m × d) and distinct σ."""
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((n, len(sigmas))))
    v, _ = np.linalg.qr(rng.standard_normal((m, len(sigmas))))
    return u, np.array(sigmas), v, (u * sigmas) @ v.T


def drifting_path(n=40, m=300, seed=1):
    """An uncentred, ill-conditioned path like a training's: a large start plus a small random walk."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(m) + 1e-3 * np.cumsum(rng.standard_normal((n, m)), axis=0)).astype(np.float32)


def test_full_rank_without_boost_returns_the_current_policy():
    path = th.as_tensor(drifting_path())
    for r_t in (40, 1000):  # the rank, and beyond it (capped)
        theta = pptb_parameters(path, r_t=r_t, r_b=2, p_b=0.0)
        assert th.linalg.vector_norm(theta - path[-1].double()) / th.linalg.vector_norm(path[-1]) < 1e-6
    trimmed = pptb_parameters(path, r_t=5, r_b=2, p_b=0.0)
    assert th.linalg.vector_norm(trimmed - path[-1].double()) / th.linalg.vector_norm(path[-1]) > 1e-6


def test_rank_one_lies_on_the_first_svd_direction():
    path = drifting_path()
    theta = pptb_parameters(th.as_tensor(path), r_t=1, r_b=1, p_b=0.0).numpy()
    u, s, vt = np.linalg.svd(path.astype(np.float64), full_matrices=False)
    np.testing.assert_allclose(theta, u[-1, 0] * s[0] * vt[0], rtol=0, atol=1e-9 * np.abs(theta).max())
    residual = theta - (theta @ vt[0]) * vt[0]
    assert np.linalg.norm(residual) < 1e-9 * np.linalg.norm(theta)


@pytest.mark.parametrize("r_t, r_b, p_b", [(4, 2, 0.3), (6, 2, 1.0), (3, 1, -0.5), (5, 0, 2.0)])
def test_boost_moves_the_first_coordinates_by_p_b_of_the_path_travel(r_t, r_b, p_b):
    u, sigma, v, path = hand_built_path()
    theta = pptb_parameters(th.as_tensor(path, dtype=th.float64).float(), r_t=r_t, r_b=r_b, p_b=p_b).numpy()
    coordinates = (theta @ v) / sigma  # θ' in the basis σ_j v_j
    expected = u[-1].copy()
    expected[:r_b] += p_b * (u[-1, :r_b] - u[0, :r_b])
    expected[r_t:] = 0
    np.testing.assert_allclose(coordinates, expected, atol=1e-5)
    # nothing outside the path's directions
    assert np.linalg.norm(theta - v @ (v.T @ theta)) < 1e-5 * np.linalg.norm(theta)


def test_settings_are_checked_by_key():
    for bad, key in [({"r_b": 5}, "r_b"), ({"t_p": 30}, "t_p"), ({"buffer_size": 1}, "buffer_size"),
                     ({"p_b": float("nan")}, "p_b")]:  # fmt: skip
        with pytest.raises(ValueError, match=f"PPTB {key} = "):
            PPTBSettings(**{"r_t": 4, "p_b": 0.1, **bad})


def _sac(seed=0):
    return SAC("MlpPolicy", "Pendulum-v1", learning_starts=100, batch_size=64, seed=seed, device="cpu",
               policy_kwargs={"net_arch": [32, 32]})  # fmt: skip


def _actor(model, algo):
    return flatten(split_parameters(model.policy, algo)["actor"])


def test_switched_off_is_plain_sb3_bit_for_bit():
    plain = _sac()  # each model built just before it learns: SB3 seeds torch's global generator
    plain.learn(300)
    off = _sac()
    off.learn(300, callback=PPTB(r_t=1, p_b=1.0, r_b=1, t_s=5, t_p=50, enabled=False))
    for (name, a), (_, b) in zip(plain.policy.named_parameters(), off.policy.named_parameters(), strict=True):
        assert th.equal(a, b), name


def test_full_rank_steps_leave_a_real_run_unchanged():
    """r_t beyond the buffer's rank and p_b = 0: every PPTB step of a SAC run returns θ (1e-6 relative)."""
    pptb = PPTB(r_t=10_000, p_b=0.0, t_s=5, t_p=50)
    _sac().learn(350, callback=pptb)
    assert pptb.updates == 250 and len(pptb.history) == 5
    assert max(row["relative_change"] for row in pptb.history) < 1e-6


def test_rank_one_loads_the_first_direction_into_the_actor():
    model, pptb = _sac(), PPTB(r_t=1, p_b=0.0, r_b=1, t_s=5, t_p=50)
    model.learn(300, callback=pptb)  # 200 actor updates: the last one is a PPTB step
    path = th.stack(pptb._rows).double().numpy()  # as recorded, before that step
    theta = _actor(model, "sac").astype(np.float64)
    _, _, vt = np.linalg.svd(path, full_matrices=False)
    assert np.linalg.norm(theta - (theta @ vt[0]) * vt[0]) < 1e-6 * np.linalg.norm(theta)
    assert pptb.history[-1]["relative_change"] > 1e-4  # the trim did change the policy


@pytest.mark.parametrize("algo", ["ppo", "td3"])
def test_updates_count_the_actors_optimizer_steps(algo):
    if algo == "ppo":  # 2 rollouts of 256, 4 epochs of 4 mini-batches: 32 steps of the shared optimizer
        model = PPO("MlpPolicy", "Pendulum-v1", n_steps=256, batch_size=64, n_epochs=4, seed=0, device="cpu")
        steps, expected = 512, 32
    else:  # TD3 updates its actor every 2nd critic update: 200 critic updates after learning_starts
        model = TD3("MlpPolicy", "Pendulum-v1", learning_starts=100, seed=0, device="cpu")
        steps, expected = 300, 100
    pptb = PPTB(r_t=3, p_b=0.5, t_s=2, t_p=8)
    model.learn(steps, callback=pptb)
    assert pptb.updates == expected and len(pptb.history) == expected // 8
    assert len(pptb._rows) == 1 + expected // 2  # the initial policy and one row every t_s


def test_state_round_trip_and_refusal(tmp_path):
    pptb = PPTB(r_t=3, p_b=0.5, t_s=5, t_p=50, buffer_size=20)
    _sac().learn(300, callback=pptb)
    assert len(pptb._rows) == 20  # the FIFO kept the newest 20 of 41 rows
    pptb.save(tmp_path / "pptb.npz")
    again = PPTB(r_t=3, p_b=0.5, t_s=5, t_p=50, buffer_size=20)
    again.load(tmp_path / "pptb.npz")
    assert again.updates == pptb.updates == 200
    assert all(th.equal(a, b) for a, b in zip(again._rows, pptb._rows, strict=True))
    other = PPTB(r_t=4, p_b=0.5, t_s=5, t_p=50, buffer_size=20)
    with pytest.raises(ValueError, match=r"pptb.npz: PPTB state written with other settings \(r_t: 3 -> 4\)"):
        other.load(tmp_path / "pptb.npz")
