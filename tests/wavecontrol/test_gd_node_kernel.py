"""The compiled resistive port over node functions (:func:`wavecontrol.nodekernels_gd.gd_run`,
generated per problem by :mod:`wavecontrol.codegen`) against its NumPy twin
:func:`wavecontrol.formulations.consistent_step_numpy` (``backend="numpy"``).

Both backends run the same τ-steps (tol = 0, so neither stops early) from the same start. They
evaluate the same formulas — the NumPy twin through the problem's vectorized NumPy functions and
einsum, the kernel through the generated node functions and written-out loops — so they differ
in the order of the sums, by a few ulp per step; the maps then carry that difference for 30–40
steps. Measured, relative to max(1, |value|): ≤ 5.3e-14 on the generated pendulum (worst: the
ledger's source, a sum of large terms that cancel) and ≤ 8.6e-14 on the bounded Van der Pol
(worst: λ, where RK4's four stages compound the ulps). TWIN_BOUND = 1e-12 (the issue's bound)
leaves over 10× margin and is still far below every quantity compared (fields O(1–10), ledger
terms O(1–1000)).

Kernels compiled here: one generated module per problem (the pendulum's, Van der Pol's); the
problems are module-level fixtures so that each compiles once.
"""

import numpy as np
import pytest

import problems
from problems.expressions import pendulum_expressions
from solvers.wave import HISTORY_COLUMNS, solve
from wavecontrol.kernels import HIST_COLUMNS
from wavecontrol.result import Status

TWIN_BOUND = 1e-12
#: (scheme, ν): the consistent form allows ν ≤ 1 (upwind), ≤ 2 (lax-wendroff, the Beam–Warming
#: correction) and ≤ N (characteristic)
SETTINGS = [("upwind", 1.0), ("upwind", 0.7), ("lax-wendroff", 0.8), ("lax-wendroff", 1.5),
            ("characteristic", 1.5), ("characteristic", 2.0)]


@pytest.fixture(scope="module")
def pendulum():
    """The pendulum swing-up written as expressions (Euler, N = 40)."""
    return pendulum_expressions(40)


@pytest.fixture(scope="module")
def vanderpol():
    """Van der Pol with its bound −1 ≤ u ≤ 1 (RK4, N = 20)."""
    return problems.vanderpol()


def _both(problem, steps=40, **kw):
    kw = dict(port="gd", tol=0.0, max_steps=steps, record_every=1, **kw)
    return solve(problem, backend="numpy", **kw), solve(problem, backend="numba", **kw)


def _rel(a, b):
    """max |a − b| / max(1, |a|), entrywise."""
    return float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(a)), initial=0.0))


def _assert_twins(rn, rc):
    assert rn.config["backend"] == "numpy" and rc.config["backend"] == "numba"
    assert (rc.status, rc.steps, rc.diverged_at) == (rn.status, rn.steps, rn.diverged_at), \
        (rc.message, rn.message)
    for f in ("x", "lam", "theta"):
        assert _rel(getattr(rn, f), getattr(rc, f)) <= TWIN_BOUND, f
    assert rn.history["step"].size == rc.history["step"].size > 0
    assert np.array_equal(rn.history["step"], rc.history["step"])
    for col in HIST_COLUMNS:
        a, b = rn.history[col], rc.history[col]
        assert np.all(np.isfinite(a)) and np.all(np.isfinite(b)), col
        assert _rel(a, b) <= TWIN_BOUND, col
    # the compiled path keeps no r_θ for the port's reflection (solvers.wave.HISTORY_COLUMNS)
    assert HISTORY_COLUMNS[-1] == "reflection" and np.all(np.isnan(rc.history["reflection"]))


@pytest.mark.parametrize("scheme, nu", SETTINGS)
def test_compiled_gd_equals_numpy_twin(pendulum, scheme, nu):
    rn, rc = _both(pendulum, scheme=scheme, courant=nu, eta=0.05)
    _assert_twins(rn, rc)
    assert rc.status == Status.MAX_STEPS
    assert np.abs(rc.theta - pendulum.theta0).max() > 0.1     # the port did move θ
    assert rc.ledger_max_rel_error <= 1e-13


def test_compiled_gd_explicit_termination_and_metric(pendulum):
    theta = np.array([[2.0, 0.3], [-0.2, 0.5]])      # a full, constant metric factor Θ
    rn, rc = _both(pendulum, steps=30, termination="explicit", metric=theta,
                   scheme="lax-wendroff", courant=1.5, eta=0.05)
    _assert_twins(rn, rc)
    # explicit termination: λ_N = ∇ℓ of the x_N before the last step, not of the returned one
    assert abs(rc.lam[0, -1, 0] - 10.0 * (rc.x[0, -1, 0] - np.pi)) > 1e-6


@pytest.mark.parametrize("scheme, nu", [("upwind", 1.0), ("characteristic", 1.5)])
def test_compiled_gd_projects_on_bounds(vanderpol, scheme, nu):
    """A gain large enough that the projected step clips θ at the bound ±1 within the run."""
    lo, hi = vanderpol.bounds
    clipped = {}

    def watch(backend):
        def callback(step, info):          # θ after every τ-step
            th = info["theta"]
            assert np.all(th >= lo) and np.all(th <= hi)
            clipped.setdefault(backend, []).append(int(np.sum((th == lo) | (th == hi))))
        return callback

    rn = solve(vanderpol, port="gd", backend="numpy", tol=0.0, max_steps=30, record_every=1,
               scheme=scheme, courant=nu, eta=0.08, callback=watch("numpy"), callback_every=1)
    rc = solve(vanderpol, port="gd", backend="numba", tol=0.0, max_steps=30, record_every=1,
               scheme=scheme, courant=nu, eta=0.08, callback=watch("numba"), callback_every=1)
    _assert_twins(rn, rc)
    # the projection was active: some θ_k sat on the bound after some step, on both backends
    assert max(clipped["numba"]) > 0 and clipped["numba"] == clipped["numpy"]


def test_compiled_gd_divergence_matches(pendulum):
    rn, rc = _both(pendulum, steps=100, eta=10.0, divergence_bound=1e4)
    assert rn.status == rc.status == Status.DIVERGED
    assert rc.diverged_at == rn.diverged_at == rc.steps + 1
    _assert_twins(rn, rc)


def test_solve_gd_numba_converges_like_numpy():
    """A short Van der Pol horizon with a tighter box (same node functions, so the same
    generated module): gd converges with some controls on the bound, in the same steps and to
    the same controls on both backends."""
    p = problems.vanderpol(T=1.0, N=5, u_min=-0.15, u_max=0.15)
    rc = solve(p, port="gd", backend="numba", tol=1e-10, max_steps=2000)
    rn = solve(p, port="gd", backend="numpy", tol=1e-10, max_steps=2000)
    assert rc.config["backend"] == "numba"
    assert rc.status == rn.status == Status.CONVERGED, (rc.message, rn.message)
    assert rc.steps == rn.steps
    assert max(rc.residuals.values()) <= 1e-10
    assert np.abs(rc.theta - rn.theta).max() <= TWIN_BOUND
    assert np.any(np.abs(rc.theta) == 0.15)                    # an active bound
    assert abs(rc.objective - rn.objective) <= TWIN_BOUND * max(1.0, abs(rn.objective))


def test_numba_refuses_what_gd_run_does_not_implement(pendulum):
    with pytest.raises(ValueError, match="no compiled kernel for formulation 'paper'"):
        solve(pendulum, port="gd", formulation="paper", backend="numba", max_steps=1)
    with pytest.raises(ValueError, match="no compiled kernel for port 'newton'"):
        solve(pendulum, port="newton", backend="numba", max_steps=1)
