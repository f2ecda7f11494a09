"""The library of control problems, looked up by name with :func:`get_problem`."""

from .builder import ContinuousProblem, LinearQuadratic, euler_discretize
from .cartpole import cartpole
from .expressions import ExpressionProblem, check_derivatives, from_expressions
from .lqr import lqr, random_lqr
from .mlp import mlp
from .neural_ode import neural_ode
from .pendulum import Pendulum, pendulum
from .unicycle import unicycle
from .vanderpol import vanderpol

#: name → factory taking the problem's parameters as keyword arguments
PROBLEMS = {"lqr": lqr, "pendulum": pendulum, "neural-ode": neural_ode, "mlp": mlp,
            "cartpole": cartpole, "vanderpol": vanderpol, "unicycle": unicycle}


def get_problem(name: str, **params):
    """Build the problem registered as ``name`` with ``params``."""
    if name not in PROBLEMS:
        raise ValueError(f"unknown problem {name!r}; valid: {sorted(PROBLEMS)}")
    return PROBLEMS[name](**params)


__all__ = ["ContinuousProblem", "LinearQuadratic", "euler_discretize", "lqr", "random_lqr",
           "Pendulum", "pendulum", "neural_ode", "mlp", "PROBLEMS", "get_problem",
           "from_expressions", "ExpressionProblem", "check_derivatives", "cartpole",
           "vanderpol", "unicycle"]
