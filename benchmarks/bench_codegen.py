"""Code generation and compile time of a problem written as expressions, cold and warm.

Two fresh Python processes build the pendulum swing-up through
:func:`problems.expressions.from_expressions` (the same problem as the hand-written
``problems.pendulum``), with both caches — the generated sources
(``$WAVECONTROL_CODEGEN_CACHE``) and the generated kernel modules with numba's cache beside
them (``$WAVECONTROL_CACHE_DIR``) — in one new temporary folder: the first finds them empty, the
second warm. Each reports

- ``build``: from_expressions (SymPy derivatives, CSE and printing when cold; reading the cached
  text when warm) and ``derive``/``print`` of that (zero when warm);
- ``nodes``: importing the node functions alone (wavecontrol.codegen.load_module) and calling
  each once (numba compiles them when cold, loads them when warm);
- ``kernel``: the compile (or load) time of the matched port's compiled run loop over these
  node functions (``solve(..., port="matched").compile_time``);
- per τ-step time of the compiled matched step, generated pendulum against the hand-written
  pendulum (``problems/pendulum_nodes.py``), best of 3 runs of 20 000 τ-steps each with
  ``tol = 0`` (both run the same kernel template, so the ratio is that of the node functions).

Run alone: ``python benchmarks/bench_codegen.py`` (about 3 minutes cold on 2 cores).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from _common import ROOT, print_header, print_table

CHILD = r"""
import json, time
import numpy as np
out = {}
t0 = time.perf_counter()
from problems.expressions import pendulum_expressions
from problems import pendulum

t0 = time.perf_counter()
p = pendulum_expressions(40)
out["build"] = time.perf_counter() - t0
out["derive"], out["print"] = p.codegen["derive_s"], p.codegen["print_s"]
out["cache_hit"] = p.codegen["cache_hit"]
from wavecontrol.codegen import load_module
t0 = time.perf_counter()
src, D = p.node_kernel()
mod = load_module(src, tag="bench")
x, u = np.zeros(2), np.zeros(1)
mod.layer(0, x, u, D, np.empty(2), np.empty((2, 2)), np.empty((2, 1)))
mod.running_grad(0, x, u, D, np.empty(2), np.empty(1))
mod.running_hess(0, x, u, D, np.empty((2, 2)), np.empty((1, 2)), np.empty((1, 1)))
mod.terminal_grad(x, D, np.empty(2))
mod.terminal_hess(x, D, np.empty((2, 2)))
out["nodes"] = time.perf_counter() - t0
from solvers.wave import solve
r = solve(p, port="matched", backend="numba", tol=0.0, max_steps=1, record_every=1000)
out["kernel"] = r.compile_time
if STEP:
    ref = pendulum("swing-up")
    solve(ref, port="matched", backend="numba", tol=0.0, max_steps=1, record_every=1000)
    for name, prob in (("generated", p), ("hand-written", ref)):
        best = float("inf")
        for _ in range(3):
            r = solve(prob, port="matched", backend="numba", tol=0.0, max_steps=20000,
                      record_every=20000)
            best = min(best, r.wall_time / 20000)
        out["step_" + name] = best
print(json.dumps(out))
"""


def child(env, step):
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", CHILD.replace("STEP", repr(step))], env=env,
                         cwd=ROOT, capture_output=True, text=True, check=True)
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    doc["process"] = time.perf_counter() - t0
    return doc


def main():
    print_header("code generation and compile time of an expression problem (pendulum)")
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "WAVECONTROL_CODEGEN_CACHE": os.path.join(tmp, "src"),
               "WAVECONTROL_CACHE_DIR": os.path.join(tmp, "kernels"),
               "PYTHONPATH": ROOT}
        cold = child(env, False)
        warm = child(env, True)
    rows = [[name, f"{d['build']:.3f}", f"{d['derive']:.3f}", f"{d['print']:.3f}",
             f"{d['nodes']:.3f}", f"{d['kernel']:.2f}", f"{d['process']:.1f}"]
            for name, d in (("cold", cold), ("warm", warm))]
    print_table(["cache", "build s", "derive s", "print s", "nodes s", "kernel s",
                 "process s"], rows)
    g, h = warm["step_generated"], warm["step_hand-written"]
    print(f"\nmatched tau-step (compiled): generated {g * 1e6:.2f} us, hand-written "
          f"{h * 1e6:.2f} us, ratio {g / h:.2f}")
    return {"cold": cold, "warm": warm}


if __name__ == "__main__":
    main()
