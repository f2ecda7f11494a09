"""Figure 3 (worldsheet): built in quick mode, and the front speeds behind it."""

import numpy as np

import figures
from figures.fig_worldsheet import front_speed, record
from problems import lqr


def test_worldsheet_figure_and_front_speed(tmp_path):
    """At ν = 1 the upwind consistent step moves the state one node per τ-step (node k is
    reached first at step k exactly): the measured speed is 1 to the round-off of a
    least-squares slope over ~20 integer points (1e-12)."""
    info = figures.make_figures(tmp_path, quick=True, only=["worldsheet"])["worldsheet"]
    assert (tmp_path / "worldsheet.png").stat().st_size > 10_000
    for label, num in info["numbers"].items():
        assert abs(num["state_front_speed"] - 1.0) <= 1e-12, (label, num)
        if num["costate_front_speed"] is not None:
            assert abs(num["costate_front_speed"] - 1.0) <= 1e-12, (label, num)


def test_record_energies_are_those_of_the_waves():
    """‖w+‖² + ‖w−‖² = ‖x‖² + ‖λ‖² per node with Θ = I (eq. 38 is an orthogonal rotation):
    equal to round-off (1e-12 relative to the largest node energy)."""
    tau, Ep, Em, Ex, El = record(lqr(N=10), steps=15)
    assert Ep.shape == (16, 11) and np.allclose(np.diff(tau), lqr(N=10).dt)
    assert np.abs(Ep + Em - Ex - El).max() <= 1e-12 * max(1.0, (Ex + El).max())
    # the first row is the driver's start: only node 0 holds energy (x_0 = x_in)
    assert Ex[0, 0] == 1.0 and np.all(Ex[0, 1:] == 0) and np.all(El[0] == 0)


def test_front_speed_of_a_synthetic_front():
    """A front that reaches node k at step 2k moves at 1/2 node per step (exact)."""
    E = np.zeros((60, 21))
    for k in range(21):
        E[2 * k:, k] = 1.0
    assert abs(front_speed(E, 0.5, +1) - 0.5) <= 1e-12
