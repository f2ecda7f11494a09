"""Timing, machine description and table printing shared by the benchmark scripts.

Nothing here is part of the package; the scripts import it as a sibling module, which works
both when a script is run alone (``python benchmarks/bench_step.py``) and from ``run_all.py``.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def best_time(fn, repeats: int, setup=None) -> tuple[float, float]:
    """Smallest (wall, thread CPU) times in seconds of ``fn()`` over ``repeats`` runs.

    ``setup()`` (untimed) runs before each repeat, e.g. to restore in-place fields. The best of
    several repeats is the least disturbed by other processes. The thread CPU time
    (``time.thread_time``) leaves out the time the thread waited for a core, so on a shared,
    oversubscribed machine it is the better estimate of the idle-machine wall time; on an idle
    machine the two agree. Every kernel timed here runs in the calling thread only.
    """
    wall = cpu = float("inf")
    for _ in range(repeats):
        if setup is not None:
            setup()
        t0, c0 = time.perf_counter(), time.thread_time()
        fn()
        c1, t1 = time.thread_time(), time.perf_counter()
        wall, cpu = min(wall, t1 - t0), min(cpu, c1 - c0)
    return wall, cpu


def timed(fn):
    """``(fn(), wall seconds)`` of one call."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def twin_timing(compiled, numpy_twin, reset, fields, steps, numpy_steps, repeats) -> dict:
    """A compiled runner against its NumPy twin on the same in-place ``fields`` (a list whose
    first entry is the tuple of arrays both runners advance; ``reset()`` restores the start).

    First the two agree after 3 steps from the same start (guards against timing the wrong
    thing): ``rel_diff_3_steps`` is the largest difference relative to max(1, |field|). Then
    each is timed with :func:`best_time`; µs per τ-step by thread CPU (``ours_us``,
    ``numpy_us``, ``ratio``) and by wall time (``*_wall_us``, ``ratio_wall``).
    """
    reset()
    compiled(3)
    ours = fields[0]
    reset()
    numpy_twin(3)
    scale = max(1.0, max(float(np.abs(a).max()) for a in fields[0]))
    diff = max(float(np.abs(a - b).max()) for a, b in zip(ours, fields[0])) / scale
    w_ours, c_ours = best_time(lambda: compiled(steps), repeats, reset)
    w_np, c_np = best_time(lambda: numpy_twin(numpy_steps), repeats, reset)
    ours, twin = 1e6 * c_ours / steps, 1e6 * c_np / numpy_steps
    ours_w, twin_w = 1e6 * w_ours / steps, 1e6 * w_np / numpy_steps
    return {"ours_us": ours, "numpy_us": twin, "ratio": twin / ours, "ours_wall_us": ours_w,
            "numpy_wall_us": twin_w, "ratio_wall": twin_w / ours_w, "rel_diff_3_steps": diff}


def load_average() -> str:
    """The 1-minute load average (other processes disturb timings), or ``"n/a"``."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "n/a"


def machine_info() -> dict:
    """CPU model, cores, caches and library versions, for the header of every report."""
    import numba
    import numpy

    info = {"cpu": platform.processor() or "unknown", "cores": os.cpu_count(),
            "python": platform.python_version(), "numpy": numpy.__version__,
            "numba": numba.__version__}
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "Model name":
            info["cpu"] = value
        elif key in ("L2 cache", "L3 cache"):
            info[key.split()[0]] = value
    flags = next((ln for ln in text.splitlines() if ln.startswith("Flags")), "")
    info["simd"] = "avx512f" if " avx512f" in flags else ("avx2" if " avx2" in flags else "?")
    return info


def print_header(title: str) -> None:
    """A title line followed by the machine description and the current load."""
    info = machine_info()
    print(f"== {title} ==")
    print(f"machine: {info['cpu']}, {info['cores']} cores, {info['simd']}, "
          f"L2 {info.get('L2', '?')}, L3 {info.get('L3', '?')}; python {info['python']}, "
          f"numpy {info['numpy']}, numba {info['numba']}; load average {load_average()}")
    for var in ("NUMBA_DISABLE_JIT", "WAVECONTROL_BOUNDSCHECK"):
        if os.environ.get(var, "0") not in ("", "0"):
            print(f"WARNING: {var} is set: the compiled kernels are not what users run")


def print_table(headers, rows) -> None:
    """Left-aligned fixed-width table of already formatted cells."""
    cells = [list(map(str, headers))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for j, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if j == 0:
            print("  ".join("-" * w for w in widths))
