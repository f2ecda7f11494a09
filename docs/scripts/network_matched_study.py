"""A matched backward wave on networks (shared θ) against the resistive port: a study.

Issue #10 item 6. The matched port of :mod:`wavecontrol.matched` needs per-node controls (batch
1). On a network θ_k is shared by the B samples, so this script tries the nearest thing that a
network allows, as a plain NumPy τ-step on the unpadded layers (ν = 1, every node at once from
its neighbours' values of the previous step; sample b, layer map f_k(x; θ_k) =
s x + h σ(W_k x + b_k), A_k^b = ∂f_k/∂x at x_k^b, B_k^b = ∂f_k/∂θ_k)::

    λ̃_{k+1}^b = s_{k+1}^b + P_{k+1}^b f_k(x_k^b; θ_k)           (λ_{k+1} at the coming x_{k+1})
    g_k       = ∇R_k + Σ_b B_k^bᵀ λ̃_{k+1}^b                     (the θ_k-gradient it predicts)
    θ_k      ← θ_k − κ C_k⁻¹ g_k                                 (C_k: layer-local curvature)
    x_{k+1}^b ← f_k(x_k^b; θ_k new),  x_0 = x_in
    λ_k^b     = A_k^bᵀ (s_{k+1}^b + P_{k+1}^b x_{k+1}^b new)     (A_k at the new θ_k)
    P_k^b     = A_k^bᵀ P_{k+1}^b A_k^b,  s_k^b = λ_k^b − P_k^b x_k^b
    P_N^b     = Gauss–Newton Hessian of the loss of sample b,  s_N^b = ∇ℓ^b − P_N^b x_N^b

(R_k = (wd/2)‖θ_k‖² does not depend on x, so ∇²_xx R_k = 0.) P_k^b is the per-sample open-loop
Gauss–Newton value Hessian, which travels backward like λ. Any fixed point has x and λ the
forward and adjoint passes and g = the backprop gradient, so θ is stationary exactly where
∇J = 0, whatever C is. C_k is one of

- ``kfac``: C_k = G_k ⊗ A_k with A_k = mean_b x̃_k^b x̃_k^bᵀ (x̃ = [x; 1], the layer input's
  second moment) and G_k = Σ_b h² D_k^b P_{k+1}^b D_k^b (D = diag σ'(z): the Gauss–Newton second
  moment of the backward signal), each damped by √γ times its mean eigenvalue; then
  C_k⁻¹ vec(V) = vec(G_d⁻¹ V A_d⁻¹) with V = [∂W | ∂b];
- ``block``: the exact Gauss–Newton block Σ_b B_k^bᵀ P_{k+1}^b B_k^b + γ (tr/m) I of the layer.

The gain κ is the step length (κ = 1: a per-layer Gauss–Newton step). A layer whose curvature has
not arrived yet (P_{k+1} = 0: the first N − k τ-steps) keeps its θ.

Against it: the resistive port ``solve(p, port="gd", eta=η)`` (consistent form, upwind, ν = 1,
zero fields, the same θ0) at η = 1, 5, 10, 20, 50 and 100 η_auto, compiled (``backend="auto"``,
best wall time of 3 runs: the shared machine's load makes single runs up to 50x slower) and, for
the first seed, as the NumPy twin (``backend="numpy"``, the like-for-like wall time for this
NumPy study). gd measures the training accuracy on all samples every ``--check`` τ-steps and
stops at ``--target``; a matched run measures it after every τ-step and runs on to
``--horizon`` τ-steps to show what happens after the target (divergence, oscillation or
settling); "locked" is the same update with the exact gradient and converged P at every
iteration (one round trip, 2N τ-steps, each). The test accuracy is on a fresh draw of the same
generator (seed :data:`TEST_SEED`, same size). Data sets and networks are those of
``docs/scripts/train_networks.py`` (128 samples, full batch); ``--seeds`` reseeds both the data
and θ0. All BLAS calls run on one thread.

Usage (from the repository root; the whole study took 161 s on the shared 2-core machine)::

    nice -n 10 python docs/scripts/network_matched_study.py
    nice -n 10 python docs/scripts/network_matched_study.py --problems mlp --seeds 0 \
        --precond kfac --dampings 1 --gains 0.5
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from threadpoolctl import threadpool_limits

from problems import mlp, neural_ode
from problems.datasets import make_dataset
from problems.network import ACTIVATIONS
from solvers.wave import auto_eta, solve

PRECONDITIONERS = ("kfac", "block")
#: the run counts as diverged when the loss exceeds this or a field is not finite
LOSS_BOUND = 1e6


class MatchedNetworkStep:
    """The matched network τ-step of the module docstring on a :class:`NetworkProblem`.

    Parameters
    ----------
    problem : NetworkProblem
        Full batch or mini-batch (its current batch is read at construction).
    precond : ``"kfac"`` or ``"block"``
    damping : float ≥ 0
        γ, relative to the curvature's mean eigenvalue.
    gain : float > 0
        κ, the step length.
    """

    def __init__(self, problem, precond="kfac", damping=1e-2, gain=1.0):
        if precond not in PRECONDITIONERS:
            raise ValueError(f"unknown precond {precond!r}; valid: {', '.join(PRECONDITIONERS)}")
        if not (math.isfinite(damping) and damping >= 0):
            raise ValueError(f"damping must be a finite number >= 0, got {damping!r}")
        if not (math.isfinite(gain) and gain > 0):
            raise ValueError(f"gain must be a finite number > 0, got {gain!r}")
        self.p, self.precond, self.damping, self.gain = problem, precond, float(damping), gain
        self.N = problem.N
        # kernel_data: widths, s, h, activation code, linear last layer, loss code, wd,
        # read-out (K, n_N), one-hot targets (B, K), unpadded inputs (B, n_0)
        (_, self.s, self.h, _, lin_last, _, self.wd, self.readout, self.targets,
         self.x_in) = problem.kernel_data()
        self.lin = np.zeros(self.N, dtype=bool)
        self.lin[-1] = lin_last
        self.sigma, self.dsigma = ACTIVATIONS[problem.activation]
        self.B = self.x_in.shape[0]
        self.reset(problem.theta0)

    def reset(self, theta):
        """Zero fields (x_0 = x_in, every other x, s, P zero) and θ = ``theta`` (N, m)."""
        w = self.p.layout.widths
        self.W = [W.copy() for W, _ in self.p.layers(theta)]
        self.b = [b.copy() for _, b in self.p.layers(theta)]
        self.x = [self.x_in.copy()] + [np.zeros((self.B, w[k])) for k in range(1, self.N + 1)]
        self.sv = [np.zeros((self.B, w[k])) for k in range(self.N + 1)]
        self.P = [np.zeros((self.B, w[k], w[k])) for k in range(self.N + 1)]

    def set_converged_fields(self):
        """x, λ, P of the forward, adjoint and Gauss–Newton value-Hessian recursions at the
        current θ (the fields a converged run holds), s = λ − P x."""
        N = self.N
        ds = []
        for k in range(N):
            f, d = self._layer(k, self.x[k], self.W[k], self.b[k])
            self.x[k + 1] = f
            ds.append(d)
        lam, self.P[N] = self.terminal(self.x[N])
        self.sv[N] = lam - np.einsum("bij,bj->bi", self.P[N], self.x[N])
        for k in range(N - 1, 0, -1):
            J = self._jac(k, ds[k], self.W[k])
            lam = np.einsum("bji,bj->bi", J, lam)
            self.P[k] = J.transpose(0, 2, 1) @ (self.P[k + 1] @ J)
            self.sv[k] = lam - np.einsum("bij,bj->bi", self.P[k], self.x[k])

    @property
    def theta(self):
        return self.p.pack(self.W, self.b)

    # -- layer pieces ----------------------------------------------------------------------
    def _layer(self, k, xk, W, b):
        """f_k(x), σ'(z) (1 on a linear layer) for x (B, n_k)."""
        z = xk @ W.T + b
        if self.lin[k]:
            a, d = z, np.ones_like(z)
        else:
            a, d = self.sigma(z), self.dsigma(z)
        f = self.h * a + (self.s * xk if self.s else 0.0)
        return f, d

    def _jac(self, k, d, W):
        """A_k^b = s I + h diag(d^b) W: (B, n_{k+1}, n_k)."""
        J = self.h * d[:, :, None] * W[None]
        if self.s:
            J = J + self.s * np.eye(W.shape[0], W.shape[1])[None]
        return J

    def terminal(self, xN):
        """(∇ℓ^b, GN Hessian of ℓ^b) at x_N: (B, n_N), (B, n_N, n_N); ℓ is the batch mean."""
        B, R = self.B, self.readout
        z = xN @ R.T
        if self.p.loss == "mse":
            gz = (z - self.targets) / B
            Hz = np.broadcast_to(np.eye(z.shape[1]) / B, (B, z.shape[1], z.shape[1]))
        else:
            q = np.exp(z - z.max(axis=1, keepdims=True))
            q /= q.sum(axis=1, keepdims=True)
            gz = (q - self.targets) / B
            Hz = (np.einsum("bi,ij->bij", q, np.eye(z.shape[1]))
                  - np.einsum("bi,bj->bij", q, q)) / B
        return gz @ R, R.T @ Hz @ R

    def curvature(self, k):
        """Layer k's damped curvature at the current fields (x_k, θ_k, P_{k+1}), or None while
        P_{k+1} = 0: ``(G_d, A_d)`` for ``kfac`` (C_k = G_d ⊗ A_d), the matrix C_k (m_k, m_k)
        for ``block``, both in the order of V = [∂W | ∂b] (n_{k+1}, n_k + 1) read row-major."""
        xk, Pn = self.x[k], self.P[k + 1]
        _, d = self._layer(k, xk, self.W[k], self.b[k])
        nout, nin = self.W[k].shape
        xt = np.concatenate([xk, np.ones((self.B, 1))], axis=1)          # x̃ (B, n_k + 1)
        hd = self.h * d
        if self.precond == "kfac":
            G = np.einsum("bi,bij->ij", hd, Pn * hd[:, None, :])
            A = xt.T @ xt / self.B
            tg, ta = np.trace(G) / nout, np.trace(A) / (nin + 1)
            if not tg > 0:
                return None
            r = math.sqrt(self.damping)
            return G + r * tg * np.eye(nout), A + r * ta * np.eye(nin + 1)
        # exact GN block: C[(i,j),(i',j')] = Σ_b h² d_i P_ii' d_i' x̃_j x̃_j' (+ wd from R_k)
        M = (hd[:, :, None] * Pn * hd[:, None, :]).reshape(self.B, -1)
        X2 = np.einsum("bj,bl->bjl", xt, xt).reshape(self.B, -1)
        m = nout * (nin + 1)
        C = (M.T @ X2).reshape(nout, nout, nin + 1, nin + 1).transpose(0, 2, 1, 3).reshape(m, m)
        tc = np.trace(C) / m
        if not tc > 0:
            return None
        return C + (self.damping * tc + self.wd) * np.eye(m)

    def _direction(self, k, gW, gb):
        """−C_k⁻¹ [gW | gb] as an (n_{k+1}, n_k + 1) array; None while C_k = 0."""
        C = self.curvature(k)
        if C is None:
            return None
        V = np.concatenate([gW, gb[:, None]], axis=1)
        if self.precond == "kfac":
            Gd, Ad = C
            return -np.linalg.solve(Gd, np.linalg.solve(Ad, V.T).T)      # vec(G⁻¹ V A⁻¹)
        return -np.linalg.solve(C, V.reshape(-1)).reshape(V.shape)

    def predicted_gradient(self):
        """g_k of every layer at the current fields (the module docstring's first two lines)."""
        out = []
        wd = self.wd
        for k in range(self.N):
            f, d = self._layer(k, self.x[k], self.W[k], self.b[k])
            lt = self.sv[k + 1] + np.einsum("bij,bj->bi", self.P[k + 1], f)
            g = self.h * d * lt
            out.append((g.T @ self.x[k] + wd * self.W[k], g.sum(axis=0) + wd * self.b[k]))
        return out

    def directions(self):
        """The unscaled update −C_k⁻¹ g_k per layer as (dW, db) (zeros where C_k = 0)."""
        out = []
        for k, (gW, gb) in enumerate(self.predicted_gradient()):
            D = self._direction(k, gW, gb)
            if D is None:
                out.append((np.zeros_like(gW), np.zeros_like(gb)))
            else:
                out.append((D[:, :-1], D[:, -1]))
        return out

    def step(self):
        """One τ-step (every node from the previous step's fields)."""
        N, kap = self.N, self.gain
        dirs = self.directions()
        W1 = [W + kap * dW for W, (dW, _) in zip(self.W, dirs)]
        b1 = [b + kap * db for b, (_, db) in zip(self.b, dirs)]
        x1, s1, P1 = [self.x_in.copy()], [None] * (N + 1), [None] * (N + 1)
        for k in range(N):
            f, d = self._layer(k, self.x[k], W1[k], b1[k])
            x1.append(f)
            if k == 0:                       # λ_0, P_0 feed no layer
                s1[0], P1[0] = self.sv[0], self.P[0]
                continue
            J = self._jac(k, d, W1[k])
            lam = np.einsum("bji,bj->bi", J, self.sv[k + 1]
                            + np.einsum("bij,bj->bi", self.P[k + 1], f))
            Pk = J.transpose(0, 2, 1) @ (self.P[k + 1] @ J)
            P1[k] = 0.5 * (Pk + Pk.transpose(0, 2, 1))
            s1[k] = lam - np.einsum("bij,bj->bi", P1[k], self.x[k])
        gN, HN = self.terminal(x1[N])
        P1[N] = HN
        s1[N] = gN - np.einsum("bij,bj->bi", HN, x1[N])
        self.W, self.b, self.x, self.sv, self.P = W1, b1, x1, s1, P1


def make(name, n_samples, seed=0):
    """The data sets and networks of train_networks.py (full batch)."""
    if name == "neural-ode":
        return neural_ode(dataset="moons", n_samples=n_samples, N=10, T=2.0, augment=2,
                          loss="mse", seed=seed)
    return mlp(widths=(2, 32, 16, 16, 3), dataset="spirals", n_samples=n_samples,
               loss="cross-entropy", seed=seed)


#: seed of the held-out draw (distinct from every training seed the study uses)
TEST_SEED = 12345


def test_set(name, n_samples):
    """A fresh draw of the same generator (seed TEST_SEED, same size): the held-out set."""
    return make_dataset("moons" if name == "neural-ode" else "spirals", n_samples=n_samples,
                        seed=TEST_SEED)


def _finite_loss(p, theta):
    with np.errstate(all="ignore"):
        J = p.objective(theta)
    return J if np.isfinite(J) and J < LOSS_BOUND and np.all(np.isfinite(theta)) else None


def run_matched(p, precond, damping, gain, target, horizon):
    """Run the matched τ-step for ``horizon`` steps, the accuracy measured after every step.

    Returns a dict: ``hit`` (first τ-step with training accuracy ≥ target, or None), ``wall``
    (seconds to it, or to the end), ``per_step`` (ms), ``status`` (``diverged at k`` when the
    loss leaves the bound, else ``ok``), the final θ, loss, ‖∇J‖ and the accuracy range over
    the last half of the run.
    """
    st = MatchedNetworkStep(p, precond, damping, gain)
    accs, hit, wall_hit, status = [], None, None, "ok"
    t0 = time.perf_counter()
    th = st.theta
    for step in range(1, horizon + 1):
        try:
            with np.errstate(all="ignore"):
                st.step()
        except np.linalg.LinAlgError:
            status = f"singular curvature at {step}"
            break
        th = st.theta
        if _finite_loss(p, th) is None:
            status = f"diverged at {step}"
            break
        accs.append(p.accuracy(th))
        if hit is None and accs[-1] >= target:
            hit, wall_hit = step, time.perf_counter() - t0
    wall = time.perf_counter() - t0
    steps = len(accs) + (status != "ok")
    ok = status == "ok"
    tail = accs[len(accs) // 2:] or [math.nan]
    return {"hit": hit, "wall": wall_hit if hit else wall, "per_step": 1e3 * wall / steps,
            "status": status, "theta": th if ok else None, "loss": _finite_loss(p, th),
            "grad": float(np.abs(p.gradient(th)).max()) if ok else math.nan,
            "tail": (min(tail), max(tail))}


def run_locked(p, precond, damping, gain, target, iters):
    """The same update with the exact gradient and converged P at every iteration (a locked
    schedule: one iteration = one round trip of 2N τ-steps). Iterations to ``target``."""
    st = MatchedNetworkStep(p, precond, damping, gain)
    for it in range(1, iters + 1):
        try:
            with np.errstate(all="ignore"):
                st.set_converged_fields()
                dirs = st.directions()
        except np.linalg.LinAlgError:
            return None, f"singular curvature at {it}"
        st.W = [W + gain * dW for W, (dW, _) in zip(st.W, dirs)]
        st.b = [b + gain * db for b, (_, db) in zip(st.b, dirs)]
        th = st.theta
        if _finite_loss(p, th) is None:
            return None, f"diverged at {it}"
        if p.accuracy(th) >= target:
            return it, "ok"
    return None, "ok"


def run_gd(p, eta, target, check, max_steps, backend):
    """solve(p, port="gd") from zero fields, accuracy every ``check`` τ-steps, stop at
    ``target``: (hit or None, loop wall time, status, final θ)."""
    def callback(step, info):
        return p.accuracy(info["theta"]) >= target

    res = solve(p, formulation="consistent", scheme="upwind", courant=1.0, port="gd",
                eta=eta, max_steps=max_steps, tol=0.0, callback=callback,
                callback_every=check, record_every=max_steps, backend=backend)
    hit = res.steps if res.status.value == "interrupted" else None
    status = f"diverged at {res.diverged_at}" if res.diverged_at else "ok"
    return hit, res.wall_time, status, res.theta


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", nargs="+", default=["neural-ode", "mlp"])
    ap.add_argument("--n-samples", type=int, default=128)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2],
                    help="data and θ0 seeds (the numpy gd runs take the first only)")
    ap.add_argument("--target", type=float, default=0.97)
    ap.add_argument("--check", type=int, default=10, help="gd: τ-steps between checks")
    ap.add_argument("--precond", nargs="+", default=list(PRECONDITIONERS))
    ap.add_argument("--dampings", nargs="+", type=float, default=[1e-3, 1e-2, 1e-1, 1.0])
    ap.add_argument("--gains", nargs="+", type=float, default=[1.0, 0.5, 0.2])
    ap.add_argument("--horizon", type=int, default=200, help="τ-steps of each matched run")
    ap.add_argument("--block-seeds", type=int, default=1,
                    help="run the 'block' preconditioner on the first this many seeds only")
    ap.add_argument("--gd-mults", nargs="+", type=float,
                    default=[1.0, 5.0, 10.0, 20.0, 50.0, 100.0],
                    help="gd gains in units of eta_auto")
    ap.add_argument("--gd-numpy-mults", nargs="+", type=float, default=[1.0, 10.0],
                    help="gd gains also run as the NumPy twin (first seed only)")
    ap.add_argument("--gd-max-steps", type=int, default=8000)
    ap.add_argument("--repeats", type=int, default=3, help="compiled gd: best of this many")
    args = ap.parse_args()
    # one BLAS thread for every run (the compiled gd kernel sets this itself): on the shared
    # 2-core machine threaded BLAS made the small solves of the matched step 3-20x slower
    threadpool_limits(limits=1, user_api="blas")
    t_all = time.perf_counter()
    for name in args.problems:
        for seed in args.seeds:
            p = make(name, args.n_samples, seed)
            Xt, yt = test_set(name, args.n_samples)
            base = auto_eta(p, 1.0)
            print(f"\n== {name}, seed {seed}: widths {p.layout.widths.tolist()}, "
                  f"{p.X_pool.shape[0]} samples, N = {p.N}, light cone 2N = {2 * p.N} "
                  f"tau-steps, eta_auto {base:.4g}, target {args.target:g}")
            print(f"{'run':<30} {'to target':>9} {'wall s':>7} {'ms/step':>7} {'train':>5} "
                  f"{'test':>5}  after the run")

            def accs(th):
                if th is None:
                    return f"{'-':>5} {'-':>5}"
                return f"{p.accuracy(th):5.3f} {p.accuracy(th, Xt, yt):5.3f}"

            for mult in args.gd_mults:
                eta = mult * base
                backends = ["auto"] + (["numpy"] if mult in args.gd_numpy_mults
                                       and seed == args.seeds[0] else [])
                for be in backends:
                    solve(p, port="gd", eta=eta, max_steps=1, tol=0.0, backend=be)  # compile
                    reps = [run_gd(p, eta, args.target, args.check, args.gd_max_steps, be)
                            for _ in range(args.repeats if be == "auto" else 1)]
                    hit, wall, status, th = min(reps, key=lambda r: r[1])
                    per = 1e3 * wall / (hit or args.gd_max_steps)
                    label = f"gd {mult:g}x auto ({'compiled' if be == 'auto' else 'numpy'})"
                    spread = (f" (best of {len(reps)}, worst {max(r[1] for r in reps):.2f} s)"
                              if len(reps) > 1 else "")
                    print(f"{label:<30} {hit or '-':>9} {wall:7.2f} {per:7.3f} "
                          f"{accs(None if status != 'ok' else th)}  {status}{spread}",
                          flush=True)
            for pc in args.precond:
                if pc == "block" and seed not in args.seeds[:args.block_seeds]:
                    continue
                for gam in args.dampings:
                    for kap in args.gains:
                        r = run_matched(p, pc, gam, kap, args.target, args.horizon)
                        it, lst = run_locked(p, pc, gam, kap, args.target, 100)
                        locked = (f"locked {it} it = {it * 2 * p.N} tau" if it else
                                  f"locked {lst if lst != 'ok' else 'not in 100 it'}")
                        after = (f"{r['status']}, J {r['loss']:.3g}, |grad|max {r['grad']:.1e}, "
                                 f"acc {r['tail'][0]:.2f}-{r['tail'][1]:.2f} over steps "
                                 f"{args.horizon // 2}-{args.horizon}" if r["status"] == "ok"
                                 else r["status"])
                        label = f"matched {pc} gamma={gam:g} kappa={kap:g}"
                        print(f"{label:<30} {r['hit'] or '-':>9} {r['wall']:7.2f} "
                              f"{r['per_step']:7.3f} {accs(r['theta'])}  {after}; {locked}",
                              flush=True)
    print(f"\ntotal {time.perf_counter() - t_all:.1f} s")


if __name__ == "__main__":
    main()
