"""Memory bandwidth of the bare two-field upwind transport vs a STREAM-style triad.

:func:`wavecontrol.schemes.upwind_pair_inplace` advances two counter-propagating fields w+, w-
of shape (N + 1, M) by upwind steps (eqs. 41–42 without sources), in place, one core. Each value
is read once and written once per step, so a step over V values in total moves 2 · 8 · V bytes
(the carry row of M values stays in cache and is not counted). The reference is a triad
a[i] = b[i] + s · c[i] compiled with numba (one core, no fastmath), counted as STREAM counts it:
3 · 8 bytes per element (two reads, one write; the write-allocate read of ``a`` that the
hardware also does is not counted). An in-place scale a[i] = s · a[i] (2 · 8 bytes per element,
the same access pattern as the upwind sweep) is printed beside it as the in-place bound, and the
NumPy twin :func:`~wavecontrol.schemes.upwind_pair_numpy` with the same nominal byte count
(it really moves more: it makes temporaries). All arrays are far larger than the L3 cache.

Run alone: ``python benchmarks/bench_transport.py [--values 1e7] [--rows 1000] [--repeats 7]``.
"""

from __future__ import annotations

import argparse
import sys

import numba
import numpy as np

from _common import best_time, print_header, print_table

GOAL = 0.60  # upwind transport bandwidth / triad bandwidth


@numba.njit(nogil=True, fastmath=False)
def triad(a, b, c, s):
    """STREAM triad a = b + s c on 1-D arrays."""
    for i in range(a.size):
        a[i] = b[i] + s * c[i]


@numba.njit(nogil=True, fastmath=False)
def scale_inplace(a, s):
    """In-place scale a = s a on a 1-D array (read and write each element once)."""
    for i in range(a.size):
        a[i] = s * a[i]


def run(values=10_000_000, rows=1000, steps=4, repeats=7, cache_shape=(100, 256),
        quiet=False):
    """Bandwidths in GB/s (10^9 bytes/s); returns a dict of result rows and the goal ratio."""
    from wavecontrol.schemes import upwind_pair_inplace, upwind_pair_numpy

    nu = 0.5
    M = values // (2 * rows)
    total = 2 * rows * M
    rng = np.random.default_rng(0)

    # correctness guard: the compiled sweep equals its NumPy twin on a small grid
    a0, b0 = rng.random((50, 7)), rng.random((50, 7))
    a1, b1 = a0.copy(), b0.copy()
    upwind_pair_inplace(a0, b0, nu, 3)
    upwind_pair_numpy(a1, b1, nu, 3)
    twin_diff = max(float(np.abs(a0 - a1).max()), float(np.abs(b0 - b1).max()))

    if not quiet:
        print_header(f"two-field upwind transport: 2 fields x ({rows}, {M}) = {total:.3g} "
                     f"values ({8 * total / 1e6:.0f} MB; {16 * total / 1e6:.0f} MB moved per "
                     f"step), courant {nu}")
        print(f"best of {repeats} repeats of {steps} steps (transport) or one sweep (triad); "
              f"GB/s = 1e9 bytes/s by thread CPU time (wall in brackets)")

    results = []

    def add(name, nbytes, times, per, note):
        wall, cpu = times
        results.append({"kernel": name, "values": per, "GB/s": nbytes / cpu / 1e9,
                        "GB/s wall": nbytes / wall / 1e9, "ns/value": 1e9 * cpu / per,
                        "note": note})

    a = np.empty(total)
    b = rng.random(total)
    c = rng.random(total)
    triad(a, b, c, 0.5)
    add("triad (numba)", 24 * total, best_time(lambda: triad(a, b, c, 0.5), repeats), total,
        "a = b + s c, 3 x 8 B/elem")
    scale_inplace(b, 1.0)
    add("in-place scale (numba)", 16 * total,
        best_time(lambda: scale_inplace(b, 1.0), repeats), total, "a = s a, 2 x 8 B/elem")
    del a, b, c

    wp = rng.random((rows, M))
    wm = rng.random((rows, M))
    upwind_pair_inplace(wp, wm, nu, 1)  # compile or load from the cache
    add("upwind_pair_inplace", 16 * total * steps,
        best_time(lambda: upwind_pair_inplace(wp, wm, nu, steps), repeats), total * steps,
        "2 x 8 B/value/step")
    add("upwind_pair_numpy", 16 * total,
        best_time(lambda: upwind_pair_numpy(wp, wm, nu, 1), max(2, repeats // 2)), total,
        "same nominal bytes")
    del wp, wm

    # the same sweep on a grid that fits in L2 (for reference: its compute-bound speed)
    crow, ccol = cache_shape
    small = 2 * crow * ccol
    sp, sm = rng.random((crow, ccol)), rng.random((crow, ccol))
    csteps = max(1, steps * total // small // 10)
    add(f"upwind_pair_inplace in L2, 2 x ({crow}, {ccol})", 16 * small * csteps,
        best_time(lambda: upwind_pair_inplace(sp, sm, nu, csteps), repeats), small * csteps,
        "2 x 8 B/value/step")

    by = {r["kernel"]: r for r in results}
    ratio = by["upwind_pair_inplace"]["GB/s"] / by["triad (numba)"]["GB/s"]
    out = {"rows": results, "ratio_to_triad": ratio, "twin_max_diff": twin_diff,
           "shape": (rows, M), "values": total}
    if not quiet:
        report(out)
    return out


def report(out) -> None:
    """Print the table and whether the 60 % goal holds."""
    rows = [(r["kernel"], f"{r['GB/s']:.1f} ({r['GB/s wall']:.1f})",
             f"{r['ns/value']:.3f}", r["note"]) for r in out["rows"]]
    print_table(("kernel", "GB/s cpu (wall)", "ns/value", "bytes counted"), rows)
    print(f"compiled vs NumPy twin after 3 steps on a 50 x 7 grid: max diff "
          f"{out['twin_max_diff']:.1e}")
    print(f"goal: transport >= {GOAL:.0%} of triad bandwidth -> {out['ratio_to_triad']:.0%}: "
          f"{'MET' if out['ratio_to_triad'] >= GOAL else 'NOT MET'}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=float, default=1e7,
                        help="values in the two fields together (default 1e7)")
    parser.add_argument("--rows", type=int, default=1000, help="N + 1 (default 1000)")
    parser.add_argument("--steps", type=int, default=4, help="upwind steps per repeat")
    parser.add_argument("--repeats", type=int, default=7)
    a = parser.parse_args(argv)
    run(values=int(a.values), rows=a.rows, steps=a.steps, repeats=a.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
