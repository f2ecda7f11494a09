"""Manufactured solutions: observed orders of the forced transport and of the balance (19)–(20)."""

from dataclasses import replace

import numpy as np
import pytest

from wavecontrol import manufactured as mf

NS = (24, 48, 96, 192)


@pytest.mark.parametrize("make", [mf.smooth_solution, mf.characteristic_solution])
def test_hand_derived_sources_match_finite_differences(make, rng):
    # g+ = ∂τw+ + c∂tw+, g− = ∂τw− − c∂tw− by centred differences with h = 1e-5: truncation
    # h²/6 |w'''| ≲ 1e-9 (third derivatives ≲ 30 here) plus rounding eps/h ≈ 2e-11; tol 1e-7
    # is 10^3 below the size of a wrong coefficient (g is O(1)).
    sol = make(c=0.7, T=1.0)
    t = rng.uniform(0.0, 1.0, 50)
    tau = rng.uniform(0.0, 2.0, 50)
    h = 1e-5

    def d_tau(f):
        return (f(t, tau + h) - f(t, tau - h)) / (2 * h)

    def d_t(f):
        return (f(t + h, tau) - f(t - h, tau)) / (2 * h)

    np.testing.assert_allclose(sol.gp(t, tau), d_tau(sol.wp) + sol.c * d_t(sol.wp), atol=1e-7)
    np.testing.assert_allclose(sol.gm(t, tau), d_tau(sol.wm) - sol.c * d_t(sol.wm), atol=1e-7)


def test_balance_identity_holds_on_exact_fields_at_second_order():
    # The discrete balance (trapezoid in t, trapezoid average in τ) on the exact solution
    # is O(Δt² + Δτ²); its observed order must be 2 (≥ 1.9).
    res = [mf.run("upwind", 0.5, N, exact_fields=True).balance for N in NS]
    orders = np.log2(np.array(res[:-1]) / np.array(res[1:]))
    assert orders[-1] >= 1.9


def test_balance_check_rejects_wrong_sources():
    # With g+ replaced by −g+ the fields still follow the scheme, but (19)–(20) no longer
    # balance: the residual stays O(1) under refinement instead of falling.
    sol = mf.smooth_solution()
    wrong = replace(sol, gp=lambda t, tau: -sol.gp(t, tau))
    res = [mf.run("upwind", 0.5, N, solution=wrong, exact_fields=True).balance for N in NS]
    assert min(res) > 0.1
    assert np.log2(res[-2] / res[-1]) < 0.5


@pytest.mark.parametrize("label,scheme,nu,bound", mf.ORDER_CASES,
                         ids=[f"{c[1]}-{c[2]}" for c in mf.ORDER_CASES])
def test_observed_order(label, scheme, nu, bound):
    study = mf.observed_order(scheme, nu, NS)
    # errors must be resolved (far above round-off) and falling, so that the order means it
    assert np.all(study.errors > 1e-9) and np.all(np.diff(study.errors) < 0)
    assert study.orders[-1] >= bound, study.orders
    assert study.balance_orders[-1] >= bound, study.balance_orders
    # and not more than one order above the bound: a scheme that is exact would be a wrong test
    assert study.orders[-1] < bound + 1.2


@pytest.mark.parametrize("nu", [1.0, 2.0, 3.0])
def test_characteristic_scheme_exact_to_roundoff_at_integer_courant(nu):
    # Exact shift + midpoint source on a source constant along characteristics: error is
    # round-off only (see mf.ROUNDOFF_BOUND for why 1e-12).
    for N in (24, 48, 96):
        run = mf.run("characteristic", nu, N, solution="characteristic")
        assert run.error <= mf.ROUNDOFF_BOUND


def test_roundoff_check_can_fail():
    # On the same solution upwind at ν = 0.5 is only first order: its error is ≫ 1e-12.
    run = mf.run("upwind", 0.5, 48, solution="characteristic")
    assert run.error > 1e-4


def test_order_is_that_of_the_source_quadrature_at_unit_courant():
    # at ν = 1 the homogeneous transport is exact, so the quadrature alone sets the order:
    # rectangle 1, midpoint 2, Simpson 4
    expected = {"rectangle": 1.0, "midpoint": 2.0, "simpson": 4.0}
    for rule, order in expected.items():
        study = mf.observed_order("characteristic", 1.0, (24, 48, 96), quadrature=rule)
        assert abs(study.orders[-1] - order) < 0.1, (rule, study.orders)


def test_checks_can_fail():
    # upwind is first order: the second-order bound 1.9 rejects it ...
    upwind = mf.observed_order("upwind", 0.5, NS)
    assert upwind.orders[-1] < 1.9 and upwind.balance_orders[-1] < 1.9
    # ... and so does Lax–Wendroff with a first-order (rectangle) source quadrature
    lw = mf.observed_order("lax-wendroff", 0.5, NS, quadrature="rectangle")
    assert lw.orders[-1] < 1.9


@pytest.mark.parametrize("scheme,nu", [("upwind", 0.7), ("lax-wendroff", 0.7),
                                       ("beam-warming", 1.3), ("characteristic", 0.6),
                                       ("characteristic", 2.5)])
def test_numpy_and_compiled_forced_steps_agree(scheme, nu):
    # Same formulas in the same order (numba without fastmath): differences are a few ulps of
    # O(1) values after 20 steps; 1e-12 is far below any real discrepancy (≥ Δτ·|g| ≈ 1e-2).
    sol = mf.smooth_solution()
    N = 40
    t = np.linspace(0.0, sol.T, N + 1)
    dtau = nu * sol.T / N / sol.c
    a = (sol.wp(t, 0.0), sol.wm(t, 0.0))
    b = (a[0].copy(), a[1].copy())
    for n in range(20):
        a = mf.forced_step(sol, *a, n * dtau, scheme, nu, backend="numpy")
        b = mf.forced_step(sol, *b, n * dtau, scheme, nu, backend="numba")
    assert np.max(np.abs(a[0] - b[0])) <= 1e-12
    assert np.max(np.abs(a[1] - b[1])) <= 1e-12


@pytest.mark.parametrize("scheme,nu,node", [("lax-wendroff", 0.6, -1), ("beam-warming", 0.6, 1),
                                            ("beam-warming", 1.6, 1)])
def test_upwind_closure_changes_one_boundary_node_only(scheme, nu, node, rng):
    # The closure replaces the update of one node of each field (w+ at `node`, w− at its
    # mirror) by the upwind update and leaves every other node bit-identical.
    sol = mf.smooth_solution()
    N = 12
    wp, wm = rng.normal(size=(N + 1, 2)), rng.normal(size=(N + 1, 2))
    up = mf.forced_step(sol, wp, wm, 0.0, scheme, nu, closure="upwind")
    raw = mf.forced_step(sol, wp, wm, 0.0, scheme, nu, closure="scheme")
    k = node % (N + 1)
    mask = np.ones(N + 1, bool)
    mask[k] = False
    np.testing.assert_array_equal(up[0][mask], raw[0][mask])
    np.testing.assert_array_equal(up[1][mask[::-1]], raw[1][mask[::-1]])
    dtau = nu * sol.T / N / sol.c
    t = np.linspace(0.0, sol.T, N + 1)
    g = dtau * sol.gp(t[k] - sol.c * dtau / 2, dtau / 2)  # midpoint source at node k
    np.testing.assert_allclose(up[0][k], wp[k] - nu * (wp[k] - wp[k - 1]) + g, rtol=0,
                               atol=1e-14)


def test_order_checks_all_pass_and_are_well_formed():
    checks = mf.order_checks()
    names = [c["name"] for c in checks]
    assert len(names) == len(set(names)) == 2 * len(mf.ORDER_CASES) + 2
    for c in checks:
        assert set(c) == {"name", "passed", "value", "bound", "relation"}
        assert c["passed"], c
        # the relation printed by `wavecontrol verify` is the one the check applies
        if "round-off" in c["name"]:
            assert c["relation"] == "<=" and c["value"] <= c["bound"]
        else:
            assert c["relation"] == ">=" and c["value"] >= c["bound"]


def test_invalid_options_are_refused():
    with pytest.raises(ValueError, match="valid"):
        mf.run("upwind", 0.5, 24, quadrature="gauss")
    with pytest.raises(ValueError, match="stable range"):
        mf.run("lax-wendroff", 1.5, 24)
    with pytest.raises(ValueError, match="whole number"):
        mf.run("upwind", 0.7, 24)
    with pytest.raises(ValueError, match="double"):
        mf.observed_order("upwind", 0.5, (24, 40))
