"""Shared test settings: the Agg backend, a seeded generator, and bounds-checked kernels."""

import os

os.environ.setdefault("WAVECONTROL_BOUNDSCHECK", "0")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng():
    """A seeded generator, so that every random test input is reproducible."""
    return np.random.default_rng(20261123)
