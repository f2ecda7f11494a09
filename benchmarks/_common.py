"""Timing, machine description and table printing shared by the benchmark scripts.

Nothing here is part of the package; the scripts import it as a sibling module, which works
both when a script is run alone (``python benchmarks/bench_step.py``) and from ``run_all.py``.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time

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
