"""Shared test settings: the Agg backend and a seeded generator (set WAVECONTROL_BOUNDSCHECK=1
to run the kernels bounds-checked)."""

import os

os.environ.setdefault("WAVECONTROL_BOUNDSCHECK", "0")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng():
    """A seeded generator, so that every random test input is reproducible."""
    return np.random.default_rng(20261123)
