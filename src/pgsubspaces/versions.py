"""Versions of the packages that determine a run's numbers, recorded with every result."""

from __future__ import annotations

import importlib.metadata
import platform

PACKAGES = (
    "pgsubspaces",
    "torch",
    "numpy",
    "scipy",
    "stable-baselines3",
    "gymnasium",
    "mujoco",
    "dm-control",
    "shimmy",
    "gymnasium-robotics",
    "box2d",
    "h5py",
)


def package_versions() -> dict[str, str]:
    """Installed version of each package in ``PACKAGES`` (``"missing"`` if absent), plus Python's."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions
