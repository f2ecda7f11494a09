"""The matched (Riccati-impedance) port, :mod:`wavecontrol.matched`: its fixed point is the exact
discrete PMP (Riccati for LQR, L-BFGS for the pendulum), it solves within a few light cones
2N/ν, its ledger closes with the port's power as a term, and its state P survives a resume.

The solves here take the default backend (the compiled node kernel for LQR and the pendulum,
:mod:`wavecontrol.nodekernels`); tests/wavecontrol/test_matched_kernel.py holds it equal to the
NumPy twin used directly below.
"""

import numpy as np
import pytest

from problems import lqr, mlp, pendulum, random_lqr
from solvers.lbfgs import solve_lbfgs
from solvers.riccati import discrete_riccati
from solvers.wave import solve
from wavecontrol.formulations import StepConfig, ledger_error
from wavecontrol.matched import MATCHED_LEDGER_TERMS, MatchedPort, matched_step_numpy
from wavecontrol.metric import Metric

#: distance of θ from the exact reference at tol = 1e-10 on the residuals; measured 1e-15 to
#: 5e-10 over the settings below (ν < 1 stops at a residual of 1e-10 on a geometric approach)
THETA_BOUND = 1e-9
#: ledger closure: sums of O(V) terms in float64, measured ≤ 7e-15; 1e-13 leaves a margin
LEDGER_BOUND = 1e-13
SETTINGS = [("upwind", 1.0), ("upwind", 0.8), ("lax-wendroff", 1.0), ("lax-wendroff", 1.5),
            ("characteristic", 0.7), ("characteristic", 2.5)]

_REF = {}


def _lqr(name):
    if name not in _REF:
        p = lqr() if name == "default" else random_lqr(n=5, m=2, N=30, seed=0, unstable=True)
        _REF[name] = (p, discrete_riccati(p))
    return _REF[name]


@pytest.mark.parametrize("scheme, nu", SETTINGS)
@pytest.mark.parametrize("name", ["default", "random"])
def test_matched_fixed_point_is_riccati(name, scheme, nu):
    p, ref = _lqr(name)
    r = solve(p, port="matched", scheme=scheme, courant=nu, tol=1e-10, max_steps=5000)
    assert r.success, r.message
    assert np.abs(r.theta - ref.theta).max() <= THETA_BOUND
    assert np.abs(r.x - ref.x).max() <= THETA_BOUND
    assert r.objective == pytest.approx(ref.objective, rel=1e-10)
    assert r.ledger_max_rel_error <= LEDGER_BOUND
    # the reflected wave ½ΣΔt sᵀP⁺s vanishes at the LQR optimum (s is the feed-forward term,
    # zero without affine terms); at residuals of 1e-10 it is measured below 1e-28
    assert r.history["reflection"][-1] <= 1e-18


@pytest.mark.parametrize("name, N", [("default", 20), ("default", 80), ("random", 30)])
def test_matched_solves_lqr_within_the_light_cone(name, N):
    p = lqr(N=N) if name == "default" else _lqr("random")[0]
    r = solve(p, port="matched", courant=1.0, tol=1e-10, max_steps=10 * p.N)
    assert r.success, r.message
    cone = 2 * p.N
    # the default LQR at ν = 1: the τ-step map is nilpotent, exact after one light cone
    bound = cone + 2 if name == "default" else 2 * cone
    assert r.steps <= bound, (r.steps, cone)


@pytest.mark.parametrize("task, cones", [("stabilize", 3), ("swing-up", 10)])
def test_matched_pendulum_reaches_the_lbfgs_solution(task, cones):
    p = pendulum(task)
    r = solve(p, port="matched", tol=1e-10, max_steps=20 * p.N * cones)
    assert r.success, r.message
    assert r.steps <= cones * 2 * p.N
    ref = solve_lbfgs(p, tol=1e-11)
    # L-BFGS stops at max|∇J| ~ 1e-11; the conditioning (cond ∇²J up to 7e4, pendulum.py)
    # makes its θ good to ~1e-8: 1e-7 is the bound
    assert np.abs(r.theta - ref.theta).max() <= 1e-7
    assert r.objective == pytest.approx(ref.objective, rel=1e-9)
    assert r.ledger_max_rel_error <= LEDGER_BOUND


def test_matched_ledger_closes_term_by_term():
    """One step from a non-trivial state: the terms, port power included, sum to ΔV."""
    p = pendulum("swing-up", N=8)
    port = MatchedPort().bind(p)
    met = Metric(1.0, p.n, p.N)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1, p.N + 1, p.n))
    x[:, 0] = p.x_in
    lam = rng.normal(size=x.shape)
    theta = rng.normal(size=p.theta0.shape)
    port.set_state({"P": np.broadcast_to(np.eye(p.n), (p.N + 1, p.n, p.n)).copy()})
    for scheme, nu in SETTINGS:
        cfg = StepConfig(scheme=scheme, courant=nu)
        *_, led, _ = matched_step_numpy(p, met, cfg, x, lam, theta, port)
        total = sum(led[t] for t in MATCHED_LEDGER_TERMS)
        assert abs(led["V_next"] - led["V"] - total) <= LEDGER_BOUND * max(led["V"], 1.0)
        assert ledger_error(led) <= LEDGER_BOUND
        assert led["port_power"] != 0.0          # the port does act here
        port.undo()


def test_matched_run_resumes_bit_identically(tmp_path):
    pytest.importorskip("h5py")
    p = pendulum("stabilize")
    kw = dict(port="matched", tol=1e-10, max_steps=200, record_every=1)
    ref = solve(p, **kw)
    path = tmp_path / "run.h5"
    solve(p, out=path, **{**kw, "max_steps": 30})
    resumed = solve(p, out=path, resume=True, **kw)
    assert resumed.steps == ref.steps
    assert np.array_equal(resumed.theta, ref.theta)
    assert np.array_equal(resumed.lam, ref.lam)


def test_matched_refuses_what_it_cannot_run():
    with pytest.raises(ValueError, match="batch 1"):
        solve(mlp(widths=(2, 4, 3), n_samples=8, batch=8), port="matched", max_steps=1)
    with pytest.raises(ValueError, match="formulation 'consistent'"):
        solve(lqr(), port="matched", formulation="paper", max_steps=1)
    with pytest.raises(ValueError, match="floor"):
        MatchedPort(floor=0.0)

