"""Control problems written as formulas: SymPy derives every derivative, code is generated.

:func:`from_expressions` takes the dynamics ``ẋ = f(x, u)`` (or ``f(x, u, t)``), the running
cost ``L(x, u)`` (or ``L(x, u, t)``) and the terminal cost ``Φ(x)`` — as SymPy expressions in
given symbols, or as Python functions that are called once on SymPy symbols — with x0, T, N,
optional box bounds ``lo ≤ u ≤ hi`` and a one-step integrator (:mod:`problems.integrators`),
and returns an :class:`ExpressionProblem`, a :class:`~wavecontrol.problem.LayeredProblem` on
t_k = k Δt, Δt = T/N::

    x_{k+1} = S(x_k, u_k, t_k)        (one integrator step, u held over it)
    R_k     = Δt · L(x_k, u_k, t_k)   (the running cost at the node, whatever the integrator)
    ℓ       = Φ(x_N)

SymPy gives f_x, f_u, L_x, L_u, L_xx, L_ux, L_uu, Φ_x, Φ_xx (no hand-written differentiator).
From them two modules are generated as text: vectorized NumPy functions (the problem's NumPy
methods, which the NumPy τ-step, every port, L-BFGS, ``compare`` and storage use unchanged) and
the numba node functions of the node-function contract (:meth:`ExpressionProblem.node_kernel`,
docs/problems.md): scalar code without arrays, the integrator step written out stage by stage
with its exact Jacobians, and every subexpression in Δt and the parameters alone computed once
per problem into the data vector (``node_data`` of the NumPy module). Both are cached on
disk under a hash of the expressions, the integrator and the generator version
(:func:`cache_dir`), so a second build of the same problem skips SymPy's differentiation and
printing. :func:`check_derivatives` compares every generated derivative
and the integrator's Jacobians with central finite differences, on request.

Model parameters (``params``) stay symbols in the generated code and are passed as data, so
changing their values reuses the cached code.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import numbers
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from wavecontrol.grid import Layout
from wavecontrol.problem import LayeredProblem

from .builder import ContinuousProblem
from .integrators import (TABLEAUX, check_integrator, check_substeps, one_step,
                          step_curvature)

#: bumped whenever the generated text changes for the same input (part of the cache key)
CODEGEN_VERSION = 4
#: environment variable naming the cache folder of generated sources
CACHE_ENV = "WAVECONTROL_CODEGEN_CACHE"


def cache_dir() -> Path:
    """Folder of the generated sources: ``$WAVECONTROL_CODEGEN_CACHE``, else
    ``~/.cache/wavecontrol/expressions``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "wavecontrol" / "expressions"


def _sympy():
    try:
        import sympy
    except ImportError as exc:      # a dependency (setup.cfg), but say what to do
        raise ImportError("problems from expressions need SymPy: pip install 'sympy>=1.12'") \
            from exc
    return sympy


# ----------------------------------------------------------------------------------------------
# input → canonical SymPy expressions
# ----------------------------------------------------------------------------------------------
def _symbol_list(sp, name, given, size):
    """``given`` symbols (a sequence, a Matrix or a space-separated string) as a list."""
    if isinstance(given, str):
        given = sp.symbols(given)
    if isinstance(given, sp.Symbol):
        given = [given]
    try:
        syms = list(given)
    except TypeError:
        raise ValueError(f"{name} must be a sequence of SymPy symbols, got {given!r}") from None
    if not all(isinstance(s, sp.Symbol) for s in syms):
        raise ValueError(f"{name} must be a sequence of SymPy symbols, got {given!r}")
    if size is not None and len(syms) != size:
        raise ValueError(f"{name} must have {size} symbols, got {len(syms)}")
    return syms


def _call(sp, what, func, args, t_sym, param_syms):
    """Call the user's ``func`` on SymPy arguments; keyword arguments ``t`` and the parameter
    names that its signature asks for."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        sig = None
    kw = {}
    if sig is not None:
        names = sig.parameters
        varkw = any(q.kind is inspect.Parameter.VAR_KEYWORD for q in names.values())
        for pname, sym in param_syms.items():
            if pname in names or varkw:
                kw[pname] = sym
        if "t" in names and t_sym is not None:
            kw["t"] = t_sym
    try:
        return func(*args, **kw)
    except Exception as exc:    # the user's code: say which function and why
        raise ValueError(f"calling {what} on SymPy symbols failed ({type(exc).__name__}: "
                         f"{exc}); {what} must build a SymPy expression (use sympy.sin, "
                         "not numpy.sin or math.sin)") from None


def _as_vector(sp, what, value, size):
    try:
        entries = list(sp.Matrix(value)) if not isinstance(value, sp.Basic) or \
            isinstance(value, sp.MatrixBase) else [value]
    except (TypeError, ValueError, sp.SympifyError):
        raise ValueError(f"{what} must be a sequence of {size} SymPy expressions, "
                         f"got {value!r}") from None
    entries = [sp.sympify(e) for e in entries]
    if len(entries) != size:
        raise ValueError(f"{what} must have {size} entries (one per state), got {len(entries)}")
    return entries


def _as_scalar(sp, what, value):
    if isinstance(value, sp.MatrixBase):
        if value.shape != (1, 1):
            raise ValueError(f"{what} must be a scalar expression, got a {value.shape} matrix")
        value = value[0, 0]
    try:
        return sp.sympify(value)
    except sp.SympifyError:
        raise ValueError(f"{what} must be a SymPy scalar expression, got {value!r}") from None


def _finite_vector(name, value, size=None):
    a = np.atleast_1d(np.asarray(value, dtype=float))
    if a.ndim != 1 or (size is not None and a.size != size):
        raise ValueError(f"{name} must be a vector{'' if size is None else f' of {size}'} "
                         f"numbers, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite")
    return a


def _bound(name, value, m, default):
    if value is None:
        return np.full(m, default)
    a = np.asarray(value, dtype=float)
    if a.ndim == 0:
        a = np.full(m, float(a))
    if a.shape != (m,):
        raise ValueError(f"{name} must be a number or have shape ({m},), got shape {a.shape}")
    if np.any(np.isnan(a)):
        raise ValueError(f"{name} must not be NaN")
    return a


class _Spec:
    """The problem's expressions: display symbols (the user's, for the text and the CasADi
    transcription) and canonical ones (for the generated code and the cache key)."""

    def __init__(self, sp, f, L, Phi, n, m, x, u, t, params):
        self.n, self.m = n, m
        params = dict(params or {})
        callable_mode = callable(f)
        pnames = []
        for key in params:
            pname = key.name if isinstance(key, sp.Symbol) else key
            if not isinstance(pname, str) or not pname.isidentifier():
                raise ValueError(f"params keys must be names or SymPy symbols, got {key!r}")
            pnames.append(pname)
        if len(set(pnames)) != len(pnames):
            raise ValueError(f"params has a repeated name: {pnames}")
        values = []
        for key, pname in zip(params, pnames):
            v = params[key]
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
                raise ValueError(f"parameter {pname!r} must be a finite number, got {v!r}")
            values.append(float(v))
        self.param_names, self.param_values = pnames, np.array(values, dtype=float)
        if callable_mode:
            if m is None:
                raise ValueError("m (the number of controls) is needed when f is a function")
            self.xs = list(sp.symbols(f"x0:{n}")) if n > 1 else [sp.Symbol("x0")]
            self.us = list(sp.symbols(f"u0:{m}")) if m > 1 else [sp.Symbol("u0")]
            self.ts = sp.Symbol("t")
            self.ps = [sp.Symbol(p) for p in pnames]
        else:
            if x is None or u is None:
                raise ValueError("f given as expressions needs the state and control symbols: "
                                 "x=(...), u=(...)")
            self.xs = _symbol_list(sp, "x", x, n)
            self.us = _symbol_list(sp, "u", u, m)
            self.m = m = len(self.us)
            if t is not None and not isinstance(t, sp.Symbol):
                raise ValueError(f"t must be a SymPy symbol, got {t!r}")
            self.ts = t
            self.ps = [k if isinstance(k, sp.Symbol) else sp.Symbol(k) for k in params]
        psyms = dict(zip(pnames, self.ps))
        X, U = sp.Matrix(self.xs), sp.Matrix(self.us)

        def build(what, value, args, vector):
            if callable(value):
                value = _call(sp, what, value, args, self.ts, psyms)
            elif callable_mode and value is not None and not isinstance(value, (sp.Basic,
                                                                              numbers.Number)):
                raise ValueError(f"{what} must be a function like f, or a SymPy expression")
            return _as_vector(sp, what, value, n) if vector else _as_scalar(sp, what, value)

        self.f = build("f", f, (X, U), True)
        self.L = build("L", L, (X, U), False)
        self.Phi = build("Phi", Phi, (X,), False)
        own = set(self.xs) | set(self.us) | set(self.ps) | ({self.ts} if self.ts else set())
        for what, exprs, allowed in (("f", self.f, own), ("L", [self.L], own),
                                     ("Phi", [self.Phi], set(self.xs) | set(self.ps))):
            free = set().union(*(e.free_symbols for e in exprs)) - allowed
            if free:
                raise ValueError(f"{what} has free symbol(s) {sorted(map(str, free))} that are "
                                 "not states, controls" + (", t" if what != "Phi" else "")
                                 + " or params")
        if len(own) != len(self.xs) + len(self.us) + len(self.ps) + (1 if self.ts else 0):
            raise ValueError("the state, control, time and parameter symbols must be distinct")
        self.time_dependent = self.ts is not None and any(
            self.ts in e.free_symbols for e in self.f + [self.L])
        if callable_mode and not self.time_dependent:
            self.ts = None
        # canonical symbols
        self.cx = [sp.Symbol(f"_x{i}") for i in range(n)]
        self.cu = [sp.Symbol(f"_u{j}") for j in range(m)]
        self.cp = [sp.Symbol(f"_p{i}") for i in range(len(self.ps))]
        self.ct = sp.Symbol("_t")
        sub = dict(zip(self.xs, self.cx)) | dict(zip(self.us, self.cu)) | dict(
            zip(self.ps, self.cp))
        if self.ts is not None:
            sub[self.ts] = self.ct
        self.cf = [e.xreplace(sub) for e in self.f]
        self.cL = self.L.xreplace(sub)
        self.cPhi = self.Phi.xreplace(sub)

    def key(self, integrator, substeps) -> str:
        text = json.dumps({"v": CODEGEN_VERSION, "n": self.n, "m": self.m,
                           "p": len(self.cp), "f": [str(e) for e in self.cf],
                           "L": str(self.cL), "Phi": str(self.cPhi),
                           "integrator": integrator, "substeps": substeps}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def text(self) -> dict:
        """The expressions as strings in the user's symbols."""
        return {"f": [str(e) for e in self.f], "L": str(self.L), "Phi": str(self.Phi),
                "x": [str(s) for s in self.xs], "u": [str(s) for s in self.us],
                "t": None if self.ts is None else str(self.ts),
                "params": dict(zip(self.param_names, self.param_values.tolist()))}


# ----------------------------------------------------------------------------------------------
# code generation
# ----------------------------------------------------------------------------------------------
def _derivatives(sp, spec):
    X, U = sp.Matrix(spec.cx), sp.Matrix(spec.cu)
    f = sp.Matrix(spec.cf)
    L, Phi = spec.cL, spec.cPhi
    Lx = [sp.diff(L, xi) for xi in spec.cx]
    Lu = [sp.diff(L, uj) for uj in spec.cu]
    return {
        "f": list(f), "f_x": f.jacobian(X), "f_u": f.jacobian(U),
        "L": L, "L_x": Lx, "L_u": Lu,
        "L_xx": sp.Matrix([[sp.diff(g, xj) for xj in spec.cx] for g in Lx]),
        "L_ux": sp.Matrix([[sp.diff(g, xi) for xi in spec.cx] for g in Lu]),
        "L_uu": sp.Matrix([[sp.diff(g, uj) for uj in spec.cu] for g in Lu]),
        "Phi": Phi, "Phi_x": [sp.diff(Phi, xi) for xi in spec.cx],
        "Phi_xx": sp.hessian(Phi, X),
        # Σ_i a_i ∇²_z f_i over z = (x, u): the curvature of a · f (the matched port's Newton
        # model, contracted with the stage adjoints a by problems.integrators.step_curvature)
        "f_hw": sp.hessian(sum((a * e for a, e in zip(_weights(sp, spec.n), f)), sp.Integer(0)),
                           list(spec.cx) + list(spec.cu)),
    }


def _weights(sp, n):
    """The symbols ``_a0 … _a{n−1}`` of the weights a in ``f_hw``."""
    return [sp.Symbol(f"_a{i}") for i in range(n)]


def _entries(value, shape):
    """(index tuple, expression) of a scalar, vector or matrix output."""
    if shape == ():
        return [((), value)]
    if len(shape) == 1:
        return [((i,), value[i]) for i in range(shape[0])]
    return [((i, j), value[i, j]) for i in range(shape[0]) for j in range(shape[1])]


def _body(sp, printer, outputs, indent="    "):
    """Assignment lines for ``outputs`` [(target format, index, expr)] with common
    subexpressions pulled out."""
    exprs = [e for _, _, e in outputs]
    reps, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("_c"), optimizations="basic")
    lines = [f"{indent}{s} = {printer.doprint(e)}" for s, e in reps]
    for (target, idx, _), e in zip(outputs, reduced):
        lines.append(f"{indent}{target.format(*idx)} = {printer.doprint(e)}")
    return lines


def _unpack(spec, vec, xname="x", uname="u", tname="t", pexpr=None, with_u=True, with_t=True):
    """Lines binding the canonical symbols to array entries (``vec`` adds the ``...`` axis)."""
    pre = "..., " if vec else ""
    out = [f"    _x{i} = {xname}[{pre}{i}]" for i in range(spec.n)]
    if with_u:
        out += [f"    _u{j} = {uname}[{pre}{j}]" for j in range(spec.m)]
    if with_t:
        out.append(f"    _t = {tname}")
    out += [f"    _p{i} = {pexpr.format(i)}" for i in range(len(spec.cp))]
    return out


_NUMPY_SHAPES = {"f": "n", "f_x": "nn", "f_u": "nm", "L": "", "L_x": "n", "L_u": "m",
                 "L_xx": "nn", "L_ux": "mn", "L_uu": "mm", "Phi": "", "Phi_x": "n",
                 "Phi_xx": "nn"}


def _numpy_source(sp, spec, D, hoisted) -> str:
    """Vectorized NumPy functions ``name(x, u, t, p)`` (costs of x alone: ``name(x, p)``), and
    ``node_data(dt, p)``: the data vector d of the node functions with the constants
    ``hoisted`` [(symbol, expression in dt and the parameters)] after the parameters."""
    from sympy.printing.numpy import NumPyPrinter

    printer = NumPyPrinter({"fully_qualified_modules": True})
    dims = {"n": spec.n, "m": spec.m}
    lines = ['"""Generated by problems.expressions (NumPy functions); do not edit."""',
             "import numpy", "", "",
             "def _lead(x, u, t):",
             "    a, b, c = x.shape[:-1], u.shape[:-1], numpy.shape(t)",
             "    if len(b) <= len(a) and len(c) <= len(a) and b == a[len(a) - len(b):] \\",
             "            and c == a[len(a) - len(c):]:",
             "        return a",
             "    return numpy.broadcast_shapes(a, b, c)", "", ""]
    for name, code in _NUMPY_SHAPES.items():
        shape = tuple(dims[c] for c in code)
        terminal = name.startswith("Phi")
        args = "x, p" if terminal else "x, u, t, p"
        lines.append(f"def {name}({args}):")
        lines += _unpack(spec, True, pexpr="p[{}]", with_u=not terminal, with_t=not terminal)
        lead = "x.shape[:-1]" if terminal else "_lead(x, u, t)"
        lines.append(f"    out = numpy.empty({lead} + {shape!r})")
        target = "out[...]" if not shape else "out[..., " + ", ".join(
            "{}" for _ in shape) + "]"
        outs = [(target, idx, e) for idx, e in _entries(D[name], shape)]
        lines += _body(sp, printer, outs)
        lines += ["    return out", ""]
    d = spec.n + spec.m
    lines.append("def f_hw(x, u, t, a, p):")
    lines += _unpack(spec, True, pexpr="p[{}]")
    lines += [f"    _a{i} = a[..., {i}]" for i in range(spec.n)]
    lines.append(f"    out = numpy.empty(numpy.broadcast_shapes(_lead(x, u, t), "
                 f"a.shape[:-1]) + {(d, d)!r})")
    lines += _body(sp, printer, [("out[..., {}, {}]", idx, e)
                                 for idx, e in _entries(D["f_hw"], (d, d))])
    lines += ["    return out", ""]
    P = len(spec.cp)
    lines += ["def node_data(dt, p):",
              '    """d = [dt, p..., the constants the node functions read] (float64)."""']
    lines += [f"    _p{i} = p[{i}]" for i in range(P)]
    lines += [f"    out = numpy.empty({1 + P + len(hoisted)})", "    out[0] = dt",
              f"    out[1:{1 + P}] = p"]
    lines += _body(sp, printer, [("out[{}]", (1 + P + i,), e)
                                 for i, (_, e) in enumerate(hoisted)])
    lines += ["    return out", ""]
    return "\n".join(lines) + "\n"


class _Hoist:
    """Subexpressions in Δt and the parameters alone, taken out of the node functions: the
    node functions read them from ``d`` after the parameters (``d[1 + P + i]``, P parameters)
    and the NumPy module's ``node_data(dt, p)`` computes them once per problem. A node function
    thus multiplies by ``Δt g/l`` where the formula divides by l, and reads ``1 − Δt b`` instead
    of forming it at every call (what a hand-written node function does)."""

    def __init__(self, sp, spec):
        self.sp = sp
        self.dt = sp.Symbol("dt")
        self.const = frozenset(spec.cp) | {self.dt}
        self.base = 1 + len(spec.cp)
        self.order = []                 # [(symbol _k<i>, expression)]
        self._table = {}

    def _name(self, e):
        if e.is_Atom:
            return e
        s = self._table.get(e)
        if s is None:
            s = self.sp.Symbol(f"_k{len(self.order)}")
            self._table[e] = s
            self.order.append((s, e))
        return s

    def __call__(self, e):
        """``e`` with its largest constant subexpressions (and the constant factors of a
        product, the constant terms of a sum) replaced by ``_k<i>`` symbols."""
        if e.is_Atom:
            return e
        fs = e.free_symbols
        if fs and fs <= self.const:
            return self._name(e)
        if e.is_Add or e.is_Mul:
            const = [a for a in e.args if a.free_symbols <= self.const]
            if any(a.free_symbols for a in const):
                rest = [self(a) for a in e.args if not a.free_symbols <= self.const]
                return e.func(self._name(e.func(*const)), *rest)
        if not e.args:
            return e
        return e.func(*[self(a) for a in e.args])


def _block(sp, printer, hoist, outputs, tag, indent="    ", inline_atoms=False):
    """Assignment lines for ``outputs`` [(target, expr)] with constants hoisted and common
    subexpressions (named ``_c<tag>_<i>``) pulled out. Returns (lines, values, used): values
    maps each target to what later code reads for it (its name, or with ``inline_atoms`` a
    number or symbol that needs no line of its own); used is every free symbol read."""
    exprs = [hoist(sp.sympify(e)) for _, e in outputs]
    values, emit = {}, []
    for (target, _), e in zip(outputs, exprs):
        if inline_atoms and e.is_Atom:
            values[target] = e
        else:
            values[target] = sp.Symbol(target)
            emit.append((target, e))
    used = set().union(*(e.free_symbols for e in exprs))
    reps, reduced = sp.cse([e for _, e in emit], symbols=sp.numbered_symbols(f"_c{tag}_"),
                           optimizations="basic")
    lines = [f"{indent}{s} = {printer.doprint(e)}" for s, e in reps]
    lines += [f"{indent}{t} = {printer.doprint(e)}" for (t, _), e in zip(emit, reduced)]
    return lines, values, used


def _rational(sp, v):
    """A tableau coefficient (a float such as 1/6) as the exact fraction it stands for."""
    return sp.Rational(v).limit_denominator(1000)


def _layer_body(sp, printer, hoist, spec, D, integrator, substeps):
    """(lines, used) of ``layer``: the integrator step written out as scalar code.

    Euler with one step is ``x + Δt f``, ``I + Δt f_x``, ``Δt f_u`` in one expression block. The
    other methods go stage by stage (:mod:`problems.integrators`): stage i binds the scalars
    ``_X<i>_l = s_l + h a_i K_{i−1,l}``, then ``K_i = f(X_i)``, ``KX_i = f_x(X_i) (I + h a_i
    KX_{i−1})`` and ``KU_i = f_x(X_i) h a_i KU_{i−1} + f_u(X_i)`` as one block whose products
    SymPy has already pruned where f_x has zeros and ones; the step is ``s + h Σ b_i K_i`` with
    ``I + h Σ b_i KX_i`` and ``h Σ b_i KU_i``. Substeps loop over the step with the state and
    the composed Jacobians (A ← FA A, B ← FA B + FB) as loop-carried scalars. No arrays."""
    c, a, b = TABLEAUX[integrator]
    n, m, M = spec.n, spec.m, substeps
    dt, ct = hoist.dt, spec.ct
    eye = lambda i, j: sp.Integer(1 if i == j else 0)                      # noqa: E731
    rows = lambda name, r, q: [[f"{name}{i}_{j}" for j in range(q)] for i in range(r)]  # noqa: E731
    if len(c) == 1 and M == 1:
        outs = ([(f"f[{i}]", spec.cx[i] + dt * e) for i, e in enumerate(D["f"])]
                + [(f"A[{i}, {j}]", eye(i, j) + dt * D["f_x"][i, j])
                   for i in range(n) for j in range(n)]
                + [(f"B[{i}, {j}]", dt * D["f_u"][i, j]) for i in range(n) for j in range(m)])
        lines, _, used = _block(sp, printer, hoist, outs, "")
        return lines, used
    h = dt / M
    lines, used = [], set()
    loop = M > 1
    ind = "        " if loop else "    "
    if loop:
        s = [sp.Symbol(f"_s{i}") for i in range(n)]
        PA = [[sp.Symbol(t) for t in r] for r in rows("_PA", n, n)]
        PB = [[sp.Symbol(t) for t in r] for r in rows("_PB", n, m)]
        lines += [f"    _s{i} = _x{i}" for i in range(n)]
        lines += [f"    _PA{i}_{j} = {float(i == j)}" for i in range(n) for j in range(n)]
        lines += [f"    _PB{i}_{j} = 0.0" for i in range(n) for j in range(m)]
        used |= set(spec.cx)
        lines.append(f"    for _j in range({M}):")
        tj = ct
        if spec.time_dependent:
            tl, tv, tu = _block(sp, printer, hoist, [("_tj", ct + sp.Symbol("_j") * h)], "t", ind)
            lines += tl
            used |= tu
            tj = tv["_tj"]
    else:
        s, tj = list(spec.cx), ct
    K = KX = KU = None
    terms = []                          # (h b_i, K_i, KX_i, KU_i) of the stages with b_i ≠ 0
    for i in range(len(c)):
        if i == 0:
            X = s
        else:
            ha = h * _rational(sp, a[i - 1])
            xl, xv, xu = _block(sp, printer, hoist,
                                [(f"_X{i}_{l}", s[l] + ha * K[l]) for l in range(n)],
                                f"x{i}", ind, inline_atoms=True)
            lines += xl
            used |= xu
            X = [xv[f"_X{i}_{l}"] for l in range(n)]
        sub = dict(zip(spec.cx, X))
        sub[ct] = tj + _rational(sp, c[i]) * h
        f = [e.xreplace(sub) for e in D["f"]]
        fx, fu = D["f_x"].xreplace(sub), D["f_u"].xreplace(sub)
        if i == 0:
            kx = [[fx[r, q] for q in range(n)] for r in range(n)]
            ku = [[fu[r, q] for q in range(m)] for r in range(n)]
        else:
            kx = [[sp.Add(*[fx[r, l] * (eye(l, q) + ha * KX[l][q]) for l in range(n)])
                   for q in range(n)] for r in range(n)]
            ku = [[sp.Add(*[fx[r, l] * ha * KU[l][q] for l in range(n)]) + fu[r, q]
                   for q in range(m)] for r in range(n)]
        outs = ([(f"_K{i}_{l}", f[l]) for l in range(n)]
                + [(t, kx[r][q]) for r, row in enumerate(rows(f"_KX{i}_", n, n))
                   for q, t in enumerate(row)]
                + [(t, ku[r][q]) for r, row in enumerate(rows(f"_KU{i}_", n, m))
                   for q, t in enumerate(row)])
        kl, kv, ku_ = _block(sp, printer, hoist, outs, f"{i}", ind, inline_atoms=True)
        lines += kl
        used |= ku_
        K = [kv[f"_K{i}_{l}"] for l in range(n)]
        KX = [[kv[t] for t in row] for row in rows(f"_KX{i}_", n, n)]
        KU = [[kv[t] for t in row] for row in rows(f"_KU{i}_", n, m)]
        if b[i] != 0.0:
            terms.append((h * _rational(sp, b[i]), K, KX, KU))
    F = [s[l] + sp.Add(*[w * Ks[l] for w, Ks, _, _ in terms]) for l in range(n)]
    FA = [[eye(r, q) + sp.Add(*[w * Xs[r][q] for w, _, Xs, _ in terms]) for q in range(n)]
          for r in range(n)]
    FB = [[sp.Add(*[w * Us[r][q] for w, _, _, Us in terms]) for q in range(m)]
          for r in range(n)]
    if not loop:
        outs = ([(f"f[{l}]", F[l]) for l in range(n)]
                + [(f"A[{r}, {q}]", FA[r][q]) for r in range(n) for q in range(n)]
                + [(f"B[{r}, {q}]", FB[r][q]) for r in range(n) for q in range(m)])
        fl, _, fu_ = _block(sp, printer, hoist, outs, "f")
        return lines + fl, used | fu_
    fl, fv, fu_ = _block(sp, printer, hoist,
                         [(f"_F{l}", F[l]) for l in range(n)]
                         + [(f"_FA{r}_{q}", FA[r][q]) for r in range(n) for q in range(n)]
                         + [(f"_FB{r}_{q}", FB[r][q]) for r in range(n) for q in range(m)],
                         "f", ind, inline_atoms=True)
    lines += fl
    used |= fu_
    fa = [[fv[f"_FA{r}_{q}"] for q in range(n)] for r in range(n)]
    fb = [[fv[f"_FB{r}_{q}"] for q in range(m)] for r in range(n)]
    nl, _, nu = _block(sp, printer, hoist,
                       [(f"_NA{r}_{q}", sp.Add(*[fa[r][l] * PA[l][q] for l in range(n)]))
                        for r in range(n) for q in range(n)]
                       + [(f"_NB{r}_{q}", sp.Add(*[fa[r][l] * PB[l][q] for l in range(n)])
                           + fb[r][q]) for r in range(n) for q in range(m)], "n", ind)
    lines += nl
    used |= nu
    lines += [f"{ind}_s{l} = {printer.doprint(fv[f'_F{l}'])}" for l in range(n)]
    lines += [f"{ind}_PA{r}_{q} = _NA{r}_{q}" for r in range(n) for q in range(n)]
    lines += [f"{ind}_PB{r}_{q} = _NB{r}_{q}" for r in range(n) for q in range(m)]
    lines += [f"    f[{l}] = _s{l}" for l in range(n)]
    lines += [f"    A[{r}, {q}] = _PA{r}_{q}" for r in range(n) for q in range(n)]
    lines += [f"    B[{r}, {q}] = _PB{r}_{q}" for r in range(n) for q in range(m)]
    return lines, used


def _unpack_used(spec, hoist, used, time="k * dt"):
    """Lines binding the canonical symbols that a node function reads (``used``): x, u entries,
    Δt, t = k Δt, parameters and hoisted constants from ``d = D[0]``."""
    dt = hoist.dt
    need_dt = dt in used or spec.ct in used
    consts = [s for s, _ in hoist.order if s in used]
    params = [i for i, p in enumerate(spec.cp) if p in used]
    out = []
    if need_dt or params or consts:
        out.append("    d = D[0]")
    if need_dt:
        out.append("    dt = d[0]")
    out += [f"    _x{i} = x[{i}]" for i, s in enumerate(spec.cx) if s in used]
    out += [f"    _u{j} = u[{j}]" for j, s in enumerate(spec.cu) if s in used]
    if spec.ct in used:
        out.append(f"    _t = {time}")
    out += [f"    _p{i} = d[{i + 1}]" for i in params]
    index = {s: hoist.base + i for i, (s, _) in enumerate(hoist.order)}
    out += [f"    {s} = d[{index[s]}]" for s in consts]
    return out


def _node_source(sp, spec, D, integrator, substeps):
    """Numba node functions of the node-function contract (docs/problems.md), and the hoisted
    constants they read from ``d`` (:class:`_Hoist`)."""
    from sympy.printing.pycode import PythonCodePrinter

    printer = PythonCodePrinter({"fully_qualified_modules": True})
    hoist = _Hoist(sp, spec)
    dt = hoist.dt
    n, m = spec.n, spec.m
    funcs = []

    def func(header, outs, tail=()):
        lines, _, used = _block(sp, printer, hoist, outs, "")
        funcs.append((header, used, lines + list(tail)))

    func("def running_grad(k, x, u, D, gx, gu):",
         [("_R", dt * D["L"])] + [(f"gx[{i}]", dt * e) for i, e in enumerate(D["L_x"])]
         + [(f"gu[{j}]", dt * e) for j, e in enumerate(D["L_u"])], ["    return _R"])
    func("def running_hess(k, x, u, D, Rxx, Rux, Ruu):",
         [(f"Rxx[{i}, {j}]", dt * e) for (i, j), e in _entries(D["L_xx"], (n, n))]
         + [(f"Rux[{i}, {j}]", dt * e) for (i, j), e in _entries(D["L_ux"], (m, n))]
         + [(f"Ruu[{i}, {j}]", dt * e) for (i, j), e in _entries(D["L_uu"], (m, m))])
    func("def terminal_grad(x, D, g):",
         [("_l", D["Phi"])] + [(f"g[{i}]", e) for i, e in enumerate(D["Phi_x"])],
         ["    return _l"])
    func("def terminal_hess(x, D, H):",
         [(f"H[{i}, {j}]", e) for (i, j), e in _entries(D["Phi_xx"], (n, n))])
    lines, used = _layer_body(sp, printer, hoist, spec, D, integrator, substeps)
    funcs.append(("def layer(k, x, u, D, f, A, B):", used, lines))
    # the continuous f with its Jacobians and a-weighted Hessian at a stage point: the
    # template's _mk_rk_curvature runs the integrator's stages over them (layer_curvature)
    lines, _, used = _block(sp, printer, hoist,
                            [(f"f[{i}]", e) for i, e in enumerate(D["f"])]
                            + [(f"fx[{i}, {j}]", e) for (i, j), e in _entries(D["f_x"], (n, n))]
                            + [(f"fu[{i}, {j}]", e) for (i, j), e in _entries(D["f_u"], (n, m))],
                            "")
    funcs.append(("def rhs(x, u, t, D, f, fx, fu):", used, lines, "t"))
    lines, _, used = _block(sp, printer, hoist,
                            [(f"H[{i}, {j}]", e)
                             for (i, j), e in _entries(D["f_hw"], (n + m, n + m))], "")
    wsyms = _weights(sp, n)
    lines = [f"    _a{i} = a[{i}]" for i, a in enumerate(wsyms) if a in used] + lines
    funcs.append(("def rhs_hw(x, u, t, a, D, H):", used, lines, "t"))
    c, a, b = TABLEAUX[integrator]
    funcs.append(("def layer_curvature(k, x, u, w, D, Z):", set(), [
        f"    _mk_rk_curvature(k, x, u, w, D, Z, {tuple(c) + (0.0,)!r}, "
        f"{tuple(a) + (0.0,)!r}, {tuple(b) + (0.0,)!r}, {len(c)}, {substeps})"]))
    P = len(spec.cp)
    L = ['"""Generated by problems.expressions (numba node functions); do not edit.',
         "",
         f"n = {n} states, m = {m} controls, integrator {integrator} ({substeps} substep(s));",
         f"D = (d,) with d[0] = dt, d[1:{1 + P}] the parameters "
         f"({', '.join(spec.param_names) or 'none'}) and d[{1 + P}:] {len(hoist.order)} "
         "constants in them (node_data of the NumPy module).", '"""',
         "import math", "", "from wavecontrol._jit import jit", ""]
    for header, used, body, *time in funcs:
        L.extend(["", "@jit", header])
        L.extend(_unpack_used(spec, hoist, used, *time))
        L.extend(body)
    return "\n".join(L) + "\n", hoist.order


def _load_numpy(source):
    ns = {}
    exec(compile(source, "<wavecontrol generated numpy>", "exec"), ns)   # noqa: S102
    return ns


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def generate(spec, integrator, substeps, use_cache=True):
    """(numpy source, node source, info) for ``spec``: from the cache when the key is there,
    else derived with SymPy (and written to the cache)."""
    key = spec.key(integrator, substeps)
    path = cache_dir() / f"{key}.json"
    info = {"key": key, "cache_file": str(path), "cache_hit": False, "derive_s": 0.0,
            "print_s": 0.0}
    if use_cache and path.is_file():
        try:
            doc = json.loads(path.read_text())
            if doc.get("version") == CODEGEN_VERSION:
                info["cache_hit"] = True
                return doc["numpy"], doc["nodes"], info
        except (OSError, ValueError, KeyError):
            pass                            # a damaged entry is regenerated
    sp = _sympy()
    t0 = time.perf_counter()
    D = _derivatives(sp, spec)
    t1 = time.perf_counter()
    node_src, hoisted = _node_source(sp, spec, D, integrator, substeps)
    numpy_src = _numpy_source(sp, spec, D, hoisted)
    info["derive_s"], info["print_s"] = t1 - t0, time.perf_counter() - t1
    if use_cache:
        try:
            _write_atomic(path, json.dumps({"version": CODEGEN_VERSION, "numpy": numpy_src,
                                            "nodes": node_src}))
        except OSError:
            pass                            # a read-only home: run without the cache
    return numpy_src, node_src, info


# ----------------------------------------------------------------------------------------------
# the problem
# ----------------------------------------------------------------------------------------------
class _Dyn:
    """f, f_x, f_u of the generated NumPy module with the parameter values bound."""

    def __init__(self, mod, p):
        self._mod, self._p = mod, p

    def f(self, x, u, t):
        return self._mod["f"](x, u, t, self._p)

    def f_x(self, x, u, t):
        return self._mod["f_x"](x, u, t, self._p)

    def f_u(self, x, u, t):
        return self._mod["f_u"](x, u, t, self._p)

    def f_hw(self, x, u, t, a):
        return self._mod["f_hw"](x, u, t, a, self._p)


class ExpressionContinuous(ContinuousProblem):
    """The continuous problem of an :class:`ExpressionProblem` (ẋ = f, ∫L + Φ) in the
    :class:`~problems.builder.ContinuousProblem` interface, at t = 0 for time-dependent f, L.
    It has no closed-form Hamiltonian minimizer, so the ``bvp`` reference does not apply."""

    def __init__(self, problem):
        super().__init__(problem.n, problem.m, problem.T, problem.x_in[0])
        self.name = problem.name
        self._mod, self._p = problem._mod, problem._p

    def _c(self, name, x, u):
        return self._mod[name](np.asarray(x, float), np.asarray(u, float), 0.0, self._p)

    def f(self, x, u):
        return self._c("f", x, u)

    def jac_x(self, x, u):
        return self._c("f_x", x, u)

    def jac_u(self, x, u):
        return self._c("f_u", x, u)

    def L(self, x, u):
        return self._c("L", x, u)

    def L_x(self, x, u):
        return self._c("L_x", x, u)

    def L_u(self, x, u):
        return self._c("L_u", x, u)

    def L_xx(self, x, u):
        return self._c("L_xx", x, u)

    def L_ux(self, x, u):
        return self._c("L_ux", x, u)

    def L_uu(self, x, u):
        return self._c("L_uu", x, u)

    def Phi(self, x):
        return self._mod["Phi"](np.asarray(x, float), self._p)

    def Phi_x(self, x):
        return self._mod["Phi_x"](np.asarray(x, float), self._p)

    def Phi_xx(self, x):
        return self._mod["Phi_xx"](np.asarray(x, float), self._p)


class ExpressionProblem(LayeredProblem):
    """A layered problem from expressions (module docstring); build it with
    :func:`from_expressions`.

    Attributes
    ----------
    expressions : dict
        The expressions as text in the user's symbols (``f``, ``L``, ``Phi``, ``x``, ``u``,
        ``t``, ``params``), plus ``integrator`` and ``substeps``: what the run files store.
    sympy : dict
        ``x``, ``u`` (lists of symbols), ``t`` (symbol or None), ``params`` ({symbol: value}),
        ``f`` (list of expressions), ``L``, ``Phi``, ``integrator``, ``substeps``, ``bounds``.
    bounds : (lo, hi) arrays (m,) or None
        Box on every u_k (±inf where a side is open); None without bounds.
    integrator : str; substeps : int
    codegen : dict
        ``key``, ``cache_file``, ``cache_hit``, ``derive_s``, ``print_s``, ``load_s``.
    continuous : ExpressionContinuous
    """

    family = None

    def __init__(self, spec, x0, T, N, *, lo=None, hi=None, integrator="euler", substeps=1,
                 name="expression", theta0=None, use_cache=True):
        if isinstance(N, bool) or not isinstance(N, numbers.Integral) or N < 1:
            raise ValueError(f"N must be an integer >= 1, got {N!r}")
        if isinstance(T, bool) or not isinstance(T, numbers.Real) or not math.isfinite(T) \
                or T <= 0:
            raise ValueError(f"T must be a finite number > 0, got {T!r}")
        self.integrator = check_integrator(integrator)
        self.substeps = check_substeps(substeps)
        self.name = str(name)
        self._spec = spec
        n, m, N = spec.n, spec.m, int(N)
        x0 = _finite_vector("x0", x0, n)
        lo_, hi_ = _bound("lo", lo, m, -np.inf), _bound("hi", hi, m, np.inf)
        if np.any(lo_ > hi_):
            raise ValueError(f"the bounds must satisfy lo <= hi, got lo {lo_.tolist()} and hi "
                             f"{hi_.tolist()}")
        self.bounds = None if lo is None and hi is None else (lo_, hi_)
        if theta0 is None:
            theta0 = np.clip(np.zeros((N, m)), lo_, hi_)
        else:
            th = np.asarray(theta0, dtype=float)
            th = np.full((N, m), float(th)) if th.ndim == 0 else th
            if th.shape != (N, m):
                raise ValueError(f"theta0 must be a scalar or have shape ({N}, {m}), "
                                 f"got {th.shape}")
            if not np.all(np.isfinite(th)):
                raise ValueError("theta0 must be finite")
            if np.any(th < lo_) or np.any(th > hi_):
                raise ValueError("theta0 must lie within the bounds lo <= theta0 <= hi")
            theta0 = th
        super().__init__(Layout(np.full(N + 1, n)), float(T) / N, x0, theta0)
        numpy_src, self._node_src, info = generate(spec, self.integrator, self.substeps,
                                                   use_cache=use_cache)
        t0 = time.perf_counter()
        self._mod = _load_numpy(numpy_src)
        info["load_s"] = time.perf_counter() - t0
        self.codegen = info
        self.numpy_source = numpy_src
        self._p = spec.param_values.copy()
        self._dyn = _Dyn(self._mod, self._p)
        self._t = np.arange(N) * self.dt
        self._memo = None
        self.expressions = {**spec.text(), "integrator": self.integrator,
                            "substeps": self.substeps}
        self.params = {"x0": x0.tolist(), "integrator": self.integrator,
                       "substeps": self.substeps,
                       "lo": None if self.bounds is None else _json_bound(lo_),
                       "hi": None if self.bounds is None else _json_bound(hi_),
                       "expressions": self.expressions}
        self.continuous = ExpressionContinuous(self)

    # -- what the other tools read ---------------------------------------------------------
    @property
    def sympy(self) -> dict:
        s = self._spec
        return {"x": list(s.xs), "u": list(s.us), "t": s.ts,
                "params": dict(zip(s.ps, s.param_values.tolist())), "f": list(s.f),
                "L": s.L, "Phi": s.Phi, "integrator": self.integrator,
                "substeps": self.substeps, "bounds": self.bounds}

    def node_kernel(self):
        """(source, data) of the node functions (docs/problems.md): ``data = (d,)`` with
        ``d = [Δt, parameter values..., constants in Δt and the parameters...]`` (the last
        computed here, once, by the generated ``node_data``)."""
        d = self._mod["node_data"](self.dt, self._p)
        return self._node_src, (np.ascontiguousarray(d, dtype=float),)

    # -- the integrator step, all layers at once ---------------------------------------------
    def _times(self, x):
        return self._t if x.ndim >= 2 and x.shape[-2] == self.N else 0.0

    def _step(self, x, theta):
        """(F, A, B) on all N layers (x (..., N, n), θ (N, m)); the last call is remembered."""
        key = (x.shape, x.tobytes(), theta.tobytes())
        if self._memo is not None and self._memo[0] == key:
            return self._memo[1]
        out = one_step(self._dyn, x, theta, self._t, self.dt, self.integrator, self.substeps)
        self._memo = (key, out)
        return out

    # -- LayeredProblem ----------------------------------------------------------------------
    def layer_maps(self, x, theta):
        return self._step(x, theta)[0]

    def jvp(self, x, theta, v):
        return np.einsum("...ij,...j->...i", self._step(x, theta)[1], v)

    def vjp_x(self, x, theta, w):
        return np.einsum("...ji,...j->...i", self._step(x, theta)[1], w)

    def vjp_theta(self, x, theta, w):
        B = self._step(x, theta)[2]
        return np.einsum("bkji,bkj->ki", np.broadcast_to(B, w.shape + (self.m,)), w)

    def _L(self, name, x, theta):
        return self._mod[name](x, theta, self._times(x), self._p)

    def running_cost(self, x, theta):
        return float(self.dt * np.sum(self._L("L", x, theta)))

    def running_grad_x(self, x, theta):
        return self.dt * self._L("L_x", x, theta)

    def running_grad_theta(self, x, theta):
        g = self._L("L_u", x, theta)
        return self.dt * np.sum(np.broadcast_to(g, x.shape[:-1] + (self.m,)), axis=0)

    def terminal_cost(self, xN):
        return float(np.sum(self._mod["Phi"](xN, self._p)))

    def terminal_grad(self, xN):
        return self._mod["Phi_x"](xN, self._p)

    def terminal_hvp(self, xN, v):
        return np.einsum("...ij,...j->...i", self._mod["Phi_xx"](xN, self._p), v)

    def layer_jacobians(self, x, theta):
        _, A, B = self._step(x, theta)
        return np.ascontiguousarray(A[0]), np.ascontiguousarray(B[0])

    def layer_curvature(self, x, theta, w):
        """∇²_{(x,u)} (w_k · f_k) of every layer (N, n + m, n + m) at x (1, N, n), θ (N, m) with
        weights w (N, n): the matched port's Newton model, from the symbolic Hessians of f
        through the integrator's stages (:func:`problems.integrators.step_curvature`)."""
        return step_curvature(self._dyn, x[0], theta, self._t, self.dt, w, self.integrator,
                              self.substeps)

    def running_hessians(self, x, theta):
        xb, t = x[0], self._t
        return (self.dt * self._mod["L_xx"](xb, theta, t, self._p),
                self.dt * self._mod["L_ux"](xb, theta, t, self._p),
                self.dt * self._mod["L_uu"](xb, theta, t, self._p))

    def terminal_hessian(self, xN):
        return np.array(self._mod["Phi_xx"](xN[0], self._p))

    def adjoint(self, x, theta):
        """Costates (eqs. 50–51) with every layer Jacobian from one vectorized step."""
        theta = np.asarray(theta, dtype=float)
        A = self._step(x[:, :-1], theta)[1]
        lam = np.zeros_like(x)
        lam[:, self.N] = self.terminal_grad(x[:, self.N])
        gx = self.running_grad_x(x[:, :-1], theta)
        for k in range(self.N - 1, -1, -1):
            lam[:, k] = np.einsum("bji,bj->bi", A[:, k], lam[:, k + 1]) + gx[:, k]
        return lam

    def _one_layer_map(self, k, xk, theta):
        return one_step(self._dyn, xk, theta[k], k * self.dt, self.dt, self.integrator,
                        self.substeps, jacobians=False)

    def _one_layer_vjp(self, k, xk, theta, w):
        _, A, _ = one_step(self._dyn, xk, theta[k], k * self.dt, self.dt, self.integrator,
                           self.substeps)
        return np.einsum("...ji,...j->...i", A, w)

    def __repr__(self) -> str:
        return (f"ExpressionProblem({self.name!r}, n={self.n}, m={self.m}, N={self.N}, "
                f"T={self.T:g}, integrator={self.integrator!r}, bounds={self.bounds is not None})")


def _json_bound(a):
    return [None if not math.isfinite(v) else float(v) for v in a]


def from_expressions(f, L, Phi, x0, T, N, *, n=None, m=None, x=None, u=None, t=None, lo=None,
                     hi=None, integrator="euler", substeps=1, params=None, name="expression",
                     theta0=None, check=False, use_cache=True) -> ExpressionProblem:
    """A control problem from its formulas (module docstring).

    Parameters
    ----------
    f : function ``f(x, u)`` (or with ``t=``) returning n SymPy expressions, or a sequence /
        Matrix of n SymPy expressions in the symbols ``x``, ``u`` (and ``t``)
    L : function ``L(x, u)`` (or with ``t=``) or a SymPy expression: the running cost
    Phi : function ``Phi(x)`` or a SymPy expression: the terminal cost
    x0 : (n,) initial state; T : horizon > 0; N : number of layers ≥ 1 (Δt = T/N)
    n, m : numbers of states and controls (n defaults to len(x0); m is needed for functions)
    x, u : the state and control symbols (needed for expressions); t : the time symbol
    lo, hi : bounds on every control u_k (numbers or (m,) arrays; None: that side open)
    integrator : ``euler``, ``midpoint`` (``rk2``) or ``rk4``; substeps : steps per layer
    params : {name or symbol: value} model constants; functions receive them as keyword
        arguments of the same name (and ``t`` if they take it)
    name : the problem's name (registry, run files)
    theta0 : initial controls, (N, m) or a scalar (default zeros clipped into the bounds)
    check : run :func:`check_derivatives` once and raise if a derivative is off
    use_cache : read and write the generated sources in :func:`cache_dir`

    Functions are called with x and u as SymPy column matrices (``x[0]``, ``u[1]``, ...).
    """
    sp = _sympy()
    x0a = _finite_vector("x0", x0)
    if n is None:
        n = x0a.size
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if m is not None and (isinstance(m, bool) or int(m) != m or m < 1):
        raise ValueError(f"m must be an integer >= 1, got {m!r}")
    spec = _Spec(sp, f, L, Phi, int(n), None if m is None else int(m), x, u, t, params)
    prob = ExpressionProblem(spec, x0a, T, N, lo=lo, hi=hi, integrator=integrator,
                             substeps=substeps, name=name, theta0=theta0, use_cache=use_cache)
    if check:
        check_derivatives(prob)
    return prob


# ----------------------------------------------------------------------------------------------
# derivative check
# ----------------------------------------------------------------------------------------------
#: default tolerance of :func:`check_derivatives` on the relative error
CHECK_TOL = 1e-6


def _fd(fun, z, h):
    """Central differences of ``fun`` (array-valued) along the last axis of the vector z:
    result (*fun.shape, z.size)."""
    cols = []
    for j in range(z.size):
        d = np.zeros_like(z)
        d[j] = h * max(1.0, abs(z[j]))
        cols.append((np.asarray(fun(z + d)) - np.asarray(fun(z - d))) / (2 * d[j]))
    return np.stack(cols, axis=-1)


def check_derivatives(problem: ExpressionProblem, tol: float = CHECK_TOL, points: int = 3,
                      seed: int = 0, h: float = 1e-5, raise_on_failure: bool = True) -> dict:
    """Compare the generated derivatives and the integrator's Jacobians with central finite
    differences (step ``h`` relative to max(1, |z|), error O(h²) ≈ 1e-10 for smooth problems,
    well below the default ``tol`` = 1e-6).

    Checked at ``points`` random points (x0 + N(0, 0.5²) per state, θ0 + N(0, 0.5²) clipped into
    the bounds, t uniform in [0, T)): f_x, f_u (from f), L_x, L_u (from L), L_xx, L_ux, L_uu
    (from L_x, L_u), Φ_x (from Φ), Φ_xx (from Φ_x), and the layer map's A and B. The error of
    each is max|generated − FD| / max(1, max|FD|). Returns {name: error} (the largest over the
    points); with ``raise_on_failure`` a ValueError names every one above ``tol``.
    """
    if not isinstance(problem, ExpressionProblem):
        raise ValueError(f"check_derivatives needs an ExpressionProblem, got "
                         f"{type(problem).__name__}")
    rng = np.random.default_rng(seed)
    mod, p, n, m = problem._mod, problem._p, problem.n, problem.m
    lo, hi = problem.bounds if problem.bounds is not None else (-np.inf, np.inf)
    errs = {}

    def note(name, a, b):
        a, b = np.asarray(a, float), np.asarray(b, float)
        e = float(np.abs(a - b).max() / max(1.0, float(np.abs(b).max())))
        errs[name] = max(errs.get(name, 0.0), e)

    for _ in range(points):
        xv = problem.x_in[0] + 0.5 * rng.normal(size=n)
        uv = np.clip(problem.theta0[0] + 0.5 * rng.normal(size=m), lo, hi)
        tv = float(rng.uniform(0.0, problem.T))
        fx = lambda z: mod["f"](z, uv, tv, p)             # noqa: E731
        fu = lambda z: mod["f"](xv, z, tv, p)             # noqa: E731
        note("f_x", mod["f_x"](xv, uv, tv, p), _fd(fx, xv, h))
        note("f_u", mod["f_u"](xv, uv, tv, p), _fd(fu, uv, h))
        note("L_x", mod["L_x"](xv, uv, tv, p), _fd(lambda z: mod["L"](z, uv, tv, p), xv, h))
        note("L_u", mod["L_u"](xv, uv, tv, p), _fd(lambda z: mod["L"](xv, z, tv, p), uv, h))
        note("L_xx", mod["L_xx"](xv, uv, tv, p),
             _fd(lambda z: mod["L_x"](z, uv, tv, p), xv, h))
        note("L_ux", mod["L_ux"](xv, uv, tv, p),
             _fd(lambda z: mod["L_u"](z, uv, tv, p), xv, h))
        note("L_uu", mod["L_uu"](xv, uv, tv, p),
             _fd(lambda z: mod["L_u"](xv, z, tv, p), uv, h))
        note("Phi_x", mod["Phi_x"](xv, p), _fd(lambda z: mod["Phi"](z, p), xv, h))
        note("Phi_xx", mod["Phi_xx"](xv, p), _fd(lambda z: mod["Phi_x"](z, p), xv, h))
        step = lambda z, w: one_step(problem._dyn, z, w, tv, problem.dt,  # noqa: E731
                                     problem.integrator, problem.substeps, jacobians=False)
        _, A, B = one_step(problem._dyn, xv, uv, tv, problem.dt, problem.integrator,
                           problem.substeps)
        note("layer_A", A, _fd(lambda z: step(z, uv), xv, h))
        note("layer_B", B, _fd(lambda z: step(xv, z), uv, h))
    bad = {k: v for k, v in errs.items() if not v <= tol}
    if bad and raise_on_failure:
        raise ValueError("generated derivatives disagree with finite differences: "
                         + ", ".join(f"{k} {v:.2e}" for k, v in bad.items())
                         + f" (relative, tol {tol:g})")
    return errs


def pendulum_expressions(N: int = 40, **kw) -> ExpressionProblem:
    """The pendulum swing-up of :func:`problems.pendulum` (its defaults: T = 2, x0 = (0, 0),
    target (π, 0), Q = diag(1, 0.1), R = 0.1, Q_f = diag(10, 1)) written as expressions: the
    example of docs/problems.md and the generated twin of the hand-written problem (the tests
    hold them equal, the codegen benchmark times them side by side). ``kw`` go to
    :func:`from_expressions` (e.g. ``integrator``)."""
    import sympy as sp

    def f(x, u, g, l, mass, b):
        return [x[1], -(g / l) * sp.sin(x[0]) - b * x[1] + u[0] / (mass * l ** 2)]

    def L(x, u):
        return ((x[0] - sp.pi) ** 2 + x[1] ** 2 / 10 + u[0] ** 2 / 10) / 2

    def Phi(x):
        return (10 * (x[0] - sp.pi) ** 2 + x[1] ** 2) / 2

    return from_expressions(f, L, Phi, [0.0, 0.0], 2.0, N, m=1,
                            params=dict(g=9.81, l=1.0, mass=1.0, b=0.1), **kw)


__all__ = ["from_expressions", "ExpressionProblem", "check_derivatives", "cache_dir",
           "generate", "CODEGEN_VERSION", "pendulum_expressions"]
