"""The packed field layout and the (t, τ) grid.

Offsets, shapes and views are integer bookkeeping and are compared exactly; the grid spacings
are one or two floating-point operations, compared to 4 ulps (rel 1e-15).
"""

import numpy as np
import pytest

from wavecontrol.grid import Layout, Worldsheet


def test_layout_offsets_and_views(rng):
    widths = [3, 5, 2, 4]
    lay = Layout(widths, batch=2)
    assert lay.N == 3
    assert lay.offsets.tolist() == [0, 3, 8, 10, 14]
    assert lay.total == 14 and lay.shape == (2, 14)
    assert not lay.uniform
    nodes = [rng.normal(size=(2, w)) for w in widths]
    packed = lay.pack(nodes)
    assert packed.shape == (2, 14)
    for k, v in enumerate(nodes):
        np.testing.assert_array_equal(lay.node(packed, k), v)
    # node() is a view: writing through it changes the packed buffer
    lay.node(packed, 2)[...] = 7.0
    np.testing.assert_array_equal(packed[:, 8:10], 7.0)
    with pytest.raises(ValueError, match="constant widths"):
        lay.as_grid(packed)


def test_layout_uniform_as_grid_is_a_view(rng):
    lay = Layout(np.full(5, 3), batch=2)
    assert lay.uniform and lay.N == 4 and lay.total == 15
    nodes = [rng.normal(size=3) for _ in range(5)]           # (n,) broadcast over the batch
    packed = lay.pack(nodes)
    grid = lay.as_grid(packed)
    assert grid.shape == (2, 5, 3)
    for k in range(5):
        np.testing.assert_array_equal(grid[0, k], nodes[k])
        np.testing.assert_array_equal(grid[1, k], nodes[k])
    assert np.shares_memory(grid, packed)
    np.testing.assert_array_equal(lay.zeros(), np.zeros((2, 15)))


def test_layout_rejects_bad_input():
    with pytest.raises(ValueError, match="N \\+ 1 >= 2"):
        Layout([3])
    with pytest.raises(ValueError, match="integers >= 1"):
        Layout([3, 0, 2])
    with pytest.raises(ValueError, match="integers >= 1"):
        Layout([1.5, 2.0])
    with pytest.raises(ValueError, match="batch must be an integer >= 1"):
        Layout([2, 2], batch=0)
    lay = Layout([2, 3])
    with pytest.raises(ValueError, match="expected 2 node arrays"):
        lay.pack([np.zeros(2)])
    with pytest.raises(ValueError, match="node 1: expected shape \\(1, 3\\)"):
        lay.pack([np.zeros(2), np.zeros((1, 4))])


def test_worldsheet_from_courant():
    ws = Worldsheet.from_courant(T=2.0, N=20, courant=0.8, c=2.0)
    assert ws.dt == pytest.approx(0.1, rel=1e-15)
    assert ws.dtau == pytest.approx(0.8 * 0.1 / 2.0, rel=1e-15)      # Δτ = ν Δt / c
    assert ws.courant == pytest.approx(0.8, rel=1e-15)               # ν = c Δτ / Δt
    np.testing.assert_allclose(ws.t, np.arange(21) * 0.1, rtol=1e-15, atol=0)
    assert ws.t[-1] == pytest.approx(2.0, rel=1e-15)
    # τ_n = n Δτ, computed (not accumulated)
    np.testing.assert_array_equal(ws.tau(np.arange(4)), np.arange(4) * ws.dtau)
    assert ws.tau(10**6) == 10**6 * ws.dtau


@pytest.mark.parametrize("kwargs, match", [
    ({"T": 0.0, "N": 4, "courant": 1.0}, "T must be a finite number > 0"),
    ({"T": 1.0, "N": 0, "courant": 1.0}, "N must be an integer >= 1"),
    ({"T": 1.0, "N": 4, "courant": -1.0}, "courant must be a finite number > 0"),
    ({"T": 1.0, "N": 4, "courant": float("inf")}, "courant must be a finite number > 0"),
    ({"T": 1.0, "N": 4, "courant": 1.0, "c": 0.0}, "c must be a finite number > 0"),
])
def test_worldsheet_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Worldsheet.from_courant(**kwargs)
