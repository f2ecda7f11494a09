"""Runs that are kept: one HDF5 file per run of the wave driver (schema: ``docs/storage.md``).

The file holds the run's configuration and versions as attributes, the history (one resizable
dataset per column, on a ``tau`` dimension scale), snapshots of the wave fields w± (eq. 38)
every K τ-steps (on a ``tau`` and a ``t`` scale), the state needed to resume, and, once the run
has ended, its final x, λ, θ. :class:`RunWriter` writes it; :func:`open_run` reads it back as a
read-only :class:`StoredRun`.

Crash safety: everything is written in batches, and :meth:`RunWriter.commit` ends each batch
with a flush, then records what the batch holds in the root attribute ``progress`` and flushes
again. A reader trusts only what ``progress`` names, so a writer killed at any moment (SIGKILL
included) leaves a file whose committed part is complete. Files use the oldest HDF5 superblock
(h5py's default ``libver``), which keeps no "open for writing" flag that a killed writer would
leave set.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: value of the root attribute ``format`` of a run file
FORMAT = "wavecontrol-run"
#: version of the layout below; bumped on any change a reader must know about
SCHEMA_VERSION = 1
#: configuration keys that a resumed run may change (they control the run, not what it solves)
RESUMABLE_KEYS = ("max_steps", "tol", "backend", "divergence_bound")
#: the fields of a snapshot: the wave variables of eq. 38 in either formulation
SNAPSHOT_FIELDS = "w+, w-"
#: the driver's fields (u, v) kept in the resume state, per formulation
STATE_FIELDS = {"consistent": "x, lambda", "paper": "w+, w-"}
#: status of a file whose run has not ended (being written, or its writer was killed)
RUNNING = "running"
#: how long :func:`open_run` keeps retrying a read that failed while the file was being written
SETTLE_SECONDS = 2.0

_JSON_ATTR_LIMIT = 48_000      # bytes; larger JSON goes into a dataset (object headers are 64 kB)
_CHUNK_ROWS = 1024


def _h5py():
    import h5py
    return h5py


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _dump(value, what: str) -> str:
    """JSON text of ``value``; refuses (loudly) what JSON cannot hold."""
    try:
        return json.dumps(value, allow_nan=True, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cannot store the {what} in the run file: {exc}") from None


def _set_json(f, name: str, value, what: str) -> None:
    """Root attribute ``name`` = JSON of ``value`` (a dataset ``/_json/name`` when too large)."""
    text = _dump(value, what)
    path = f"_json/{name}"
    if path in f:
        del f[path]
    if len(text.encode()) > _JSON_ATTR_LIMIT:
        f.require_group("_json").create_dataset(name, data=text)
        f.attrs[name] = "@/" + path
    else:
        f.attrs[name] = text


def _get_json(f, name: str):
    text = _text(f.attrs[name])
    if text.startswith("@/"):
        text = _text(f[text[2:]][()])
    return json.loads(text)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def array_digest(*arrays) -> str:
    """SHA-256 (hex, 16 digits) of arrays' dtypes, shapes and bytes: a fingerprint of data that
    the JSON configuration does not spell out (a problem's matrices, a metric)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def config_differences(stored: dict, requested: dict, ignore=RESUMABLE_KEYS) -> list[str]:
    """Lines ``key: stored A vs requested B`` for every (dotted) key whose values differ.

    Top-level keys in ``ignore`` are left out. Values are compared after a JSON round trip, so
    that a tuple equals a list and a float equals its stored text.
    """
    a = _flatten(json.loads(_dump(stored, "configuration")))
    b = _flatten(json.loads(_dump(requested, "configuration")))
    out = []
    for key in sorted(set(a) | set(b)):
        if key.split(".")[0] in ignore:
            continue
        va, vb = a.get(key, "<absent>"), b.get(key, "<absent>")
        if va != vb and not (_is_nan(va) and _is_nan(vb)):
            out.append(f"{key}: stored {_short(va)} vs requested {_short(vb)}")
    return out


def _flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _is_nan(v):
    return isinstance(v, float) and math.isnan(v)


def _short(v, width=60):
    text = json.dumps(v)
    return text if len(text) <= width else text[:width - 3] + "..."


# ----------------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------------
class RunWriter:
    """Writes one run into its HDF5 file, a batch per :meth:`commit`.

    Use :meth:`create` for a new run and :meth:`reopen` to continue a stored one; the driver
    (:func:`solvers.wave.solve` with ``out=``) does both.
    """

    def __init__(self, path, f, *, columns, dtau, snapshot_every, history_rows, snapshots,
                 slot):
        self.path = str(path)
        self._f = f
        self.columns = tuple(columns)
        self.dtau = dtau
        self.snapshot_every = int(snapshot_every)
        self.history_rows = int(history_rows)   # committed
        self.snapshots = int(snapshots)         # committed
        self.slot = int(slot)                   # state slot of the last commit (-1: none yet)
        self._pending = []                      # snapshots waiting for the next commit

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def create(cls, path, *, config: dict, columns, record_every: int, snapshot_every: int,
               courant: float, dt: float, widths, metric, field_shape, theta_shape,
               formulation: str, V_initial: float, digests: dict, port_state: dict):
        """A new run file at ``path`` (which must not exist).

        ``columns`` are the driver's history columns (``step`` first); ``field_shape`` is
        (B, N + 1, n), ``theta_shape`` (N, m); ``metric`` the Θ_k, (N + 1, n, n);
        ``port_state`` the parameter port's state (:meth:`~wavecontrol.ports.Port.state`),
        whose arrays keep their shapes through the run.
        """
        h5py = _h5py()
        path = Path(path)
        config_text = _dump(config, "configuration")   # fail before the file exists
        _dump(digests, "digests")
        if columns[0] != "step":
            raise ValueError(f"the first history column must be 'step', got {columns[0]!r}")
        f = _open_for_writing(h5py, path, "w-")
        try:
            a = f.attrs
            from . import __version__
            a["format"] = FORMAT
            a["schema_version"] = SCHEMA_VERSION
            a["wavecontrol_version"] = __version__
            a["h5py_version"] = h5py.version.version
            a["hdf5_version"] = h5py.version.hdf5_version
            a["numpy_version"] = np.__version__
            a["created"] = _now()
            _set_json(f, "config", json.loads(config_text), "configuration")
            a["digests"] = _dump(digests, "digests")
            a["resumes"] = "[]"
            a["record_every"] = int(record_every)
            a["snapshot_every"] = int(snapshot_every)
            a["courant"] = float(courant)
            a["dt"] = float(dt)
            a["formulation"] = formulation
            a["state_fields"] = STATE_FIELDS[formulation]
            a["V_initial"] = float(V_initial)
            N1 = int(field_shape[1])
            t = f.create_dataset("t", data=np.arange(N1) * float(dt))
            t.make_scale("t")
            t.attrs["units"] = "depth time t_k = k dt (node index k = 0..N)"
            f.create_dataset("widths", data=np.asarray(widths, dtype=np.int64))
            f.create_dataset("metric", data=np.asarray(metric, dtype=float))

            h = f.create_group("history")
            h.attrs["columns"] = _dump(list(columns), "history columns")
            h.attrs["record_every"] = int(record_every)
            tau = h.create_dataset("tau", shape=(0,), maxshape=(None,), dtype="f8",
                                   chunks=(_CHUNK_ROWS,))
            tau.make_scale("tau")
            for name in columns:
                ds = h.create_dataset(name, shape=(0,), maxshape=(None,),
                                      dtype="i8" if name == "step" else "f8",
                                      chunks=(_CHUNK_ROWS,))
                ds.dims[0].attach_scale(tau)
                ds.dims[0].label = "tau"

            if snapshot_every > 0:
                s = f.create_group("snapshots")
                s.attrs["fields"] = SNAPSHOT_FIELDS
                s.attrs["every"] = int(snapshot_every)
                st = s.create_dataset("tau", shape=(0,), maxshape=(None,), dtype="f8",
                                      chunks=(256,))
                st.make_scale("tau")
                specs = [("step", (), "i8"), ("w_plus", tuple(field_shape), "f8"),
                         ("w_minus", tuple(field_shape), "f8"),
                         ("theta", tuple(theta_shape), "f8"),
                         ("reflection", (int(theta_shape[0]),), "f8")]
                for name, shape, dtype in specs:
                    ds = s.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape),
                                          dtype=dtype, chunks=(1 if shape else 256, *shape))
                    ds.dims[0].attach_scale(st)
                    ds.dims[0].label = "tau"
                    if name.startswith("w_"):
                        ds.dims[1].label = "batch"
                        ds.dims[2].attach_scale(t)
                        ds.dims[2].label = "t"
                        ds.dims[3].label = "component"
                    elif name in ("theta", "reflection"):
                        ds.dims[1].label = "layer"

            state = f.create_group("state")
            for slot in ("0", "1"):
                g = state.create_group(slot)
                for name, shape in (("u", field_shape), ("v", field_shape),
                                    ("theta", theta_shape)):
                    ds = g.create_dataset(name, shape=tuple(shape), dtype="f8")
                    if name != "theta":
                        ds.dims[1].attach_scale(t)
                        ds.dims[1].label = "t"
                pg = g.create_group("port")
                for key, value in port_state.items():
                    value = np.asarray(value)
                    pg.create_dataset(key, shape=value.shape, dtype=value.dtype)
                g.attrs["step"] = -1
        except BaseException:
            f.close()
            path.unlink(missing_ok=True)
            raise
        return cls(path, f, columns=columns, dtau=(float(courant), float(dt)),
                   snapshot_every=snapshot_every, history_rows=0, snapshots=0, slot=-1)

    @classmethod
    def reopen(cls, run: "StoredRun", *, config: dict):
        """Continue the stored ``run`` (from :func:`open_run`) at its state.

        History rows at or after the state's step and an end-of-run snapshot off the
        ``snapshot_every`` grid are dropped (an uninterrupted run has neither), the final
        record is removed, ``config`` replaces the stored configuration (only
        :data:`RESUMABLE_KEYS` may differ: the caller checks) and the resume is logged.
        """
        h5py = _h5py()
        step = run.state["step"]
        keep_rows = int(np.searchsorted(run.history["step"], step, side="left"))
        K = run.snapshot_every
        snap_steps = run.snapshots.get("step", np.zeros(0, np.int64))
        keep_snaps = len(snap_steps)
        while K > 0 and keep_snaps and (snap_steps[keep_snaps - 1] % K or
                                        snap_steps[keep_snaps - 1] > step):
            keep_snaps -= 1
        f = _open_for_writing(h5py, run.path, "r+")
        try:
            if "final" in f:
                del f["final"]
            h = f["history"]
            for name in ("tau", *run.columns):
                h[name].resize((keep_rows,))
            if K > 0:
                s = f["snapshots"]
                for name in s:
                    s[name].resize((keep_snaps, *s[name].shape[1:]))
            resumes = json.loads(_text(f.attrs["resumes"]))
            old = run.config
            resumes.append({"at_step": int(step), "time": _now(), "status_before": run.status,
                            "changed": {k: [old.get(k), config.get(k)] for k in RESUMABLE_KEYS
                                        if old.get(k) != config.get(k)}})
            f.attrs["resumes"] = _dump(resumes, "resume log")
            _set_json(f, "config", config, "configuration")
        except BaseException:
            f.close()
            raise
        return cls(run.path, f, columns=run.columns,
                   dtau=(float(f.attrs["courant"]), float(f.attrs["dt"])),
                   snapshot_every=K, history_rows=keep_rows, snapshots=keep_snaps,
                   slot=run.state["slot"])

    # -- writing -----------------------------------------------------------------------------
    def add_snapshot(self, step: int, w_plus, w_minus, theta, reflection=None) -> None:
        """Queue the wave fields of τ-step ``step`` (written by the next :meth:`commit`);
        ``reflection`` is the port's ‖b_k‖² per layer (N,), NaN when not given."""
        if self.snapshot_every <= 0:
            return
        self._pending.append((int(step), np.array(w_plus, dtype=float),
                              np.array(w_minus, dtype=float), np.array(theta, dtype=float),
                              None if reflection is None else np.array(reflection, float)))

    def commit(self, *, step: int, u, v, theta, history, rows: int, ledger_max: float,
               residuals, port_state=None, status: str = RUNNING, message: str = "",
               diverged_at=None, final: dict | None = None) -> None:
        """Write a batch and flush: history rows ``[committed, rows)`` of ``history`` (an array
        with the writer's columns), queued snapshots, the state (u, v, θ and the port's state
        at τ-step ``step``) and, for an ended run, ``final`` (``x``, ``lam``, ``theta`` and
        scalars). Then record the batch in ``progress`` and flush again.

        Idempotent with respect to an interrupted earlier commit: every dataset is written up
        to the target length from the last committed length.
        """
        f = self._f
        h = f["history"]
        n0 = self.history_rows
        if rows < n0:
            raise ValueError(f"history rows went back from {n0} to {rows}")
        block = np.asarray(history[n0:rows], dtype=float)
        steps = block[:, 0].astype(np.int64)
        nu, dt = self.dtau
        for name, values in (("tau", steps * nu * dt),
                             *((c, block[:, j]) for j, c in enumerate(self.columns))):
            ds = h[name]
            ds.resize((rows,))
            if rows > n0:
                ds[n0:rows] = steps if name == "step" else values
        s0 = self.snapshots
        n_snap = s0 + len(self._pending)
        if self._pending:
            snap_steps = np.array([p[0] for p in self._pending], dtype=np.int64)
            block = {"step": snap_steps, "tau": snap_steps * nu * dt,
                     "w_plus": np.stack([p[1] for p in self._pending]),
                     "w_minus": np.stack([p[2] for p in self._pending]),
                     "theta": np.stack([p[3] for p in self._pending])}
            block["reflection"] = np.stack(
                [np.full(p[3].shape[0], np.nan) if p[4] is None else p[4]
                 for p in self._pending])
            s = f["snapshots"]
            for name, values in block.items():
                ds = s[name]
                ds.resize((n_snap, *ds.shape[1:]))
                ds[s0:n_snap] = values
        slot = 0 if self.slot == 1 else 1
        g = f["state"][str(slot)]
        g["u"][...] = u
        g["v"][...] = v
        g["theta"][...] = theta
        for key, value in (port_state or {}).items():
            g["port"][key][...] = value
        g.attrs["step"] = int(step)
        g.attrs["history_rows"] = int(rows)
        g.attrs["ledger_max_rel_error"] = float(ledger_max)
        if final is not None:
            if "final" in f:
                del f["final"]
            fg = f.create_group("final")
            for name in ("x", "lam", "theta"):
                ds = fg.create_dataset(name, data=np.asarray(final[name], dtype=float))
                if name != "theta":
                    ds.dims[1].attach_scale(f["t"])
                    ds.dims[1].label = "t"
            for key in ("objective", "V_final", "wall_time", "compile_time"):
                fg.attrs[key] = float(final[key])
            fg.attrs["residuals"] = _dump(final["residuals"], "final residuals")
        f.flush()
        progress = {"status": str(status), "message": str(message), "steps": int(step),
                    "diverged_at": None if diverged_at is None else int(diverged_at),
                    "history_rows": int(rows), "snapshots": int(n_snap), "state_slot": slot,
                    "ledger_max_rel_error": float(ledger_max),
                    "residuals": [float(r) for r in residuals], "updated": _now()}
        f.attrs["progress"] = _dump(progress, "progress record")
        f.attrs["status"] = str(status)
        f.attrs["steps"] = int(step)
        f.flush()
        self.history_rows, self.snapshots, self.slot = int(rows), n_snap, slot
        self._pending = []

    def close(self) -> None:
        """Close the file (what was not committed is not part of the run)."""
        if self._f is not None:
            try:
                self._f.close()
            finally:
                self._f = None

    @property
    def closed(self) -> bool:
        return self._f is None


def _open_for_writing(h5py, path, mode):
    try:
        return h5py.File(path, mode)
    except FileExistsError:
        raise FileExistsError(f"{path} already exists") from None
    except OSError as exc:
        hint = (" (is another process writing it?)" if "lock" in str(exc).lower() else "")
        raise OSError(f"{path}: cannot open the run file for writing{hint}: {_reason(exc)}") \
            from None


# ----------------------------------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StoredRun:
    """A run read back from its file by :func:`open_run` (arrays are read-only).

    Attributes
    ----------
    path : str
    config : dict
        The driver's configuration (``WaveResult.config``), problem included.
    status : str
        ``converged``, ``max_steps``, ``diverged``, ``interrupted``, or ``running``: no final
        record (the run is still being written, or its writer was killed; what it flushed last
        is here).
    message : str
    steps : int
        τ-steps of the last committed state.
    diverged_at : int or None
    history : dict of arrays
        ``step``, ``tau`` and the driver's columns, one row per ``record_every`` τ-steps.
    snapshots : dict of arrays
        ``step``, ``tau`` (S,), ``w_plus``, ``w_minus`` (S, B, N + 1, n), ``theta`` (S, N, m),
        ``reflection`` (S, N): the port's ‖b_k‖² per layer; empty when the run kept none.
    final : dict or None
        ``x``, ``lam`` (B, N + 1, n), ``theta`` (N, m), ``residuals``, ``objective``,
        ``V_final``, ``wall_time``, ``compile_time``; None while the run has not ended.
    state : dict
        The resume state: ``step``, ``u``, ``v``, ``theta``, ``port`` (the port's state
        arrays), ``fields`` (what u, v are), ``history_rows``, ``ledger_max_rel_error``,
        ``slot``.
    """

    path: str
    config: dict
    status: str
    message: str
    steps: int
    diverged_at: int | None
    history: dict
    snapshots: dict
    final: dict | None
    state: dict
    columns: tuple
    record_every: int
    snapshot_every: int
    V_initial: float
    ledger_max_rel_error: float
    residuals: tuple
    t: np.ndarray
    widths: np.ndarray
    metric: np.ndarray
    digests: dict
    resumes: list
    attrs: dict = field(default_factory=dict)
    file_size: int = 0

    @property
    def complete(self) -> bool:
        """True once the run has ended and its final fields are stored."""
        return self.final is not None

    @property
    def success(self) -> bool:
        return self.status == "converged"


def _frozen(a):
    a = np.array(a)
    a.setflags(write=False)
    return a


def open_run(path) -> StoredRun:
    """Read the run file at ``path``.

    A run may be read while its writer is still running. A read that meets a commit half
    written (HDF5 metadata mid-flush, or a state slot rewritten under the reader) fails; it is
    tried again 0.05 s later, and again while the file keeps changing, for up to
    :data:`SETTLE_SECONDS`. A file that fails twice without changing in between is damaged.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` (naming the file and what
    is wrong) for a directory, a file that is not HDF5, a truncated or damaged one, an HDF5
    file that is not a wavecontrol run, or one written with a newer schema.
    """
    path = Path(path)
    deadline = time.monotonic() + SETTLE_SECONDS
    stamp, retried = _stamp(path), False
    while True:
        try:
            return _open_once(path)
        except ValueError:
            # one retry always (a write within the clock tick of the stamp leaves it as it
            # was); after that, only while the file keeps changing
            time.sleep(0.05)
            now = _stamp(path)
            if (retried and now == stamp) or time.monotonic() > deadline:
                raise
            stamp, retried = now, True


def _stamp(path):
    """What changes when a writer writes ``path``: modification time and size."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def _open_once(path) -> StoredRun:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such run file")
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, not a run file")
    h5py = _h5py()
    try:
        is_hdf5 = h5py.is_hdf5(str(path))
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not is_hdf5:
        raise ValueError(f"{path}: not an HDF5 file (a wavecontrol run file is HDF5; "
                         f"{path.stat().st_size} bytes without the HDF5 signature)")
    try:
        # no lock: a run may be read while its writer is still running
        f = h5py.File(path, "r", locking=False)
    except OSError as exc:
        raise ValueError(f"{path}: truncated or damaged HDF5 file ({_reason(exc)})") from None
    try:
        with f:
            return _read(path, f)
    except ValueError as exc:
        if str(exc).startswith(f"{path}:"):
            raise
        raise ValueError(f"{path}: damaged wavecontrol run file ({_reason(exc)})") from None
    except (KeyError, OSError, TypeError, IndexError, RuntimeError, AttributeError) as exc:
        raise ValueError(f"{path}: damaged wavecontrol run file ({_reason(exc)})") from None


def _reason(exc) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    for prefix in ("Unable to synchronously open file ", "Unable to open file "):
        if text.startswith(prefix):
            text = text[len(prefix):].strip("()")
    return text


def _read(path, f) -> StoredRun:
    a = f.attrs
    fmt = a.get("format")
    if fmt is None or _text(fmt) != FORMAT:
        what = "no 'format' attribute" if fmt is None else f"format {_text(fmt)!r}"
        raise ValueError(f"{path}: not a wavecontrol run file (an HDF5 file with {what}; "
                         f"a run file has format {FORMAT!r})")
    schema = int(a["schema_version"])
    if schema > SCHEMA_VERSION:
        raise ValueError(f"{path}: written with run-file schema {schema} by wavecontrol "
                         f"{_text(a.get('wavecontrol_version', '?'))}; this version reads "
                         f"schema {SCHEMA_VERSION} and older")
    if "progress" not in a:
        raise ValueError(f"{path}: damaged wavecontrol run file (nothing was committed: the "
                         "writer stopped before its first flush)")
    progress = json.loads(_text(a["progress"]))
    config = _get_json(f, "config")
    columns = tuple(json.loads(_text(f["history"].attrs["columns"])))
    rows = int(progress["history_rows"])
    h = f["history"]
    history = {}
    for name in ("tau", *columns):
        ds = h[name]
        if ds.shape[0] < rows:
            raise ValueError(f"{path}: damaged wavecontrol run file (history/{name} has "
                             f"{ds.shape[0]} rows, {rows} were committed)")
        history[name] = _frozen(ds[:rows])
    snapshots = {}
    n_snap = int(progress["snapshots"])
    if "snapshots" in f:
        s = f["snapshots"]
        for name in s:
            if s[name].shape[0] < n_snap:
                raise ValueError(f"{path}: damaged wavecontrol run file (snapshots/{name} has "
                                 f"{s[name].shape[0]} entries, {n_snap} were committed)")
            snapshots[name] = _frozen(s[name][:n_snap])
    slot = int(progress["state_slot"])
    g = f["state"][str(slot)]
    state = {"step": int(g.attrs["step"]), "u": _frozen(g["u"][()]), "v": _frozen(g["v"][()]),
             "theta": _frozen(g["theta"][()]), "fields": _text(a["state_fields"]),
             "port": {key: _frozen(ds[()]) for key, ds in g["port"].items()},
             "history_rows": int(g.attrs["history_rows"]),
             "ledger_max_rel_error": float(g.attrs["ledger_max_rel_error"]), "slot": slot}
    if state["step"] != int(progress["steps"]):
        raise ValueError(f"{path}: damaged wavecontrol run file (state slot {slot} holds "
                         f"τ-step {state['step']}, the progress record says {progress['steps']})")
    final = None
    if "final" in f and progress["status"] != RUNNING:
        fg = f["final"]
        final = {name: _frozen(fg[name][()]) for name in ("x", "lam", "theta")}
        final.update({key: float(fg.attrs[key])
                      for key in ("objective", "V_final", "wall_time", "compile_time")})
        final["residuals"] = json.loads(_text(fg.attrs["residuals"]))
    attrs = {key: (_text(a[key]) if isinstance(a[key], (str, bytes)) else a[key].item())
             for key in ("format", "schema_version", "wavecontrol_version", "h5py_version",
                         "hdf5_version", "numpy_version", "created", "formulation")}
    attrs["updated"] = progress.get("updated")
    return StoredRun(
        path=str(path), config=config, status=str(progress["status"]),
        message=str(progress["message"]), steps=int(progress["steps"]),
        diverged_at=progress["diverged_at"], history=history, snapshots=snapshots, final=final,
        state=state, columns=columns, record_every=int(a["record_every"]),
        snapshot_every=int(a["snapshot_every"]), V_initial=float(a["V_initial"]),
        ledger_max_rel_error=float(progress["ledger_max_rel_error"]),
        residuals=tuple(float(r) for r in progress["residuals"]),
        t=_frozen(f["t"][()]), widths=_frozen(f["widths"][()]), metric=_frozen(f["metric"][()]),
        digests=json.loads(_text(a["digests"])), resumes=json.loads(_text(a["resumes"])),
        attrs=attrs, file_size=path.stat().st_size)


def worldsheet_energy(run: StoredRun):
    """Wave energy per node from the snapshots: (τ (S,), t (N + 1,), E+ (S, N + 1), E− (S, N + 1))
    with E±[s, k] = Σ over batch and components of (w±_k)² at snapshot s.

    ½ Δt Σ_k (E+ + E−) is the wave energy V of the snapshot's τ-step (DESIGN, "Energy").
    """
    s = run.snapshots
    if not s or len(s["step"]) == 0:
        raise ValueError(f"{run.path}: the run kept no snapshots (snapshot_every = 0?)")
    Ep = np.einsum("sbkn,sbkn->sk", s["w_plus"], s["w_plus"])
    Em = np.einsum("sbkn,sbkn->sk", s["w_minus"], s["w_minus"])
    return np.asarray(s["tau"]), np.asarray(run.t), Ep, Em


def run_summary(run: StoredRun) -> dict:
    """The numbers ``wavecontrol show`` prints, as a JSON-ready dict."""
    h = run.history
    cfg = run.config
    last = {k: (float(h[k][-1]) if len(h.get(k, ())) else None)
            for k in ("res_x", "res_lambda", "res_theta", "objective", "V")}
    out = {
        "path": run.path, "format": run.attrs.get("format"),
        "schema_version": run.attrs.get("schema_version"),
        "wavecontrol_version": run.attrs.get("wavecontrol_version"),
        "created": run.attrs.get("created"), "updated": run.attrs.get("updated"),
        "problem": cfg.get("problem", {}),
        "solver": {k: v for k, v in cfg.items() if k != "problem"},
        "status": run.status, "message": run.message, "complete": run.complete,
        "steps": run.steps, "diverged_at": run.diverged_at,
        "tau": run.steps * float(cfg.get("courant", math.nan)) * float(run.t[1] - run.t[0])
        if len(run.t) > 1 else None,
        "residuals": (run.final["residuals"] if run.final else
                      {"x": last["res_x"], "lambda": last["res_lambda"],
                       "theta": last["res_theta"]}),
        "residuals_from": "final fields" if run.final else
                          f"last history row (τ-step {int(h['step'][-1])})" if len(h["step"])
                          else "none recorded",
        "objective": run.final["objective"] if run.final else last["objective"],
        "objective_initial": float(h["objective"][0]) if len(h.get("objective", ())) else None,
        "V_initial": run.V_initial,
        "V_final": run.final["V_final"] if run.final else None,
        "ledger_max_rel_error": run.ledger_max_rel_error,
        "history_rows": int(len(h["step"])), "record_every": run.record_every,
        "snapshots": int(len(run.snapshots.get("step", ()))),
        "snapshot_every": run.snapshot_every,
        "reflection_rows": int(np.isfinite(h["reflection"]).sum()) if "reflection" in h else 0,
        "field_shape": list(run.state["u"].shape), "theta_shape": list(run.state["theta"].shape),
        "file_bytes": run.file_size, "resumes": run.resumes,
    }
    if run.final:
        out["wall_s"] = run.final["wall_time"]
        out["compile_s"] = run.final["compile_time"]
    return out


__all__ = ["FORMAT", "SCHEMA_VERSION", "RESUMABLE_KEYS", "RUNNING", "RunWriter", "StoredRun",
           "open_run", "config_differences", "array_digest", "worldsheet_energy", "run_summary"]
