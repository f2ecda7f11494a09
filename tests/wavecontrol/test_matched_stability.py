"""The matched port's τ-step operator at the LQR fixed point, :func:`matched_operator`.

With P frozen at the Riccati fixed point the step is affine, and theory (docs/theory.md §11)
puts the spectrum of its linear part G at {1 − ν} (upwind), {(ν − 1)(ν − 2)/2} (lax-wendroff)
and max(0, 1 − ν) (characteristic), plus the eigenvalue 0 of multiplicity 2n from the boundary
resets (x_0 = x_in, s_N = ∇ℓ(x_N) − P_N x_N). Where that value c is 0, G is nilpotent.

Why not ``eigvals``: the c-eigenspace is one Jordan chain of length ~2N (it moves along the
light cone), and round-off of 1e-16 spreads the computed eigenvalues of such a block by
~(1e-16)^(1/K) — measured ρ from ``spectral_radius(G)`` is 0.36 (default LQR) and 0.54
(random) for the nilpotent ν = 1 step, and 0.49 (not 0.2) at ν = 0.8, 0.66 (not 0.5) at
ν = 0.5. No tolerance on ``eigvals`` of 1e-6 is justified. Instead:

- the spectrum lies in {0, c} iff H = G (G − cI) is nilpotent, which the powers of H show
  (:func:`nilpotency_index`, bounded by the light cone 2N + 2);
- c itself is the mean of the cluster, trace(G) / (d − 2n): the trace is the sum of the
  eigenvalues and insensitive to the defectiveness. Its round-off is about d · eps · max|G|
  / (d − 2n) ≲ 4e-15 here; measured ≤ 2e-16. With the spectrum in {0, c} and c ≠ 0 this is ρ.
"""

import numpy as np
import pytest

from problems import lqr, random_lqr
from wavecontrol.stability import matched_operator, nilpotency_index

#: ‖Gⁿ‖₂ at n = 2N + 2 (absolute) for the nilpotent steps: measured 2.6e-16 (default LQR) and
#: 3.2e-14 (random, max ‖G^j‖₂ ≈ 50)
POWER_BOUND = 1e-12
#: |trace(G)/(d − 2n) − c|: round-off bound ≈ d·eps·max|G|/(d − 2n) ≲ 4e-15, measured ≤ 2e-16
CENTRE_BOUND = 1e-12

_PROBLEMS = {}
_OPS = {}


def _problem(name):
    if name not in _PROBLEMS:
        _PROBLEMS[name] = (lqr() if name == "default"
                           else random_lqr(n=5, m=2, N=30, seed=0, unstable=True))
    return _PROBLEMS[name]


def _op(name, scheme, nu):
    key = (name, scheme, nu)
    if key not in _OPS:
        _OPS[key] = matched_operator(_problem(name), scheme=scheme, courant=nu)
    return _OPS[key]


def _power_norm(G, k):
    return float(np.linalg.norm(np.linalg.matrix_power(G, k), 2))


def test_matched_operator_shape_and_resets():
    p = _problem("default")
    G = _op("default", "upwind", 0.8)
    f = (p.N + 1) * p.n
    assert G.shape == (2 * f + p.N * p.m,) * 2
    # x_0 = x_in: its rows vanish; λ_N = P_N x_N + const at the new x_N
    assert np.all(G[:p.n] == 0.0)
    PN = p.terminal_hessian(np.zeros((1, p.n)))
    xN_rows, lN_rows = G[f - p.n:f], G[2 * f - p.n:2 * f]
    assert np.abs(lN_rows - PN @ xN_rows).max() <= 1e-12 * max(1.0, np.abs(lN_rows).max())


@pytest.mark.parametrize("name", ["default", "random"])
@pytest.mark.parametrize("scheme, nu", [("upwind", 1.0), ("lax-wendroff", 1.0),
                                        ("characteristic", 1.0), ("characteristic", 2.5)])
def test_matched_step_is_nilpotent(name, scheme, nu):
    p = _problem(name)
    G = _op(name, scheme, nu)
    cone = 2 * p.N + 2
    k = nilpotency_index(G)
    # measured: 2N at ν = 1 (one light cone), N at characteristic ν = 2.5
    assert k is not None and k <= cone
    assert _power_norm(G, cone) <= POWER_BOUND
    assert abs(np.trace(G)) <= CENTRE_BOUND * G.shape[0]


def _check_spectrum(name, scheme, nu, c):
    p = _problem(name)
    G = _op(name, scheme, nu)
    d, cone = G.shape[0], 2 * p.N + 2
    # G (G − cI) nilpotent ⇔ spectrum ⊆ {0, c}; measured index 25–41 ≤ 2N + 2, and
    # ‖H^(2N+2)‖₂ ≤ 3e-22 (G itself is not nilpotent: ‖G^(2N+2)‖₂ is 3e-7 to 3.7)
    H = G @ (G - c * np.eye(d))
    k = nilpotency_index(H)
    assert k is not None and k <= cone
    assert _power_norm(H, cone) <= POWER_BOUND
    # the cluster at c holds d − 2n eigenvalues: trace(G) = (d − 2n) c
    centre = np.trace(G) / (d - 2 * p.n)
    assert abs(centre - c) <= CENTRE_BOUND
    rho = abs(centre)
    # (spectral_radius(G), from eigvals, sees only the round-off blurred cluster: it overshoots
    # |c| by 0.16–0.44 here and is not asserted)
    return rho


@pytest.mark.parametrize("name", ["default", "random"])
@pytest.mark.parametrize("nu", [0.8, 0.5])
def test_matched_upwind_spectral_radius(name, nu):
    assert _check_spectrum(name, "upwind", nu, 1.0 - nu) == pytest.approx(abs(1.0 - nu),
                                                                            abs=CENTRE_BOUND)


@pytest.mark.parametrize("name", ["default", "random"])
def test_matched_lax_wendroff_spectral_radius(name):
    nu = 1.5
    c = (nu - 1.0) * (nu - 2.0) / 2.0
    assert _check_spectrum(name, "lax-wendroff", nu, c) == pytest.approx(0.125,
                                                                          abs=CENTRE_BOUND)


def test_nilpotency_index_basics():
    J = np.diag(np.ones(4), 1)                  # a nilpotent Jordan block of size 5
    assert nilpotency_index(J) == 5
    assert nilpotency_index(np.eye(3)) is None
    assert nilpotency_index(np.zeros((0, 0))) == 0
    with pytest.raises(ValueError):
        nilpotency_index(np.ones((2, 3)))
