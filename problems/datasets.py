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
"""

from __future__ import annotations

import inspect
import math

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


def make_dataset(name: str, n_samples: int = 64, seed: int = 0, **params):
    """``(X, labels)`` of the data set ``name`` (see :data:`DATASETS`) with its parameters."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(sorted(DATASETS))}")
    valid = set(inspect.signature(DATASETS[name]).parameters) - {"n_samples", "seed"}
    unknown = set(params) - valid
    if unknown:
        raise ValueError(f"unknown parameter(s) {sorted(unknown)} of dataset {name!r}; valid: "
                         f"{', '.join(sorted(valid))}")
    return DATASETS[name](n_samples=n_samples, seed=seed, **params)


def n_classes(name: str, **params) -> int:
    """Number of classes K of data set ``name``."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(sorted(DATASETS))}")
    return int(params.get("n_classes", 3)) if name == "spirals" else 2
