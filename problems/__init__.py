"""The library of control problems, looked up by name with :func:`get_problem`."""

from .builder import ContinuousProblem, LinearQuadratic, euler_discretize
from .lqr import lqr, random_lqr

#: name → factory taking the problem's parameters as keyword arguments
PROBLEMS = {"lqr": lqr}


def get_problem(name: str, **params):
    """Build the problem registered as ``name`` with ``params``."""
    if name not in PROBLEMS:
        raise ValueError(f"unknown problem {name!r}; valid: {sorted(PROBLEMS)}")
    return PROBLEMS[name](**params)


__all__ = ["ContinuousProblem", "LinearQuadratic", "euler_discretize", "lqr", "random_lqr",
           "PROBLEMS", "get_problem"]
