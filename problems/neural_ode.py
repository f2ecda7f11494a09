"""Euler-discretized neural ODE classifier (paper §4.7 with f(x, θ) = σ(W x + b)).

ẋ = σ(W(t) x + b(t)) on [0, T], explicit Euler with Δt = T/N (eqs. 61–63):
x_{k+1} = x_k + Δt σ(W_k x_k + b_k), θ_k = (W_k, b_k), constant width n = d + augment (the
input is zero-padded by ``augment`` components). The terminal cost is the mean loss of the fixed
read-out z = P x_N, P = [I_K 0] (the first K state components are the class scores) unless a
``readout`` matrix is given; R_k = (wd/2)‖θ_k‖².
"""

from __future__ import annotations

import numpy as np

from .datasets import network_data
from .network import NetworkProblem

DEFAULTS = {
    "dataset": "moons",
    "n_samples": 64,
    "seed": 0,
    "dataset_params": None,
    "augment": 2,
    "N": 10,
    "T": 2.0,
    "activation": "tanh",
    "loss": "mse",
    "weight_decay": 0.0,
    "batch": None,
    "init_scale": 1.0,
    "readout": None,
    "data": None,
    "test_data": None,
    "n_classes": None,
}


def neural_ode(**params) -> NetworkProblem:
    """Neural-ODE classifier; keyword arguments override :data:`DEFAULTS`.

    dataset : a name of :data:`problems.datasets.DATASETS`, generated with ``n_samples``,
        ``seed`` and the generator's own ``dataset_params`` (e.g. ``{"noise": 0.2}``)
    data : the user's own data instead: arrays ``(X, labels)`` (X (P, d) real, labels P
        integers 0..K−1; K = ``n_classes`` or max label + 1, at least 2), or a callable
        returning the next mini-batch ``(X, labels)`` at every call (needs ``n_classes``;
        ``resample`` and ``resampling_callback`` then call it);
        see :func:`problems.datasets.network_data`. ``dataset="digits"`` is a library data
        set with a held-out test split.
    test_data : ``(X, labels)``, a held-out test set (``problem.test_accuracy(theta)``)
    n_classes : K, when the labels do not fix it
    augment : zero components appended to the inputs (width n = d + augment)
    N, T : layers and horizon (Δt = T/N)
    activation : ``tanh``, ``sigmoid``, ``softplus``, ``relu`` or ``identity``
    loss : ``mse`` (one-hot targets) or ``cross-entropy``
    weight_decay : wd ≥ 0 in R_k = (wd/2)‖θ_k‖²
    batch : mini-batch size (default: the whole data set); see ``resample``
    init_scale : θ0 has W_k ~ N(0, init_scale²/n), b_k = 0 (seeded by ``seed``)
    readout : fixed (K, n) read-out matrix (default [I_K 0])
    """
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown neural_ode parameter(s) {sorted(unknown)}; valid: "
                         f"{sorted(DEFAULTS)}")
    p = {**DEFAULTS, **params}
    N = p["N"]
    if isinstance(N, bool) or int(N) != N or N < 1:
        raise ValueError(f"N must be an integer >= 1, got {N!r}")
    T = float(p["T"])
    if not np.isfinite(T) or T <= 0:
        raise ValueError(f"T must be a finite number > 0, got {p['T']!r}")
    aug = p["augment"]
    if isinstance(aug, bool) or int(aug) != aug or aug < 0:
        raise ValueError(f"augment must be an integer >= 0, got {aug!r}")
    data = network_data(p, given=params)
    X, labels, K = data.X, data.labels, data.n_classes
    n = X.shape[1] + int(aug)
    prob = NetworkProblem(
        np.full(int(N) + 1, n), X, labels, K, activation=p["activation"], loss=p["loss"],
        weight_decay=p["weight_decay"], residual=True, dt=T / int(N), readout=p["readout"],
        augment=int(aug), batch=p["batch"], init_scale=p["init_scale"], seed=p["seed"],
        name="neural-ode", params=_jsonable(p), batches=data.batches, test_data=data.test)
    return prob


def _jsonable(p):
    out = {}
    for k, v in p.items():
        if k in ("data", "test_data"):
            out[k] = None if v is None else "user"
        elif k == "readout" and v is not None:
            out[k] = np.asarray(v).tolist()
        elif isinstance(v, (tuple, np.ndarray)):
            out[k] = np.asarray(v).tolist()
        else:
            out[k] = v
    return out
