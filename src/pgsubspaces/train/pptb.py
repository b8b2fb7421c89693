"""PPTB, policy path trimming and boosting (Tang et al.), as a stable-baselines3 callback.

    model.learn(total_timesteps, callback=PPTB(r_t=16, p_b=0.1))

Every ``t_s`` gradient updates of the actor the callback stores the flat actor parameters in a FIFO of the
last ``buffer_size``; every ``t_p`` updates it takes the thin SVD of the stored path B = U Σ Vᵀ (rows oldest
first, the current policy last, uncentred as the paper), and loads into the actor

    θ' = Σ_{j ≤ r_t} u'_j σ_j v_j,  u'_j = U[n, j] + p_b (U[n, j] − U[1, j]) for j ≤ r_b, else U[n, j]

(trim: the directions after r_t are dropped; boost: the first r_b coordinates move further along the
path's direction of travel). With u_j σ_j v_j = U[i, j] Bᵀ U[:, j] this is

    θ' = Bᵀ (U_t U_tᵀ e_n + p_b U_b U_bᵀ (e_n − e_1)),

which needs only U, the eigenvectors of the Gram matrix B Bᵀ (n × n): no division by small singular values,
and at r_t = n it returns θ exactly (U U ᵀ = I), however ill-conditioned the path.

Choices the paper leaves open, made here: updates are counted as steps of the actor's optimizer (PPO's
shared optimizer steps once per mini-batch; TD3's actor every ``policy_delay`` critic updates); only the
actor changes: critics, target networks (TD3's actor target follows by its Polyak update) and the optimizer
state are left as they are; the stored path keeps the policy as recorded, not the one PPTB loads.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback

from pgsubspaces.atomic import atomic_path
from pgsubspaces.train.agents import algo_of
from pgsubspaces.train.parameters import actor_optimizer, split_parameters
from pgsubspaces.train.pptb_settings import SETTING_KEYS, PPTBSettings

__all__ = ["PPTB", "PPTBSettings", "pptb_parameters"]

GRAM_CHUNK = 8192  # columns per float64 chunk of the Gram matrix: bounds the float64 copy at n x 8192


def gram(path: th.Tensor) -> th.Tensor:
    """B Bᵀ in float64 from the float32 rows, column chunk by chunk (the minor directions need float64)."""
    out = th.zeros(path.shape[0], path.shape[0], dtype=th.float64, device=path.device)
    for start in range(0, path.shape[1], GRAM_CHUNK):
        block = path[:, start : start + GRAM_CHUNK].double()
        out += block @ block.T
    return out


def pptb_weights(path: th.Tensor, r_t: int, r_b: int, p_b: float) -> th.Tensor:
    """w (n,) float64 with θ' = Bᵀ w, for the path B (n × m, oldest first)."""
    n = path.shape[0]
    _, vectors = th.linalg.eigh(gram(path))  # ascending: the left singular vectors, last = largest
    u = vectors.flip(-1)
    e_last = th.zeros(n, dtype=th.float64, device=path.device)
    e_last[-1] = 1
    step = e_last.clone()
    step[0] -= 1
    kept, boosted = u[:, : min(r_t, n)], u[:, : min(r_b, n)]
    return kept @ (kept.T @ e_last) + p_b * (boosted @ (boosted.T @ step))


def pptb_parameters(path: th.Tensor, r_t: int, r_b: int, p_b: float) -> th.Tensor:
    """θ' (m,) float64: the last row of ``path`` trimmed to r_t directions and boosted along the first r_b."""
    w = pptb_weights(path, r_t, r_b, p_b)
    out = th.zeros(path.shape[1], dtype=th.float64, device=path.device)
    for start in range(0, path.shape[1], GRAM_CHUNK):
        out[start : start + GRAM_CHUNK] = w @ path[:, start : start + GRAM_CHUNK].double()
    return out


class PPTB(BaseCallback):
    """Trims and boosts the actor along its own recent path every ``t_p`` actor updates (module docstring).

    ``enabled=False`` registers nothing, so the run is plain SB3. ``save``/``load`` carry the FIFO, the update
    count and the settings with a checkpoint, so a resumed run continues with the same path.
    """

    def __init__(
        self, r_t: int, p_b: float, r_b: int = 2, t_s: int = 25, t_p: int = 1000, buffer_size: int = 2000,
        enabled: bool = True, verbose: int = 0,
    ):  # fmt: skip
        super().__init__(verbose)
        self.settings = PPTBSettings(r_t=r_t, p_b=p_b, r_b=r_b, t_s=t_s, t_p=t_p, buffer_size=buffer_size)
        self.enabled = enabled
        self.updates = 0  # actor optimizer steps seen, over every session
        self.history: list[dict[str, float]] = []  # one row per PPTB step
        self._rows: list[th.Tensor] = []  # the FIFO, oldest first, float32 on the actor's device
        self._handle = None

    # -- SB3 callback interface
    def _init_callback(self) -> None:
        if not self.enabled or self._handle is not None:
            return
        algo = algo_of(self.model)
        self._actor = [p for _, p in split_parameters(self.model.policy, algo)["actor"]]
        optimizer = actor_optimizer(self.model, algo)
        if not self._rows:  # a fresh run starts its path with the initial policy
            self._store()
        self._handle = optimizer.register_step_post_hook(self._after_actor_step)

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    # -- the method
    def _flat(self) -> th.Tensor:
        return th.cat([p.detach().reshape(-1).float() for p in self._actor])

    def _store(self) -> None:
        self._rows.append(self._flat())
        del self._rows[: -self.settings.buffer_size]

    def _after_actor_step(self, _optimizer, _args, _kwargs) -> None:
        self.updates += 1
        if self.updates % self.settings.t_s == 0:
            self._store()
        if self.updates % self.settings.t_p == 0:
            self.apply()

    @th.no_grad()
    def apply(self) -> None:
        """One PPTB step on the stored path (its last row is the current policy when called on schedule)."""
        start = time.perf_counter()
        s = self.settings
        path = th.stack(self._rows)
        theta = pptb_parameters(path, s.r_t, s.r_b, s.p_b)
        before = self._flat().double()
        offset = 0
        for p in self._actor:
            p.copy_(theta[offset : offset + p.numel()].view_as(p).to(p.dtype))
            offset += p.numel()
        change = float(th.linalg.vector_norm(theta - before) / th.linalg.vector_norm(before).clamp_min(1e-30))
        seconds = time.perf_counter() - start
        self.history.append({"updates": self.updates, "rows": len(self._rows), "relative_change": change,
                             "seconds": seconds})  # fmt: skip
        if self.logger is not None:
            self.logger.record("pptb/relative_change", change)
            self.logger.record("pptb/seconds", seconds)

    # -- checkpoints
    def state(self) -> dict[str, np.ndarray]:
        path = th.stack(self._rows).cpu().numpy() if self._rows else np.zeros((0, 0), np.float32)
        return {
            "path": path,
            "updates": np.int64(self.updates),
            "settings": np.array([asdict(self.settings)[k] for k in SETTING_KEYS], dtype=np.float64),
        }

    def save(self, file: Path) -> None:
        with atomic_path(file) as tmp, open(tmp, "wb") as f:
            np.savez(f, **self.state())

    def load(self, file: Path, device: th.device | str = "cpu") -> None:
        """Restore the FIFO and count of a checkpoint; refuses one written with other settings."""
        with np.load(file, allow_pickle=False) as state:
            saved = dict(zip(SETTING_KEYS, state["settings"].tolist()))
            mine = asdict(self.settings)
            differing = [f"{k}: {saved[k]:g} -> {mine[k]:g}" for k in SETTING_KEYS if saved[k] != mine[k]]
            if differing:
                raise ValueError(f"{file}: PPTB state written with other settings ({', '.join(differing)})")
            self.updates = int(state["updates"])
            self._rows = [th.as_tensor(row, device=device) for row in state["path"]]
