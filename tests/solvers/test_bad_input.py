"""Bad input is refused early with a ValueError that names the parameter and what is valid."""

import re

import numpy as np
import pytest

from problems import lqr
from solvers.wave import solve

NAN = float("nan")
INF = float("inf")


@pytest.fixture(scope="module")
def problem():
    return lqr(N=4)


# ------------------------------------------------------------------------------------------
# Courant numbers
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("formulation, scheme, nu, rng_text", [
    ("consistent", "upwind", 1.5, "(0, 1]"),
    ("paper", "upwind", 1.01, "(0, 1]"),
    ("paper", "lax-wendroff", 1.5, "(0, 1]"),
    ("consistent", "lax-wendroff", 2.5, "(0, 2]"),
])
def test_courant_outside_stable_range(problem, formulation, scheme, nu, rng_text):
    with pytest.raises(ValueError, match=rf"courant {nu:g} is outside the stable range "
                                         rf"{re.escape(rng_text)} of scheme '{scheme}'.*"
                                         "allow_unstable=True"):
        solve(problem, formulation=formulation, scheme=scheme, courant=nu, max_steps=3)
    # accepted for stability studies
    r = solve(problem, formulation=formulation, scheme=scheme, courant=nu, max_steps=3,
              allow_unstable=True)
    assert r.steps == 3 and r.config["allow_unstable"] is True


def test_courant_inside_range_is_accepted(problem):
    # the consistent form's lax-wendroff (Beam–Warming) allows ν up to 2, characteristic up to N
    assert solve(problem, scheme="lax-wendroff", courant=2.0, max_steps=2).steps == 2
    assert solve(problem, scheme="characteristic", courant=4.0, max_steps=2).steps == 2


def test_characteristic_courant_beyond_N(problem):
    for allow in (False, True):
        with pytest.raises(ValueError, match=r"courant 4\.5 is outside the characteristic "
                                             r"scheme's range \(0, N\] = \(0, 4\]"):
            solve(problem, scheme="characteristic", courant=4.5, allow_unstable=allow)


@pytest.mark.parametrize("nu", [0.0, -1.0, INF, NAN])
def test_courant_not_positive_finite(problem, nu):
    with pytest.raises(ValueError, match="courant must be a finite number > 0"):
        solve(problem, courant=nu, allow_unstable=True)


def test_numpy_scalar_courant_is_accepted(problem):
    """A Courant number taken from a NumPy sweep (np.arange, np.float32) is a number too."""
    assert solve(problem, scheme="characteristic", courant=np.int64(2), max_steps=2).steps == 2
    assert solve(problem, courant=np.float32(0.5), max_steps=2).steps == 2


def test_courant_not_a_number(problem):
    with pytest.raises(ValueError, match="courant must be a"):
        solve(problem, courant="1.0")


# ------------------------------------------------------------------------------------------
# unknown names
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("option, value, valid", [
    ("scheme", "leapfrog", "upwind, characteristic, lax-wendroff"),
    ("formulation", "hamiltonian", "consistent, paper"),
    ("termination", "lazy", "implicit, explicit"),
    ("sources", "during", "after, before"),
    ("backend", "cuda", "auto, numba, numpy"),
])
def test_unknown_names_list_the_valid_ones(problem, option, value, valid):
    with pytest.raises(ValueError, match=rf"unknown {option} '{value}'; valid: {valid}"):
        solve(problem, **{option: value})


def test_unknown_port_lists_the_valid_ones(problem):
    with pytest.raises(ValueError, match="unknown port 'newton2'; valid: gd"):
        solve(problem, port="newton2")


# ------------------------------------------------------------------------------------------
# shapes
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("params, match", [
    ({"x0": [1.0, 0.0, 0.0]}, r"x0 must have shape \(2,\), got \(3,\)"),
    ({"A": [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]}, r"A must be square, got shape \(2, 3\)"),
    ({"B": [[0.0], [1.0], [2.0]]}, r"B must have 2 rows to match A, got shape \(3, 1\)"),
    ({"Q": [1.0, 2.0, 3.0]}, "Q given as a diagonal must have 2 entries, got 3"),
    ({"Qf": np.eye(3)}, r"Qf must have shape \(2, 2\), got \(3, 3\)"),
])
def test_lqr_shape_mismatch(params, match):
    with pytest.raises(ValueError, match=match):
        lqr(**params)


@pytest.mark.parametrize("metric, match", [
    (np.eye(3), r"metric: a matrix Θ must have shape \(2, 2\), got \(3, 3\)"),
    (np.ones(3), r"metric: a diagonal Θ must have shape \(2,\), got \(3,\)"),
    (np.ones((4, 2, 2)), r"metric: per-node Θ must have shape \(5, 2, 2\), got \(4, 2, 2\)"),
    (np.ones((1, 1, 2, 2)), "metric: Θ must be a scalar or an array of 1 to 3 dimensions"),
])
def test_metric_shape_mismatch(problem, metric, match):
    with pytest.raises(ValueError, match=match):
        solve(problem, metric=metric)


# ------------------------------------------------------------------------------------------
# values
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("params, match", [
    ({"A": [[NAN, 1.0], [0.0, 0.0]]}, "A must be finite"),
    ({"B": [[0.0], [INF]]}, "B must be finite"),
    ({"x0": [NAN, 0.0]}, "x0 must be finite"),
    ({"R": 0.0}, r"R must be positive definite \(smallest eigenvalue 0 is not > 0\)"),
    ({"R": -1.0}, r"R must be positive definite \(smallest eigenvalue -1 is not > 0\)"),
    ({"Q": [[1.0, 1.0], [0.0, 1.0]]}, "Q must be symmetric"),
    ({"Qf": -1.0}, "Qf must be positive semidefinite"),
    ({"T": 0.0}, "T must be a finite number > 0"),
    ({"N": 0}, "N must be an integer >= 1"),
    ({"horizon": 3.0}, r"unknown lqr parameter\(s\) \['horizon'\]; valid: \['A', 'B', 'N', "
                       r"'Q', 'Qf', 'R', 'T', 'x0'\]"),
])
def test_lqr_bad_values(params, match):
    with pytest.raises(ValueError, match=match):
        lqr(**params)


@pytest.mark.parametrize("metric, match", [
    (NAN, "metric: every entry of Θ must be finite"),
    (np.array([[1.0, 0.0], [NAN, 1.0]]), "metric: every entry of Θ must be finite"),
    (np.array([[1.0, 2.0], [1.0, 2.0]]), "metric: Θ_0 is singular or nearly so"),
    (0.0, "metric: Θ_0 is singular or nearly so"),
    (np.array([1.0, 1e-14]), "singular or nearly so.*every Θ_k must be invertible"),
])
def test_bad_metric_values(problem, metric, match):
    with pytest.raises(ValueError, match=match):
        solve(problem, metric=metric)


@pytest.mark.parametrize("kwargs, match", [
    ({"eta": -0.1}, r"eta must be a finite number >= 0, got -0\.1"),
    ({"eta": NAN}, "eta must be a finite number >= 0"),
    ({"eta": "fast"}, "eta must be a number"),
    ({"alpha": -1.0, "formulation": "paper"}, "alpha must be a finite number >= 0"),
    ({"max_steps": -1}, r"max_steps must be an integer >= 0, got -1"),
    ({"max_steps": 2.5}, "max_steps must be an integer >= 0"),
    ({"tol": -1e-3}, "tol must be a finite number >= 0"),
    ({"record_every": 0}, "record_every must be an integer >= 1"),
    ({"callback_every": 0}, "callback_every must be an integer >= 1"),
    ({"divergence_bound": INF}, "divergence_bound must be a finite number >= 0"),
])
def test_bad_solver_settings(problem, kwargs, match):
    with pytest.raises(ValueError, match=match):
        solve(problem, **kwargs)
