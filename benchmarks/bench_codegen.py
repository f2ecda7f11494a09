"""Code generation and compile time of problems written as expressions, cold and warm, and the
compiled matched τ-step of generated node functions.

Two fresh Python processes build the pendulum swing-up through
:func:`problems.expressions.from_expressions` (``pendulum_expressions``, the same problem as the
hand-written ``problems.pendulum``) and the cart-pole (``problems.cartpole(u_max=None)``, RK4 and
midpoint), with both caches — the generated sources (``$WAVECONTROL_CODEGEN_CACHE``) and the
generated kernel modules with numba's cache beside them (``$WAVECONTROL_CACHE_DIR``) — in one
new temporary folder: the first finds them empty, the second warm. Each reports, for the
pendulum,

- ``build``: from_expressions (SymPy derivatives, CSE and printing when cold; reading the cached
  text when warm) and ``derive``/``print`` of that (zero when warm);
- ``nodes``: importing the node functions alone (wavecontrol.codegen.load_module) and calling
  each once (numba compiles them when cold, loads them when warm);
- ``kernel``: the compile (or load) time of the matched port's compiled run loop over these
  node functions (``solve(..., port="matched").compile_time``);

and the same ``build`` and ``kernel`` for the two cart-poles. The warm process then times the
compiled matched τ-step — ``solve(prob, port=..., backend="numba", tol=0)``, its
``wall_time`` (compile excluded) over the τ-steps it ran — on five cases, interleaved, best
of 11 runs each, all in that one process:

- the generated Euler pendulum against the hand-written one (``problems/pendulum_nodes.py``):
  the same kernel template, so the ratio is that of the node functions (N = 40, 20 000 τ-steps
  a run);
- the cart-pole with RK4 and with midpoint layers (N = 40, 5 000 τ-steps a run) at
  ``wf = 10``: ``wf`` is data, not code, so these are the node functions and kernel of
  ``cartpole(u_max=None)``, whose default ``wf = 1000`` makes the Gauss–Newton matched port
  diverge at τ-step 12 (docs/problems.md), too few to time;
- and the cart-pole's own settings at the default ``wf = 1000`` (the Newton node model with
  its terminal ramp, docs/theory.md §11.7; 2 000 τ-steps a run).

These runs pass ``MatchedPort()`` (the Gauss–Newton model) except the last, which names the
port ``"matched"`` and so takes the problem's ``matched_settings``.

Run alone: ``python benchmarks/bench_codegen.py`` (about 2 minutes on 2 cores).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from _common import ROOT, load_average, print_header, print_table

#: (label, problem expression, τ-steps per timed run, port expression) of the step timings;
#: MatchedPort() is the Gauss–Newton model, "matched" by name the problem's matched_settings
STEP_PROBLEMS = [
    ("pendulum euler, generated", "pendulum_expressions(40)", 20000, "MatchedPort()"),
    ("pendulum euler, hand-written", "pendulum('swing-up')", 20000, "MatchedPort()"),
    ("cartpole rk4 (wf=10)", "cartpole(u_max=None, wf=10.0)", 5000, "MatchedPort()"),
    ("cartpole midpoint (wf=10)", "cartpole(u_max=None, wf=10.0, integrator='midpoint')", 5000,
     "MatchedPort()"),
    ("cartpole rk4 (wf=1000), Newton + ramp", "cartpole(u_max=None)", 2000, "'matched'"),
]
REPEATS = 11

CHILD = r"""
import json, sys, time
import numpy as np
cfg = json.loads(sys.argv[1])
out = {}
from problems.expressions import pendulum_expressions
from problems import cartpole, pendulum
from solvers.wave import solve
import wavecontrol.ports
from wavecontrol.matched import MatchedPort

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
r = solve(p, port="matched", backend="numba", tol=0.0, max_steps=1, record_every=1000)
out["kernel"] = r.compile_time
ref = pendulum("swing-up")      # the hand-written twin's kernel (not reported)
solve(ref, port="matched", backend="numba", tol=0.0, max_steps=1, record_every=1000)
for integ in ("rk4", "midpoint"):
    t0 = time.perf_counter()
    c = cartpole(u_max=None, integrator=integ)
    out["cp_build_" + integ] = time.perf_counter() - t0
    r = solve(c, port="matched", backend="numba", tol=0.0, max_steps=1, record_every=1000)
    out["cp_kernel_" + integ] = r.compile_time
if cfg['step']:
    probs = [(label, eval(expr), steps, port)
             for label, expr, steps, port in cfg['problems']]
    for _, prob, _, port in probs:
        solve(prob, port=eval(port), backend="numba", tol=0.0, max_steps=1,
              record_every=1000)
    best = {label: float("inf") for label, _, _, _ in probs}
    ran = {}
    for _ in range(cfg['repeats']):  # interleaved: a slow spell of the machine hits all alike
        for label, prob, steps, port in probs:
            r = solve(prob, port=eval(port), backend="numba", tol=0.0, max_steps=steps,
                      record_every=steps)
            best[label] = min(best[label], r.wall_time / max(r.steps, 1))
            ran[label] = [r.steps, r.status.value]
    out["step"], out["step_ran"] = best, ran
print(json.dumps(out))
"""


def child(env, step):
    t0 = time.perf_counter()
    cfg = json.dumps({"step": step, "problems": STEP_PROBLEMS, "repeats": REPEATS})
    res = subprocess.run([sys.executable, "-c", CHILD, cfg], env=env, cwd=ROOT,
                         capture_output=True, text=True, check=True)
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    doc["process"] = time.perf_counter() - t0
    return doc


def main():
    print_header("code generation and compile time of expression problems; generated τ-step")
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "WAVECONTROL_CODEGEN_CACHE": os.path.join(tmp, "src"),
               "WAVECONTROL_CACHE_DIR": os.path.join(tmp, "kernels"),
               "PYTHONPATH": ROOT}
        cold = child(env, False)
        warm = child(env, True)
    rows = [[name, f"{d['build']:.3f}", f"{d['derive']:.3f}", f"{d['print']:.3f}",
             f"{d['nodes']:.3f}", f"{d['kernel']:.2f}", f"{d['process']:.1f}"]
            for name, d in (("cold", cold), ("warm", warm))]
    print("pendulum (Euler, N = 40)")
    print_table(["cache", "build s", "derive s", "print s", "nodes s", "kernel s",
                 "process s"], rows)
    print("\ncartpole(u_max=None) (N = 40)")
    print_table(["integrator", "cold build s", "cold kernel s", "warm build s", "warm kernel s"],
                [[i, f"{cold['cp_build_' + i]:.3f}", f"{cold['cp_kernel_' + i]:.2f}",
                  f"{warm['cp_build_' + i]:.3f}", f"{warm['cp_kernel_' + i]:.2f}"]
                 for i in ("rk4", "midpoint")])
    step, ran = warm["step"], warm["step_ran"]
    print(f"\nmatched tau-step (compiled, best of {REPEATS} interleaved runs in one process; "
          f"load {load_average()})")
    print_table(["problem", "us / tau-step", "tau-steps a run", "status"],
                [[label, f"{step[label] * 1e6:.2f}", str(ran[label][0]), ran[label][1]]
                 for label, _, _, _ in STEP_PROBLEMS])
    g, h = step[STEP_PROBLEMS[0][0]], step[STEP_PROBLEMS[1][0]]
    print(f"\nEuler pendulum: generated / hand-written = {g / h:.2f}")
    return {"cold": cold, "warm": warm}


if __name__ == "__main__":
    main()
