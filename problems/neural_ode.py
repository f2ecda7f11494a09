"""Euler-discretized neural ODE classifier (paper §4.7 with f(x, θ) = σ(W x + b)).

ẋ = σ(W(t) x + b(t)) on [0, T], explicit Euler with Δt = T/N (eqs. 61–63):
x_{k+1} = x_k + Δt σ(W_k x_k + b_k), θ_k = (W_k, b_k), constant width n = d + augment (the
input is zero-padded by ``augment`` components). The terminal cost is the mean loss of the fixed
read-out z = P x_N, P = [I_K 0] (the first K state components are the class scores) unless a
``readout`` matrix is given; R_k = (wd/2)‖θ_k‖².
"""

from __future__ import annotations

import numpy as np

from .datasets import make_dataset, n_classes
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
}


def neural_ode(**params) -> NetworkProblem:
    """Neural-ODE classifier; keyword arguments override :data:`DEFAULTS`.

    dataset : a name of :data:`problems.datasets.DATASETS`, generated with ``n_samples``,
        ``seed`` and the generator's own ``dataset_params`` (e.g. ``{"noise": 0.2}``)
    data : ``(X, labels)`` given directly instead (K = max label + 1, at least 2)
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
    X, labels, K = _data(p)
    n = X.shape[1] + int(aug)
    prob = NetworkProblem(
        np.full(int(N) + 1, n), X, labels, K, activation=p["activation"], loss=p["loss"],
        weight_decay=p["weight_decay"], residual=True, dt=T / int(N), readout=p["readout"],
        augment=int(aug), batch=p["batch"], init_scale=p["init_scale"], seed=p["seed"],
        name="neural-ode", params=_jsonable(p))
    return prob


def _data(p):
    """(X, labels, K) from ``data`` or from the named data set."""
    if p["data"] is not None:
        X, labels = p["data"]
        labels = np.asarray(labels)
        K = int(labels.max()) + 1 if labels.size else 1
        return X, labels, max(K, 2)
    kw = dict(p["dataset_params"] or {})
    X, labels = make_dataset(p["dataset"], n_samples=p["n_samples"], seed=p["seed"], **kw)
    return X, labels, n_classes(p["dataset"], **kw)


def _jsonable(p):
    out = {}
    for k, v in p.items():
        if k == "data":
            out[k] = None if v is None else "user"
        elif k == "readout" and v is not None:
            out[k] = np.asarray(v).tolist()
        elif isinstance(v, (tuple, np.ndarray)):
            out[k] = np.asarray(v).tolist()
        else:
            out[k] = v
    return out
