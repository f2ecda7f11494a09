"""Parameter ports (wavecontrol.ports): update laws against hand-computed references, the
reflected wave of eq. 70 against the landscape curvature, the energy ledger with every port,
state round-trips and parameter checks.

Problems are LQRs with N ≤ 10 and the NumPy backend (the ports other than ``gd`` run only
there), so that the whole file takes a few seconds.
"""

import json

import numpy as np
import pytest

from problems import lqr, pendulum, random_lqr
from solvers.wave import HISTORY_COLUMNS, auto_eta, solve
from wavecontrol.kernels import HIST_COLUMNS
from wavecontrol.ports import (PORTS, AdaptivePort, Curvature, InductivePort, NewtonPort,
                               ResistivePort, curvature_matrix, gauss_newton_product, get_port,
                               pipeline_delay, reference_curvature)
from wavecontrol.result import Status

ALL_PORTS = [lambda: ResistivePort(0.02), lambda: NewtonPort(), lambda: NewtonPort(gain=0.005,
             damping=0.05, structure="layer"), lambda: InductivePort(),
             lambda: AdaptivePort()]
PORT_IDS = ["gd", "newton", "newton-layer-damped", "momentum", "adaptive"]


def _hessian(p):
    """∇²J of a quadratic J from gradient differences, column by column (independent of the
    Gauss–Newton products the ports use): H e_j = ∇J(e_j) − ∇J(0)."""
    d = p.theta0.size
    g0 = p.gradient(np.zeros_like(p.theta0)).reshape(-1)
    H = np.empty((d, d))
    for j in range(d):
        e = np.zeros(d)
        e[j] = 1.0
        H[:, j] = p.gradient(e.reshape(p.theta0.shape)).reshape(-1) - g0
    return 0.5 * (H + H.T)


@pytest.fixture(scope="module")
def p10():
    return lqr(N=10)


@pytest.fixture(scope="module")
def prand():
    """n = 4, m = 2: several parameters per layer, so 'layer' blocks are not diagonal."""
    return random_lqr(N=6)


# ------------------------------------------------------------------------------------------
# curvature
# ------------------------------------------------------------------------------------------
def test_exact_curvature_of_lqr_is_the_hessian(prand):
    """For affine maps the Gauss–Newton matrix is ∇²J; it equals the gradient-difference
    Hessian to round-off (entries O(1), differences of O(1) gradients: measured 2e-15)."""
    H = _hessian(prand)
    G = curvature_matrix(prand)
    assert G.shape == (12, 12)
    np.testing.assert_allclose(G, H, rtol=0, atol=1e-12 * np.abs(H).max())
    np.testing.assert_allclose(curvature_matrix(prand, kind="gauss-newton"), G, rtol=0,
                               atol=1e-14 * np.abs(H).max())


def test_gauss_newton_of_a_nonlinear_problem():
    """Pendulum: G = Σ_k J_kᵀ (Δt Q) J_k + J_Nᵀ Q_f J_N + Δt R with J_k = ∂x_k/∂θ from central
    differences of the forward pass (truncation ~1e-10, so 1e-7 relative)."""
    p = pendulum(N=6, theta0=0.3)
    th, h = p.theta0, 1e-6
    d, cont = th.size, p.continuous
    Jx = np.empty((p.N + 1, 2, d))
    for j in range(d):
        e = np.zeros(d)
        e[j] = h
        e = e.reshape(th.shape)
        Jx[:, :, j] = (p.forward(th + e) - p.forward(th - e))[0] / (2 * h)
    ref = sum(Jx[k].T @ (p.dt * cont.Q) @ Jx[k] for k in range(p.N))
    ref = ref + Jx[p.N].T @ cont.Qf @ Jx[p.N] + p.dt * float(cont.R[0, 0]) * np.eye(d)
    G = curvature_matrix(p, kind="gauss-newton")
    np.testing.assert_allclose(G, ref, rtol=0, atol=1e-7 * np.abs(ref).max())
    # and it is not the exact Hessian (the layer maps are curved)
    assert np.abs(curvature_matrix(p, kind="exact") - G).max() > 1e-4


def test_curvature_floor_and_powers():
    """Eigenvalues below floor × max are raised; Z^{1/2} Z^{1/2} = Z, Z^{-1} Z = I."""
    H = np.diag([4.0, 1.0, 0.0, -1.0])
    Z = Curvature(H, (4, 1), kind="test", floor=1e-3)
    np.testing.assert_allclose(Z.eigenvalues, [4e-3, 4e-3, 1.0, 4.0])
    v = np.arange(1.0, 5.0).reshape(4, 1)
    np.testing.assert_allclose(Z.apply(Z.apply(v, 0.5), 0.5), Z.apply(v), rtol=1e-14)
    np.testing.assert_allclose(Z.apply(Z.apply(v, -1.0)), v, rtol=1e-13)
    assert Curvature(np.zeros(3), (3, 1), kind="test").smallest == 1.0


# ------------------------------------------------------------------------------------------
# update laws against hand-computed references
# ------------------------------------------------------------------------------------------
def test_resistive_update_and_power(rng):
    th, r = rng.normal(size=(5, 2)), rng.normal(size=(5, 2))
    port = ResistivePort(0.3)
    th1 = port.update(th, r)
    np.testing.assert_array_equal(th1, th - 0.3 * r)
    assert port.power(r) == pytest.approx(0.3 * np.sum(r * r), rel=1e-15)
    # the general e·f = −r·Δθ agrees to round-off
    assert -np.sum(r * (th1 - th)) == pytest.approx(port.power(r, th1 - th), rel=1e-13)
    assert port.state() == {}


@pytest.mark.parametrize("structure", ["full", "layer", "diagonal"])
def test_newton_update(prand, rng, structure):
    """θ' = θ − κ (H_s + μI)⁻¹ r with H_s the chosen part of H, solved independently
    (np.linalg.solve; agreement to 1e-12 relative for a condition number ≤ 1e3)."""
    H = _hessian(prand)
    m, d = prand.m, H.shape[0]
    if structure == "layer":
        same = (np.arange(d)[:, None] // m) == (np.arange(d)[None, :] // m)
        Hs = np.where(same, H, 0.0)
    elif structure == "diagonal":
        Hs = np.diag(np.diag(H))
    else:
        Hs = H
    port = NewtonPort(gain=0.7, damping=0.05, structure=structure).bind(prand)
    th, r = rng.normal(size=prand.theta0.shape), rng.normal(size=prand.theta0.shape)
    ref = th.reshape(-1) - 0.7 * np.linalg.solve(Hs + 0.05 * np.eye(d), r.reshape(-1))
    got = port.update(th, r).reshape(-1)
    assert np.abs(got - ref).max() <= 1e-12 * np.abs(ref).max()
    assert port.power(r, got.reshape(th.shape) - th) == pytest.approx(
        float(r.reshape(-1) @ (0.7 * np.linalg.solve(Hs + 0.05 * np.eye(d), r.reshape(-1)))),
        rel=1e-12)


def test_newton_auto_gain(p10):
    """κ = min(1/4, 50/cond H) / ((1 + 2N/ν) λ_max(Z⁻¹H)); for the full Hessian λ_max = 1."""
    H = _hessian(p10)
    w = np.linalg.eigvalsh(H)
    port = NewtonPort().bind(p10, courant=0.5)
    assert port.match == pytest.approx(1.0, rel=1e-12)
    assert port.condition == pytest.approx(w.max() / w.min(), rel=1e-10)
    assert port.gain == pytest.approx(min(0.25, 50 * w.min() / w.max()) / (1 + 2 * 10 / 0.5),
                                      rel=1e-10)
    assert pipeline_delay(p10, 0.5) == 40.0


def test_momentum_update_by_hand(rng):
    """v' = (L v − r)/(L + R), θ' = θ + v' (friction implicit), from v = 0."""
    p = lqr(N=3)
    port = InductivePort(resistance=2.0, inductance=3.0).bind(p)
    th0 = rng.normal(size=(3, 1))
    r1, r2 = rng.normal(size=(3, 1)), rng.normal(size=(3, 1))
    th1 = port.update(th0, r1)
    v1 = -r1 / 5.0
    np.testing.assert_allclose(th1, th0 + v1, rtol=1e-15)
    th2 = port.update(th1, r2)
    v2 = (3.0 * v1 - r2) / 5.0
    np.testing.assert_allclose(th2, th1 + v2, rtol=1e-15, atol=1e-16)
    np.testing.assert_allclose(port.state()["velocity"], v2, rtol=1e-15)
    assert port.power(r2, th2 - th1) == pytest.approx(-float(np.sum(r2 * v2)), rel=1e-14)
    port.reset()
    np.testing.assert_array_equal(port.state()["velocity"], np.zeros((3, 1)))


def test_momentum_auto_parameters(p10):
    """R = L_H (1 + 2N/ν) (= 1/η_auto of the resistive port) and L = R."""
    port = InductivePort().bind(p10)
    assert 1.0 / port.resistance == pytest.approx(auto_eta(p10, 1.0), rel=1e-9)
    assert port.inductance == port.resistance


def test_adaptive_update_by_hand(rng):
    """s' = ρ s + (1 − ρ) r², ŝ = s'/(1 − ρⁿ), c = clip(√ŝ / rms(√ŝ), 1/M, M),
    θ' = θ − η r / c."""
    p = lqr(N=4)
    port = AdaptivePort(gain=0.1, decay=0.9, max_ratio=3.0).bind(p)
    th = rng.normal(size=(4, 1))
    r1 = np.array([[1.0], [0.5], [-0.01], [2.0]])
    r2 = np.array([[0.3], [-0.2], [0.05], [1.0]])

    def expected(s, n, r):
        q = np.sqrt(s / (1 - 0.9 ** n))
        c = np.clip(q / np.sqrt(np.mean(q * q)), 1 / 3, 3)
        return -0.1 * r / c

    th1 = port.update(th, r1)
    s1 = 0.1 * r1 ** 2
    np.testing.assert_allclose(th1 - th, expected(s1, 1, r1), rtol=1e-14)
    th2 = port.update(th1, r2)
    s2 = 0.9 * s1 + 0.1 * r2 ** 2
    np.testing.assert_allclose(th2 - th1, expected(s2, 2, r2), rtol=1e-14)
    st = port.state()
    assert int(st["count"]) == 2
    np.testing.assert_allclose(st["second_moment"], s2, rtol=1e-15)
    # the clip is active for the tiny residual: its factor is 1/3
    np.testing.assert_allclose(port.factors()[2], 1 / 3)


def test_adaptive_auto_gain_is_the_resistive_one(p10):
    assert AdaptivePort().bind(p10).gain == pytest.approx(auto_eta(p10, 1.0), rel=1e-9)


# ------------------------------------------------------------------------------------------
# reflection (eq. 70 against Z_ref = ∇²J)
# ------------------------------------------------------------------------------------------
def test_newton_is_transparent_for_the_exact_gradient(prand, rng):
    """With e = −∇J and Z_ref = H the Newton step (κ = 1) reflects nothing: ‖b‖ is round-off
    of ‖Z^{-1/2} e‖ (measured 1e-16 relative)."""
    th = rng.normal(size=prand.theta0.shape)
    g = prand.gradient(th)
    port = NewtonPort(gain=1.0).bind(prand)
    dth = port.update(th, g) - th
    b = port.reflected_wave(g, dth)
    scale = np.linalg.norm(port.reference.apply(g, -0.5))
    assert np.linalg.norm(b) <= 1e-13 * scale
    # the reference is the exact Hessian
    np.testing.assert_allclose(port.reference.matrix(), _hessian(prand), rtol=0,
                               atol=1e-12 * np.abs(_hessian(prand)).max())


def test_resistive_reflection_closed_form(prand, rng):
    """‖b‖² = ½ rᵀ(H⁻¹ − 2ηI + η²H) r for f = −η r (H, H⁻¹ formed independently; the three
    terms do not cancel here, so 1e-11 relative)."""
    H = _hessian(prand)
    r = rng.normal(size=prand.theta0.shape)
    eta = 0.05
    port = ResistivePort(eta).bind(prand)
    got = port.reflection(r, port.update(np.zeros_like(r), r))
    v = r.reshape(-1)
    ref = 0.5 * v @ (np.linalg.inv(H) - 2 * eta * np.eye(v.size) + eta ** 2 * H) @ v
    assert got == pytest.approx(ref, rel=1e-11)
    # ‖a‖² − ‖b‖² = 2 e·f = 2 × the absorbed power
    a = (port.reference.apply(-r, -0.5) + port.reference.apply(-eta * r, 0.5)) / np.sqrt(2)
    assert np.sum(a * a) - got == pytest.approx(2 * port.power(r), rel=1e-10)


def _first_step(p, port):
    """One NumPy τ-step from the forward/backward fields of θ0 (r_x = r_λ = 0, r_θ = ∇J)."""
    return solve(p, port=port, init="forward", max_steps=1, record_every=1, tol=0.0,
                 backend="numpy").history


def test_converged_waves_reflection_newton_vs_resistive(p10):
    """At a state whose waves are converged for θ (λ exact, so r_θ = ∇J), the recorded
    reflection of the Newton port (κ = 1) is ≤ 1e-10 of the resistive port's (measured
    ~1e-31 / 1e-2: round-off)."""
    gd = _first_step(p10, ResistivePort(auto_eta(p10, 1.0)))
    nt = _first_step(p10, NewtonPort(gain=1.0))
    assert gd["reflection"][0] > 1e-3
    assert nt["reflection"][0] <= 1e-10 * gd["reflection"][0]
    # a gain κ < 1 keeps a mismatch: b = −(1 − κ) H^{-1/2} r/√2, so ‖b‖² = (1 − κ)²/2 rᵀH⁻¹r,
    # and rᵀH⁻¹r is the power the transparent port absorbs
    half = _first_step(p10, NewtonPort(gain=0.5))
    assert half["reflection"][0] == pytest.approx(0.125 * nt["port_power"][0], rel=1e-9)


def test_reflection_history_column(p10):
    """The history has the kernel's columns plus 'reflection'; the NumPy path fills it and the
    compiled resistive path leaves it NaN (the kernel keeps no r_θ)."""
    assert HISTORY_COLUMNS == HIST_COLUMNS + ("reflection",)
    r = solve(p10, eta=0.02, max_steps=20, record_every=5, tol=0.0, backend="numpy")
    assert set(r.history) == set(HISTORY_COLUMNS) | {"tau"}
    assert np.all(np.isfinite(r.history["reflection"])) and np.all(r.history["reflection"] >= 0)
    c = solve(p10, eta=0.02, max_steps=20, record_every=5, tol=0.0, backend="numba")
    assert np.all(np.isnan(c.history["reflection"]))
    np.testing.assert_allclose(c.history["port_power"], r.history["port_power"], rtol=1e-12)


# ------------------------------------------------------------------------------------------
# ledger and driver
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", ALL_PORTS, ids=PORT_IDS)
@pytest.mark.parametrize("formulation", ["consistent", "paper"])
def test_ledger_closes_with_every_port(p10, make, formulation):
    """The ports change only θ: ΔV = Σ terms to ≤ 1e-10 relative on every step (measured
    ≤ 1e-15), and port_power is −r_θ·(θ' − θ) of the step (checked through the history:
    the reflection identity ‖a‖² − ‖b‖² = 2 e·f holds with ‖a‖² ≥ 0)."""
    port = make()
    # 100 steps: the paper form grows on LQR (docs/findings.md) and diverges after ~150
    r = solve(p10, formulation=formulation, port=port, max_steps=100, record_every=5,
              tol=0.0, backend="numpy", divergence_bound=1e100)
    assert r.steps == 100 and r.ledger_max_rel_error <= 1e-10
    h = r.history
    assert np.all(h["ledger_error"] <= 1e-10)
    assert np.all(np.isfinite(h["port_power"])) and np.all(h["reflection"] >= 0)
    assert np.all(h["reflection"] + 2 * h["port_power"] >= -1e-12 * h["reflection"].max())
    json.dumps(r.config["port"])


def test_port_power_is_e_dot_f_for_momentum(p10):
    """An inductive port gives energy back while it brakes: its power e·f changes sign."""
    r = solve(p10, port=InductivePort(resistance=30.0, inductance=300.0), max_steps=3000,
              record_every=1, tol=0.0, backend="numpy")
    assert r.history["port_power"].min() < 0 < r.history["port_power"].max()


@pytest.mark.parametrize("name", ["gd", "newton", "momentum", "adaptive"])
def test_registry_names_run(p10, name):
    port = get_port("gd", eta=0.02) if name == "gd" else name
    r = solve(p10, port=port, max_steps=50, tol=0.0, backend="numpy")
    assert r.status is Status.MAX_STEPS and r.config["port"]["name"] == name
    assert "auto" not in r.config["port"].values()


def test_newton_converges_and_full_step_diverges(p10):
    """Pipelined: the gradient of layer 0 arrives ~2N/ν τ-steps late. The full Newton step
    (κ = 1) diverges; the auto gain converges, in ~900 τ-steps (resistive auto: ~60 000)."""
    good = solve(p10, port="newton", tol=1e-8, max_steps=3000, backend="numpy",
                 record_every=50)
    assert good.status is Status.CONVERGED and good.steps < 1500
    bad = solve(p10, port=NewtonPort(gain=1.0), max_steps=3000, backend="numpy",
                record_every=50)
    assert bad.status is Status.DIVERGED


# ------------------------------------------------------------------------------------------
# state
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: InductivePort(), lambda: AdaptivePort()],
                         ids=["momentum", "adaptive"])
def test_state_round_trip_is_bit_identical(p10, make):
    """Run 2n steps at once, or n steps, save (x, λ, θ) and port.state(), restore them into a
    fresh port and run n more: the same bits."""
    n = 150
    whole_port = make()
    whole = solve(p10, port=whole_port, max_steps=2 * n, tol=0.0, backend="numpy")
    first_port = make()
    first = solve(p10, port=first_port, max_steps=n, tol=0.0, backend="numpy")
    saved = first_port.state()
    assert saved and all(isinstance(v, np.ndarray) for v in saved.values())
    fresh = make().bind(p10)
    fresh.set_state(saved)
    rest = solve(p10, port=fresh, init=(first.x, first.lam, first.theta), max_steps=n,
                 tol=0.0, backend="numpy")
    np.testing.assert_array_equal(rest.theta, whole.theta)
    np.testing.assert_array_equal(rest.lam, whole.lam)
    for k, v in fresh.state().items():
        np.testing.assert_array_equal(v, whole_port.state()[k])
    # the same port object carries its state into the next solve (bound to the same problem)
    again = solve(p10, port=first_port, init=(first.x, first.lam, first.theta), max_steps=n,
                  tol=0.0, backend="numpy")
    np.testing.assert_array_equal(again.theta, whole.theta)


def test_state_matches_the_returned_fields_after_convergence():
    """On convergence the driver discards the step it computed last (the residuals are those
    of its start): the port takes its state change back (undo), so its state is that of the
    returned θ, bit for bit the state of a run stopped by max_steps at the same step."""
    p4 = lqr(N=4)
    port = InductivePort()
    r = solve(p4, port=port, tol=1e-3, max_steps=100_000, backend="numpy", record_every=100)
    assert r.status is Status.CONVERGED
    same = InductivePort()
    s = solve(p4, port=same, max_steps=r.steps, tol=0.0, backend="numpy", record_every=100)
    np.testing.assert_array_equal(s.theta, r.theta)
    np.testing.assert_array_equal(port.state()["velocity"], same.state()["velocity"])


def test_undo_and_reset(p10, rng):
    port = AdaptivePort().bind(p10)
    th, r = rng.normal(size=(10, 1)), rng.normal(size=(10, 1))
    # the pure step looks ahead without touching the state
    ahead, new = port.step(th, r)
    assert int(new["count"]) == 1 and int(port.state()["count"]) == 0
    np.testing.assert_array_equal(port.update(th, r), ahead)
    s1 = port.state()
    port.update(th, 2 * r)
    port.undo()
    for k in s1:
        np.testing.assert_array_equal(port.state()[k], s1[k])
    port.reset()
    assert int(port.state()["count"]) == 0
    # binding to the same problem keeps the state, to another one resets it
    port.update(th, r)
    port.bind(p10)
    assert int(port.state()["count"]) == 1
    port.bind(lqr(N=10))
    assert int(port.state()["count"]) == 0


# ------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make, match", [
    (lambda: ResistivePort(-1.0), "eta must be a finite number >= 0"),
    (lambda: ResistivePort(float("nan")), "eta must be a finite number >= 0"),
    (lambda: NewtonPort(gain=0.0), "gain must be a finite number > 0 or 'auto', got 0.0"),
    (lambda: NewtonPort(gain="big"), "gain must be a finite number > 0 or 'auto'"),
    (lambda: NewtonPort(damping=-0.1), "damping must be a finite number >= 0"),
    (lambda: NewtonPort(structure="block"), "unknown structure 'block'; valid: full, layer"),
    (lambda: NewtonPort(curvature="bfgs"), "unknown curvature 'bfgs'; valid: auto, exact"),
    (lambda: InductivePort(resistance=0.0), "resistance must be a finite number > 0"),
    (lambda: InductivePort(inductance=-2.0), "inductance must be a finite number > 0"),
    (lambda: AdaptivePort(gain=-1.0), "gain must be a finite number > 0"),
    (lambda: AdaptivePort(decay=1.0), "decay must be a finite number > 0 and < 1"),
    (lambda: AdaptivePort(max_ratio=0.5), "max_ratio must be a finite number >= 1"),
    (lambda: get_port("lbfgs"), "unknown port 'lbfgs'; valid: gd, newton, momentum, adaptive"),
    (lambda: get_port("momentum", mass=1.0),
     r"unknown parameter\(s\) \['mass'\] of port 'momentum'; valid: resistance, inductance"),
    (lambda: get_port(ResistivePort(1.0), eta=2.0), "only be given with a port name"),
])
def test_bad_parameters_are_rejected(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_state_and_unbound_use(p10):
    with pytest.raises(ValueError, match="not bound to a problem"):
        NewtonPort(gain=1.0).update(np.zeros((10, 1)), np.zeros((10, 1)))
    port = InductivePort().bind(p10)
    with pytest.raises(ValueError, match=r"state must have the keys \['velocity'\]"):
        port.set_state({"v": np.zeros((10, 1))})
    with pytest.raises(ValueError, match=r"state 'velocity' must have shape \(10, 1\)"):
        port.set_state({"velocity": np.zeros((9, 1))})


def test_registry():
    assert list(PORTS) == ["gd", "newton", "momentum", "adaptive", "matched"]
    assert isinstance(reference_curvature(lqr(N=3)), Curvature)
    g = np.ones((3, 1))
    p = lqr(N=3)
    assert gauss_newton_product(p, p.theta0, g).shape == (3, 1)
