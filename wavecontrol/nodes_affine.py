"""Node functions of the ``affine`` family (:class:`~wavecontrol.problem.AffineQuadraticProblem`)
for the generated node kernels (:mod:`wavecontrol.codegen`, :mod:`wavecontrol.nodekernels`).

The data tuple is ``D = (A, B, c, Q, R, Qf, gf)`` of :meth:`AffineQuadraticProblem.kernel_data`
(without x_in): ``f_k = A_k x + B_k u + c_k``, ``R_k = ½ xᵀQ_k x + ½ uᵀR_k u``,
``ℓ = ½ xᵀQ_f x + g_fᵀx``. The text of this file is a node source: it imports nothing from the
package but :func:`~wavecontrol._jit.jit`.
"""

from wavecontrol._jit import jit


@jit
def layer(k, x, u, D, f, A, B):
    Ak = D[0][k]
    Bk = D[1][k]
    ck = D[2][k]
    n = x.shape[0]
    m = u.shape[0]
    for i in range(n):
        s = 0.0
        for j in range(n):
            s += Ak[i, j] * x[j]
            A[i, j] = Ak[i, j]
        for j in range(m):
            s += Bk[i, j] * u[j]
            B[i, j] = Bk[i, j]
        f[i] = s + ck[i]


@jit
def running_grad(k, x, u, D, gx, gu):
    Qk = D[3][k]
    Rk = D[4][k]
    n = x.shape[0]
    m = u.shape[0]
    val = 0.0
    for i in range(n):
        s = 0.0
        for j in range(n):
            s += Qk[i, j] * x[j]
        gx[i] = s
        val += 0.5 * x[i] * s
    for i in range(m):
        s = 0.0
        for j in range(m):
            s += Rk[i, j] * u[j]
        gu[i] = s
        val += 0.5 * u[i] * s
    return val


@jit
def running_hess(k, x, u, D, Rxx, Rux, Ruu):
    Rxx[:, :] = D[3][k]
    Rux[:, :] = 0.0
    Ruu[:, :] = D[4][k]


@jit
def terminal_grad(x, D, g):
    Qf = D[5]
    gf = D[6]
    n = x.shape[0]
    val = 0.0
    for i in range(n):
        s = 0.0
        for j in range(n):
            s += Qf[i, j] * x[j]
        g[i] = s + gf[i]
        val += (0.5 * s + gf[i]) * x[i]
    return val


@jit
def terminal_hess(x, D, H):
    H[:, :] = D[5]
