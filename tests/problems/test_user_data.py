"""The user's own data and the digits library data set (problems/datasets.py, network.py).

References and tolerances:

* Validation: each bad input gets a ValueError that names ``X`` or ``labels`` and the valid
  shape, dtype or range (exact message fragments).
* A problem built from arrays or from a mini-batch callable holds exactly those samples:
  ``x_in``, ``targets`` and J compared bit for bit (``==``) with a problem built from the same
  batch as arrays, since the same float64 arithmetic runs on the same numbers.
* ``test_accuracy`` against an independent forward pass written out here with ``np.tanh`` on
  the unpadded matrices: the predicted labels must be identical (an argmax of the same
  logits up to round-off; ties have probability zero for these random weights).
* Digits: the split against the images sklearn ships (``load_digits``): every image lands
  in exactly one part, equal bit for bit to its /16 scaling; class proportions within one
  image of ``test_fraction``. Skipped, with one line saying why, without scikit-learn.
"""

import sys

import numpy as np
import pytest

from problems import mlp, neural_ode
from problems.datasets import (DIGITS_EXTRA, accuracy, check_arrays, digits, network_data,
                               stratified_split)
from problems.network import resampling_callback
from solvers.wave import solve


def blobs(n, d=3, K=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % K
    X = rng.normal(size=(n, d)) + 2.0 * np.eye(K, d)[y]
    return X, y


# --------------------------------------------------------------------------------------------
# arrays
# --------------------------------------------------------------------------------------------
def test_check_arrays_converts_and_infers_K():
    X, y, K = check_arrays([[0, 1], [2, 3], [4, 5]], np.array([0.0, 2.0, 1.0]))
    assert X.dtype == np.float64 and X.flags.c_contiguous and y.dtype == np.int64
    np.testing.assert_array_equal(y, [0, 2, 1])
    assert K == 3
    assert check_arrays(np.ones((2, 2)), [False, False])[2] == 2     # at least 2 classes
    assert check_arrays(np.ones((2, 2)), np.array([0, 1], np.uint8), n_classes=5)[2] == 5


@pytest.mark.parametrize("X, labels, kw, message", [
    (np.zeros(4), [0, 1, 0, 1], {}, r"X must have shape \(n_samples, n_features\), got "
                                    r"\(4,\); for one feature use X.reshape\(-1, 1\)"),
    (np.array([["a", "b"]]), [0], {}, r"X must hold real numbers .* got dtype <U1"),
    ([[1.0, 2.0], [3.0]], [0, 1], {}, r"X must be a rectangular array"),
    (np.zeros((2, 2)) + 1j, [0, 1], {}, r"X must hold real numbers .* complex128"),
    (np.array([[0.0, np.nan], [np.inf, 1.0], [0, 0]]), [0, 1, 0], {},
     r"X must be finite; 2 entries are NaN or infinite \(first at row 0\)"),
    (np.zeros((0, 2)), [], {}, r"X must have at least one sample"),
    (np.zeros((3, 2)), ["cat", "dog", "cat"], {},
     r"labels must be integer class indices 0..K-1, got dtype <U3; map class names"),
    (np.zeros((3, 2)), [0.0, 1.5, 1.0], {},
     r"labels must be integers \(class indices 0..K-1\), got 1.5 at index 1"),
    (np.zeros((3, 2)), np.eye(3), {}, r"labels must have shape \(3,\) to match X, got "
                                      r"\(3, 3\): class indices, not one-hot rows"),
    (np.zeros((3, 2)), [[0], [1], [1]], {}, r"got \(3, 1\); use labels.ravel\(\)"),
    (np.zeros((3, 2)), [0, 1], {}, r"labels must have shape \(3,\) to match X, got \(2,\)"),
    (np.zeros((3, 2)), [0, -1, 1], {}, r"labels must lie in 0..1 \(K = 2 classes\), got -1..1"),
    (np.zeros((3, 2)), [0, 3, 1], {"n_classes": 3},
     r"labels must lie in 0..2 \(K = 3 classes\), got 0..3"),
    (np.zeros((3, 2)), [0, 1, 1], {"n_classes": 1}, r"n_classes must be an integer >= 2"),
    (np.zeros((3, 2)), [0, 1, 1], {"d": 4}, r"X must have shape \(n_samples, 4\), got \(3, 2\)"),
])
def test_check_arrays_errors_name_the_input(X, labels, kw, message):
    with pytest.raises(ValueError, match=message):
        check_arrays(X, labels, **kw)


def test_factories_take_user_arrays_and_a_test_set():
    X, y = blobs(30, d=3, K=3)
    Xt, yt = blobs(12, d=3, K=3, seed=1)
    p = mlp(data=(X, y), test_data=(Xt, yt), widths=(3, 5, 3), seed=2)
    assert p.n_classes == 3 and p.batch == 30 and p.params["data"] == "user"
    np.testing.assert_array_equal(p.x_in[:, :3], X)
    np.testing.assert_array_equal(p.targets, np.eye(3)[y])
    # an independent forward pass on the unpadded matrices
    (W0, b0), (W1, b1) = p.layers(p.theta0)
    logits = np.tanh(Xt @ W0.T + b0) @ W1.T + b1
    assert p.test_accuracy(p.theta0) == np.mean(np.argmax(logits, axis=1) == yt)
    q = neural_ode(data=(X, y), n_classes=4, augment=1, N=3)
    assert q.n_classes == 4 and q.layout.widths[0] == 4
    with pytest.raises(ValueError, match=r"test_data: X must have shape \(n_samples, 3\)"):
        mlp(data=(X, y), test_data=(Xt[:, :2], yt), widths=(3, 5, 3))
    with pytest.raises(ValueError, match=r"test_data: labels must lie in 0..2"):
        mlp(data=(X, y), test_data=(Xt, yt + 1), widths=(3, 5, 3))
    with pytest.raises(ValueError, match="has no test set"):
        mlp(data=(X, y), widths=(3, 5, 3)).test_accuracy(p.theta0)
    with pytest.raises(ValueError, match=r"data must be a pair \(X, labels\) or a callable"):
        mlp(data=X, widths=(3, 5, 3))
    with pytest.raises(ValueError, match="labels must be integer class indices"):
        mlp(data=(X, y.astype(str)), widths=(3, 5, 3))
    with pytest.raises(ValueError, match=r"widths\[-1\] = 3 must equal the number of classes "
                                         r"K = 4"):
        mlp(data=(X, y), n_classes=4, widths=(3, 5, 3))


def test_accuracy_function():
    assert accuracy([0, 1, 2, 2], [0, 1, 1, 2]) == 0.75
    with pytest.raises(ValueError, match="predicted and labels must have one equal shape"):
        accuracy([0, 1], [0, 1, 2])


# --------------------------------------------------------------------------------------------
# a mini-batch callable
# --------------------------------------------------------------------------------------------
def batch_stream(B=8, d=2, K=3, seed=0):
    """A callable giving seeded mini-batches, and the list of those it gave."""
    rng = np.random.default_rng(seed)
    given = []

    def next_batch():
        X = rng.normal(size=(B, d))
        y = rng.integers(0, K, size=B)
        given.append((X, y))
        return X, y
    return next_batch, given


def test_callable_feeds_the_batches():
    source, given = batch_stream()
    p = mlp(data=source, widths=(2, 6, 3), seed=3)
    assert len(given) == 1 and p.batch == 8 and p.n_classes == 3   # K from widths[-1]
    np.testing.assert_array_equal(p.x_in[:, :2], given[0][0])
    assert p.resample() is None and len(given) == 2
    X, y = given[1]
    ref = mlp(data=(X, y), n_classes=3, widths=(2, 6, 3), seed=3)
    assert np.array_equal(p.x_in, ref.x_in) and np.array_equal(p.targets, ref.targets)
    assert p.objective(p.theta0) == ref.objective(ref.theta0)
    # the streaming callback of a wave run calls it at tau-steps 10, 20 and 30 (the run
    # ends at 40 without a callback)
    n0 = len(given)
    res = solve(p, eta=1e-2, max_steps=40, tol=0.0, callback=resampling_callback(p),
                callback_every=10, record_every=40, backend="numpy")
    assert res.steps == 40 and len(given) - n0 == 3
    assert np.array_equal(p.X_batch, given[-1][0])


def test_callable_errors():
    source, _ = batch_stream(B=8)
    with pytest.raises(ValueError, match="n_classes must be given with a mini-batch callable"):
        neural_ode(data=source)
    p = neural_ode(data=source, n_classes=3, augment=1, N=2)
    assert p.n_classes == 3
    with pytest.raises(ValueError, match=r"batch must be None or 8"):
        neural_ode(data=source, n_classes=3, batch=4)
    with pytest.raises(ValueError, match="must return a pair"):
        mlp(data=lambda: np.zeros((4, 2)), widths=(2, 3))
    shapes = iter([(8, 2), (8, 3), (7, 2)])

    def bad():
        s = next(shapes)
        return np.zeros(s), np.zeros(s[0], dtype=int)
    p = mlp(data=bad, widths=(2, 4, 3))
    with pytest.raises(ValueError, match=r"the data callable's mini-batch: X must have shape "
                                         r"\(8, 2\), got \(8, 3\)"):
        p.resample()
    with pytest.raises(ValueError, match=r"the data callable's mini-batch: X must have shape "
                                         r"\(8, 2\), got \(7, 2\)"):
        p.resample()


# --------------------------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------------------------
def test_digits_missing_extra_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"pip install 'wavecontrol\[digits\]'"):
        digits()
    assert "scikit-learn" in DIGITS_EXTRA


def test_stratified_split_is_seeded_and_exact():
    X, y = blobs(40, d=2, K=4)
    s = stratified_split(X, y, 0.3, seed=5)            # round(0.3 * 10) = 3 of each class
    assert len(s.X_test) == 12 and len(s.X_train) == 28
    assert np.array_equal(np.bincount(s.labels_test), [3, 3, 3, 3])
    t = stratified_split(X, y, 0.3, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(s, t))
    with pytest.raises(ValueError, match=r"test_fraction must lie in \(0, 1\)"):
        stratified_split(X, y, 1.0)


def test_digits_against_sklearn():
    """One test, so that a missing scikit-learn is one skip line."""
    pytest.importorskip("sklearn", reason="scikit-learn is not installed (the optional extra "
                        "wavecontrol[digits]): digits tests skipped")
    from sklearn.datasets import load_digits
    b = load_digits()
    X, y = b.data / 16.0, b.target
    s = digits()
    assert s.X_train.shape == (1347, 64) and s.X_test.shape == (450, 64)
    assert s.X_train.dtype == np.float64 and s.labels_train.dtype == np.int64
    both = np.concatenate([s.X_train, s.X_test])
    labels = np.concatenate([s.labels_train, s.labels_test])
    # every image exactly once: sort both sets of (row, label) lexicographically
    a = np.column_stack([X, y])
    b = np.column_stack([both, labels])
    np.testing.assert_array_equal(a[np.lexsort(a.T[::-1])], b[np.lexsort(b.T[::-1])])
    counts, tests = np.bincount(y), np.bincount(s.labels_test, minlength=10)
    assert np.all(np.abs(tests - 0.25 * counts) <= 1)
    again, other = digits(), digits(seed=1)
    assert all(np.array_equal(u, v) for u, v in zip(s, again))
    assert not np.array_equal(s.labels_test, other.labels_test)

    # an MLP on the training split, scored on the held-out one
    p = mlp(dataset="digits", widths=(64, 16, 10), n_samples=300, seed=0)
    split = digits()
    assert p.batch == 300 and np.array_equal(p.X_pool, split.X_train[:300])
    assert np.array_equal(p.test_set[0], split.X_test)
    (W0, b0), (W1, b1) = p.layers(p.theta0)
    ref = np.argmax(np.tanh(split.X_test @ W0.T + b0) @ W1.T + b1, axis=1)
    assert p.test_accuracy(p.theta0) == np.mean(ref == split.labels_test)
    res = solve(p, eta=0.5, max_steps=400, tol=0.0, record_every=400)
    # chance is 0.1; 400 tau-steps on 300 images reach 0.94 (measured): 0.75 is a
    # smoke threshold, not a claim about the optimum
    assert p.test_accuracy(res.theta) > 0.75
    with pytest.raises(ValueError, match="n_samples must be at most the training split's 1347"):
        mlp(dataset="digits", widths=(64, 10), n_samples=2000)
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['noise'\] of dataset "
                                         r"'digits'; valid: test_fraction"):
        mlp(dataset="digits", widths=(64, 10), dataset_params={"noise": 0.1})


def test_network_data_names_library_sets():
    with pytest.raises(ValueError, match="library data sets with a test split: digits"):
        network_data({"dataset": "mnist", "n_samples": 10, "seed": 0})
