"""Wave (matched, NumPy) vs L-BFGS on the library classics; printed as a markdown table."""
import time, numpy as np
from problems import cartpole, vanderpol, unicycle
from solvers.lbfgs import solve_lbfgs
from solvers.wave import solve
cases = [("vanderpol", vanderpol, {}), ("vanderpol", vanderpol, dict(u_min=None, u_max=None)),
         ("unicycle", unicycle, {}), ("cartpole", cartpole, {}),
         ("cartpole", cartpole, dict(u_max=None, N=20, wf=10.0))]
for name, mk, kw in cases:
    p = mk(**kw)
    t0 = time.perf_counter(); r = solve_lbfgs(p, tol=1e-10); tl = time.perf_counter() - t0
    row = f"| {name} {kw or 'defaults'} | {r.objective:.12g} | {r.steps} | {tl:.2f} |"
    if p.bounds is None:
        t0 = time.perf_counter()
        w = solve(p, port="matched", backend="numpy", tol=1e-10, max_steps=3000)
        tw = time.perf_counter() - t0
        gap = abs(w.objective - r.objective) / abs(r.objective)
        row += f" matched: {w.status.value}, {w.steps} | {gap:.1e} | {tw:.2f} |"
    else:
        nact = int(np.sum((r.theta <= p.bounds[0] + 1e-9) | (r.theta >= p.bounds[1] - 1e-9)))
        row += f" (bounded: {nact} active) | | |"
    print(row, flush=True)
