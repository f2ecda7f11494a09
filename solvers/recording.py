"""What the wave driver keeps while it runs: the run file, the progress bar and Ctrl-C.

:class:`RunRecorder` connects :func:`solvers.wave.solve` to :mod:`wavecontrol.storage`. The
driver calls it at four points: before the run (:meth:`RunRecorder.begin`: check a resumed
run's configuration, preload its history, write the first commit), before each chunk of
τ-steps (:meth:`~RunRecorder.chunk_length`: end chunks on the snapshot grid and often enough to
flush and to answer Ctrl-C), after each chunk (:meth:`~RunRecorder.chunk_done`: snapshots,
a commit every :data:`FLUSH_SECONDS`, the progress bar) and at the end
(:meth:`~RunRecorder.finish`: the final record).

While a run file is open, the first Ctrl-C (SIGINT) asks the run to stop at the end of the
current chunk (status ``interrupted``, the file committed and closed); a second one stops it at
once, and the fields of the last complete chunk are what the run returns and keeps.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

from wavecontrol import storage

#: seconds between commits (flushes) of a run file
FLUSH_SECONDS = 0.5
#: target seconds of one chunk of τ-steps while recording (progress, Ctrl-C latency)
CHUNK_SECONDS = 0.1
#: default bound on the bytes of all periodic snapshots of a run
SNAPSHOT_BYTES = 64 * 2**20
#: default number of periodic snapshots over ``max_steps``
SNAPSHOT_COUNT = 200


def default_snapshot_every(max_steps: int, field_shape, theta_shape) -> int:
    """K such that about :data:`SNAPSHOT_COUNT` snapshots cover ``max_steps`` τ-steps and all of
    them take at most :data:`SNAPSHOT_BYTES`."""
    per = 8 * (2 * int(np.prod(field_shape)) + int(np.prod(theta_shape)) + theta_shape[0])
    count = max(1, min(SNAPSHOT_COUNT, SNAPSHOT_BYTES // per))
    return max(1, math.ceil(max_steps / count))


class _SigintGuard:
    """First SIGINT: set :attr:`requested`; second: raise KeyboardInterrupt. Main thread only
    (elsewhere Python delivers no SIGINT, and this does nothing)."""

    def __init__(self):
        self.requested = False
        self._old = None
        self._installed = False

    def install(self):
        if threading.current_thread() is threading.main_thread():
            try:
                self._old = signal.signal(signal.SIGINT, self._handler)
                self._installed = True
            except ValueError:
                self._installed = False

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def restore(self):
        if self._installed:
            signal.signal(signal.SIGINT,
                          self._old if self._old is not None else signal.default_int_handler)
            self._installed = False


class RunRecorder:
    """The run file (``out``), the progress bar (``progress``) and Ctrl-C handling of a solve.

    Parameters
    ----------
    out : path or None
        The run's HDF5 file. Without ``resume`` it must not exist; with ``resume`` an existing
        file is continued and a missing one is started.
    resume : bool
    progress : bool
        Show a tqdm bar on stderr (τ-steps, residual, V).
    snapshot_every : int or None
        Snapshot interval K in τ-steps (0: none); default: the stored one when resuming, else
        :func:`default_snapshot_every`.
    """

    def __init__(self, out, *, resume: bool = False, progress: bool = False,
                 snapshot_every=None):
        if resume and out is None:
            raise ValueError("resume=True needs out= (the run file to continue)")
        if snapshot_every is not None and (isinstance(snapshot_every, bool) or
                                           int(snapshot_every) != snapshot_every or
                                           snapshot_every < 0):
            raise ValueError(f"snapshot_every must be an integer >= 0 or None, got "
                             f"{snapshot_every!r}")
        self.out = None if out is None else Path(out)
        self.progress = bool(progress)
        self.snapshot_every = None if snapshot_every is None else int(snapshot_every)
        self.stored = None
        if self.out is not None:
            if self.out.exists() or self.out.is_symlink():
                if not resume:
                    raise FileExistsError(f"{self.out} already exists; pass resume=True "
                                          "(--resume) to continue that run, or remove the file")
                self.stored = storage.open_run(self.out)
            elif not self.out.parent.is_dir():
                raise FileNotFoundError(f"{self.out}: folder {self.out.parent} does not exist")
        self.writer = None
        self._bar = None
        self._guard = _SigintGuard()
        self._cap = 16
        self._t_chunk = 0.0
        self._t_commit = 0.0
        self._last_snapshot = -1
        self._good = None

    # -- before the run --------------------------------------------------------------------
    def initial_state(self):
        """(u, v, θ, V_initial) of a resumed run: the driver's fields at the stored state."""
        s = self.stored.state
        return (np.array(s["u"], dtype=float), np.array(s["v"], dtype=float),
                np.array(s["theta"], dtype=float), float(self.stored.V_initial))

    def begin(self, *, problem, metric, formulation: str, port, config: dict, columns, hist,
              u, v, theta, V_initial: float, max_steps: int):
        """Start recording; returns (hist, step, rows, ledger_max) to start the loop from.

        For a resumed run: refuses a configuration that differs from the stored one (listing
        the keys; ``config["init"]`` is set to the stored one, since the run goes on from the
        stored state), restores the port's state, and preloads the stored history rows before
        the state's step into ``hist`` (enlarged when it is too short).
        """
        self._problem, self._metric, self._formulation = problem, metric, formulation
        self._port = port
        self.K = 0
        step, rows, ledger_max, res = 0, 0, 0.0, (math.nan,) * 3
        self._guard.install()
        try:
            if self.out is not None:
                digests = {"problem_data": _problem_digest(problem),
                           "metric": storage.array_digest(metric.theta)}
                if self.stored is not None:
                    run = self.stored
                    K = run.snapshot_every if self.snapshot_every is None else self.snapshot_every
                    # a resumed run starts from the stored state: its init is the stored one
                    config["init"] = run.config.get("init", config.get("init"))
                    self._check_resumable(run, config, columns, K, digests, u, theta)
                    port.set_state(run.state["port"])
                    self.writer = storage.RunWriter.reopen(run, config=config)
                    step = run.state["step"]
                    rows = self.writer.history_rows
                    ledger_max = run.state["ledger_max_rel_error"]
                    res = run.residuals
                    if rows > hist.shape[0]:    # max_steps below the stored step
                        hist = np.full((rows + hist.shape[0], hist.shape[1]), np.nan)
                    for j, name in enumerate(columns):
                        hist[:rows, j] = run.history[name][:rows]
                    kept = run.snapshots.get("step", ())[:self.writer.snapshots]
                    self._last_snapshot = int(kept[-1]) if len(kept) else -1
                else:
                    K = (default_snapshot_every(max_steps, u.shape, theta.shape)
                         if self.snapshot_every is None else self.snapshot_every)
                    self.writer = storage.RunWriter.create(
                        self.out, config=config, columns=columns,
                        record_every=config["record_every"], snapshot_every=K,
                        courant=config["courant"], dt=problem.dt,
                        widths=problem.layout.widths, metric=metric.theta,
                        field_shape=u.shape, theta_shape=theta.shape,
                        formulation=formulation, V_initial=V_initial, digests=digests,
                        port_state=port.state())
                self.K = K
                if K > 0 and step % K == 0 and self._last_snapshot != step:
                    self._snapshot(step, u, v, theta)
                self._commit(step, u, v, theta, hist, rows, ledger_max, res)
            if self.progress:
                from tqdm import tqdm
                self._bar = tqdm(total=max_steps, initial=min(step, max_steps),
                                 desc="τ-steps", unit="step",
                                 dynamic_ncols=True, mininterval=0.25, file=sys.stderr)
        except BaseException:
            self.close()
            raise
        self._keep(step, u, v, theta, rows, ledger_max)
        self._V = V_initial
        return hist, step, rows, ledger_max

    def _check_resumable(self, run, config, columns, K, digests, u, theta):
        if tuple(run.columns) != tuple(columns):
            raise ValueError(f"{run.path}: cannot resume: the file's history columns "
                             f"{list(run.columns)} are not this driver's {list(columns)}")
        stored = {**run.config, "snapshot_every": run.snapshot_every, "digests": run.digests}
        requested = {**config, "snapshot_every": K, "digests": digests}
        diffs = storage.config_differences(stored, requested)
        if run.state["u"].shape != u.shape or run.state["theta"].shape != theta.shape:
            diffs.append(f"field shapes: stored {run.state['u'].shape} and "
                         f"{run.state['theta'].shape} vs requested {u.shape} and {theta.shape}")
        if diffs:
            raise ValueError(
                f"{run.path}: cannot resume: the requested run differs from the stored one in "
                f"{len(diffs)} setting(s): " + "; ".join(diffs) + " (a resumed run may change "
                f"only {', '.join(storage.RESUMABLE_KEYS)})")

    # -- during the run --------------------------------------------------------------------
    def chunk_length(self, step: int, chunk: int) -> int:
        """The driver's ``chunk`` cut short to end on the snapshot grid and within about
        :data:`CHUNK_SECONDS`."""
        n = max(0, min(chunk, self._cap))
        if self.writer is not None and self.K > 0:
            n = min(n, self.K - step % self.K)
        self._t_chunk = time.perf_counter()
        self._n_chunk = n
        return n

    def chunk_done(self, step, u, v, theta, hist, rows, ledger_max, res) -> bool:
        """After a chunk that left the run going; True when Ctrl-C asked it to stop."""
        now = time.perf_counter()
        elapsed = now - self._t_chunk
        if self._n_chunk > 0:
            if elapsed > 0:
                want = int(self._n_chunk * CHUNK_SECONDS / elapsed)
                self._cap = max(1, min(want, 8 * self._cap))
            else:
                self._cap *= 8
        if self.writer is not None:
            if self.K > 0 and step % self.K == 0 and step != self._last_snapshot:
                self._snapshot(step, u, v, theta)
            if now - self._t_commit >= FLUSH_SECONDS:
                self._commit(step, u, v, theta, hist, rows, ledger_max, res)
        self._keep(step, u, v, theta, rows, ledger_max)
        self._show(step, hist, rows, res)
        return self._guard.requested

    def rewind(self, step, u, v, theta, rows, ledger_max):
        """After a KeyboardInterrupt: when it came inside a chunk (the fields may be part-way
        through a step), put back the fields of the last complete chunk; returns
        (step, rows, ledger_max) to go on with."""
        g = self._good
        if self.writer is None or g is None or step != g[0]:
            return step, rows, ledger_max
        u[...], v[...], theta[...] = g[1], g[2], g[3]
        self._port.set_state(g[6])
        return g[0], g[4], g[5]

    # -- after the run ---------------------------------------------------------------------
    def finish(self, *, status: str, message: str, diverged_at, step, u, v, theta, hist, rows,
               ledger_max, res, final: dict) -> None:
        """Commit the end of the run (final snapshot, state, final record) and close."""
        try:
            if self.writer is not None:
                if self.K > 0 and step != self._last_snapshot:
                    self._snapshot(step, u, v, theta)
                self._commit(step, u, v, theta, hist, rows, ledger_max, res, status=status,
                             message=message, diverged_at=diverged_at, final=final)
            self._show(step, hist, rows, res)
        finally:
            self.close()

    def close(self) -> None:
        """Close the bar and the file and give SIGINT back (also after an error)."""
        try:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            if self.writer is not None:
                self.writer.close()
        finally:
            self._guard.restore()

    # -- helpers ---------------------------------------------------------------------------
    def _keep(self, step, u, v, theta, rows, ledger_max):
        if self.writer is not None:
            self._good = (step, u.copy(), v.copy(), theta.copy(), rows, ledger_max,
                          self._port.state())

    def _commit(self, step, u, v, theta, hist, rows, ledger_max, res, status=storage.RUNNING,
                message="", diverged_at=None, final=None):
        self.writer.commit(step=step, u=u, v=v, theta=theta, history=hist, rows=rows,
                           ledger_max=ledger_max, residuals=res, port_state=self._port.state(),
                           status=status, message=message, diverged_at=diverged_at, final=final)
        self._t_commit = time.perf_counter()

    def _snapshot(self, step, u, v, theta):
        """Queue w± (eq. 38) of the current fields and the port's reflection per layer ‖b_k‖²
        (eq. 70, :meth:`~wavecontrol.ports.Port.reflected_wave`) for the step the port takes
        from them (:meth:`~wavecontrol.ports.Port.layer_reflection`; the matched port gives its
        backward-wave energy per node instead). For the other ports: r_θ of these fields, θ' from
        the pure step with the current state.
        In the consistent form that is the step the driver takes next, so the sum over layers
        is the ``reflection`` history column of the same τ-step (NumPy backend); the paper form
        computes its r_θ after transport."""
        met, port = self._metric, self._port
        if self._formulation == "paper":
            wp, wm = u, v
            x, lam = met.from_waves(u, v)
        else:
            x, lam = u, v
            wp, wm = met.to_waves(u, v)
        with np.errstate(all="ignore"):
            refl = port.layer_reflection(x, lam, theta)
        self.writer.add_snapshot(step, wp, wm, theta, refl)
        self._last_snapshot = step

    def _show(self, step, hist, rows, res):
        if self._bar is None:
            return
        from wavecontrol.kernels import HIST_COLUMNS
        V = hist[rows - 1, HIST_COLUMNS.index("V")] if rows else self._V
        r = max(res) if all(math.isfinite(x) for x in res) else math.nan
        self._bar.set_postfix_str(f"residual {r:.2e}, V {V:.4g}", refresh=False)
        self._bar.update(max(0, min(step, self._bar.total) - self._bar.n))


def _problem_digest(problem) -> str:
    """Fingerprint of the problem's data beyond its JSON configuration."""
    arrays = [problem.x_in, problem.theta0, np.float64(problem.dt), problem.layout.widths]
    if problem.family == "affine":
        arrays += list(problem.kernel_data())
    return storage.array_digest(*arrays)


__all__ = ["RunRecorder", "FLUSH_SECONDS", "default_snapshot_every"]
