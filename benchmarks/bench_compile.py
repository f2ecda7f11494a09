"""Compile time of the first solve, with an empty and with a warm numba cache.

Two fresh Python processes run the same ``solvers.wave.solve(problems.lqr(), **kwargs)`` with
``NUMBA_CACHE_DIR`` pointing at one new temporary folder: the first finds the cache empty and
compiles the fused kernel (:func:`wavecontrol.kernels.affine_run`), the second loads it from
the cache. Each reports the solve's ``compile_time`` (the first kernel call, compiled or
loaded), its ``wall_time`` (stepping), the import time of the packages and the whole process
time (wall, and the CPU time the child used). The default solve is the default LQR (double
integrator, N = 20) with the default settings (consistent form, upwind, ν = 1, η = auto,
tol = 1e-10).

Run alone: ``python benchmarks/bench_compile.py [--tol 1e-10]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from _common import ROOT, print_header, print_table

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import problems
from solvers import wave
t1 = time.perf_counter()
result = wave.solve(problems.lqr(), **json.loads(sys.argv[1]))
t2 = time.perf_counter()
print("RESULT " + json.dumps({"import_s": t1 - t0, "compile_time": result.compile_time,
                              "wall_time": result.wall_time, "solve_s": t2 - t1,
                              "steps": result.steps, "status": result.status.value,
                              "process_cpu_s": time.process_time()}))
"""


def _child(cache_dir: str, kwargs: dict) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    env.pop("NUMBA_DISABLE_JIT", None)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(kwargs)], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"child solve failed:\n{proc.stderr}")
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    out = json.loads(line[len("RESULT "):])
    out["process_s"] = elapsed
    return out


def _size(folder: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder)
               for f in files)


def run(tol=1e-10, quiet=False):
    """Cold and warm runs; returns {"cold": {...}, "warm": {...}, "cache_bytes": int}."""
    kwargs = {"tol": tol}
    if not quiet:
        print_header("compile time of the first solve: solve(problems.lqr(), tol="
                     f"{tol:g}) in fresh processes")
    with tempfile.TemporaryDirectory(prefix="wavecontrol-numba-cache-") as cache:
        cold = _child(cache, kwargs)
        size = _size(cache)
        warm = _child(cache, kwargs)
    out = {"cold": cold, "warm": warm, "cache_bytes": size}
    if not quiet:
        report(out)
    return out


def report(out) -> None:
    rows = []
    for name, label in (("cold", "1st process, empty cache"), ("warm", "2nd process, warm cache")):
        r = out[name]
        rows.append((label, f"{r['compile_time']:.2f}", f"{r['wall_time']:.2f}",
                     f"{r['import_s']:.2f}", f"{r['process_s']:.2f} ({r['process_cpu_s']:.2f})",
                     f"{r['status']} in {r['steps']}"))
    print("seconds (wall clock); compile_time = the solve's first kernel call (compile or "
          "load); whole process = wall (CPU time of the process in brackets)")
    print_table(("process", "compile_time", "stepping", "imports", "whole process (cpu)",
                 "status / tau-steps"), rows)
    print(f"numba cache written by the first process: {out['cache_bytes'] / 1e6:.1f} MB")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tol", type=float, default=1e-10, help="solve tolerance")
    a = parser.parse_args(argv)
    run(tol=a.tol)
    return 0


if __name__ == "__main__":
    sys.exit(main())
