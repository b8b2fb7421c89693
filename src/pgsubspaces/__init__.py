"""Regenerating "Identifying Policy Gradient Subspaces" (Schneider et al., ICLR 2024) on today's stack."""

__version__ = "0.1.0"
__all__ = ["__version__"]
