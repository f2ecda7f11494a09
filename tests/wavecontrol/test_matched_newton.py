"""The matched port's Newton node model and terminal ramp (wavecontrol.matched, docs/theory.md
§11.7): the curvature by differences against a hand-derived Hessian, the fixed points, the
ramp's clock, compiled against NumPy, and the cart-pole swing-up against L-BFGS."""

import numpy as np
import pytest

import wavecontrol.ports  # noqa: F401  (registers the ports before wavecontrol.matched)
from problems import cartpole, vanderpol
from problems.expressions import CACHE_ENV, from_expressions
from solvers.lbfgs import solve_lbfgs
from solvers.wave import solve
from wavecontrol.formulations import StepConfig
from wavecontrol.matched import (MatchedPort, dynamics_curvature, matched_map,
                                 matched_step_numpy, newton_switch, terminal_scale)
from wavecontrol.metric import Metric
from wavecontrol.result import Status


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path_factory.getbasetemp() / "codegen"))


def test_curvature_matches_the_hand_derived_hessian():
    """f = (x2, −sin x1 + u x1²), Euler: ∇²(w·f_k) = Δt w2 [[sin x1 + 2u, 0, 2 x1], 0, [2 x1, 0,
    0]] (order x1, x2, u). Central differences of the exact Jacobians with steps 6e-6 have
    truncation error ~h² |f'''| ≈ 4e-11 and round-off ~ε|A|/h ≈ 4e-11 here: tolerance 1e-8."""
    import sympy as sp

    x1, x2, u = sp.symbols("x1 x2 u")
    p = from_expressions([x2, -sp.sin(x1) + u * x1 ** 2], u ** 2, x1 ** 2, [0.3, -0.2], 1.0, 5,
                         x=(x1, x2), u=(u,))
    rng = np.random.default_rng(1)
    xb = rng.standard_normal((1, 5, 2))
    uu = rng.standard_normal((5, 1))
    w = rng.standard_normal((5, 2))
    T = dynamics_curvature(p, xb, uu, w)
    a, b, c = xb[0, :, 0], xb[0, :, 1], uu[:, 0]
    want = np.zeros((5, 3, 3))
    want[:, 0, 0] = p.dt * w[:, 1] * (np.sin(a) + 2.0 * c)
    want[:, 0, 2] = want[:, 2, 0] = p.dt * w[:, 1] * 2.0 * a
    assert np.abs(T - want).max() <= 1e-8 * np.abs(want).max()
    del b


@pytest.mark.parametrize("integrator, substeps", [("euler", 1), ("euler", 3), ("midpoint", 1),
                                                  ("rk4", 1), ("rk4", 2)])
def test_symbolic_curvature_through_the_stages(integrator, substeps):
    """ExpressionProblem.layer_curvature (SymPy's Hessians of f carried through the stages,
    problems.integrators.step_curvature) against central differences of the exact Jacobians
    (dynamics_curvature, error ≈ 1e-10 of the largest entry: tolerance 1e-8), for a
    time-dependent f; and the generated numba layer_curvature against it to round-off
    (1e-12 relative: the same sums in another order)."""
    import sympy as sp

    from wavecontrol.codegen import kernel_module

    x1, x2, u, t = sp.symbols("x1 x2 u t")
    p = from_expressions([x2 * sp.cos(t), -sp.sin(x1) * (1 + x2 ** 2) + u * x1 ** 2 + u ** 3],
                         u ** 2, x1 ** 2, [0.3, -0.2], 2.0, 6, x=(x1, x2), u=(u,), t=t,
                         integrator=integrator, substeps=substeps)
    rng = np.random.default_rng(3)
    xb = rng.standard_normal((1, 6, 2))
    uu = rng.standard_normal((6, 1))
    w = 10.0 * rng.standard_normal((6, 2))
    T = p.layer_curvature(xb, uu, w)
    scale = np.abs(T).max()
    assert np.abs(T - dynamics_curvature(p, xb, uu, w)).max() <= 1e-8 * scale
    assert np.array_equal(T, np.swapaxes(T, 1, 2)) or np.abs(
        T - np.swapaxes(T, 1, 2)).max() <= 1e-14 * scale
    src, D = p.node_kernel()
    mod = kernel_module(src)
    Z = np.zeros_like(T)
    for k in range(6):
        mod.layer_curvature(k, xb[0, k].copy(), uu[k].copy(), w[k].copy(), D, Z[k])
    assert np.abs(Z - T).max() <= 1e-12 * scale


def test_compiled_projection_matches_numpy():
    """The kernel's PSD projection of a node block (Cholesky shortcut when positive definite,
    else an eigendecomposition) against wavecontrol.matched._psd on 600 symmetric matrices,
    d = 1–8, definite, indefinite and singular: 1e-12 of the largest entry (round-off of two
    eigensolvers)."""
    from wavecontrol.codegen import kernel_module
    from wavecontrol.matched import _psd

    mod = kernel_module(vanderpol().node_kernel()[0])
    rng = np.random.default_rng(4)
    kinds = 0
    for trial in range(600):
        d = 1 + trial % 8
        G = rng.standard_normal((d, d)) * 10.0 ** rng.uniform(-3, 6)
        Z = G @ G.T if trial % 3 == 0 else G + G.T
        if trial % 3 == 1:          # singular: a zero eigenvalue
            w, U = np.linalg.eigh(Z)
            w[0] = 0.0
            Z = (U * w) @ U.T
        want = _psd(Z[None])[0]
        got = Z.copy()
        mod._mk_psd(got)
        assert np.abs(got - want).max() <= 1e-12 * np.abs(Z).max()
        kinds += np.linalg.eigvalsh(Z).min() < 0.0
    assert 100 <= kinds <= 500          # both branches ran


@pytest.mark.parametrize("convex", [True, False])
def test_newton_model_keeps_the_discrete_pmp_fixed(convex):
    """At the L-BFGS optimum (max|∇J| ≤ 1e-11) with its exact states and costates, one Newton
    map with an arbitrary positive definite P leaves x, u, λ where they are: the model's P
    changes the path, not the fixed point. Tolerance 1e-8: the steps are Q_uu⁻¹ g with
    g ≈ 1e-11 (an indefinite P can make Q_uu near-singular, and the floored inverse then
    magnifies g; the fixed point is still a fixed point, but not to this tolerance)."""
    p = vanderpol(u_min=None, u_max=None)
    ref = solve_lbfgs(p, tol=1e-11)
    x = p.forward(ref.theta)[0]
    lam = p.adjoint(x[None], ref.theta)[0]
    rng = np.random.default_rng(2)
    G = rng.standard_normal((p.N + 1, p.n, p.n))
    P = np.einsum("kij,klj->kil", G, G) + np.eye(p.n)
    s = lam - np.einsum("kij,kj->ki", P, x)
    x1, u1, s1, P1, _ = matched_map(p, x, ref.theta, s, P, newton=True, convex=convex)
    lam1 = s1 + np.einsum("kij,kj->ki", P1, x)
    assert np.abs(u1 - ref.theta).max() <= 1e-8
    assert np.abs(x1 - x).max() <= 1e-8 * np.abs(x).max()
    assert np.abs(lam1 - lam).max() <= 1e-8 * np.abs(lam).max()


def test_ramp_clock_and_switch():
    """c_j = ramp_from^(1 − j/K) exactly 1 from j = K on; a ramped run cannot converge before
    its ramp ends, even with a tolerance every field meets."""
    assert terminal_scale(0, 0.01, 0) == 1.0
    assert terminal_scale(100, 0.01, 0) == 0.01
    assert terminal_scale(100, 0.01, 50) == pytest.approx(0.1, rel=1e-14)
    assert terminal_scale(100, 0.01, 100) == 1.0
    assert not newton_switch(False, 0.0, 0.5, 1e-2)          # not while the ramp runs
    assert newton_switch(False, 0.009, 1.0, 1e-2)
    assert newton_switch(True, 0.5, 1.0, 1e-2)               # hysteresis up to 100 × below
    assert not newton_switch(True, 1.5, 1.0, 1e-2)
    assert not newton_switch(False, float("nan"), 1.0, 1e-2)
    p = vanderpol(u_min=None, u_max=None)
    for backend in ("numpy", "numba"):
        r = solve(p, port=MatchedPort(ramp_steps=37), tol=1e30, max_steps=100, backend=backend)
        assert r.status is Status.CONVERGED and r.steps == 37


def _fields_after(p, port, backend, steps, scheme, nu):
    r = solve(p, port=port, max_steps=steps, tol=0.0, backend=backend, scheme=scheme,
              courant=nu)
    return r, port.state()


@pytest.mark.parametrize("scheme, nu", [("upwind", 1.0), ("lax-wendroff", 0.7),
                                        ("characteristic", 1.5)])
@pytest.mark.parametrize("below", [1e-2, 1e6])
def test_compiled_newton_matches_numpy(scheme, nu, below):
    """The compiled kernel against its NumPy twin on the cart-pole: convexified (below 1e-2,
    inside the ramp) and exact from the start (below 1e6, no ramp), 25 τ-steps. Both take the
    symbolic curvature, in another summation order; the fields of this swing-up amplify
    last-bit differences (the projection's eigenvectors, Q_uu's inverse with a 1e-8 floor):
    measured ≤ 4.8e-12 of the field's size (characteristic, exact model), so 1e-9 leaves room
    for another CPU's rounding. The ledger closes to
    round-off: its error is relative to max(V, 1) at the step's start, and the first step
    goes from V = 0 to V' ≈ 3e2 with terms up to ~1e5 (Gauss–Newton's measured error on the
    same steps: 6e-11), so 1e-9."""
    p = cartpole()
    ramp = 400 if below < 1.0 else 0
    out = {}
    for backend in ("numpy", "numba"):
        port = MatchedPort(hessian="newton", newton_below=below, ramp_steps=ramp)
        out[backend] = _fields_after(p, port, backend, 25, scheme, nu)
    (a, sa), (b, sb) = out["numpy"], out["numba"]
    assert a.steps == b.steps == 25
    for f, g in ((a.x, b.x), (a.lam, b.lam), (a.theta, b.theta), (sa["P"], sb["P"])):
        err = np.abs(f - g).max() / max(np.abs(f).max(), 1.0)
        assert err <= 1e-9, err
    assert sa["newton"][0] == sb["newton"][0] == (1.0 if below > 1.0 else 0.0)
    assert a.ledger_max_rel_error <= 1e-9 and b.ledger_max_rel_error <= 1e-9


def test_cartpole_swing_up_reaches_the_lbfgs_optimum():
    """The default cart-pole (wf = 1000, |u| ≤ 20, N = 40, RK4), solve's default port (matched
    with the problem's Newton settings, compiled): converged to residuals ≤ 1e-10, objective
    within 1e-8 relative of L-BFGS (measured ≤ 2e-15) and θ within 1e-6; the Gauss–Newton
    model diverges on it (docs/findings.md). Measured 2441 τ-steps."""
    p = cartpole()
    ref = solve_lbfgs(p, tol=1e-10)
    assert ref.status is Status.CONVERGED
    r = solve(p, tol=1e-10, max_steps=6000)
    assert r.config["port"] == {"name": "matched", "floor": 1e-8, "hessian": "newton",
                                "newton_below": 1e-2, "ramp_steps": 400, "ramp_from": 1e-2}
    assert r.status is Status.CONVERGED, r.message
    assert abs(r.objective - ref.objective) <= 1e-8 * abs(ref.objective)
    assert np.abs(r.theta - ref.theta).max() <= 1e-6
    assert r.ledger_max_rel_error <= 1e-12
    gn = solve(p, port=MatchedPort(), tol=1e-10, max_steps=6000)
    assert gn.status is Status.DIVERGED
    assert gn.message.endswith("Hint: this problem names its own matched-port settings "
                               f"{p.matched_settings} (port='matched' takes them)")


def test_divergence_hints():
    """A diverged matched run says what to try: the Gauss–Newton model points to Newton with a
    ramp (here on a cart-pole that names no settings of its own), the Newton model to the
    characteristic scheme at ν = 1.5 (the N = 20 RK4 cart-pole, which diverges at ν = 1 and
    converges that way: docs/findings.md); settings of the problem's own that no port takes
    are named, not raised on mid-run; a port with nothing measured to add gives none."""
    from wavecontrol.ports import ResistivePort
    p = cartpole()
    p.matched_settings = {}
    gn = solve(p, port=MatchedPort(), tol=1e-10, max_steps=6000)
    assert gn.status is Status.DIVERGED
    assert gn.message.endswith("hessian='newton' with a terminal ramp (ramp_steps=10*N, "
                               "ramp_from=1e-2) converges (docs/findings.md)"), gn.message
    short = cartpole(N=20)
    nt = solve(short, tol=1e-10, max_steps=6000)
    assert nt.status is Status.DIVERGED and nt.config["port"]["hessian"] == "newton"
    assert nt.message.endswith("scheme='characteristic' with courant=1.5 (the cart-pole) or "
                               "courant=0.5 with ramp_steps=100*N from ramp_from=1e-4 (the "
                               "acrobot) converged (docs/findings.md); compare --methods ipopt "
                               "gives a locked reference"), nt.message
    assert solve(short, tol=1e-10, max_steps=6000, scheme="characteristic",
                 courant=1.5).status is Status.CONVERGED
    p.matched_settings = {"hessian": "newton", "bogus": 1}   # settings no port can take
    odd = solve(p, port=MatchedPort(), tol=1e-10, max_steps=6000)
    assert odd.message.endswith("names its own matched-port settings {'hessian': 'newton', "
                                "'bogus': 1} (port='matched' takes them)"), odd.message
    rs = solve(p, port=ResistivePort(1e3), max_steps=200, backend="numpy")
    assert rs.status is Status.DIVERGED and "Hint" not in rs.message


def test_newton_state_resumes_bit_identically(tmp_path):
    """The Newton switch is part of the port's stored state: a run interrupted after the
    switch continues bit-identically."""
    pytest.importorskip("h5py")
    p = vanderpol(u_min=None, u_max=None)
    kw = dict(port=MatchedPort(hessian="newton", ramp_steps=10, newton_below=1.0), tol=1e-10,
              max_steps=300, record_every=1)
    ref = solve(p, **kw)
    assert ref.status is Status.CONVERGED
    path = tmp_path / "run.h5"
    solve(p, out=path, **{**kw, "max_steps": 30,
                          "port": MatchedPort(hessian="newton", ramp_steps=10, newton_below=1.0)})
    resumed = solve(p, out=path, resume=True, **{**kw, "port": MatchedPort(
        hessian="newton", ramp_steps=10, newton_below=1.0)})
    assert resumed.steps == ref.steps
    assert np.array_equal(resumed.theta, ref.theta)


@pytest.mark.parametrize("kwargs, match", [
    (dict(hessian="exact"), "hessian must be one of gauss-newton, newton"),
    (dict(ramp_steps=-1), "ramp_steps must be an integer >= 0"),
    (dict(ramp_steps=2.5), "ramp_steps must be an integer >= 0"),
    (dict(ramp_from=2.0), r"ramp_from must lie in \(0, 1\]"),
    (dict(ramp_from=0.0), "ramp_from"),
    (dict(newton_below=0.0), "newton_below"),
])
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MatchedPort(**kwargs)


def test_one_numpy_step_reports_the_switch():
    """matched_step_numpy commits the switch with P: on after a step whose start residual is
    below newton_below (here everything is, at the optimum), undone with the step."""
    p = vanderpol(u_min=None, u_max=None)
    ref = solve_lbfgs(p, tol=1e-11)
    x = p.forward(ref.theta)
    lam = p.adjoint(x, ref.theta)
    port = MatchedPort(hessian="newton").bind(p)
    cfg = StepConfig(formulation="consistent", scheme="upwind", courant=1.0)
    matched_step_numpy(p, Metric(1.0, p.n, p.N), cfg, x, lam, ref.theta, port)
    assert port.state()["newton"][0] == 1.0
    port.undo()
    assert port.state()["newton"][0] == 0.0
