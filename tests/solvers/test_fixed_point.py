"""The consistent form's fixed point is the exact discrete PMP solution (DESIGN: "its fixed
points are exactly the discrete PMP solution"), for every scheme, two Courant numbers inside
each stable range and two metrics, on the default LQR and a seeded unstable random LQR.

Tolerance: max-abs distance ≤ 1e-8 in x, λ and θ from the discrete Riccati solution. The run
stops when every PMP residual is ≤ tol = 1e-12; the distance that remains is the residual
amplified by the conditioning of the (linear) PMP system, measured 9.3e-11 to 9.4e-11 on all 24
runs. 1e-8 is 100× that, and 1e-8 of the solution's size (order 1).

Port gain: eta = 2·auto_eta(problem, ν) to keep each run short (measured stable on all these
runs; 3·auto_eta diverges on the default LQR). Measured: 4e4–2.6e5 τ-steps, 0.6–3.4 s each with
numba, ~45 s for all 24.
"""

import numpy as np
import pytest

from problems import lqr, random_lqr
from solvers.riccati import discrete_riccati
from solvers.wave import auto_eta, solve
from wavecontrol._jit import jit_disabled

pytestmark = pytest.mark.skipif(jit_disabled(), reason="10^5 τ-steps per run: needs numba")

COURANTS = {"upwind": (1.0, 0.8), "lax-wendroff": (1.0, 1.5), "characteristic": (1.0, 2.5)}
CASES = [(s, nu) for s, nus in COURANTS.items() for nu in nus]
#: a full invertible lower-triangular metric factor (cut to the problem's width)
THETA_FULL = np.array([[1.0, 0.0, 0.0, 0.0],
                       [0.3, 1.2, 0.0, 0.0],
                       [-0.2, 0.5, 0.8, 0.0],
                       [0.1, -0.4, 0.3, 1.5]])
BOUND = 1e-8

_PROBLEMS = {}


def _problem(name):
    """The problem and its Riccati solution, built once per test session."""
    if name not in _PROBLEMS:
        p = lqr() if name == "default" else random_lqr(n=4, m=2, seed=0, unstable=True)
        _PROBLEMS[name] = (p, discrete_riccati(p))
    return _PROBLEMS[name]


@pytest.mark.parametrize("metric", ["scalar", "full"])
@pytest.mark.parametrize("scheme, nu", CASES)
@pytest.mark.parametrize("name", ["default", "random"])
def test_consistent_fixed_point_is_riccati(name, scheme, nu, metric):
    p, ref = _problem(name)
    theta = 1.0 if metric == "scalar" else THETA_FULL[:p.n, :p.n]
    eta = 2.0 * auto_eta(p, nu)      # 2x the default gain: stable here, and twice as fast
    r = solve(p, formulation="consistent", scheme=scheme, courant=nu, metric=theta, eta=eta,
              tol=1e-12, max_steps=2_000_000)
    assert r.success, r.message
    assert max(r.residuals.values()) <= 1e-12
    dist = {"x": np.abs(r.x - ref.x).max(), "lam": np.abs(r.lam - ref.lam).max(),
            "theta": np.abs(r.theta - ref.theta).max()}
    assert max(dist.values()) <= BOUND, dist
    # the objective at the fixed point equals the optimal one (J − J* is quadratic in θ − θ*)
    assert r.objective == pytest.approx(ref.objective, rel=1e-10)
