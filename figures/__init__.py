"""The figures of the toolkit, one module each, and :func:`make_figures` that writes them all.

Every module has ``NAME`` (the PNG's stem) and ``main(out_dir, quick=True)``, which runs what
the figure needs, writes ``out_dir/NAME.png`` and returns ``{"path", "numbers"}``: the numbers
the figure shows, which the tests check. ``quick`` keeps each figure to seconds;
``wavecontrol figures --out DIR [--quick]`` calls :func:`make_figures`.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path

#: figure name → module (in the order of the README)
FIGURES = {"energy": "figures.fig_energy", "stability": "figures.fig_stability",
           "worldsheet": "figures.fig_worldsheet", "convergence": "figures.fig_convergence",
           "reflection": "figures.fig_reflection"}


def make_figures(out_dir, quick: bool = True, only=None) -> dict:
    """Write the figures named in ``only`` (default: all) into ``out_dir``.

    Returns ``{name: {"path", "numbers", "seconds"}}``.
    """
    names = list(FIGURES) if only is None else list(only)
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        raise ValueError(f"unknown figure(s) {unknown}; valid: {', '.join(FIGURES)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    done = {}
    for name in names:
        t0 = time.perf_counter()
        info = importlib.import_module(FIGURES[name]).main(out, quick=quick)
        done[name] = {**info, "seconds": time.perf_counter() - t0}
    return done


def save(fig, out_dir, name: str, numbers: dict) -> dict:
    """Write ``fig`` as ``out_dir/name.png``; the ``{"path", "numbers"}`` a figure returns."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    path = Path(out_dir) / f"{name}.png"
    fig.savefig(path, dpi=110)
    return {"path": str(path), "numbers": numbers}


def script(main, doc: str) -> None:
    """The command line of a figure module run as a script: ``[--out DIR] [--full]``."""
    import argparse

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--out", default=".", help="output folder (default: here)")
    ap.add_argument("--full", action="store_true", help="longer runs (default: quick)")
    a = ap.parse_args()
    print(main(a.out, quick=not a.full))
