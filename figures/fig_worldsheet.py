"""Figure 3 — the worldsheet: wave energy per node over depth t and optimization time τ.

From zero fields, the consistent form (upwind, ν = 1) of a problem is run and, every τ-step,
the per-node energies ‖w+_k‖² and ‖w−_k‖² (summed over the batch) of the waves
w± = (Θx ± Θ^{-T}λ)/√2 (eq. 38) are stored. Drawn over (k, τ) on a log colour scale, they show
the fronts: the state front leaves t = 0 and the costate front leaves t = T, each moving one
node per τ-step at ν = 1 (speed c), and, for a network, how the error wave is attenuated or
amplified across depth (the vanishing/exploding-gradient picture of the second text in paper/).

Numbers behind it (returned by :func:`main`, checked in the tests): per problem the measured
front speeds (nodes per τ-step) of the state and costate fronts, from the first τ-step at which
each node's energy exceeds a threshold.

Run: ``python figures/fig_worldsheet.py [--out DIR] [--full]``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.colors import LogNorm

if __package__ in (None, ""):                # run as a script: make the package importable
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from figures import save, script  # noqa: E402
from wavecontrol.plotting import agg_figure  # noqa: E402

NAME = "worldsheet"


def record(problem, steps: int, courant: float = 1.0, **options):
    """Run ``steps`` τ-steps of the consistent form from zero fields, storing every step.

    Returns ``(tau, Ep, Em, Ex, El)``: τ of each stored step (``steps + 1`` values, the first
    is the start), the per-node energies ‖w±_k‖² summed over the batch, and ‖x_k‖², ‖λ_k‖²
    likewise, arrays (steps + 1, N + 1). The port is the resistive ``gd`` (the paper's) unless
    ``options`` name another.
    """
    from solvers.wave import solve
    from wavecontrol.metric import Metric

    options.setdefault("port", "gd")
    metric = Metric(options.pop("metric", 1.0), problem.n, problem.N)
    Ep, Em, Ex, El = [], [], [], []

    def keep(step, info):
        x, lam = info["u"], info["v"]
        wp, wm = metric.to_waves(x, lam)
        for store, f in ((Ep, wp), (Em, wm), (Ex, x), (El, lam)):
            store.append(np.sum(f * f, axis=(0, 2)))
        return False

    # the driver starts from x_0 = x_in, everything else 0: the first row
    x0 = np.zeros((problem.batch, problem.N + 1, problem.n))
    x0[:, 0] = problem.x_in
    keep(0, {"u": x0, "v": np.zeros_like(x0)})
    r = solve(problem, scheme="upwind", courant=courant, tol=0.0, max_steps=steps,
              callback=keep, callback_every=1, **options)
    keep(r.steps, {"u": r.x, "v": r.lam})      # the driver calls back before the last step
    tau = np.arange(len(Ep)) * courant * problem.dt
    return tau, np.array(Ep), np.array(Em), np.array(Ex), np.array(El)


def front_speed(E, threshold: float, direction: int) -> float:
    """Nodes per τ-step of the front where each node's energy first exceeds ``threshold``.

    ``direction`` +1: a front moving from node 0 up (the state, in ‖x_k‖²); −1: from node N
    down (the costate, in ‖λ_k‖²). A least-squares slope of arrival step against the distance
    from the origin, over the half of the nodes next to it (further on, the other field's
    sources may reach a node first). NaN when fewer than 3 nodes were reached.
    """
    N1 = E.shape[1]
    half = np.arange((N1 + 1) // 2)
    nodes = half if direction > 0 else N1 - 1 - half
    arrival = []
    for j, k in enumerate(nodes):
        hit = np.nonzero(E[:, k] > threshold)[0]
        if hit.size == 0:
            break
        arrival.append((j, hit[0]))
    if len(arrival) < 3:
        return float("nan")
    j, s = np.array(arrival, dtype=float).T
    return float(1.0 / np.polyfit(j, s, 1)[0])


def _problems(quick: bool):
    from problems import PROBLEMS, get_problem

    out = [("LQR (double integrator, N = 40)", get_problem("lqr", N=40), 120 if quick else 400)]
    if "neural-ode" in PROBLEMS:
        out.append(("neural ODE (two moons, N = 24)",
                    get_problem("neural-ode", dataset="moons", n_samples=32, seed=0, N=24),
                    72 if quick else 300))
    return out


def main(out_dir=".", quick: bool = True) -> dict:
    """Write ``worldsheet.png`` into ``out_dir``; return the path and the front speeds."""
    cases = _problems(quick)
    fig = agg_figure((10, 3.6 * len(cases)))
    axes = fig.subplots(len(cases), 2, squeeze=False)
    numbers = {}
    for i, (label, problem, steps) in enumerate(cases):
        tau, Ep, Em, Ex, El = record(problem, steps)
        floor = 1e-12 * max(Ep.max(), Em.max())
        for ax, E, name in ((axes[i, 0], Ep, "‖w+_k‖²"), (axes[i, 1], Em, "‖w−_k‖²")):
            im = ax.pcolormesh(np.arange(problem.N + 1), tau, np.maximum(E, floor),
                               norm=LogNorm(vmin=floor * 1e6, vmax=E.max()), shading="nearest",
                               cmap="magma")
            ax.set_xlabel("node k (depth t = kΔt)")
            ax.set_ylabel("optimization time τ")
            ax.set_title(f"{label}: {name}", fontsize=9)
            fig.colorbar(im, ax=ax)
        # the costate front exists from τ = 0 only where ∇ℓ(x_N) ≠ 0 at the start (a network
        # with targets); for LQR λ_N = Q_f x_N stays 0 until the state front arrives
        numbers[label] = {"steps": steps, "N": problem.N,
                          "state_front_speed": front_speed(Ex, 1e-300, +1),
                          "costate_front_speed": (front_speed(El, 1e-300, -1)
                                                  if El[0, -1] > 0 or El[1, -1] > 0
                                                  else None)}
    fig.suptitle("The worldsheet: wave energy per node (consistent form, upwind, ν = 1)",
                 fontsize=11)
    return save(fig, out_dir, NAME, numbers)


if __name__ == "__main__":
    script(main, __doc__)
