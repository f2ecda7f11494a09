"""Data sets generated in code (problems/datasets.py): shapes, seeds, determinism, geometry.

The geometric checks use noise = 0, where every point lies exactly on its curve; the
tolerance 1e-14 is a few ulps of coordinates of order 1 (sin/cos/sqrt are correctly rounded to
within 1 ulp each).
"""

import numpy as np
import pytest

from problems.datasets import DATASETS, make_dataset, n_classes


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_shapes_balance_and_dtypes(name):
    X, y = make_dataset(name, n_samples=37, seed=3)
    K = n_classes(name)
    assert X.shape == (37, 2) and X.dtype == np.float64 and X.flags.c_contiguous
    assert y.shape == (37,) and y.dtype == np.int64
    counts = np.bincount(y, minlength=K)
    assert counts.size == K and counts.max() - counts.min() <= 1
    assert np.all(np.isfinite(X))


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_seeded_and_deterministic(name):
    X1, y1 = make_dataset(name, n_samples=40, seed=7)
    X2, y2 = make_dataset(name, n_samples=40, seed=7)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    X3, _ = make_dataset(name, n_samples=40, seed=8)
    assert not np.array_equal(X1, X3)


def test_spirals_with_K_classes():
    X, y = make_dataset("spirals", n_samples=50, seed=0, n_classes=5)
    assert n_classes("spirals", n_classes=5) == 5
    assert sorted(np.unique(y)) == [0, 1, 2, 3, 4]


def test_noise_free_geometry():
    X, y = make_dataset("moons", n_samples=30, seed=1, noise=0.0)
    up = X[y == 0] + [0.5, 0.25]          # (cos s, sin s)
    lo = X[y == 1] + [0.5, 0.25]          # (1 − cos s, 1/2 − sin s)
    np.testing.assert_allclose(np.hypot(*up.T), 1.0, atol=1e-14)
    np.testing.assert_allclose(np.hypot(lo[:, 0] - 1.0, lo[:, 1] - 0.5), 1.0, atol=1e-14)
    assert up[:, 1].min() >= -1e-15 and lo[:, 1].max() <= 0.5 + 1e-15

    X, y = make_dataset("circles", n_samples=30, seed=1, noise=0.0, factor=0.3)
    np.testing.assert_allclose(np.hypot(*X.T), np.where(y == 0, 1.0, 0.3), atol=1e-14)

    X, y = make_dataset("spirals", n_samples=60, seed=1, noise=0.0, n_classes=3, turns=0.5)
    r = np.hypot(*X.T)
    assert r.min() >= 0.1 - 1e-14 and r.max() <= 1.0 + 1e-14
    # angle 2π(j/K + turns·r) modulo 2π
    expected = 2 * np.pi * (y / 3 + 0.5 * r)
    diff = np.angle(np.exp(1j * (np.arctan2(X[:, 1], X[:, 0]) - expected)))
    np.testing.assert_allclose(diff, 0.0, atol=1e-13)

    X, y = make_dataset("xor", n_samples=64, seed=1, margin=0.2)
    np.testing.assert_array_equal(y, (X[:, 0] * X[:, 1] < 0).astype(int))
    assert np.abs(X).min() >= 0.2 and np.abs(X).max() <= 1.0


def test_bad_input_names_the_parameter():
    with pytest.raises(ValueError, match=r"unknown dataset 'blobs'; valid: circles, moons, "
                                         r"spirals, xor"):
        make_dataset("blobs")
    with pytest.raises(ValueError, match="unknown dataset"):
        n_classes("blobs")
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['factor'\] of dataset "
                                         r"'moons'; valid: noise"):
        make_dataset("moons", factor=0.5)
    with pytest.raises(ValueError, match="n_samples"):
        make_dataset("moons", n_samples=1)
    with pytest.raises(ValueError, match="n_samples"):
        make_dataset("spirals", n_samples=2.5)
    with pytest.raises(ValueError, match="noise"):
        make_dataset("circles", noise=-0.1)
    with pytest.raises(ValueError, match="noise"):
        make_dataset("xor", noise=float("nan"))
    with pytest.raises(ValueError, match="n_classes"):
        make_dataset("spirals", n_classes=1)
    with pytest.raises(ValueError, match="factor"):
        make_dataset("circles", factor=1.5)
    with pytest.raises(ValueError, match="margin"):
        make_dataset("xor", margin=1.0)
