"""Toy classification data sets generated in code from a seed.

Every generator returns ``(X, labels)`` with ``X`` of shape ``(n_samples, 2)`` (float64) and
``labels`` of shape ``(n_samples,)`` (int64, values ``0..K−1``); the classes are balanced
(sizes differ by at most one) and the samples are shuffled. The same arguments give the same
arrays on every machine (``numpy.random.default_rng(seed)``).

``moons``     two interleaving half circles, centred near the origin (K = 2)
``circles``   two concentric circles of radii 1 and ``factor`` (K = 2)
``spirals``   ``n_classes`` interleaved spiral arms in the unit disk (K = ``n_classes``)
``xor``       uniform points in [−1, 1]², label 1 where the signs of the coordinates differ,
              kept ``margin`` away from the axes (K = 2)

Look a data set up by name with :func:`make_dataset`.

Besides these generators:

``digits``    scikit-learn's bundled 8×8 handwritten digits (1797 images, 64 features scaled to
              [0, 1], K = 10), split into a training and a held-out test set by a seeded,
              stratified shuffle (:func:`digits`). It needs the optional extra
              ``wavecontrol[digits]`` (scikit-learn ships the images; nothing is downloaded).

The user's own data go through :func:`check_arrays` (arrays ``X``, ``labels``) and
:func:`check_batch_source` (a callable giving mini-batches); :func:`network_data` resolves the
``dataset`` / ``data`` / ``test_data`` parameters of :func:`problems.mlp` and
:func:`problems.neural_ode`. :func:`accuracy` is the fraction of correct predictions.
"""

from __future__ import annotations

import inspect
import math
import numbers
from typing import Callable, NamedTuple

import numpy as np


def _count(name: str, n_samples, minimum: int) -> int:
    if isinstance(n_samples, bool) or int(n_samples) != n_samples or n_samples < minimum:
        raise ValueError(f"{name}: n_samples must be an integer >= {minimum}, got {n_samples!r}")
    return int(n_samples)


def _nonneg(name: str, value) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def _class_sizes(n_samples: int, k: int) -> np.ndarray:
    return np.array([len(a) for a in np.array_split(np.arange(n_samples), k)])


def _finish(rng, parts, noise):
    X = np.concatenate([p for p, _ in parts])
    labels = np.concatenate([np.full(len(p), c, dtype=np.int64) for p, c in parts])
    X = X + noise * rng.normal(size=X.shape)
    order = rng.permutation(len(X))
    return np.ascontiguousarray(X[order]), labels[order]


def moons(n_samples: int = 64, noise: float = 0.1, seed: int = 0):
    """Two half circles: (cos s, sin s) and (1 − cos s, 1/2 − sin s), s ∈ [0, π], shifted by
    (−1/2, −1/4) so that the data are centred; Gaussian noise of standard deviation ``noise``."""
    n_samples = _count("moons", n_samples, 2)
    noise = _nonneg("noise", noise)
    rng = np.random.default_rng(seed)
    n0, n1 = _class_sizes(n_samples, 2)
    s0, s1 = np.linspace(0.0, np.pi, n0), np.linspace(0.0, np.pi, n1)
    shift = np.array([-0.5, -0.25])
    upper = np.stack([np.cos(s0), np.sin(s0)], axis=1) + shift
    lower = np.stack([1.0 - np.cos(s1), 0.5 - np.sin(s1)], axis=1) + shift
    return _finish(rng, [(upper, 0), (lower, 1)], noise)


def circles(n_samples: int = 64, noise: float = 0.05, factor: float = 0.5, seed: int = 0):
    """Outer circle of radius 1 (class 0) around an inner one of radius ``factor`` (class 1)."""
    n_samples = _count("circles", n_samples, 2)
    noise = _nonneg("noise", noise)
    factor = float(factor)
    if not 0 < factor < 1:
        raise ValueError(f"factor must lie in (0, 1), got {factor!r}")
    rng = np.random.default_rng(seed)
    n0, n1 = _class_sizes(n_samples, 2)
    s0 = np.linspace(0.0, 2 * np.pi, n0, endpoint=False)
    s1 = np.linspace(0.0, 2 * np.pi, n1, endpoint=False)
    outer = np.stack([np.cos(s0), np.sin(s0)], axis=1)
    inner = factor * np.stack([np.cos(s1), np.sin(s1)], axis=1)
    return _finish(rng, [(outer, 0), (inner, 1)], noise)


def spirals(n_samples: int = 96, n_classes: int = 3, noise: float = 0.05, turns: float = 0.75,
            seed: int = 0):
    """``n_classes`` spiral arms: radius r ∈ (0, 1], angle 2π(j/K + turns·r) for arm j."""
    if isinstance(n_classes, bool) or int(n_classes) != n_classes or n_classes < 2:
        raise ValueError(f"n_classes must be an integer >= 2, got {n_classes!r}")
    n_classes = int(n_classes)
    n_samples = _count("spirals", n_samples, n_classes)
    noise = _nonneg("noise", noise)
    turns = _nonneg("turns", turns)
    rng = np.random.default_rng(seed)
    parts = []
    for j, nj in enumerate(_class_sizes(n_samples, n_classes)):
        r = np.linspace(0.1, 1.0, nj)
        phi = 2 * np.pi * (j / n_classes + turns * r)
        parts.append((np.stack([r * np.cos(phi), r * np.sin(phi)], axis=1), j))
    return _finish(rng, parts, noise)


def xor(n_samples: int = 64, noise: float = 0.0, margin: float = 0.1, seed: int = 0):
    """Uniform points in the four quadrants of [−1, 1]², at least ``margin`` from the axes;
    label 1 where x₀ x₁ < 0 (before noise)."""
    n_samples = _count("xor", n_samples, 2)
    noise = _nonneg("noise", noise)
    margin = float(margin)
    if not 0 <= margin < 1:
        raise ValueError(f"margin must lie in [0, 1), got {margin!r}")
    rng = np.random.default_rng(seed)
    parts = []
    for c, nc in enumerate(_class_sizes(n_samples, 2)):
        q = rng.integers(0, 2, size=nc) * 2 - 1        # sign of x0
        mag = margin + (1 - margin) * rng.uniform(size=(nc, 2))
        signs = np.stack([q, q if c == 0 else -q], axis=1)
        parts.append((signs * mag, c))
    return _finish(rng, parts, noise)


#: name → generator
DATASETS = {"moons": moons, "circles": circles, "spirals": spirals, "xor": xor}


def _unknown(name):
    return ValueError(f"unknown dataset {name!r}; valid: {', '.join(sorted(DATASETS))}; "
                      f"library data sets with a test split: {', '.join(sorted(LIBRARY))}")


def make_dataset(name: str, n_samples: int = 64, seed: int = 0, **params):
    """``(X, labels)`` of the data set ``name`` (see :data:`DATASETS`) with its parameters."""
    if name not in DATASETS:
        raise _unknown(name)
    valid = set(inspect.signature(DATASETS[name]).parameters) - {"n_samples", "seed"}
    unknown = set(params) - valid
    if unknown:
        raise ValueError(f"unknown parameter(s) {sorted(unknown)} of dataset {name!r}; valid: "
                         f"{', '.join(sorted(valid))}")
    return DATASETS[name](n_samples=n_samples, seed=seed, **params)


def n_classes(name: str, **params) -> int:
    """Number of classes K of data set ``name`` (a generator or a library data set)."""
    if name in LIBRARY:
        return LIBRARY[name][1]
    if name not in DATASETS:
        raise _unknown(name)
    return int(params.get("n_classes", 3)) if name == "spirals" else 2


# -- a library data set with a held-out test split --------------------------------------------
class Split(NamedTuple):
    """A training set and a held-out test set: X (P, d) float64, labels (P,) int64."""

    X_train: np.ndarray
    labels_train: np.ndarray
    X_test: np.ndarray
    labels_test: np.ndarray


def stratified_split(X, labels, test_fraction: float, seed=0) -> Split:
    """Seeded split keeping the class proportions: round(test_fraction · P_c) samples of each
    class c go to the test set (at least one per class, and at least one left to train on);
    both parts come out shuffled. The same arguments give the same split on every machine."""
    tf = float(test_fraction)
    if not 0 < tf < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
    X, labels, K = check_arrays(X, labels)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in range(K):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if idx.size == 0:
            continue
        if idx.size < 2:
            raise ValueError(f"class {c} has {idx.size} sample; a stratified split needs "
                             "at least 2 per class")
        k = min(max(int(round(tf * idx.size)), 1), idx.size - 1)
        test.append(idx[:k])
        train.append(idx[k:])
    train = rng.permutation(np.concatenate(train))
    test = rng.permutation(np.concatenate(test))
    return Split(np.ascontiguousarray(X[train]), labels[train],
                 np.ascontiguousarray(X[test]), labels[test])


DIGITS_EXTRA = ("the digits data set needs scikit-learn, which ships its images (no download): "
                "pip install 'wavecontrol[digits]' (or pip install scikit-learn)")


def load_digits_arrays():
    """scikit-learn's bundled digits as (X (1797, 64) in [0, 1], labels (1797,) in 0..9):
    the pixel counts 0..16 divided by 16. ImportError naming the extra if it is missing."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ImportError(DIGITS_EXTRA) from err
    bunch = load_digits()
    return np.asarray(bunch.data, dtype=float) / 16.0, np.asarray(bunch.target, dtype=np.int64)


def digits(test_fraction: float = 0.25, seed: int = 0) -> Split:
    """The 8×8 digits (K = 10) split into training and held-out test sets
    (:func:`stratified_split` seeded by ``seed``; the default keeps 450 images for testing
    and 1347 for training)."""
    X, labels = load_digits_arrays()
    return stratified_split(X, labels, test_fraction, seed)


#: name → (loader returning a :class:`Split` from ``test_fraction`` and ``seed``, K)
LIBRARY = {"digits": (digits, 10)}


# -- the user's own data ------------------------------------------------------------------------
def _n_classes(value):
    if (isinstance(value, bool) or not isinstance(value, numbers.Integral)) or value < 2:
        raise ValueError(f"n_classes must be an integer >= 2, got {value!r}")
    return int(value)


def check_arrays(X, labels, n_classes=None, *, d=None, rows=None, what=""):
    """Validated copies of the user's data and the number of classes: ``(X, labels, K)``.

    ``X`` must be a real array of shape (P, d), P ≥ 1, finite; it comes back float64 and
    C-contiguous. ``labels`` must be P integer class indices 0..K−1 (an integer or bool
    array, or floats with integral values); it comes back int64. ``K`` is ``n_classes`` when
    given (an integer ≥ 2), else max(labels) + 1 (at least 2). ``d`` and ``rows`` pin the
    columns and rows of X. Every error is a ValueError that names ``X`` or ``labels`` (after
    the prefix ``what``) and says what was expected.
    """
    K = None if n_classes is None else _n_classes(n_classes)
    try:
        X = np.asarray(X)
    except (ValueError, TypeError) as err:        # ragged nested lists
        raise ValueError(f"{what}X must be a rectangular array of numbers of shape "
                         f"(n_samples, n_features): {err}") from None
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{what}X must hold real numbers (bool, integer or float dtype), got "
                         f"dtype {X.dtype}")
    want = f"({'n_samples' if rows is None else rows}, {'n_features' if d is None else d})"
    if X.ndim != 2:
        hint = "; for one feature use X.reshape(-1, 1)" if X.ndim == 1 else ""
        raise ValueError(f"{what}X must have shape {want}, got {X.shape}{hint}")
    if (d is not None and X.shape[1] != d) or (rows is not None and X.shape[0] != rows):
        raise ValueError(f"{what}X must have shape {want}, got {X.shape}")
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"{what}X must have at least one sample and one feature, got shape "
                         f"{X.shape}")
    X = np.array(X, dtype=np.float64, order="C")
    bad = ~np.isfinite(X)
    if bad.any():
        raise ValueError(f"{what}X must be finite; {int(bad.sum())} entries are NaN or "
                         f"infinite (first at row {int(np.argwhere(bad)[0, 0])})")
    try:
        y = np.asarray(labels)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{what}labels must be a 1-D array of class indices: {err}") from None
    P = X.shape[0]
    if y.ndim == 2 and y.shape == (P, 1):
        raise ValueError(f"{what}labels must have shape ({P},) to match X, got {y.shape}; "
                         "use labels.ravel()")
    if y.ndim == 2 and y.shape[0] == P:
        raise ValueError(f"{what}labels must have shape ({P},) to match X, got {y.shape}: "
                         "class indices, not one-hot rows (use labels.argmax(axis=1))")
    if y.shape != (P,):
        raise ValueError(f"{what}labels must have shape ({P},) to match X, got {y.shape}")
    if y.dtype.kind == "f":
        nonint = ~np.isfinite(y) | (y != np.round(y))
        if nonint.any():
            i = int(np.flatnonzero(nonint)[0])
            raise ValueError(f"{what}labels must be integers (class indices 0..K-1), got "
                             f"{float(y[i])!r} at index {i}")
    elif y.dtype.kind not in "biu":
        raise ValueError(f"{what}labels must be integer class indices 0..K-1, got dtype "
                         f"{y.dtype}; map class names to integers first, e.g. "
                         "numpy.unique(labels, return_inverse=True)[1]")
    if y.dtype.kind == "u" and y.size and y.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{what}labels must lie in 0..K-1, got {y.max()}")
    y = y.astype(np.int64)
    if K is None:
        K = max(int(y.max()) + 1, 2)
    if y.min() < 0 or y.max() >= K:
        raise ValueError(f"{what}labels must lie in 0..{K - 1} (K = {K} classes), got "
                         f"{y.min()}..{y.max()}")
    return X, y, K


def check_batch_source(batches, n_classes=None):
    """Call the user's mini-batch source once: ``(first X, first labels, K)``.

    ``batches`` is a callable with no arguments returning one mini-batch ``(X, labels)``
    (e.g. ``lambda: next(it)`` over an iterator); every call gives the next one, of the same
    size B and width d as the first. ``n_classes`` is needed because one batch need not show
    every class (:func:`network_data` takes it from the network's last width where it can).
    """
    if not callable(batches):
        raise ValueError(f"data must be a pair (X, labels) or a callable returning one "
                         f"mini-batch (X, labels), got {type(batches).__name__}")
    if n_classes is None:
        raise ValueError("n_classes must be given with a mini-batch callable (one batch need "
                         "not contain every class)")
    out = batches()
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise ValueError(f"the data callable must return a pair (X, labels), got "
                         f"{type(out).__name__}")
    return check_arrays(out[0], out[1], n_classes, what="the data callable's mini-batch: ")


def accuracy(predicted, labels) -> float:
    """Fraction of ``predicted`` class indices equal to ``labels`` (same shape (P,), P ≥ 1)."""
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    if predicted.shape != labels.shape or predicted.ndim != 1 or predicted.size == 0:
        raise ValueError(f"predicted and labels must have one equal shape (P,), P >= 1, got "
                         f"{predicted.shape} and {labels.shape}")
    return float(np.mean(predicted == labels))


class NetworkData(NamedTuple):
    """What a network factory trains on: the data set (or first mini-batch), K, the
    mini-batch callable (or None) and the held-out test set (or None)."""

    X: np.ndarray
    labels: np.ndarray
    n_classes: int
    batches: Callable | None
    test: tuple | None


def network_data(p: dict, given=(), default_classes=None) -> NetworkData:
    """Resolve the data parameters of a network factory.

    ``p`` holds ``dataset``, ``n_samples``, ``seed``, ``dataset_params``, ``data``,
    ``test_data`` and ``n_classes``; ``given`` names the keys the caller set (``n_samples``
    only subsamples a library data set when given). ``default_classes`` is K where neither
    ``n_classes`` nor the data fix it (the MLP's last width, for a mini-batch callable).

    - ``data = (X, labels)``: the user's arrays (:func:`check_arrays`);
    - ``data = callable``: mini-batches from it (:func:`check_batch_source`);
    - else ``dataset``: a generator of :data:`DATASETS` (``n_samples``, ``seed``,
      ``dataset_params``) or a library data set of :data:`LIBRARY`, whose test split becomes
      the test set (``dataset_params`` may set ``test_fraction``; ``seed`` seeds the split;
      ``n_samples``, when given, keeps that many of the training images).

    ``test_data = (X, labels)`` sets (or replaces) the test set; it must have the training
    data's width and labels in 0..K−1.
    """
    K = p.get("n_classes")
    K = None if K is None else _n_classes(K)
    data, batches, test = p.get("data"), None, None
    if data is not None:
        if p.get("dataset_params"):
            raise ValueError("dataset_params apply to a named dataset, not to user data")
        if callable(data):
            X, labels, K = check_batch_source(data, K if K is not None else default_classes)
            batches = data
        elif isinstance(data, (tuple, list)) and len(data) == 2:
            X, labels, K = check_arrays(data[0], data[1], K)
        else:
            raise ValueError(f"data must be a pair (X, labels) or a callable returning one "
                             f"mini-batch (X, labels), got {type(data).__name__}")
    else:
        name, kw = p["dataset"], dict(p.get("dataset_params") or {})
        if name in LIBRARY:
            loader, K_lib = LIBRARY[name]
            valid = set(inspect.signature(loader).parameters) - {"seed"}
            unknown = set(kw) - valid
            if unknown:
                raise ValueError(f"unknown parameter(s) {sorted(unknown)} of dataset "
                                 f"{name!r}; valid: {', '.join(sorted(valid))}")
            split = loader(seed=p["seed"], **kw)
            X, labels = split.X_train, split.labels_train
            if "n_samples" in given:
                n = _count(name, p["n_samples"], 1)
                if n > len(X):
                    raise ValueError(f"{name}: n_samples must be at most the training split's "
                                     f"{len(X)} images, got {n}")
                X, labels = X[:n], labels[:n]
            test = (split.X_test, split.labels_test)
            K = K_lib if K is None else K
            X, labels, K = check_arrays(X, labels, K)
        else:
            X, labels = make_dataset(name, n_samples=p["n_samples"], seed=p["seed"], **kw)
            X, labels, K = check_arrays(X, labels, n_classes(name, **kw) if K is None else K)
    if p.get("test_data") is not None:
        td = p["test_data"]
        if not (isinstance(td, (tuple, list)) and len(td) == 2):
            raise ValueError(f"test_data must be a pair (X, labels), got {type(td).__name__}")
        Xt, yt, _ = check_arrays(td[0], td[1], K, d=X.shape[1], what="test_data: ")
        test = (Xt, yt)
    return NetworkData(X, labels, K, batches, test)
