"""Depth-parallel wave-PMP runs over MPI: the nodes split into contiguous blocks, one per rank.

:func:`solve_parallel` takes the arguments of :func:`solvers.wave.solve` and a communicator.
Rank r owns the nodes ``[lo_r, hi_r)`` (and the layers k of those nodes, k < N) and keeps them
together with ``g`` ghost nodes (and layers) on each side, ``g`` the stencil reach of the
τ-step (:func:`stencil_reach`). Every τ-step it

1. steps the two strips of ``g`` owned nodes next to its neighbours (the compiled kernel on a
   copy of ``3g`` nodes) and sends them with ``Isend`` (its halo: x and λ, or w±, and θ),
2. steps its whole extended block with the same compiled kernel (one τ-step per call, or
   ``halo_depth`` of them with as many times the ghosts; ``tol < 0``, no divergence bound, no
   recording), while the halos travel,
3. waits for its neighbours' halos and writes them into its ghosts.

The kernels' boundary resets (x_0 = x_in, λ_N = ∇ℓ(x_N)) then touch only ghosts; node
arithmetic is local, so the owned nodes are bit for bit those of the serial run
(``docs/parallel.md``).

Global quantities are formed only on the checking schedule (every ``check_every`` τ-steps,
default ``record_every``, and every ``record_every`` τ-steps): the blocks are gathered on rank
0 (as they are at the end of each chunk for the run file), which runs *one serial τ-step* of the compiled kernel on the whole field. That step gives
the convergence decision (residuals ≤ tol), the divergence check and the history row with the
same numbers as the serial run, and its new fields are discarded. Rank 0 keeps the run file
(:class:`solvers.recording.RunRecorder`), which is the serial format: a parallel run resumes
serially or with any number of ranks, and a serial run resumes in parallel.

Differences from the serial run, all on the schedule: convergence is checked every
``check_every`` steps (serial: every step), so with ``check_every = record_every = 1`` a run
is the serial one bit for bit (status, steps, fields, residuals, history), and otherwise its
fields are those of the serial run stopped at the same step; a divergence between two checks
is found at the next one, and rank 0 replays the serial kernel from the check before to the
serial step of the divergence (same ``diverged_at``, fields and history as the serial run);
``ledger_max_rel_error`` is the maximum over the checked (and replayed) steps.

``staleness = d > 0`` is the asynchronous mode: a rank does not wait for a halo that is late
by at most ``d`` τ-steps and steps with the newest one it has (``async_mode="newest"``,
timing-dependent) or always with the one exactly ``d`` steps old (``"lag"``, deterministic:
what the measurements use). Its fixed points are those of the synchronous step (at a fixed
point every old halo equals the current one), so a converged run is still the PMP solution.
"""

from __future__ import annotations

import math
import time
from collections import deque

import numpy as np

from wavecontrol import kernels, netkernels
from wavecontrol.formulations import energy, transport_scheme
from wavecontrol.matched import bound_arrays
from wavecontrol.metric import Metric
from wavecontrol.result import Status, WaveResult
from wavecontrol.schemes import SCHEME_CODES

ASYNC_MODES = ("newest", "lag")


def have_mpi() -> str | None:
    """None when mpi4py imports, else the reason (one line)."""
    import importlib
    try:
        importlib.import_module("mpi4py.MPI")
    except ImportError as exc:          # an optional extra: pip install -e '.[mpi]'
        return f"mpi4py is not installed ({exc}); pip install -e '.[mpi]'"
    return None


#: environment variables in which MPI launchers pass the number of ranks (MPICH/Hydra and
#: PMIx, Open MPI, Slurm)
_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "SLURM_NTASKS")


def launched_ranks() -> int:
    """The number of ranks this process was launched with (1 outside ``mpiexec``), read from
    the launcher's environment so that MPI is not initialized to find out."""
    import os
    for name in _SIZE_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


def world():
    """``MPI.COMM_WORLD`` (mpi4py imported on first use)."""
    why = have_mpi()
    if why is not None:
        raise RuntimeError(why)
    from mpi4py import MPI
    return MPI.COMM_WORLD


def stencil_reach(formulation: str, scheme: str, courant: float) -> int:
    """Nodes a τ-step reads on each side of a node (and of a layer's two nodes).

    Consistent form (and the matched port, whose step is a polynomial in its one-node map):
    upwind 1 (r_x,k reads x_{k−1}, θ_{k−1}; r_λ,k and θ_k read λ_{k+1}), Lax–Wendroff 2 (the
    correction reads r_{k∓1}), characteristic ⌈ν⌉ (the departure point lies between k − ⌊ν⌋
    and k − ⌈ν⌉). Paper form: the transport's reach (upwind and Lax–Wendroff 1,
    characteristic ⌈ν⌉) plus 1, since the sources are the residuals of the transported fields
    (r_x,k reads x̄_{k−1}); with ``sources="before"`` one less would do, the same is kept.
    Each value is tight: one node less breaks bit-identity at once (measured, docs/parallel.md).
    """
    c = max(1, int(math.ceil(courant)))
    if formulation == "consistent":
        return {"upwind": 1, "lax-wendroff": 2}.get(scheme, c)
    return {"upwind": 2, "lax-wendroff": 2}.get(scheme, c + 1)


def partition(N: int, size: int) -> list[tuple[int, int]]:
    """Owned node ranges ``[lo, hi)`` of ``size`` ranks over nodes 0..N, as equal as can be."""
    N1 = N + 1
    return [(r * N1 // size, (r + 1) * N1 // size) for r in range(size)]


# --------------------------------------------------------------------------------------------
# the compiled kernels on a block of nodes
# --------------------------------------------------------------------------------------------
class _Kernel:
    """The serial kernel call of one problem and the same call on a node range ``[a, b)``.

    The node fields are a list of ``(B', N + 1, c)`` arrays: (u, v) and, for the matched port,
    its state P as ``(1, N + 1, n·n)`` (a view of the port's own array); θ is ``(N, m)``.
    """

    def __init__(self, problem, config, met, port, dtype):
        self.problem, self.dt = problem, problem.dt
        self.N, self.n = problem.N, problem.n
        nu = float(config["courant"])
        explicit = config["termination"] == "explicit"
        self.port = port
        if port.name == "matched":
            from wavecontrol.codegen import kernel_module
            from wavecontrol.problem import AffineQuadraticProblem
            from problems.builder import EulerProblem
            source, D = problem.node_kernel()
            if isinstance(problem, AffineQuadraticProblem):
                self.layer_data = 5         # D = (A, B, c, Q, R, Qf, gf): five per layer
            elif isinstance(problem, EulerProblem):
                self.layer_data = 0         # autonomous: the same data for every layer
            else:
                raise ValueError(f"the parallel driver runs the matched port on affine and "
                                 f"Euler problems (it must know which node data are per "
                                 f"layer), not on {type(problem).__name__}")
            self.kind = "matched"
            self.module = kernel_module(source)
            self.D = D
            if problem.bounds is not None:
                raise ValueError("the parallel driver runs the matched port without control "
                                 f"bounds; {problem.name!r} has bounds")
            if port.newton or port.ramp_steps:
                raise ValueError("the parallel driver runs the matched port's Gauss–Newton "
                                 "model without a terminal ramp (hessian 'gauss-newton', "
                                 f"ramp_steps 0); got {port!r}")
            self.head = (SCHEME_CODES[config["scheme"]], explicit, nu, float(port.floor), False,
                         1.0, 0, 1.0, False, *bound_arrays(problem))
            self.x_in = np.ascontiguousarray(problem.x_in[0], dtype=float)
            self.Th = np.ascontiguousarray(met.theta)
            self.Ti = np.ascontiguousarray(met.theta_inv)
        elif problem.family == "affine":
            self.kind = "affine"
            A, Bm, c, Q, R, Qf, gf, x_in = problem.kernel_data()
            Ti_N = met.theta_inv[-1]
            Mterm = np.ascontiguousarray(np.linalg.inv(np.eye(problem.n) + Ti_N.T @ Qf @ Ti_N))
            form = config["formulation"]
            alpha = config["alpha"] if form == "paper" else nu
            self.head = (kernels.FORM_CODES[form],
                         SCHEME_CODES[transport_scheme(form, config["scheme"])],
                         explicit, config["sources"] == "before", nu, float(alpha),
                         float(port.eta))
            self.data = (A, Bm, c, Q, R, Qf, gf, x_in, met.theta, met.theta_inv, Mterm)
        else:
            from solvers.wave import _node_scalars
            self.kind = "network"
            self.kd = problem.kernel_data()
            self.cm = _node_scalars(problem, met)
            self.tail = (nu, float(port.eta), explicit)
            self.proto = np.empty(0, dtype=dtype)

    def fields(self, u, v):
        """The node fields of the whole problem (the matched port's P from the port)."""
        if self.kind != "matched":
            return [u, v]
        P = self.port.kernel_state()
        return [u, v, P.reshape(1, self.N + 1, self.n * self.n)]

    def _call(self, data, F, theta, start, n, tol, record_every, hist, rows, bound):
        if self.kind == "affine":
            return kernels.affine_run(*self.head, *data, F[0], F[1], theta, start, n, tol,
                                      record_every, hist, rows, bound, self.dt)
        if self.kind == "matched":
            D, x_in, Th, Ti = data
            n1 = F[0].shape[1]
            return self.module.matched_run(*self.head, D, x_in, Th, Ti, F[0][0], F[1][0], theta,
                                           F[2][0].reshape(n1, self.n, self.n), np.zeros(1),
                                           start, n, tol, record_every, hist, rows, bound,
                                           self.dt)
        kd, cm = data
        return netkernels.network_run(*kd, cm, *self.tail, F[0], F[1], theta, self.proto,
                                      start, n, tol, record_every, hist, rows, bound, self.dt)

    def serial(self, F, theta, start, n, tol, record_every, hist, rows, bound):
        """The serial kernel on the whole field (the call of :func:`solvers.wave.solve`)."""
        if self.kind == "affine":
            data = self.data
        elif self.kind == "matched":
            data = (self.D, self.x_in, self.Th, self.Ti)
        else:
            data = (self.kd, self.cm)
        return self._call(data, F, theta, start, n, tol, record_every, hist, rows, bound)

    def block(self, a: int, b: int):
        """``run(F, θ, start, n)``: n τ-steps of nodes a..b−1 (layers a..b−2) in place, as if
        they were the whole problem; returns False when the block's fields went non-finite."""
        N = self.N
        lay = slice(a, b - 1)
        if self.kind == "affine":
            A, Bm, c, Q, R, Qf, gf, x_in, Th, Ti, Mterm = self.data
            data = tuple(np.ascontiguousarray(z[lay]) for z in (A, Bm, c, Q, R)) + (
                Qf, gf, x_in, np.ascontiguousarray(Th[a:b]), np.ascontiguousarray(Ti[a:b]),
                Mterm)
        elif self.kind == "matched":
            D = tuple(np.ascontiguousarray(z[lay]) if i < self.layer_data else z
                      for i, z in enumerate(self.D))
            data = (D, self.x_in, np.ascontiguousarray(self.Th[a:b]),
                    np.ascontiguousarray(self.Ti[a:b]))
        else:
            w, s, h, act, lin_last, loss, wd, P, targets, x_in = self.kd
            wb = np.ascontiguousarray(w[a:b])
            if b < N + 1:
                # a ghost last node: any finite loss gradient will do (P = 0 gives zero)
                P = np.zeros((P.shape[0], int(wb[-1])))
            if a > 0:
                x_in = np.zeros((x_in.shape[0], int(wb[0])))
            data = ((wb, s, h, act, bool(lin_last and b == N + 1), loss, wd, P, targets, x_in),
                    np.ascontiguousarray(self.cm[a:b]))
        hist = np.empty((0, len(kernels.HIST_COLUMNS) + 1))

        def run(F, theta, start, n):
            code = self._call(data, F, theta, start, n, -1.0, 0, hist, 0, math.inf)[1]
            return code != kernels.DIVERGED
        return run


class _Block:
    """A rank's nodes: the owned range, the extended (ghost) range, the halo exchange."""

    def __init__(self, comm, kernel, N, reach, depth, overlap, staleness, async_mode,
                 threads=1):
        self.comm, self.rank, self.size = comm, comm.rank, comm.size
        # ghost width: the reach of ``depth`` τ-steps between two exchanges
        self.N, self.depth = N, int(depth)
        self.g = g = reach * self.depth
        self.parts = partition(N, self.size)
        for r, (lo, hi) in enumerate(self.parts):
            if self.size > 1 and hi - lo < g:
                raise ValueError(f"ranks: {self.size} ranks leave rank {r} {hi - lo} node(s) "
                                 f"of N + 1 = {N + 1}; each needs at least the ghost width "
                                 f"(stencil reach {reach} x halo_depth {depth} = {g}); use at "
                                 f"most {(N + 1) // g} ranks")
        self.lo, self.hi = self.parts[self.rank]
        self.elo = max(0, self.lo - g)
        self.ehi = min(N + 1, self.hi + g)
        self.left = self.rank - 1 if self.rank > 0 else None
        self.right = self.rank + 1 if self.rank < self.size - 1 else None
        self.run = kernel.block(self.elo, self.ehi)
        self.pool = None
        if threads > 1 and kernel.kind != "network":
            # threads over nodes: the owned range in ``threads`` sub-blocks, each stepped by
            # the (nogil) kernel on its own extended copy in a thread of its own
            from concurrent.futures import ThreadPoolExecutor
            cuts = [self.lo + j * (self.hi - self.lo) // threads for j in range(threads + 1)]
            self.sub = [(a, b, max(self.elo, a - g), min(self.ehi, b + g))
                        for a, b in zip(cuts, cuts[1:]) if b > a]
            self.sub = [(a, b, ea, eb, kernel.block(ea, eb)) for a, b, ea, eb in self.sub]
            self.pool = ThreadPoolExecutor(len(self.sub))
        self.staleness, self.async_mode = int(staleness), async_mode
        # the strips: new values of the g owned nodes next to a neighbour from 3g nodes
        self.strips = {}
        if overlap:
            if self.left is not None and self.lo + 2 * g <= self.ehi:
                a, b = self.lo - g, self.lo + 2 * g
                self.strips["left"] = (a, b, kernel.block(a, b))
            if self.right is not None and self.hi - 2 * g >= self.elo:
                a, b = self.hi - 2 * g, self.hi + g
                self.strips["right"] = (a, b, kernel.block(a, b))
        self.ok = True
        self.bytes_sent = 0
        self.messages = 0
        self._sends = []
        self._hist = {"left": deque(), "right": deque()}

    # node and layer ranges (global indices) of what goes to / comes from each side
    def _send_ranges(self, side):
        g = self.g
        if side == "left":      # the left neighbour's right ghosts: nodes lo.., layers lo..
            return (self.lo, self.lo + g), (self.lo, self.lo + g - 1)
        return (self.hi - g, self.hi), (self.hi - g, self.hi)

    def _recv_ranges(self, side):
        if side == "left":
            return (self.elo, self.lo), (self.elo, self.lo)
        return (self.hi, self.ehi), (self.hi, self.ehi - 1)

    def take(self, F, theta):
        """This rank's extended block of the whole fields (copies)."""
        e0, e1 = self.elo, self.ehi
        self.F = [np.ascontiguousarray(f[:, e0:e1]) for f in F]
        self.th = np.ascontiguousarray(theta[e0:e1 - 1])
        for q in self._hist.values():
            q.clear()
        # the halo each side's ghosts hold now (the asynchronous mode re-applies it)
        self._applied = {side: self._ghosts(side) for side in ("left", "right")
                         if (self.left if side == "left" else self.right) is not None}

    def _ghosts(self, side):
        """The ghost values of ``side`` as a received halo would carry them."""
        (n0, n1), (l0, l1) = self._recv_ranges(side)
        e = self.elo
        parts = [f[:, n0 - e:n1 - e].ravel() for f in self.F]
        return np.concatenate(parts + [self.th[l0 - e:l1 - e].ravel(), np.array([-1.0])])

    def owned(self):
        """The node fields and θ of the owned nodes and layers."""
        a, b = self.lo - self.elo, self.hi - self.elo
        lb = min(self.hi, self.N) - self.elo
        return [f[:, a:b] for f in self.F], self.th[a:lb]

    def _pack(self, F, th, base, side, version):
        (n0, n1), (l0, l1) = self._send_ranges(side)
        parts = [f[:, n0 - base:n1 - base].ravel() for f in F]
        parts += [th[l0 - base:l1 - base].ravel(), np.array([float(version)])]
        return np.concatenate(parts)

    def _unpack(self, side, buf):
        (n0, n1), (l0, l1) = self._recv_ranges(side)
        e = self.elo
        k = 0
        for f in self.F:
            size = f.shape[0] * (n1 - n0) * f.shape[2]
            f[:, n0 - e:n1 - e] = buf[k:k + size].reshape(f.shape[0], n1 - n0, f.shape[2])
            k += size
        m = self.th.shape[1]
        self.th[l0 - e:l1 - e] = buf[k:k + (l1 - l0) * m].reshape(l1 - l0, m)

    def _recv_size(self, side):
        (n0, n1), (l0, l1) = self._recv_ranges(side)
        return (sum(f.shape[0] * (n1 - n0) * f.shape[2] for f in self.F)
                + (l1 - l0) * self.th.shape[1] + 1)

    def _run_block(self, start, n):
        """The kernel on the whole extended block (or on its sub-blocks in threads)."""
        if self.pool is None:
            self.ok = self.run(self.F, self.th, start, n) and self.ok
            return
        e, N = self.elo, self.N

        def one(sb):
            a, b, ea, eb, run = sb
            sF = [f[:, ea - e:eb - e].copy() for f in self.F]
            st = self.th[ea - e:eb - 1 - e].copy()
            ok = run(sF, st, start, n)
            return ok, sF, st
        done = list(self.pool.map(one, self.sub))   # all copies taken before any write-back
        for (a, b, ea, eb, _), (ok, sF, st) in zip(self.sub, done):
            for f, sf in zip(self.F, sF):
                f[:, a - e:b - e] = sf[:, a - ea:b - ea]
            self.th[a - e:min(b, N) - e] = st[a - ea:min(b, N) - ea]
            self.ok = ok and self.ok

    def step(self, start, n=1):
        """n ≤ ``depth`` τ-steps of the block (from global index ``start``), then its halo
        exchange."""
        from mpi4py import MPI
        comm = self.comm
        sides = [s for s, nb in (("left", self.left), ("right", self.right)) if nb is not None]
        out = {}
        e = self.elo
        for side in sides:          # the strips first: their halos travel while the block runs
            if side in self.strips:
                a, b, run = self.strips[side]
                sF = [f[:, a - e:b - e].copy() for f in self.F]
                st = self.th[a - e:b - 1 - e].copy()
                run(sF, st, start, n)
                out[side] = self._pack(sF, st, a, side, start + n)
        recvs = {}
        if self.staleness == 0:
            for side in sides:
                buf = np.empty(self._recv_size(side))
                nb = self.left if side == "left" else self.right
                recvs[side] = (buf, comm.Irecv(buf, source=nb, tag=1))
        first = len(out) < len(sides)       # a side without a strip sends from the block
        if first:
            self._run_block(start, n)
        for side in sides:
            if side not in out:
                out[side] = self._pack(self.F, self.th, e, side, start + n)
            nb = self.left if side == "left" else self.right
            self._sends.append((comm.Isend(out[side], dest=nb, tag=1), out[side]))
            self.bytes_sent += out[side].nbytes
            self.messages += 1
        if not first:
            self._run_block(start, n)
        if self.staleness == 0:
            MPI.Request.Waitall([r for _, r in recvs.values()])
            for side, (buf, _) in recvs.items():
                self._unpack(side, buf)
        else:
            self._stale_halos(sides, start + n)
        self._sends = [(r, b) for r, b in self._sends if not r.Test()]

    def _receive(self, side, block):
        """Receive the next halo of ``side`` into its history (blocking or only if arrived)."""
        nb = self.left if side == "left" else self.right
        if not block and not self.comm.Iprobe(source=nb, tag=1):
            return False
        buf = np.empty(self._recv_size(side))
        self.comm.Recv(buf, source=nb, tag=1)
        self._hist[side].append(buf)
        return True

    def _stale_halos(self, sides, version):
        """Ghosts from halos at most ``staleness`` versions old (see the module docstring)."""
        d = self.staleness
        for side in sides:
            q = self._hist[side]
            newest = lambda: int(q[-1][-1]) if q else -1  # noqa: E731
            if self.async_mode == "lag":
                while newest() < version:
                    self._receive(side, True)
                want = version - d
            else:
                while self._receive(side, False):
                    pass
                while newest() < version - d:
                    self._receive(side, True)
                want = newest()
            while len(q) > 1 and int(q[1][-1]) <= want:
                q.popleft()
            if q and int(q[0][-1]) <= want:
                self._applied[side] = q[0]
            # the kernel overwrote the ghosts: put back the chosen (or the last applied) halo
            self._unpack(side, self._applied[side])

    def synchronize(self, version):
        """Receive every halo up to ``version`` and make the ghosts current (the end of an
        asynchronous run: no message is left in flight)."""
        if self.staleness == 0:
            return
        for side, nb in (("left", self.left), ("right", self.right)):
            if nb is None:
                continue
            q = self._hist[side]
            while not q or int(q[-1][-1]) < version:
                self._receive(side, True)
            self._applied[side] = q[-1]
            self._unpack(side, q[-1])
            q.clear()

    def finish_sends(self):
        from mpi4py import MPI
        MPI.Request.Waitall([r for r, _ in self._sends])
        self._sends = []
        if self.pool is not None:
            self.pool.shutdown()


def _gather(comm, block, F, theta):
    """Owned blocks → the whole fields on rank 0 (``F, theta`` there, written in place)."""
    parts = comm.gather(block.owned(), root=0)
    if comm.rank == 0:
        for (lo, hi), (pF, pt) in zip(block.parts, parts):
            for f, pf in zip(F, pF):
                f[:, lo:hi] = pf
            theta[lo:min(hi, block.N)] = pt


def _on_root(comm, fn, share=True):
    """Run ``fn()`` on rank 0 and broadcast its value (``share``; else rank 0 alone gets it);
    an exception there is raised on every rank (so that no rank waits for a collective the
    root will never join)."""
    value, error = None, None
    if comm.rank == 0:
        try:
            value = fn()
        except BaseException as exc:        # re-raised below, on every rank
            error = exc
    if share:
        value, error = comm.bcast((value, error), root=0)
    else:
        error = comm.bcast(error, root=0)
    if error is not None:
        raise error
    return value


def solve_parallel(problem, comm=None, *, check_every: int | None = None, staleness: int = 0,
                   async_mode: str = "newest", overlap: bool = True, halo_depth: int = 1,
                   threads: int | None = None, **solve_kwargs) -> WaveResult:
    """:func:`solvers.wave.solve` on ``comm.size`` ranks, each stepping a block of nodes.

    Every rank calls it with the same problem and arguments (``mpiexec -n P``); every rank gets
    the same :class:`~wavecontrol.result.WaveResult`, and rank 0 writes ``out``.

    Parameters
    ----------
    problem, **solve_kwargs
        As for :func:`solvers.wave.solve` (not ``callback``); the setting must have a compiled
        kernel (families ``affine`` and ``network``, the resistive port ``gd``).
    comm : mpi4py communicator, optional
        Default ``MPI.COMM_WORLD``.
    check_every : int, optional
        τ-steps between convergence checks (default ``record_every``).
    staleness : int
        0: synchronous (bit-identical to the serial run); d > 0: asynchronous, halos up to d
        τ-steps late (module docstring).
    async_mode : ``"newest"`` or ``"lag"``
    overlap : bool
        Step the boundary strips first and send their halos while the block steps.
    halo_depth : int
        τ-steps between two halo exchanges (default 1: one per τ-step). A depth h keeps
        h·reach ghost nodes and steps h τ-steps per kernel call, still bit-identical: fewer,
        larger messages and 1/h of the per-call cost, for h·reach redundant ghost nodes.
    threads : int, optional
        Threads over nodes within this rank (default 1, so that P ranks on P cores do not
        oversubscribe them): the network kernel's numba ``prange`` loops; for the affine and
        matched kernels, which are serial loops, the rank's nodes in ``threads`` sub-blocks
        with ghosts of their own, stepped at once in Python threads (the kernels release the
        GIL). Bit-identical either way.
    """
    from solvers.recording import RunRecorder
    from solvers.wave import _initial_fields, final_result, solve

    comm = world() if comm is None else comm
    if solve_kwargs.get("callback") is not None:
        raise ValueError("callback is not supported by the parallel driver (it would need the "
                         "whole field every callback_every τ-steps)")
    if isinstance(staleness, bool) or int(staleness) != staleness or staleness < 0:
        raise ValueError(f"staleness must be an integer >= 0, got {staleness!r}")
    if async_mode not in ASYNC_MODES:
        raise ValueError(f"unknown async_mode {async_mode!r}; valid: {', '.join(ASYNC_MODES)}")
    if isinstance(halo_depth, bool) or int(halo_depth) != halo_depth or halo_depth < 1:
        raise ValueError(f"halo_depth must be an integer >= 1, got {halo_depth!r}")
    if threads is not None and (int(threads) != threads or threads < 1):
        raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
    if threads is not None or comm.size > 1:
        import numba
        numba.set_num_threads(min(int(threads or 1), numba.config.NUMBA_NUM_THREADS))
    kw = dict(solve_kwargs)
    out, resume = kw.pop("out", None), bool(kw.pop("resume", False))
    progress = bool(kw.pop("progress", False))
    snapshot_every = kw.pop("snapshot_every", None)
    kw.pop("callback", None)
    kw.pop("callback_every", None)
    max_steps = kw.pop("max_steps", 500_000)
    if int(max_steps) != max_steps or max_steps < 0:
        raise ValueError(f"max_steps must be an integer >= 0, got {max_steps!r}")
    max_steps = int(max_steps)

    # rank 0 opens the run file (a resumed run's state and record_every come from it)
    recording = out is not None or resume or progress
    recorder = None
    if recording:
        recorder = _on_root(comm, lambda: RunRecorder(out, resume=resume, progress=progress,
                                                      snapshot_every=snapshot_every),
                            share=False)
    stored = comm.bcast(None if recorder is None or recorder.stored is None
                        else (recorder.stored.record_every, recorder.initial_state()), root=0)
    record_every = kw.pop("record_every", None)
    if record_every is None:
        record_every = stored[0] if stored is not None else max(1, max_steps // 5000)
    # the serial driver validates the settings, binds the port and compiles the kernel
    probe = solve(problem, max_steps=0, record_every=record_every, **kw)
    config = dict(probe.config, max_steps=max_steps)
    if config["backend"] != "numba":
        raise ValueError("the parallel driver steps with the compiled kernels, and this setting "
                         "has none (solve(..., backend='numba') says why)")
    check_every = record_every if check_every is None else check_every
    if isinstance(check_every, bool) or int(check_every) != check_every or check_every < 1:
        raise ValueError(f"check_every must be an integer >= 1, got {check_every!r}")
    check_every = int(check_every)
    tol, bound_factor = float(config["tol"]), float(config["divergence_bound"])
    met = Metric(kw.get("metric", 1.0), problem.n, problem.N) \
        if not isinstance(kw.get("metric", 1.0), Metric) else kw["metric"]
    port = _bound_port(problem, config, kw.get("port"))
    kernel = _Kernel(problem, config, met, port, config["dtype"])
    g = stencil_reach(config["formulation"], config["scheme"], config["courant"])
    block = _Block(comm, kernel, problem.N, g, halo_depth, overlap, staleness, async_mode,
                   int(threads or 1))

    if stored is not None:
        u, v, theta, V0 = stored[1]
    else:
        x, lam, theta = _initial_fields(problem, kw.get("init", "zeros"))
        if config["formulation"] == "paper":
            u, v = met.to_waves(x, lam)
            V0 = energy(u, v, problem.dt)
        else:
            u, v = x, lam
            V0 = energy(*met.characteristic(x, lam), problem.dt)
    u, v, theta = (np.ascontiguousarray(a, dtype=float) for a in (u, v, theta))
    bound = bound_factor * max(V0, 1.0)
    hist = np.full((max_steps // record_every + 1, len(kernels.HIST_COLUMNS) + 1), np.nan)
    step, rows, maxerr = 0, 0, 0.0
    if recording:
        from solvers.wave import HISTORY_COLUMNS

        def begin():
            got = recorder.begin(
                problem=problem, metric=met, formulation=config["formulation"], port=port,
                config=config, columns=HISTORY_COLUMNS, hist=hist, u=u, v=v, theta=theta,
                V_initial=V0, max_steps=max_steps)
            return got[0], got[1:]
        got = _on_root(comm, begin, share=False)
        if comm.rank == 0:
            hist = got[0]
        step, rows, maxerr = comm.bcast(None if got is None else got[1], root=0)
        state = comm.bcast(port.state() if comm.rank == 0 else None, root=0)
        if comm.rank != 0:              # a resumed port state (the matched port's P)
            port.set_state(state)
    F = kernel.fields(u, v)
    block.take(F, theta)

    status, message, diverged_at = Status.MAX_STEPS, "", None
    res = (math.nan,) * 3 if stored is None or recorder is None else recorder.stored.residuals
    res = comm.bcast(res, root=0)
    comm.Barrier()
    t_loop = time.perf_counter()
    checks = 0
    good = []               # rank 0: (step, fields, θ, rows) of the last check that passed
    try:
        while True:
            # the check of the fields at ``step`` (rank 0: one serial τ-step, new fields dropped)
            if step < max_steps and (step % check_every == 0 or step % record_every == 0):
                def check():
                    t = tol if step % check_every == 0 else -1.0
                    rec = 1 if step % record_every == 0 else 0
                    done, code, nrows, err, *r = kernel.serial([f.copy() for f in F],
                                                               theta.copy(), step, 1, t, rec,
                                                               hist, rows, bound)
                    if code == kernels.DIVERGED and good:
                        # the serial step of the divergence: replay from the last good check
                        # (its row is written again, with the same numbers)
                        g_step, gF, gth, grows = good[0]
                        rF, rth = [f.copy() for f in gF], gth.copy()
                        done, code, nrows, err, *r = kernel.serial(
                            rF, rth, g_step, step - g_step + 1, -1.0, record_every, hist,
                            grows, bound)
                        if code == kernels.DIVERGED:
                            for f, rf in zip(F, rF):
                                f[...] = rf
                            theta[...] = rth
                            return code, nrows, err, tuple(r), done, g_step + done
                    elif code == kernels.RUNNING:
                        good[:] = [(step, [f.copy() for f in F], theta.copy(), rows)]
                    return code, nrows, err, tuple(r), done, step
                code, rows, err, r, done, step = _on_root(comm, check)
                checks += 1
                if code == kernels.CONVERGED:
                    res = r
                    status = Status.CONVERGED
                    message = (f"all residuals <= tol = {tol:g} after {step} τ-steps "
                               f"(checked every {check_every} τ-steps on {comm.size} ranks)")
                    break
                if code == kernels.DIVERGED:
                    maxerr = max(maxerr, err)
                    status, diverged_at = Status.DIVERGED, step + 1
                    message = (f"diverged at τ-step {diverged_at}: the wave energy V would "
                               f"exceed {bound_factor:g} x max(V_initial, 1) (or ½|θ|² would);"
                               f" the fields returned are those of τ-step {step} (found at a "
                               f"check, every {check_every} τ-steps on {comm.size} ranks, and "
                               "replayed serially from the check before)")
                    break
                if done:
                    res = r
                    maxerr = max(maxerr, err)
            if step >= max_steps:
                message = (f"max_steps = {max_steps} reached; residuals (x {res[0]:.3g}, lambda "
                           f"{res[1]:.3g}, theta {res[2]:.3g}) > tol = {tol:g} (at the last "
                           f"check, every {check_every} τ-steps on {comm.size} ranks)")
                break
            chunk = min(max_steps - step, check_every - step % check_every,
                        record_every - step % record_every)
            if recording:
                chunk = _on_root(comm, lambda: recorder.chunk_length(step, chunk))
            it = 0
            while it < chunk:
                n = min(block.depth, chunk - it)
                block.step(step + it, n)
                it += n
            step += chunk
            # (asynchronous mode: the halos in flight stay so; the owned fields are gathered)
            _gather(comm, block, F, theta)
            if recording:
                stop = _on_root(comm, lambda: recorder.chunk_done(step, u, v, theta, hist, rows,
                                                                  maxerr, res))
                if stop:
                    status, message = (Status.INTERRUPTED,
                                       f"interrupted (Ctrl-C) at τ-step {step}")
                    break
        block.synchronize(step)
    except BaseException:
        if recorder is not None:
            recorder.close()
        raise
    finally:
        block.finish_sends()
    wall = time.perf_counter() - t_loop
    ok = comm.allreduce(block.ok, op=_land())
    if not ok and status == Status.MAX_STEPS:
        # non-finite fields that the last check did not see: report them as a divergence
        status, diverged_at = Status.DIVERGED, step + 1
        message = f"diverged: non-finite fields at τ-step {step} on {comm.size} ranks"
    stats = {"ranks": comm.size, "rank": comm.rank, "stencil_reach": g,
             "halo_depth": int(halo_depth), "check_every": check_every,
             "checks": checks, "staleness": int(staleness),
             "async_mode": async_mode if staleness else None, "overlap": bool(overlap),
             "halo_messages": comm.allreduce(block.messages),
             "halo_bytes": comm.allreduce(block.bytes_sent), "owned": (block.lo, block.hi)}

    def final():
        return final_result(problem, met, config, status, message, diverged_at, step, u, v,
                            theta, hist, rows, maxerr, res, V0, wall, probe.compile_time,
                            recorder)
    result = _on_root(comm, final)
    result.config = dict(result.config, parallel=stats)
    return result


def _bound_port(problem, config, given):
    """The port of the run, bound to the problem: the one given, else one from the probe's
    configuration (the serial driver's choice of port and gain)."""
    from wavecontrol.ports import Port, ResistivePort, get_port
    if isinstance(given, Port):
        return given                    # bound by the probe
    params = dict(config["port"])
    name = params.pop("name")
    if name not in ("gd", "matched"):
        raise ValueError(f"port {name!r} has no compiled kernel; the parallel driver runs 'gd' "
                         "and 'matched'")
    port = ResistivePort(params["eta"]) if name == "gd" else get_port(name, **params)
    port.bind(problem, courant=float(config["courant"]))
    return port


def _land():
    from mpi4py import MPI
    return MPI.LAND


__all__ = ["solve_parallel", "stencil_reach", "partition", "have_mpi", "world",
           "launched_ranks", "ASYNC_MODES"]
