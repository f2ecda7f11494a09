"""Transport schemes: compiled kernels vs NumPy twins, the exact energy split, the stencils
written out, and the observed order on a smooth solution.

Tolerances. Twins and stencils: both sides do the same O(1) flops per entry in a possibly
different order, so they agree to a few ulps; 1e-12 relative to max(1, max |w|) (for the ledger
numbers: to max(1, Σ‖w‖²)) leaves a factor ~1000 of margin and is still far below any field
value (order 1). Orders: the observed order on the finest pair of grids is compared with the
design order ±0.15 (measured: upwind 0.98, characteristic at ν = 2.5: 1.09, Lax–Wendroff
1.99, Beam–Warming 2.00 and 2.05), so a scheme one order lower cannot pass. (Before the
boundary fluxes were made consistent, Lax–Wendroff measured 1.13 and Beam–Warming 1.07/1.03.)
"""

import numpy as np
import pytest

from wavecontrol.schemes import (SCHEME_CODES, check_scheme, transport_kernel, transport_numpy,
                                 upwind_pair_inplace, upwind_pair_numpy)

B, N, n = 2, 12, 3
TOL = 1e-12
COURANTS = {
    "upwind": (0.3, 0.8, 1.0),
    "lax-wendroff": (0.3, 0.8, 1.0),
    "beam-warming": (0.5, 1.0, 1.7, 2.0),
    "characteristic": (0.4, 1.0, 2.5, 3.0, float(N)),
}
CASES = [(s, nu) for s, nus in COURANTS.items() for nu in nus]


def _kernel(w, scheme, nu, direction):
    out = np.full_like(w, np.nan)
    inflow, outflow, diss = transport_kernel(w, out, SCHEME_CODES[scheme], nu, direction)
    return out, inflow, outflow, diss


def _rel(a, b, scale):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / max(1.0, scale))


@pytest.mark.parametrize("direction", [1, -1])
@pytest.mark.parametrize("scheme, nu", CASES)
def test_kernel_matches_numpy_twin(rng, scheme, nu, direction):
    w = rng.normal(size=(B, N + 1, n))
    out_k, *led_k = _kernel(w, scheme, nu, direction)
    out_n, *led_n = transport_numpy(w, scheme, nu, direction)
    assert np.all(np.isfinite(out_k))
    assert _rel(out_k, out_n, np.abs(w).max()) <= TOL
    assert _rel(led_k, led_n, np.sum(w * w)) <= TOL


@pytest.mark.parametrize("scheme, nu", CASES)
def test_energy_split_closes(rng, scheme, nu):
    """Σ_k (‖w̄_k‖² − ‖w_k‖²) = inflow + outflow + dissipation, to round-off."""
    w = rng.normal(size=(B, N + 1, n))
    for direction in (1, -1):
        out, inflow, outflow, diss = transport_numpy(w, scheme, nu, direction)
        change = np.sum(out * out) - np.sum(w * w)
        assert abs(change - (inflow + outflow + diss)) <= TOL * np.sum(w * w)


@pytest.mark.parametrize("scheme, nu", CASES)
def test_left_moving_is_the_mirror_image(rng, scheme, nu):
    w = rng.normal(size=(B, N + 1, n))
    right = transport_numpy(w[:, ::-1].copy(), scheme, nu, 1)
    left = transport_numpy(w, scheme, nu, -1)
    np.testing.assert_array_equal(left[0], right[0][:, ::-1])
    assert left[1:] == right[1:]
    # the inflow node is left for the termination
    np.testing.assert_array_equal(left[0][:, N], w[:, N])


@pytest.mark.parametrize("nu", [0.3, 0.8, 1.0])
def test_upwind_stencil_and_dissipation(rng, nu):
    """eqs. 41–42: w̄_k = (1 − ν) w_k + ν w_{k−1}; dissipation −ν(1−ν) Σ ‖w_k − w_{k−1}‖²."""
    w = rng.normal(size=(B, N + 1, n))
    out, inflow, outflow, diss = transport_numpy(w, "upwind", nu, 1)
    expected = w.copy()
    for k in range(1, N + 1):
        expected[:, k] = (1 - nu) * w[:, k] + nu * w[:, k - 1]
    assert _rel(out, expected, np.abs(w).max()) <= TOL
    d = -nu * (1 - nu) * np.sum((w[:, 1:] - w[:, :-1]) ** 2)
    assert abs(diss - d) <= TOL * np.sum(w * w)
    assert abs(inflow - nu * np.sum(w[:, 0] ** 2)) <= TOL * np.sum(w * w)
    assert abs(outflow + nu * np.sum(w[:, N] ** 2)) <= TOL * np.sum(w * w)


@pytest.mark.parametrize("nu", [0.3, 0.8, 1.0])
def test_lax_wendroff_interior_stencil(rng, nu):
    w = rng.normal(size=(B, N + 1, n))
    out = transport_numpy(w, "lax-wendroff", nu, 1)[0]
    for k in range(1, N):
        lw = (w[:, k] - 0.5 * nu * (w[:, k + 1] - w[:, k - 1])
              + 0.5 * nu ** 2 * (w[:, k + 1] - 2 * w[:, k] + w[:, k - 1]))
        assert _rel(out[:, k], lw, np.abs(w).max()) <= TOL


@pytest.mark.parametrize("nu", [0.5, 1.0, 1.7, 2.0])
def test_beam_warming_interior_stencil(rng, nu):
    w = rng.normal(size=(B, N + 1, n))
    out = transport_numpy(w, "beam-warming", nu, 1)[0]
    for k in range(2, N + 1):
        bw = (w[:, k] - nu * (w[:, k] - w[:, k - 1])
              + 0.5 * nu * (nu - 1) * (w[:, k] - 2 * w[:, k - 1] + w[:, k - 2]))
        assert _rel(out[:, k], bw, np.abs(w).max()) <= TOL


@pytest.mark.parametrize("nu", [0.4, 1.0, 2.5, 3.0, float(N)])
def test_characteristic_shift_and_interpolation(rng, nu):
    """ν = p + q: w̄_k = (1 − q) w_{k−p} + q w_{k−p−1}, indices clamped at the inflow node 0;
    a pure shift by p nodes at integer ν (eqs. 36–37), exact (compared bit for bit)."""
    w = rng.normal(size=(B, N + 1, n))
    out = transport_numpy(w, "characteristic", nu, 1)[0]
    p = int(np.floor(nu))
    q = nu - p
    for k in range(1, N + 1):
        if q == 0:
            np.testing.assert_array_equal(out[:, k], w[:, max(k - p, 0)])
        else:
            ref = (1 - q) * w[:, max(k - p, 0)] + q * w[:, max(k - p - 1, 0)]
            assert _rel(out[:, k], ref, np.abs(w).max()) <= TOL


@pytest.mark.parametrize("nu", [0.3, 0.75, 1.0])
def test_upwind_pair_kernel_matches_twins(rng, nu):
    steps, M = 5, 4
    wp, wm = rng.normal(size=(2, N + 1, M))
    kp, km = wp.copy(), wm.copy()
    upwind_pair_inplace(kp, km, nu, steps)
    np_p, np_m = wp.copy(), wm.copy()
    upwind_pair_numpy(np_p, np_m, nu, steps)
    scale = np.abs(wp).max() + np.abs(wm).max()
    assert _rel(kp, np_p, scale) <= TOL and _rel(km, np_m, scale) <= TOL
    # and both equal the ledgered transport applied `steps` times
    tp, tm = wp[None].copy(), wm[None].copy()
    for _ in range(steps):
        tp = transport_numpy(tp, "upwind", nu, 1)[0]
        tm = transport_numpy(tm, "upwind", nu, -1)[0]
    assert _rel(kp, tp[0], scale) <= TOL and _rel(km, tm[0], scale) <= TOL


def test_unknown_scheme_lists_valid_ones():
    assert check_scheme("upwind") == "upwind"
    with pytest.raises(ValueError, match="unknown scheme 'leapfrog'; valid: upwind, "
                                         "lax-wendroff, beam-warming, characteristic"):
        transport_numpy(np.zeros((1, 3, 1)), "leapfrog", 0.5)


def _advection_error(scheme, nu, N_grid):
    """Max-abs error at τ = 1/2 of right-moving transport of u = f(t − τ) on t ∈ [0, 1]
    (c = 1), with the exact value imposed at the inflow node after every step."""
    def f(s):
        return np.sin(2 * np.pi * s) + 0.5 * np.cos(4 * np.pi * s)

    dt = 1.0 / N_grid
    steps = int(round(0.5 / (nu * dt)))
    t = np.arange(N_grid + 1) * dt
    w = f(t)[None, :, None].copy()
    for s in range(steps):
        w = transport_numpy(w, scheme, nu, 1)[0]
        w[:, 0, 0] = f(-(s + 1) * nu * dt)
    return float(np.abs(w[0, :, 0] - f(t - steps * nu * dt)).max())


@pytest.mark.parametrize("scheme, nu, order", [
    ("upwind", 0.8, 1), ("characteristic", 2.5, 1),
    ("lax-wendroff", 0.8, 2), ("beam-warming", 0.8, 2), ("beam-warming", 1.5, 2),
])
def test_observed_order_on_smooth_transport(scheme, nu, order):
    e_coarse, e_fine = (_advection_error(scheme, nu, N_grid) for N_grid in (160, 320))
    observed = np.log2(e_coarse / e_fine)
    assert abs(observed - order) <= 0.15, (
        f"{scheme} at ν = {nu}: observed order {observed:.3f} (errors {e_coarse:.3g}, "
        f"{e_fine:.3g}), design order {order}")


@pytest.mark.parametrize("scheme", ["upwind", "characteristic"])
def test_shift_schemes_are_exact_at_unit_courant(scheme):
    """At ν = 1 upwind and characteristic are the exact shift (eqs. 36–37): no error at all
    beyond the round-off of evaluating f (1e-14 absolute, f is of order 1)."""
    assert _advection_error(scheme, 1.0, 40) <= 1e-14


def test_characteristic_integer_courant_exact_from_initial_data(rng):
    """At ν = p ≥ 2 nodes whose departure point lies on the grid are shifted exactly; after s
    steps nodes k ≥ s·p carry initial data moved by s·p nodes, bit for bit."""
    w = rng.normal(size=(B, N + 1, n))
    out = w
    for _ in range(2):
        out = transport_numpy(out, "characteristic", 3.0, 1)[0]
    np.testing.assert_array_equal(out[:, 6:], w[:, :N + 1 - 6])
