"""The runs behind figures 4 and 5: the wave solver with every parameter port, and the locked
references, on one LQR. Computed once per (quick) setting and shared by both figures."""

from __future__ import annotations

from functools import lru_cache

#: ports drawn, in order
PORTS = ("gd", "newton", "momentum", "adaptive", "matched")
#: locked references drawn: (label, module, function)
REFERENCES = (("L-BFGS", "solvers.lbfgs", "solve_lbfgs"),
              ("forward-backward sweep", "solvers.sweep", "solve_sweep"),
              ("locked backprop GD", "solvers.backprop", "solve_backprop"))


def problem(quick: bool):
    from problems import lqr
    return lqr(N=10, T=1.0) if quick else lqr()


@lru_cache(maxsize=2)
def runs(quick: bool):
    """``(ports, references)``: dicts label → WaveResult. Wave runs: consistent form, upwind,
    ν = 1, every τ-step recorded, tol 1e-8 on the residuals, NumPy backend for every port (the
    compiled kernel records no reflection); references: their default settings, tol 1e-8."""
    import importlib

    from solvers.wave import solve

    p = problem(quick)
    steps = 8_000 if quick else 300_000
    # "gd" is the driver's default port (η = auto); the others by name with their defaults
    ports = {name: solve(p, port=name, scheme="upwind", courant=1.0,
                         tol=1e-8, max_steps=steps, record_every=4 if quick else 20,
                         backend="numpy")
             for name in PORTS}
    refs = {}
    for label, mod, fn in REFERENCES:
        refs[label] = getattr(importlib.import_module(mod), fn)(p, tol=1e-8)
    return ports, refs
