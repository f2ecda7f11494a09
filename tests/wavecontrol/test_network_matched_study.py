"""The matched network τ-step of docs/scripts/network_matched_study.py (issue #10 item 6).

What is checked, each against an independent reference:
- at converged fields (forward pass, adjoint, per-sample Gauss–Newton value Hessians) the
  θ-gradient the step predicts from s + P f is the backprop gradient ``problem.gradient``;
- at a point where that gradient is zero the whole τ-step is a fixed point (θ, x, s, P unchanged);
- the preconditioned direction is a descent direction for J (cosine with −∇J > 0);
- the K-FAC solve is the solve with the explicit Kronecker product, and the ``block``
  curvature is the layer's block of the Gauss–Newton matrix of :mod:`wavecontrol.ports`.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from problems import mlp, neural_ode
from wavecontrol.ports import gauss_newton_product

_PATH = Path(__file__).resolve().parents[2] / "docs" / "scripts" / "network_matched_study.py"
_spec = importlib.util.spec_from_file_location("network_matched_study", _PATH)
study = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(study)
Step = study.MatchedNetworkStep


def small_problems():
    return [neural_ode(dataset="moons", n_samples=16, N=3, T=1.0, augment=1, loss="mse"),
            mlp(widths=(2, 5, 4, 3), dataset="spirals", n_samples=24, loss="cross-entropy")]


def packed(p, pairs):
    return p.pack([a for a, _ in pairs], [b for _, b in pairs])


@pytest.mark.parametrize("precond", study.PRECONDITIONERS)
def test_predicted_gradient_is_backprop(precond, rng):
    # the sums run over <= 24 samples: round-off ~1e-15 of the largest entry; 1e-12 is margin
    for p in small_problems():
        for theta in (p.theta0, p.theta0 + 0.3 * rng.normal(size=p.theta0.shape)):
            st = Step(p, precond)
            st.reset(theta * p.theta_mask)
            st.set_converged_fields()
            g = p.gradient(st.theta)
            got = packed(p, st.predicted_gradient())
            assert np.abs(got - g).max() <= 1e-12 * np.abs(g).max()


@pytest.mark.parametrize("precond", study.PRECONDITIONERS)
def test_fixed_point_where_the_gradient_vanishes(precond):
    # W = b = 0 makes the neural ODE the identity, and inputs that are the one-hot targets make
    # the read-out z = [I 0] x_N hit them: J = 0 and ∇J = 0 exactly (in floating point too)
    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    p = neural_ode(data=(X, np.array([0, 1, 0, 1])), N=3, T=1.0, augment=2, loss="mse",
                   init_scale=0.0)
    assert p.objective(p.theta0) == 0.0 and not np.any(p.gradient(p.theta0))
    st = Step(p, precond, damping=1e-2, gain=1.0)
    st.set_converged_fields()
    before = ([x.copy() for x in st.x], [s.copy() for s in st.sv],
              [P.copy() for P in st.P], st.theta)
    st.step()
    # g = Σ_b B_bᵀ P_b (f_k(x_k) − x_{k+1}) = 0 exactly at consistent fields: θ stays put; the
    # fields are recomputed from the same values (round-off only, 1e-12 is margin over 1e-16)
    assert np.array_equal(st.theta, before[3])
    for new, old in zip((st.x, st.sv, st.P), before[:3]):
        for a, b in zip(new[1:], old[1:]):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * max(1.0, np.abs(b).max()))


@pytest.mark.parametrize("precond", study.PRECONDITIONERS)
@pytest.mark.parametrize("damping", [1e-3, 1e-1, 1.0])
def test_direction_is_descent(precond, damping):
    # C is symmetric positive definite once damped, so -gᵀC⁻¹g < 0: the cosine with -∇J is > 0
    for p in small_problems():
        st = Step(p, precond, damping=damping)
        st.set_converged_fields()
        D = packed(p, st.directions())
        g = p.gradient(st.theta)
        cos = -np.sum(D * g) / (np.linalg.norm(D) * np.linalg.norm(g))
        assert cos > 0.0


def test_kfac_solve_is_the_kronecker_solve():
    # C = G_d ⊗ A_d in the row-major order of V = [∂W | ∂b]; dense solve as the reference
    for p in small_problems():
        st = Step(p, "kfac", damping=1e-2)
        st.set_converged_fields()
        for k, (gW, gb) in enumerate(st.predicted_gradient()):
            Gd, Ad = st.curvature(k)
            V = np.concatenate([gW, gb[:, None]], axis=1)
            ref = -np.linalg.solve(np.kron(Gd, Ad), V.ravel()).reshape(V.shape)
            np.testing.assert_allclose(st._direction(k, gW, gb), ref, rtol=1e-9,
                                       atol=1e-12 * np.abs(ref).max())


def test_block_curvature_is_the_gauss_newton_block():
    # gauss_newton_product: central-difference tangents (error O(h²), h = 1e-5): 1e-6 of max|C|
    for p in small_problems():
        st = Step(p, "block", damping=0.0)
        st.set_converged_fields()
        theta = st.theta
        for k in range(p.N):
            C = st.curvature(k)
            nout, nin = st.W[k].shape
            ref = np.empty_like(C)
            for j in range(C.shape[0]):
                e = np.zeros(C.shape[0])
                e[j] = 1.0
                E = e.reshape(nout, nin + 1)
                Ws = [np.zeros_like(W) for W in st.W]
                bs = [np.zeros_like(b) for b in st.b]
                Ws[k], bs[k] = E[:, :-1], E[:, -1]
                Gv = p.layers(gauss_newton_product(p, theta, p.pack(Ws, bs)))[k]
                ref[:, j] = np.concatenate([Gv[0], Gv[1][:, None]], axis=1).ravel()
            np.testing.assert_allclose(C, ref, rtol=0, atol=1e-6 * np.abs(ref).max())


def test_bad_input():
    p = small_problems()[0]
    with pytest.raises(ValueError, match="precond"):
        Step(p, "diagonal")
    with pytest.raises(ValueError, match="damping"):
        Step(p, "kfac", damping=-1.0)
    with pytest.raises(ValueError, match="gain"):
        Step(p, "kfac", gain=0.0)
