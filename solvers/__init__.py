"""The wave-PMP driver and the locked reference solvers."""

from .riccati import continuous_riccati, discrete_riccati

__all__ = ["discrete_riccati", "continuous_riccati"]
