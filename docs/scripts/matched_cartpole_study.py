"""Is the L-BFGS optimum a stable fixed point of the matched τ-step?  (docs/findings.md,
"Matched port on the cart-pole swing-up (study)")

From the L-BFGS optimum u* with its exact states and costates, u* + ε·N(0, 1) (ε = 1e-6), the
matched port (ν = 1, upwind, Gauss–Newton P from zero) runs until it converges back (tol 1e-10)
or diverges; then the spectral radius of the linearized τ-step at the optimum (P settled for 3N
steps), by forward differences of the NumPy step over (x_1..N, λ, u).

    python docs/scripts/matched_cartpole_study.py
"""
import numpy as np

from problems import cartpole, pendulum
from solvers.lbfgs import solve_lbfgs
from solvers.wave import solve
from wavecontrol.matched import MatchedPort, matched_step_numpy
from wavecontrol.formulations import StepConfig
from wavecontrol.metric import Metric

CASES = [("pendulum swing-up", lambda: pendulum("swing-up")),
         ("cartpole wf=100", lambda: cartpole(u_max=None, wf=100.0)),
         ("cartpole wf=1000", lambda: cartpole(u_max=None))]


def spectral_radius(p, x, lam, u):
    cfg = StepConfig(formulation="consistent", scheme="upwind", courant=1.0)
    met = Metric(1.0, p.n, p.N)
    port = MatchedPort().bind(p)
    for _ in range(3 * p.N):             # let P settle at the optimum (u stays: g = 0 there)
        x, lam, u, *_ = matched_step_numpy(p, met, cfg, x, lam, u, port)
    P = port._state["P"].copy()
    N, n = p.N, p.n

    def step(v):
        xx = x.copy()
        xx[0, 1:] = v[:N * n].reshape(N, n)
        ll = v[N * n:N * n + (N + 1) * n].reshape(1, N + 1, n)
        uu = v[N * n + (N + 1) * n:].reshape(u.shape)
        port.commit(P.copy())
        x1, l1, u1, *_ = matched_step_numpy(p, met, cfg, xx, ll, uu, port)
        return np.concatenate([x1[0, 1:].ravel(), l1.ravel(), u1.ravel()])

    v0 = np.concatenate([x[0, 1:].ravel(), lam.ravel(), u.ravel()])
    f0, h = step(v0), 1e-7
    J = np.empty((v0.size, v0.size))
    for j in range(v0.size):
        v = v0.copy()
        v[j] += h
        J[:, j] = (step(v) - f0) / h
    return float(np.abs(np.linalg.eigvals(J)).max())


def main():
    rng = np.random.default_rng(0)
    for name, make in CASES:
        p = make()
        ref = solve_lbfgs(p, tol=1e-11)
        x = p.forward(ref.theta)
        lam = p.adjoint(x, ref.theta)
        u = ref.theta + 1e-6 * rng.standard_normal(ref.theta.shape)
        r = solve(p, port="matched", init=(x, lam, u), tol=1e-10, max_steps=3000)
        rho = spectral_radius(p, x, lam, ref.theta.copy())
        print(f"{name}: J* = {ref.objective:.12g}; from u* + 1e-6 noise: {r.status.value} after "
              f"{r.steps if r.diverged_at is None else r.diverged_at} tau-steps; spectral radius "
              f"of the linearized step at u*: {rho:.4f}", flush=True)


if __name__ == "__main__":
    main()
