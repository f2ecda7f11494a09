"""Node functions of the Euler-discretized pendulum (:mod:`problems.pendulum`) for the generated
node kernels (:mod:`wavecontrol.codegen`, :mod:`wavecontrol.nodekernels`).

``D = (p,)`` with ``p = [Δt, g/l, b, 1/(m l²), Q (4, row-major), R, Q_f (4), target (2)]``
(:func:`pendulum_data`); the layer map is ``x + Δt f(x, u)`` and ``R_k = Δt L(x_k, u_k)``, with
the arithmetic in the order of :class:`~problems.pendulum.Pendulum`'s NumPy methods. The text of
this file is a node source: it imports nothing from the package but
:func:`~wavecontrol._jit.jit`.
"""

import math

from wavecontrol._jit import jit


@jit
def layer(k, x, u, D, f, A, B):
    p = D[0]
    dt, w2, b, gain = p[0], p[1], p[2], p[3]
    acc = -w2 * math.sin(x[0]) - b * x[1] + gain * u[0]
    f[0] = x[0] + dt * x[1]
    f[1] = x[1] + dt * acc
    A[0, 0] = 1.0
    A[0, 1] = dt * 1.0
    A[1, 0] = dt * (-w2 * math.cos(x[0]))
    A[1, 1] = 1.0 + dt * (-b)
    B[0, 0] = 0.0
    B[1, 0] = dt * gain


@jit
def running_grad(k, x, u, D, gx, gu):
    p = D[0]
    dt = p[0]
    e0 = x[0] - p[13]
    e1 = x[1] - p[14]
    gx[0] = dt * (e0 * p[4] + e1 * p[6])
    gx[1] = dt * (e0 * p[5] + e1 * p[7])
    gu[0] = dt * (u[0] * p[8])
    L = 0.5 * (e0 * p[4] * e0 + e0 * p[5] * e1 + e1 * p[6] * e0 + e1 * p[7] * e1) \
        + 0.5 * (u[0] * p[8] * u[0])
    return dt * L


@jit
def running_hess(k, x, u, D, Rxx, Rux, Ruu):
    p = D[0]
    dt = p[0]
    Rxx[0, 0] = dt * p[4]
    Rxx[0, 1] = dt * p[5]
    Rxx[1, 0] = dt * p[6]
    Rxx[1, 1] = dt * p[7]
    Rux[0, 0] = 0.0
    Rux[0, 1] = 0.0
    Ruu[0, 0] = dt * p[8]


@jit
def terminal_grad(x, D, g):
    p = D[0]
    e0 = x[0] - p[13]
    e1 = x[1] - p[14]
    g[0] = e0 * p[9] + e1 * p[11]
    g[1] = e0 * p[10] + e1 * p[12]
    return 0.5 * (e0 * p[9] * e0 + e0 * p[10] * e1 + e1 * p[11] * e0 + e1 * p[12] * e1)


@jit
def terminal_hess(x, D, H):
    p = D[0]
    H[0, 0] = p[9]
    H[0, 1] = p[10]
    H[1, 0] = p[11]
    H[1, 1] = p[12]
