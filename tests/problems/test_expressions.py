"""Problems from expressions: SymPy derivatives, the generated NumPy and numba node functions,
the derivative check, the code cache, bounds and bad input."""

import numpy as np
import pytest
import sympy as sp

from problems import pendulum
from problems.expressions import (CACHE_ENV, ExpressionProblem, check_derivatives,
                                  pendulum_expressions,
                                  from_expressions)
from solvers.lbfgs import solve_lbfgs
from solvers.wave import solve
from wavecontrol.result import Status


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    """Every test generates into its own empty cache folder."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "codegen"))


def _pendulum_exprs(N=40, **kw):
    """The hand-written pendulum swing-up as a function-built expression problem."""
    return pendulum_expressions(N, **kw)


def _rich(integrator="euler", substeps=1, N=10):
    """A time-dependent problem with parameters, two controls and non-quadratic costs."""
    def f(x, u, g, b, t):
        return [x[1] + u[1] * x[0], -g * sp.sin(x[0]) - b * x[1] + u[0] + sp.cos(t) * x[0] * u[1]]

    def L(x, u, t):
        return ((x[0] - 1) ** 2 + x[1] ** 2 / 10 + u[0] ** 2 / 10 + u[1] ** 2 * (1 + x[0] ** 2)
                + t * u[0] * x[1]) / 2

    def Phi(x):
        return 5 * (x[0] - 1) ** 2 + x[1] ** 2 / 2 + sp.exp(x[0] * x[1] / 10)

    return from_expressions(f, L, Phi, [0.3, 0.1], 1.5, N, m=2, params=dict(g=2.0, b=0.1),
                            integrator=integrator, substeps=substeps)


def test_pendulum_from_expressions_equals_the_hand_written_one(rng):
    """Same Euler maps and costs in closed form: J, ∇J, the layer Jacobians and the cost
    Hessians agree to round-off (≤ 1e-12 relative; measured ≤ 1e-15)."""
    ref = pendulum("swing-up")
    p = _pendulum_exprs()
    th = rng.normal(size=(40, 1))
    assert p.objective(th) == pytest.approx(ref.objective(th), rel=1e-12)
    assert np.abs(p.gradient(th) - ref.gradient(th)).max() <= 1e-12
    x = ref.forward(th)[:, :-1]
    for a, b in zip(p.layer_jacobians(x, th) + p.running_hessians(x, th),
                    ref.layer_jacobians(x, th) + ref.running_hessians(x, th)):
        assert np.abs(a - b).max() <= 1e-12


def test_expressions_and_functions_give_the_same_problem(rng):
    """SymPy expressions in the user's symbols and functions called on symbols canonicalize to
    the same text: the second build is a cache hit and J agrees exactly."""
    q, w, F, g, l, mass, b = sp.symbols("q w F g l mass b")
    f = [w, -(g / l) * sp.sin(q) - b * w + F / (mass * l ** 2)]
    L = ((q - sp.pi) ** 2 + w ** 2 / 10 + F ** 2 / 10) / 2
    Phi = (10 * (q - sp.pi) ** 2 + w ** 2) / 2
    a = _pendulum_exprs()
    e = from_expressions(f, L, Phi, [0.0, 0.0], 2.0, 40, x=(q, w), u=(F,),
                         params={g: 9.81, l: 1.0, mass: 1.0, b: 0.1})
    assert not a.codegen["cache_hit"] and e.codegen["cache_hit"]
    assert a.codegen["key"] == e.codegen["key"]
    th = rng.normal(size=(40, 1))
    assert e.objective(th) == a.objective(th)
    assert e.expressions["x"] == ["q", "w"] and a.expressions["x"] == ["x0", "x1"]


def test_cache_is_keyed_by_the_expressions_not_the_parameter_values():
    a = _pendulum_exprs()
    b = _pendulum_exprs()
    assert b.codegen["cache_hit"] and b.numpy_source == a.numpy_source
    c = from_expressions(lambda x, u, g: [x[1], -g * sp.sin(x[0]) + u[0]],
                         lambda x, u: u[0] ** 2, lambda x: x[0] ** 2, [0, 0], 1.0, 5, m=1,
                         params={"g": 1.0})
    d = from_expressions(lambda x, u, g: [x[1], -g * sp.sin(x[0]) + u[0]],
                         lambda x, u: u[0] ** 2, lambda x: x[0] ** 2, [0, 0], 1.0, 5, m=1,
                         params={"g": 3.0})
    assert d.codegen["cache_hit"] and d.node_kernel()[1][0][1] == 3.0
    e = from_expressions(lambda x, u: [x[1], -sp.sin(x[0]) + 2 * u[0]],
                         lambda x, u: u[0] ** 2, lambda x: x[0] ** 2, [0, 0], 1.0, 5, m=1)
    assert e.codegen["key"] != c.codegen["key"] and not e.codegen["cache_hit"]
    rk = from_expressions(lambda x, u, g: [x[1], -g * sp.sin(x[0]) + u[0]],
                          lambda x, u: u[0] ** 2, lambda x: x[0] ** 2, [0, 0], 1.0, 5, m=1,
                          params={"g": 1.0}, integrator="rk4")
    assert rk.codegen["key"] != c.codegen["key"]


@pytest.mark.parametrize("integrator, substeps", [("euler", 1), ("midpoint", 1), ("rk4", 3)])
def test_derivatives_agree_with_finite_differences(integrator, substeps):
    """Central differences (h = 1e-5 relative, truncation ~1e-10) of f, L, L_x, L_u, Φ, Φ_x and
    the layer map agree with the generated derivatives to 1e-7 relative."""
    errs = check_derivatives(_rich(integrator, substeps), tol=1e-7)
    assert set(errs) == {"f_x", "f_u", "L_x", "L_u", "L_xx", "L_ux", "L_uu", "Phi_x",
                         "Phi_xx", "layer_A", "layer_B"}
    assert max(errs.values()) <= 1e-7


def test_check_derivatives_catches_a_wrong_derivative():
    p = _rich()
    good = p._mod["f_u"]
    p._mod["f_u"] = lambda x, u, t, q: 1.01 * good(x, u, t, q)
    with pytest.raises(ValueError, match="f_u"):
        check_derivatives(p)
    assert check_derivatives(p, raise_on_failure=False)["f_u"] > 1e-3


def _node_error(p, th):
    """Largest difference between the generated numba node functions of ``p`` (compiled from
    their module text by wavecontrol.codegen.load_module) and its NumPy methods over every layer
    of the forward pass under ``th``: f_k, A_k, B_k, R_k and its derivatives, ℓ and its; each
    relative to max(1, max|NumPy value|)."""
    from wavecontrol.codegen import load_module

    src, D = p.node_kernel()
    assert len(D) == 1 and D[0].dtype == np.float64 and D[0][0] == p.dt
    mod = load_module(src, tag="test")
    x = p.forward(th)
    xl = x[:, :-1]
    F = p.layer_maps(xl, th)[0]
    A, B = p.layer_jacobians(xl, th)
    Rxx, Rux, Ruu = p.running_hessians(xl, th)
    gx = p.running_grad_x(xl, th)[0]
    n, m = p.n, p.m

    def rel(a, b):
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        return float(np.abs(a - b).max() / max(1.0, float(np.abs(b).max())))

    err = 0.0
    for k in range(p.N):
        xk, uk = x[0, k].copy(), th[k].copy()
        f_, A_, B_ = np.empty(n), np.empty((n, n)), np.empty((n, m))
        mod.layer(k, xk, uk, D, f_, A_, B_)
        gx_, gu_ = np.empty(n), np.empty(m)
        R = mod.running_grad(k, xk, uk, D, gx_, gu_)
        R_ref = p.dt * p._mod["L"](xk, uk, k * p.dt, p._p)
        gu_ref = p.dt * p._mod["L_u"](xk, uk, k * p.dt, p._p)
        H1, H2, H3 = np.empty((n, n)), np.empty((m, n)), np.empty((m, m))
        mod.running_hess(k, xk, uk, D, H1, H2, H3)
        for a, b in ((f_, F[k]), (A_, A[k]), (B_, B[k]), (R, R_ref), (gx_, gx[k]),
                     (gu_, gu_ref), (H1, Rxx[k]), (H2, Rux[k]), (H3, Ruu[k])):
            err = max(err, rel(a, b))
    g, H = np.empty(n), np.empty((n, n))
    ell = mod.terminal_grad(x[0, -1].copy(), D, g)
    mod.terminal_hess(x[0, -1].copy(), D, H)
    return max(err, rel(ell, p.terminal_cost(x[:, -1])),
               rel(g, p.terminal_grad(x[:, -1])[0]), rel(H, p.terminal_hessian(x[:, -1])))


@pytest.mark.parametrize("integrator, substeps", [("euler", 1), ("euler", 3), ("midpoint", 1),
                                                  ("midpoint", 2), ("rk4", 1), ("rk4", 2)])
def test_node_functions_agree_with_the_numpy_methods(integrator, substeps, rng):
    """The generated numba node functions (every integrator written out as scalar code, the
    constants in Δt and the parameters read from d) reproduce the NumPy methods (the generic
    stage loop of problems.integrators.one_step) at every layer to 1e-12 relative: same
    formulas, different evaluation order (measured ≤ 7e-16)."""
    p = _rich(integrator, substeps)
    assert _node_error(p, rng.normal(size=(p.N, p.m))) <= 1e-12


@pytest.mark.parametrize("integrator", ["midpoint", "rk4"])
def test_written_out_layers_of_the_cartpole_agree_with_numpy(integrator, rng):
    """The cart-pole (n = 4, f_x with structural zeros and ones that the written-out stages
    prune): layer maps and exact Jacobians of the node functions equal the NumPy step to 1e-12
    relative (ℓ ~ 1e4 with wf = 1000; measured ≤ 4e-16). The layer allocates no arrays."""
    from problems import cartpole

    p = cartpole(N=10, u_max=None, integrator=integrator)
    src = p.node_kernel()[0]
    assert "np." not in src and ".copy(" not in src     # scalar code, no temporaries
    assert _node_error(p, rng.normal(size=(p.N, p.m))) <= 1e-12


def test_attributes_for_storage_and_transcription():
    p = _rich("rk4", 2)
    e = p.expressions
    assert e["integrator"] == "rk4" and e["substeps"] == 2 and e["t"] == "t"
    assert e["params"] == {"g": 2.0, "b": 0.1} and len(e["f"]) == 2
    assert p.config()["expressions"] == e
    s = p.sympy
    assert [str(v) for v in s["x"]] == ["x0", "x1"] and s["t"] == sp.Symbol("t")
    assert {str(k): v for k, v in s["params"].items()} == {"g": 2.0, "b": 0.1}
    assert p.bounds is None and p.continuous.n == 2
    assert isinstance(p, ExpressionProblem)


def _bounded(lo=-0.1, hi=1.0):
    """A damped pendulum-like problem whose unconstrained optimum has min u = −0.19: the lower
    bound −0.1 is active at one layer."""
    return from_expressions(lambda x, u: [x[1], u[0] - sp.sin(x[0])],
                            lambda x, u: (x[0] ** 2 + x[1] ** 2 + u[0] ** 2) / 2,
                            lambda x: (x[0] ** 2 + x[1] ** 2) / 2, [1.0, 0.0], 1.0, 10, m=1,
                            lo=lo, hi=hi)


@pytest.mark.parametrize("scheme, nu", [("upwind", 1.0), ("characteristic", 2.0),
                                        ("lax-wendroff", 1.5)])
def test_projected_gd_reaches_the_box_constrained_optimum(scheme, nu):
    """The projected gd port converges (projected residual ≤ 1e-10) to the L-BFGS-B optimum:
    J within 1e-12 relative (measured ≤ 4e-16), θ within 1e-8 (measured 9e-10, the 1e-10
    tolerance over the smallest curvature ~0.1), the bound active at the same layer; the
    ledger closes to 1e-12."""
    p = _bounded()
    ref = solve_lbfgs(p, tol=1e-12)
    assert ref.status is Status.CONVERGED
    active = ref.theta <= -0.1 + 1e-12
    assert active.sum() == 1
    r = solve(p, port="gd", scheme=scheme, courant=nu, tol=1e-10, max_steps=20_000)
    assert r.status is Status.CONVERGED, r.message
    assert r.theta.min() >= -0.1 and np.array_equal(r.theta <= -0.1 + 1e-12, active)
    assert abs(r.objective - ref.objective) <= 1e-12 * abs(ref.objective)
    assert np.abs(r.theta - ref.theta).max() <= 1e-8
    assert r.ledger_max_rel_error <= 1e-12
    # the raw gradient does not vanish at the bound (it pushes outward), the projected one does
    g = p.gradient(r.theta)
    assert g[active].min() > 1e-3
    assert r.residuals["theta"] <= 1e-10


def test_unbounded_residuals_and_ports_are_unchanged():
    p = _bounded(lo=None, hi=None)
    assert p.bounds is None
    r = np.ones((10, 1))
    assert p.project_residual(np.zeros((10, 1)), r) is r


def test_ports_without_bounds_support_refuse_a_bounded_problem():
    with pytest.raises(ValueError, match="port 'newton' does not handle the control bounds"):
        solve(_bounded(), port="newton", max_steps=10)


def test_one_sided_bounds_and_theta0():
    p = _bounded(lo=None, hi=0.5)
    lo, hi = p.bounds
    assert lo[0] == -np.inf and hi[0] == 0.5
    assert p.config()["lo"] == [None] and p.config()["hi"] == [0.5]
    q = from_expressions(lambda x, u: [u[0]], lambda x, u: u[0] ** 2, lambda x: x[0] ** 2,
                         [1.0], 1.0, 4, m=1, lo=0.2, hi=1.0)
    assert np.all(q.theta0 == 0.2)      # zeros clipped into the box


@pytest.mark.parametrize("kwargs, match", [
    (dict(integrator="rk5"), "unknown integrator 'rk5'"),
    (dict(substeps=0), "substeps must be an integer >= 1"),
    (dict(N=0), "N must be an integer >= 1"),
    (dict(T=-1.0), "T must be a finite number > 0"),
    (dict(lo=1.0, hi=0.0), "lo <= hi"),
    (dict(lo=[0.0, 1.0]), r"lo must be a number or have shape \(1,\)"),
    (dict(theta0=5.0, hi=1.0), "theta0 must lie within the bounds"),
    (dict(x0=[0.0, np.nan]), "x0 must be finite"),
    (dict(params={"g": "heavy"}), "parameter 'g' must be a finite number"),
])
def test_bad_input_names_the_parameter(kwargs, match):
    base = dict(x0=[0.0, 0.0], T=1.0, N=5)
    base.update(kwargs)
    with pytest.raises(ValueError, match=match):
        from_expressions(lambda x, u: [x[1], u[0]], lambda x, u: u[0] ** 2,
                         lambda x: x[0] ** 2, m=1, **base)


def test_bad_expressions():
    x, v, u, k = sp.symbols("x v u k")
    with pytest.raises(ValueError, match="needs the state and control symbols"):
        from_expressions([v, u], u ** 2, x ** 2, [0, 0], 1.0, 5)
    with pytest.raises(ValueError, match=r"free symbol\(s\) \['k'\]"):
        from_expressions([v, k * u], u ** 2, x ** 2, [0, 0], 1.0, 5, x=(x, v), u=(u,))
    with pytest.raises(ValueError, match="2 entries"):
        from_expressions([v], u ** 2, x ** 2, [0, 0], 1.0, 5, x=(x, v), u=(u,))
    with pytest.raises(ValueError, match="use sympy.sin"):
        from_expressions(lambda s, c: [s[1], np.sin(s[0]) + c[0]], lambda s, c: c[0] ** 2,
                         lambda s: s[0] ** 2, [0, 0], 1.0, 5, m=1)
    with pytest.raises(ValueError, match="m .* is needed"):
        from_expressions(lambda s, c: [s[1], c[0]], lambda s, c: c[0] ** 2,
                         lambda s: s[0] ** 2, [0, 0], 1.0, 5)
    with pytest.raises(ValueError, match="ExpressionProblem"):
        check_derivatives(pendulum())
