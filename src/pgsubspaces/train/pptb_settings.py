"""PPTB's hyperparameters, checked, and the run-id segment that names them (no torch: the workflow reads
them at DAG time)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class PPTBSettings:
    """The paper's hyperparameters; ``t_s`` and ``t_p`` count actor gradient updates."""

    r_t: int  # directions kept (trim)
    p_b: float  # boost amplitude (the paper gives no value)
    r_b: int = 2  # directions boosted, r_b <= r_t (the paper boosts 2)
    t_s: int = 25  # store interval
    t_p: int = 1000  # PPTB interval, a multiple of t_s
    buffer_size: int = 2000  # FIFO length k (the paper: 2000 MuJoCo, 1000 DMC)

    def __post_init__(self):
        checks = {
            "r_t": self.r_t >= 1,
            "r_b": 0 <= self.r_b <= self.r_t,
            "p_b": math.isfinite(self.p_b),
            "t_s": self.t_s >= 1,
            "t_p": self.t_p >= self.t_s and self.t_p % self.t_s == 0,
            "buffer_size": self.buffer_size >= 2,
        }
        for key, ok in checks.items():
            if not ok:
                raise ValueError(f"PPTB {key} = {getattr(self, key)!r} is invalid ({self})")

    def as_dict(self) -> dict[str, Any]:
        """The settings in field order, p_b a float (what a RunSpec carries)."""
        return {**asdict(self), "p_b": float(self.p_b)}

    @property
    def name(self) -> str:
        """Every setting, exactly (p_b as its shortest round-trip decimal): ``rt16-rb2-pb0.1-ts25-tp1000-k2000``."""
        s = self.as_dict()
        return f"rt{s['r_t']}-rb{s['r_b']}-pb{s['p_b']!r}-ts{s['t_s']}-tp{s['t_p']}-k{s['buffer_size']}"


SETTING_KEYS = tuple(field.name for field in fields(PPTBSettings))  # the order of a saved settings array
# what PPTBSettings.name produces (p_b >= 0 in the workflow's schema; repr may give 1e-05 or 1e+20)
VARIANT_PATTERN = r"rt[0-9]+-rb[0-9]+-pb[0-9][0-9.e+-]*-ts[0-9]+-tp[0-9]+-k[0-9]+"
