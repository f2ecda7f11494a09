"""Metric factors Θ_k and the wave transforms (eqs. 38–40, 57).

Tolerances: every transform here is a handful of flops per entry with a well-conditioned Θ
(condition number below 10), so round-off is a few ulps of the largest entry (measured ≤ 3.5e-16); 1e-14 relative to
max(1, max |v|) leaves a margin of ~30 and is far below any entry.
"""

import numpy as np
import pytest

from wavecontrol.metric import Metric

SQRT2 = np.sqrt(2.0)
N, n, B = 6, 3, 2
TOL = 1e-14


def _lower_triangular(rng, size):
    """A well-conditioned invertible lower-triangular matrix (diagonal in [1, 2])."""
    L = np.tril(0.3 * rng.normal(size=(size, size)), -1)
    return L + np.diag(1.0 + rng.random(size))


def _specs(rng):
    return {
        "scalar": 1.7,
        "diagonal": 1.0 + rng.random(n),
        "full": _lower_triangular(rng, n),
        "per-node": np.stack([_lower_triangular(rng, n) for _ in range(N + 1)]),
    }


def _rel(a, b):
    return float(np.abs(a - b).max() / max(1.0, np.abs(b).max()))


def _mats(spec):
    """Θ_k written out per node from the specification, independently of Metric."""
    spec = np.asarray(spec, dtype=float)
    if spec.ndim == 0:
        return [spec * np.eye(n)] * (N + 1)
    if spec.ndim == 1:
        return [np.diag(spec)] * (N + 1)
    if spec.ndim == 2:
        return [spec] * (N + 1)
    return list(spec)


@pytest.mark.parametrize("kind", ["scalar", "diagonal", "full", "per-node"])
def test_round_trips(rng, kind):
    spec = _specs(rng)[kind]
    met = Metric(spec, n, N)
    assert np.all(np.linalg.cond(met.theta) < 10)
    x, lam = rng.normal(size=(2, B, N + 1, n))
    wp, wm = met.to_waves(x, lam)
    x2, lam2 = met.from_waves(wp, wm)
    assert _rel(x2, x) <= TOL and _rel(lam2, lam) <= TOL
    # the other way round: waves -> (x, λ) -> waves
    wp0, wm0 = rng.normal(size=(2, B, N + 1, n))
    wp2, wm2 = met.to_waves(*met.from_waves(wp0, wm0))
    assert _rel(wp2, wp0) <= TOL and _rel(wm2, wm0) <= TOL


@pytest.mark.parametrize("kind", ["scalar", "diagonal", "full", "per-node"])
def test_transforms_match_equations_written_out(rng, kind):
    """eq. 38 (waves), eqs. 39–40 (inverse), eq. 57 (wave residuals), node by node."""
    spec = _specs(rng)[kind]
    met = Metric(spec, n, N)
    mats = _mats(spec)
    x, lam, r_x, r_l = rng.normal(size=(4, B, N + 1, n))
    wp, wm = met.to_waves(x, lam)
    Ep, Em = met.wave_residuals(r_x, r_l)
    a, b = met.characteristic(x, lam)
    xr, lr = met.from_waves(wp, wm)
    for bb in range(B):
        for k in range(N + 1):
            Th = mats[k]
            ThiT = np.linalg.inv(Th).T
            ak, bk = Th @ x[bb, k], ThiT @ lam[bb, k]
            assert _rel(a[bb, k], ak) <= TOL and _rel(b[bb, k], bk) <= TOL
            assert _rel(wp[bb, k], (ak + bk) / SQRT2) <= TOL                       # eq. 38
            assert _rel(wm[bb, k], (ak - bk) / SQRT2) <= TOL
            ex = Th @ r_x[bb, k]
            el = ThiT @ r_l[bb, k]
            assert _rel(Ep[bb, k], (ex + el) / SQRT2) <= TOL                       # eq. 57
            assert _rel(Em[bb, k], (ex - el) / SQRT2) <= TOL
            assert _rel(xr[bb, k], np.linalg.solve(Th, wp[bb, k] + wm[bb, k]) / SQRT2) <= TOL
            assert _rel(lr[bb, k], Th.T @ (wp[bb, k] - wm[bb, k]) / SQRT2) <= TOL   # eq. 40


def test_energy_and_pairing_identities(rng):
    """½(‖w+‖² + ‖w-‖²) = ½(‖a‖² + ‖b‖²) and ½(‖w+‖² − ‖w-‖²) = x·λ (eq. 14) at every node."""
    met = Metric(_lower_triangular(rng, n), n, N)
    x, lam = rng.normal(size=(2, B, N + 1, n))
    wp, wm = met.to_waves(x, lam)
    a, b = met.characteristic(x, lam)
    e_w = 0.5 * (np.sum(wp ** 2, -1) + np.sum(wm ** 2, -1))
    e_ab = 0.5 * (np.sum(a ** 2, -1) + np.sum(b ** 2, -1))
    assert _rel(e_w, e_ab) <= TOL
    pairing = 0.5 * (np.sum(wp ** 2, -1) - np.sum(wm ** 2, -1))
    assert _rel(pairing, np.sum(x * lam, -1)) <= TOL


def test_kinds_and_inverse(rng):
    assert Metric(2.0, n, N).kind == "scalar"
    assert Metric(np.arange(1.0, n + 1), n, N).kind == "diagonal"
    # a full matrix that happens to be diagonal is recognized as diagonal
    assert Metric(np.diag([1.0, 2.0, 3.0]), n, N).kind == "diagonal"
    full = Metric(_lower_triangular(rng, n), n, N)
    assert full.kind == "full" and not full.is_diagonal
    assert full.theta.shape == (N + 1, n, n)
    eye = np.einsum("kij,kjl->kil", full.theta, full.theta_inv)
    assert _rel(eye, np.broadcast_to(np.eye(n), eye.shape)) <= TOL
    assert Metric(2.0, n, N).describe() == "scalar 2"
