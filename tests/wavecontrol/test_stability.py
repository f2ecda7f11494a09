"""Stability analysis (:mod:`wavecontrol.stability`).

Every check compares with an exact reference: the closed-form von Neumann factors against an FFT
of the scheme code; the τ-step operator against one driver step, a hand-derived matrix, the
discrete Riccati solution and the driver's own runs (step counts must be equal); the Jacobian
by differences against the exact operator and against Taylor's theorem; the transient growth
against the closed-form powers of a Jordan block. Runs use the NumPy backend on N ≤ 10 so
that no kernel is compiled.
"""

import json
import math

import numpy as np
import pytest

from problems import lqr
from problems.builder import ContinuousProblem, EulerProblem, LinearQuadratic
from solvers.riccati import discrete_riccati
from solvers.wave import auto_eta, solve
from wavecontrol import stability as st
from wavecontrol.problem import AffineQuadraticProblem

FULL = np.array([[1.3, 0.2], [0.0, 0.7]])


def _small():
    """N = 3, R = 1: the consistent form converges in ~1000–4000 τ-steps at η = auto."""
    return lqr(N=3, R=1.0)


class _Pendulum(ContinuousProblem):
    """ẋ1 = x2, ẋ2 = −sin x1 + u; L = ½|x|² + 0.05 u², Φ = 2.5 |x|² (nonlinear layer maps)."""

    name = "pendulum-test"

    def __init__(self):
        super().__init__(2, 1, 2.0, [1.0, 0.0])

    def f(self, x, u):
        return np.stack([x[..., 1], -np.sin(x[..., 0]) + u[..., 0]], axis=-1)

    def jac_x(self, x, u):
        J = np.zeros(x.shape[:-1] + (2, 2))
        J[..., 0, 1] = 1.0
        J[..., 1, 0] = -np.cos(x[..., 0])
        return J

    def jac_u(self, x, u):
        J = np.zeros(x.shape[:-1] + (2, 1))
        J[..., 1, 0] = 1.0
        return J

    def L(self, x, u):
        return 0.5 * np.sum(x * x, -1) + 0.05 * np.sum(u * u, -1)

    def L_x(self, x, u):
        return x

    def L_u(self, x, u):
        return 0.1 * u

    def Phi(self, x):
        return 2.5 * np.sum(x * x, -1)

    def Phi_x(self, x):
        return 5.0 * x

    def Phi_xx(self, x):
        return np.broadcast_to(5.0 * np.eye(2), x.shape[:-1] + (2, 2))


# --------------------------------------------------------------------------------------------
# von Neumann
# --------------------------------------------------------------------------------------------
VN_CASES = ([("upwind", nu) for nu in (0.3, 0.8, 1.0, 1.4)]
            + [("lax-wendroff", nu) for nu in (0.3, 0.8, 1.0, 1.4)]
            + [("beam-warming", nu) for nu in (0.5, 1.5, 2.0, 2.6)]
            + [("characteristic", nu) for nu in (0.4, 1.0, 2.5, 7.3)])


@pytest.mark.parametrize("direction", [1, -1])
@pytest.mark.parametrize("scheme, nu", VN_CASES)
def test_closed_form_factor_is_the_fft_of_the_scheme_code(scheme, nu, direction):
    """The FFT of the periodic step's impulse response is g(ξ) (g(−ξ) when left-moving).

    Tolerance 1e-13: the impulse response holds the stencil coefficients as the code computes
    them (a few ulps of numbers ≤ (1 + ν)²) and the 64-point FFT adds O(ε log M); the phase
    p·ξ of the characteristic shift adds ~pε. Measured ≤ 2.8e-14 up to ν = 30.7.
    """
    xi, g = st.measured_amplification(scheme, nu, M=64, direction=direction)
    assert np.abs(g - st.amplification_factor(scheme, direction * xi, nu)).max() <= 1e-13


@pytest.mark.parametrize("direction", [1, -1])
@pytest.mark.parametrize("scheme", st.TRANSPORTS)
def test_periodic_step_multiplies_every_fourier_mode(rng, scheme, direction):
    """On a random field (batch 2, width 3): FFT(step w) = g · FFT(w), mode by mode, to 1e-13
    of the largest mode (same round-off budget as above; measured ≤ 8.4e-15)."""
    w = rng.normal(size=(2, 48, 3))
    for nu in (0.7, 1.6, 3.4):
        out = st.periodic_transport(w, scheme, nu, direction)
        xi = 2 * np.pi * np.arange(48) / 48
        W = np.fft.fft(w, axis=1)
        g = st.amplification_factor(scheme, direction * xi, nu)
        assert np.abs(np.fft.fft(out, axis=1) - g[None, :, None] * W).max() \
            <= 1e-13 * np.abs(W).max()


def test_each_formulation_uses_its_transport():
    """The consistent form's lax-wendroff transports with Beam–Warming, the paper form's with
    central Lax–Wendroff; the other names are the same transport in both (exact equality)."""
    xi = np.linspace(0, np.pi, 9)
    f = st.amplification_factor
    assert np.array_equal(f("lax-wendroff", xi, 1.5, "consistent"), f("beam-warming", xi, 1.5))
    assert np.array_equal(f("lax-wendroff", xi, 0.5, "paper"), f("lax-wendroff", xi, 0.5))
    for form in ("consistent", "paper"):
        for scheme in ("upwind", "characteristic"):
            assert np.array_equal(f(scheme, xi, 0.7, form), f(scheme, xi, 0.7))
    _, g = st.measured_amplification("lax-wendroff", 1.5, M=32, formulation="consistent")
    _, h = st.measured_amplification("beam-warming", 1.5, M=32)
    assert np.array_equal(g, h)


@pytest.mark.parametrize("scheme, nu, edge", [
    ("upwind", 1.2, abs(1 - 2 * 1.2)), ("lax-wendroff", 1.1, abs(1 - 2 * 1.1 ** 2)),
    ("beam-warming", 2.3, abs(1 - 4 * 2.3 + 2 * 2.3 ** 2))])
def test_von_neumann_max_beyond_the_edge_is_the_checkerboard_factor(scheme, nu, edge):
    """Past the stable range |g| peaks at ξ = π, where g = 1 − 2ν (upwind), 1 − 2ν² (LW),
    1 − 4ν + 2ν² (BW); ξ = π is a grid point, so the max equals it to round-off (1e-14)."""
    assert st.von_neumann_max(scheme, nu) == pytest.approx(edge, abs=1e-14)
    assert edge > 1


@pytest.mark.parametrize("scheme, nus", [("upwind", (0.2, 0.7, 1.0)),
                                         ("lax-wendroff", (0.5, 1.0)),
                                         ("beam-warming", (0.5, 1.5, 2.0)),
                                         ("characteristic", (0.3, 2.5, 7.3, 19.9))])
def test_von_neumann_max_inside_the_stable_range_is_one(scheme, nus):
    """Inside the derived ranges max|g| = |g(0)| = 1, to 4 ulps of round-off."""
    for nu in nus:
        assert abs(st.von_neumann_max(scheme, nu) - 1.0) <= 4 * np.finfo(float).eps


def test_von_neumann_bad_input():
    with pytest.raises(ValueError, match="unknown scheme 'weno'; valid: upwind"):
        st.amplification_factor("weno", 0.1, 0.5)
    with pytest.raises(ValueError, match="courant must be a finite number >= 0"):
        st.amplification_factor("upwind", 0.1, -0.5)
    with pytest.raises(ValueError, match="direction"):
        st.periodic_transport(np.zeros(8), "upwind", 0.5, direction=0)
    with pytest.raises(ValueError, match="unknown formulation"):
        st.amplification_factor("upwind", 0.1, 0.5, formulation="weird")


# --------------------------------------------------------------------------------------------
# the τ-step operator
# --------------------------------------------------------------------------------------------
STEP_CASES = [("consistent", "upwind", 0.7, "implicit", "after"),
              ("consistent", "upwind", 1.3, "explicit", "after"),
              ("consistent", "lax-wendroff", 0.6, "implicit", "after"),
              ("consistent", "lax-wendroff", 1.6, "explicit", "after"),
              ("consistent", "characteristic", 2.4, "implicit", "after"),
              ("paper", "upwind", 0.7, "implicit", "after"),
              ("paper", "upwind", 1.3, "explicit", "before"),
              ("paper", "lax-wendroff", 0.6, "implicit", "before"),
              ("paper", "characteristic", 2.4, "explicit", "after")]


@pytest.mark.parametrize("form, scheme, nu, term, src", STEP_CASES)
def test_operator_is_one_driver_step(rng, form, scheme, nu, term, src):
    """G z + g equals one ``solve(..., max_steps=1, backend="numpy")`` step from the same
    fields, and G z equals that step minus the offset g (Q_f with off-diagonal terms, a full Θ).

    Tolerance 1e-13 relative to max|z'|: G z sums ~34 products per entry (≤ 34 ε·|G||z|), and
    the paper form converts waves to (x, λ) and back (2 ε). Measured ≤ 7.7e-16.
    """
    p = lqr(N=6, Qf=[[5.0, 1.0], [1.0, 2.0]])
    alpha = 0.4 if form == "paper" else None
    sm = st.StepMap.from_settings(p, formulation=form, scheme=scheme, courant=nu, eta=0.3,
                                  alpha=alpha, metric=FULL, termination=term, sources=src)
    aff = st.affine_operator(sm)
    x, lam, th = rng.normal(size=(1, 7, 2)), rng.normal(size=(1, 7, 2)), rng.normal(size=(6, 1))
    r = solve(p, formulation=form, scheme=scheme, courant=nu, eta=0.3, alpha=alpha, metric=FULL,
              termination=term, sources=src, init=(x, lam, th), max_steps=1, tol=0.0,
              backend="numpy", allow_unstable=True)
    assert r.steps == 1
    z, z1 = sm.state(x, lam, th), sm.state(r.x, r.lam, r.theta)
    scale = max(1.0, float(np.abs(z1).max()))
    assert np.abs(aff(z) - z1).max() <= 1e-13 * scale
    assert np.abs(aff.G @ z - (z1 - aff.g)).max() <= 1e-13 * scale
    assert np.abs(sm(z) - z1).max() <= 1e-13 * scale


@pytest.mark.parametrize("termination", ["implicit", "explicit"])
def test_operator_of_one_scalar_layer_by_hand(rng, termination):
    """N = 1, n = m = 1, f = a x + b θ + c, R = ½ q x² + ½ r θ², ℓ = ½ q_f x² + g_f x; consistent
    upwind, z = (x0, x1, λ0, λ1, θ):

        x0' = x_in,  x1' = (1 − ν) x1 + ν (a x0 + b θ + c),  λ0' = (1 − ν) λ0 + ν (a λ1 + q x0),
        λ1' = q_f x1' + g_f (implicit) or q_f x1 + g_f (explicit),  θ' = θ − η (r θ + b λ1).

    Probing differences step(e_i) − step(0) of O(1) numbers: tolerance 1e-14 absolute.
    """
    a, b, c, q, r, qf, gf, xin = rng.uniform(0.5, 2.0, size=8)
    nu, eta = 0.7, 0.3
    p = AffineQuadraticProblem(A=[[[a]]], B=[[[b]]], c=[[c]], Q=[[[q]]], R=[[[r]]], Qf=[[qf]],
                               gf=[gf], dt=0.1, x_in=[xin])
    sm = st.StepMap.from_settings(p, courant=nu, eta=eta, termination=termination)
    aff = st.affine_operator(sm)
    x1 = [nu * a, 1 - nu, 0, 0, nu * b]
    G = np.array([[0, 0, 0, 0, 0], x1, [nu * q, 0, 1 - nu, nu * a, 0],
                  [qf * v for v in x1] if termination == "implicit" else [0, qf, 0, 0, 0],
                  [0, 0, 0, -eta * b, 1 - eta * r]])
    g = np.array([xin, nu * c, 0, qf * nu * c + gf if termination == "implicit" else gf, 0])
    assert np.abs(aff.G - G).max() <= 1e-14
    assert np.abs(aff.g - g).max() <= 1e-14


@pytest.mark.parametrize("N", [2, 3, 10])
def test_unit_courant_consistent_upwind_is_a_pipelined_pass(N):
    """At ν = 1 (θ frozen) every layer takes its neighbour's value: the field block F of G is
    nilpotent, F^(2N) ≠ 0 and F^(2N+1) = 0 exactly (structural zeros, 1 − ν = 0 exactly)."""
    sm = st.StepMap.from_settings(lqr(N=N), courant=1.0, eta=0.05)
    s2 = 2 * sm.field_size
    F = st.affine_operator(sm).G[:s2, :s2]
    assert np.abs(np.linalg.matrix_power(F, 2 * N)).max() > 1.0
    assert np.all(np.linalg.matrix_power(F, 2 * N + 1) == 0.0)


@pytest.mark.parametrize("scheme, nu", [("upwind", 0.5), ("upwind", 1.0),
                                        ("lax-wendroff", 1.5), ("characteristic", 2.5)])
def test_fixed_point_of_the_consistent_operator_is_riccati(scheme, nu):
    """z* = (I − G)⁻¹ g is the discrete PMP solution (discrete Riccati recursion).

    cond(I − G) ≈ 3e3 on lqr(N=6), η = 0.05, so the solve loses ≤ 3e3·ε·|z*| ≈ 2e-12; tolerance
    1e-10 (measured ≤ 1.6e-14).
    """
    p = lqr(N=6)
    sm = st.StepMap.from_settings(p, scheme=scheme, courant=nu, eta=0.05)
    x, lam, th = sm.fields(st.affine_operator(sm).fixed_point())
    ref = discrete_riccati(p)
    for got, want in ((x, ref.x), (lam, ref.lam), (th, ref.theta)):
        assert np.abs(got - want).max() <= 1e-10


@pytest.mark.parametrize("form", ["consistent", "paper"])
def test_jacobian_by_differences_of_an_affine_step_is_its_operator(rng, form):
    """The LQR run through the generic Euler problem (no affine family, so the difference
    path is taken) has the Jacobian G of the affine family at any state.

    Central differences are exact for an affine map up to round-off ε|z'|/t with
    t = 6e-6·max(1, |z0|): ≈ 1e-10; tolerance 1e-8 (measured ≤ 2.7e-10). The matrix-free
    affine operator is exact to round-off: 1e-13.
    """
    cont = LinearQuadratic([[0, 1], [0, 0]], [[0], [1]], 1.0, 0.1, 5.0, 2.0, [1.0, 0.0])
    settings = dict(formulation=form, scheme="lax-wendroff", courant=0.8, eta=0.2)
    sa = st.StepMap.from_settings(lqr(N=8), **settings)
    se = st.StepMap.from_settings(EulerProblem(cont, 8), **settings)
    assert sa.affine and not se.affine
    G = st.affine_operator(sa).G
    z0, v = rng.normal(size=se.size), rng.normal(size=se.size)
    assert np.abs(st.jacobian(se, z0) - G).max() <= 1e-8
    assert np.abs(st.linear_operator(se, z0).matvec(v) - G @ v).max() <= 1e-8
    assert np.abs(st.linear_operator(sa).matvec(v) - G @ v).max() <= 1e-13 * np.abs(G @ v).max()


@pytest.mark.parametrize("form", ["consistent", "paper"])
def test_jacobian_of_a_nonlinear_step_satisfies_taylor(rng, form):
    """For the pendulum, |step(z0 + h v) − step(z0) − h J v| = O(h²) (Taylor's theorem): the
    observed order over h = 0.02 … 0.0025 lies in [1.9, 2.1] (measured 1.9992–2.0005), and
    the matrix-free product equals J v to the differencing error (1e-8; measured 1.5e-11)."""
    sm = st.StepMap.from_settings(EulerProblem(_Pendulum(), 10), formulation=form,
                                  courant=0.7, eta=0.1, alpha=0.07 if form == "paper" else None)
    z0 = rng.normal(size=sm.size)
    v = rng.normal(size=sm.size)
    v /= np.linalg.norm(v)
    J = st.jacobian(sm, z0)
    F0 = sm(z0)
    rem = [np.linalg.norm(sm(z0 + h * v) - F0 - h * J @ v) for h in (0.02, 0.01, 0.005, 0.0025)]
    orders = np.log2(np.array(rem[:-1]) / np.array(rem[1:]))
    assert np.all((orders >= 1.9) & (orders <= 2.1))
    assert np.abs(st.linear_operator(sm, z0).matvec(v) - J @ v).max() <= 1e-8


def test_arnoldi_matches_the_dense_spectral_radius(rng):
    """eigs on the matrix-free operator finds the dense ρ: the unstable consistent upwind step
    (lqr(N=10), ν = 1.3; an isolated complex pair) to 1e-10 relative (measured 3e-14), and the
    pendulum's Jacobian at a random state to 1e-8 (its entries carry the 1e-10 differencing
    error; measured 1e-11). ``analyze(method="arnoldi")`` reports a transient-growth lower
    bound, which cannot exceed the dense max ‖Gⁿ‖₂."""
    p = lqr(N=10)
    sm = st.StepMap.from_settings(p, courant=1.3, eta=auto_eta(p, 1.3))
    dense = st.analyze(sm, method="dense", n_max=60)
    arn = st.analyze(sm, method="arnoldi", n_max=60)
    assert arn.method == "arnoldi" and arn.transient_is_lower_bound
    assert arn.spectral_radius == pytest.approx(dense.spectral_radius, rel=1e-10)
    assert 1.0 <= arn.transient_growth <= dense.transient_growth * (1 + 1e-12)
    pn = st.StepMap.from_settings(EulerProblem(_Pendulum(), 10), courant=0.7, eta=0.1)
    z0 = rng.normal(size=pn.size)
    assert st.spectral_radius(st.linear_operator(pn, z0)) == pytest.approx(
        st.spectral_radius(st.jacobian(pn, z0)), rel=1e-8)


def test_transient_growth_of_a_jordan_block():
    """J = [[a, 1], [0, a]] has Jⁿ = [[aⁿ, n aⁿ⁻¹], [0, aⁿ]] and ‖Jⁿ‖₂ =
    (n aⁿ⁻¹ + √(n² a²ⁿ⁻² + 4 a²ⁿ)) / 2; the max over n ≤ 60 agrees to 1e-13 relative (60
    products of 2×2 matrices and one SVD each). A contraction peaks at n = 0; an expansion is
    followed until ‖Gⁿ‖ passes the cap (2⁴⁰ > 1e12 at n = 40, exact powers of 2)."""
    a = 0.9
    n = np.arange(1, 61)
    exact = (n * a ** (n - 1) + np.sqrt(n ** 2 * a ** (2 * n - 2) + 4 * a ** (2 * n))) / 2
    growth, at = st.transient_growth(np.array([[a, 1.0], [0.0, a]]), 60)
    assert growth == pytest.approx(exact.max(), rel=1e-13) and at == int(n[exact.argmax()])
    assert st.transient_growth(np.diag([0.5, -0.9]), 50) == (1.0, 0)
    assert st.transient_growth(np.array([[2.0]]), 100) == (2.0 ** 40, 40)
    with pytest.raises(ValueError, match="n_max"):
        st.transient_growth(np.eye(2), -1)


def test_predicted_steps_and_verdicts():
    """log(1e-6)/log ρ exactly; ∞ for ρ ≥ 1; |ρ − 1| ≤ 1e-9 is marginal."""
    assert st.predicted_steps(0.5) == math.log(1e-6) / math.log(0.5)
    assert st.predicted_steps(0.9, reduction=1e-3) == math.log(1e-3) / math.log(0.9)
    assert st.predicted_steps(1.0) == math.inf and st.predicted_steps(0.0) == 1.0
    assert [st.classify(r) for r in (1 - 2e-9, 1 + 5e-10, 1 - 5e-10, 1 + 2e-9, math.nan)] == \
        ["stable", "marginal", "marginal", "unstable", "unstable"]
    with pytest.raises(ValueError, match="reduction"):
        st.predicted_steps(0.5, reduction=2.0)


def test_frozen_port_is_marginal():
    """With η = 0 the θ block of G is the identity, so 1 is an eigenvalue and ρ = 1 to
    round-off (1e-12). The field block alone is the nilpotent ν = 1 pass: ρ_fields = 0 in
    exact arithmetic; computed eigenvalues of a nilpotent block may scatter by up to
    ~ε^(1/(2N+1)) ≈ 6e-3 (N = 3), hence the bound 0.1 (measured 0.0)."""
    rep = st.analyze(st.StepMap.from_settings(_small(), courant=1.0, eta=0.0), n_max=20)
    assert abs(rep.spectral_radius - 1.0) <= 1e-12 and rep.verdict == "marginal"
    assert rep.spectral_radius_fields <= 0.1
    assert rep.predicted_steps == math.inf


# --------------------------------------------------------------------------------------------
# prediction against experiment
# --------------------------------------------------------------------------------------------
def _iterate(sm, aff, n_max, stop):
    """Iterate z ↦ G z + g from the driver's zero fields; first n where stop(n, z) holds."""
    x = np.zeros(sm.field_shape)
    x[:, 0] = sm.problem.x_in
    z = sm.state(x, np.zeros_like(x), sm.problem.theta0)
    for n in range(n_max + 1):
        if stop(n, z):
            return n
        z = aff(z)
    return None


def test_affine_map_reproduces_a_diverging_run():
    """The sweep's run diverges at the first τ-step n where the iterated map z_{n} = G z_{n−1}
    + g has V > bound · max(V0, 1) (V = ½Δt(|x|² + |λ|²) for Θ = I): the same n exactly."""
    p = lqr(N=10)
    res = st.stability_sweep(p, solve=solve, auto_eta=auto_eta, courants=[1.3],
                             backend="numpy", n_max=50)
    (rec,) = res.records
    assert rec["verdict"] == "unstable" and rec["outcome"] == "diverged" and rec["agree"]
    sm = st.StepMap.from_settings(p, courant=1.3, eta=rec["eta"])
    aff = st.affine_operator(sm)
    V = lambda z: 0.5 * p.dt * float(np.sum(z[:2 * sm.field_size] ** 2))  # noqa: E731
    x0 = np.zeros(sm.field_shape)
    x0[:, 0] = p.x_in
    bound = 1e6 * max(V(sm.state(x0, np.zeros_like(x0), p.theta0)), 1.0)
    assert rec["diverged_at"] == _iterate(sm, aff, 1000, lambda n, z: V(z) > bound)
    assert rec["steps"] == rec["diverged_at"] - 1


def test_affine_map_reproduces_a_converging_run():
    """The run converges at the first n whose fields z_n have all PMP residuals ≤ tol; the
    iterated map reaches that at the same n (lqr(N=2, R=1), ν = 1, η = auto, tol 1e-8)."""
    p = lqr(N=2, R=1.0)
    res = st.stability_sweep(p, solve=solve, auto_eta=auto_eta, courants="1", tol=1e-8,
                             backend="numpy", n_max=50)
    (rec,) = res.records
    assert rec["verdict"] == "stable" and rec["outcome"] == "converged" and rec["agree"]
    sm = st.StepMap.from_settings(p, courant=1.0, eta=rec["eta"])

    def done(n, z):
        return max(float(np.abs(r).max()) for r in p.residuals(*sm.fields(z))) <= 1e-8

    assert rec["steps"] == _iterate(sm, st.affine_operator(sm), rec["budget"], done)


def test_every_disagreement_and_marginal_setting_is_reported():
    """Forced contradictions are listed, never hidden: an unstable setting whose budget is
    capped below its divergence time ends bounded; a stable one with a divergence bound below
    its transient (bound 1 × max(V0, 1), while V grows to O(1)) is declared diverged; η = 0 is
    marginal (no verdict, listed apart)."""
    p = _small()
    capped = st.stability_sweep(p, solve=solve, auto_eta=auto_eta, courants=[1.5],
                                max_steps=5, backend="numpy", n_max=30)
    (r,) = capped.disagreements
    assert r["verdict"] == "unstable" and r["outcome"] == "bounded" and r["agree"] is False
    assert r["budget_capped"] and "budget capped" in r["note"]
    tight = st.stability_sweep(p, solve=solve, auto_eta=auto_eta, courants=[1.2],
                               divergence_bound=1.0, backend="numpy", n_max=30)
    (r,) = tight.disagreements
    assert r["verdict"] == "stable" and r["outcome"] == "diverged"
    assert "although rho" in r["note"]
    frozen = st.stability_sweep(p, solve=solve, courants=[0.5], etas=[0.0], backend="numpy",
                                max_steps=300, n_max=30)
    (r,) = frozen.marginal
    assert r["agree"] is None and not frozen.disagreements and r["outcome"] == "bounded"
    doc = frozen.to_dict()
    assert doc["summary"] == {"settings": 1, "run": 1, "agree": 0, "disagree": 0, "marginal": 1}
    text = st.format_table(capped)
    assert "DISAGREE nu 1.5" in text and "0 agree, 1 disagree, 0 marginal" in text


def test_sweep_records_are_the_analysis_and_serialize():
    """Prediction-only sweep: every record's ρ is :func:`analyze` of the same StepMap (equal),
    α = 0.1ν in the paper form, the JSON has no NaN, and the ranges are the ν intervals of the
    verdicts."""
    p = _small()
    res = st.stability_sweep(p, formulation="paper", courants="0.5:1.5:3",
                             etas="auto,2*auto", alphas="0.1*nu", auto_eta=auto_eta, run=False,
                             n_max=30)
    assert [r["courant"] for r in res.records] == [0.5, 0.5, 1.0, 1.0, 1.5, 1.5]
    for r in res.records:
        sm = st.StepMap.from_settings(p, formulation="paper", courant=r["courant"],
                                      eta=r["eta"], alpha=0.1 * r["courant"])
        assert r["spectral_radius"] == st.analyze(sm, n_max=30).spectral_radius
        assert r["alpha"] == pytest.approx(0.1 * r["courant"], rel=1e-15)
        assert r["eta"] == pytest.approx(r["eta_auto_factor"] * auto_eta(p, r["courant"]),
                                         rel=1e-15)
        assert r["outcome"] is None and r["agree"] is None
    doc = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert {g["eta_spec"] for g in doc["ranges"]} == {"auto", "2*auto"}
    assert all(g["measured"] is None for g in doc["ranges"])
    assert st._intervals([1, 2, 3, 4, 5], [True, True, False, True, True]) == [[1, 2], [4, 5]]
    assert st._intervals([1, 2], [False, False]) == []


def test_stability_edge_brackets_the_crossing():
    """The bisection returns ν with ρ(ν) > 1 and ρ(ν − 2·xtol) < 1 (the definition)."""
    p = _small()
    edge = st.stability_edge(p, 1.2, 1.5, xtol=1e-4, eta=0.01)

    def rho(nu):
        sm = st.StepMap.from_settings(p, courant=nu, eta=0.01)
        return st.spectral_radius(st.affine_operator(sm).G)

    assert 1.2 < edge <= 1.5 and rho(edge) > 1 > rho(edge - 2e-4)
    with pytest.raises(ValueError, match="bracket"):
        st.stability_edge(p, 0.5, 0.9, eta=0.01)


# --------------------------------------------------------------------------------------------
# specifications and bad input
# --------------------------------------------------------------------------------------------
def test_parse_values():
    assert st.parse_courant("0.05:1.5:30") == [float(f"{v:.12g}")
                                               for v in np.linspace(0.05, 1.5, 30)]
    assert st.parse_courant("0.05:1.5:30")[20] == 1.05
    assert st.parse_courant("0.5, 1,1.5") == [0.5, 1.0, 1.5]
    assert st.parse_courant("2:2:1") == [2.0] and st.parse_courant(0.7) == [0.7]
    assert st.parse_values("0,auto,2*auto,0.5auto", "eta", "auto", positive=False) == \
        [0.0, (1.0, "auto"), (2.0, "auto"), (0.5, "auto")]
    assert st.parse_values("1auto:3auto:3", "eta", "auto") == \
        [(1.0, "auto"), (2.0, "auto"), (3.0, "auto")]
    assert st.parse_values("nu, 0.1*nu", "alpha", "nu") == [(1.0, "nu"), (0.1, "nu")]


@pytest.mark.parametrize("spec, match", [
    ("a:b:c", "courant: cannot parse 'a'"),
    ("0.1:1", "courant: a range must read A:B:K"),
    ("0.1:1:0", "courant: K in A:B:K must be >= 1"),
    ("0.1:1:2.5", "courant: K in A:B:K must be an integer"),
    ("-0.5", "courant: values must be >= 0"),
    ("0", "courant: values must be > 0"),
    ("1,,2", "courant: cannot parse ''"),
    ("nan", "courant: values must be finite"),
    ("", "courant: empty"),
    ([0.5, True], "courant: values must be finite numbers"),
    ("auto", "courant: cannot parse 'auto'"),
])
def test_bad_courant_specs_name_the_parameter(spec, match):
    with pytest.raises(ValueError, match=match):
        st.parse_courant(spec)


@pytest.mark.parametrize("kwargs, match", [
    (dict(scheme="weno"), "unknown scheme 'weno'; valid: upwind"),
    (dict(formulation="weird"), "unknown formulation 'weird'"),
    (dict(alphas="0.1"), "alpha: the source gain applies only to the paper formulation"),
    (dict(etas="-1"), "eta: values must be >= 0"),
    (dict(etas="2*autox"), "eta: cannot parse"),
    (dict(courants="0.5", auto_eta=None), "eta: 'auto' needs auto_eta"),
    (dict(scheme="characteristic", courants="4"), "courant 4 exceeds N = 3"),
    (dict(run=True, solve=None), "solve: the driver"),
    (dict(max_steps=0), "max_steps must be an integer >= 1"),
])
def test_bad_sweep_input_is_refused_before_any_run(kwargs, match):
    args = dict(solve=solve, auto_eta=auto_eta, courants="0.5", run=False)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        st.stability_sweep(_small(), **args)


def test_step_map_bad_input():
    p = _small()
    with pytest.raises(ValueError, match="eta must be a number here"):
        st.StepMap.from_settings(p, eta="auto")
    sm = st.StepMap.from_settings(p, eta=0.1)
    with pytest.raises(ValueError, match=f"state must have shape \\({sm.size},\\)"):
        sm(np.zeros(3))
    with pytest.raises(ValueError, match="needs an affine-quadratic problem and a linear port"):
        st.affine_operator(st.StepMap.from_settings(EulerProblem(_Pendulum(), 3), eta=0.1))
    with pytest.raises(ValueError, match="z0"):
        st.analyze(st.StepMap.from_settings(EulerProblem(_Pendulum(), 3), eta=0.1))
    with pytest.raises(ValueError, match="unknown method"):
        st.analyze(sm, method="qr")


def test_varying_widths_leave_the_padding_out(rng):
    """On an MLP with widths (2, 4, 3) (fields zero-padded to 4, θ_k to 15) z holds only the
    entries the nodes own: 2·B·Σn_k + Σm_k unknowns (exact count), and the map is the driver's
    NumPy step to round-off (1e-13; measured 0.0). At ν = 1 without the port the field block
    is the nilpotent pass, so its Jacobian's ρ is ~0 (1e-6: the differencing error)."""
    from problems import mlp

    p = mlp(widths=(2, 4, 3), n_samples=6)
    sm = st.StepMap.from_settings(p, courant=1.0, eta=0.1)
    assert sm.size == 2 * p.batch * (2 + 4 + 3) + int(p.theta_mask.sum())
    x = np.zeros(sm.field_shape)
    x[:, 0] = p.x_in
    z = sm.state(x, np.zeros_like(x), p.theta0) + 0.1 * rng.normal(size=sm.size)
    xs, lam, th = sm.fields(z)
    r = solve(p, courant=1.0, eta=0.1, init=(xs, lam, th), max_steps=1, tol=0.0,
              backend="numpy")
    assert np.abs(sm(z) - sm.state(r.x, r.lam, r.theta)).max() <= 1e-13
    assert st.analyze(sm, z, n_max=5).spectral_radius_fields <= 1e-6


def test_port_state_is_part_of_the_map(rng):
    """With the heavy-ball port the velocity is in z: two applications of the operator equal
    two driver steps (the second uses the velocity of the first), to 1e-13 relative as in
    test_operator_is_one_driver_step; the caller's port object is left untouched."""
    from wavecontrol.ports import InductivePort

    p = lqr(N=4)
    port = InductivePort(resistance=20.0, inductance=10.0)
    sm = st.StepMap.from_settings(p, courant=0.8, port=port)
    assert sm.port_size == 4 and sm.size == 2 * 10 + 4 + 4 and port.problem is None
    aff = st.affine_operator(sm)
    x, lam, th = rng.normal(size=(1, 5, 2)), rng.normal(size=(1, 5, 2)), rng.normal(size=(4, 1))
    z2 = aff(aff(sm.state(x, lam, th)))
    r = solve(p, courant=0.8, port=InductivePort(resistance=20.0, inductance=10.0),
              init=(x, lam, th), max_steps=2, tol=0.0, backend="numpy")
    want = sm.state(r.x, r.lam, r.theta)[:-sm.port_size]
    assert np.abs(z2[:-sm.port_size] - want).max() <= 1e-13 * max(1.0, np.abs(want).max())
