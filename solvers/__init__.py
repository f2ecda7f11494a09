"""The wave-PMP driver and the locked reference solvers."""

from .adjoint import forward_backward
from .backprop import solve_backprop
from .bvp import solve_bvp_pmp
from .lbfgs import solve_lbfgs
from .riccati import continuous_riccati, discrete_riccati
from .sweep import solve_sweep

__all__ = ["discrete_riccati", "continuous_riccati", "forward_backward", "solve_sweep",
           "solve_lbfgs", "solve_bvp_pmp", "solve_backprop"]
