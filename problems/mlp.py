"""Feed-forward classifier with width changes (paper §4.3: junctions, eqs. 43–46).

x_{k+1} = σ(W_k x_k + b_k) for k < N − 1 and a linear last layer x_N = W_{N−1} x_{N−1} + b_{N−1}
(``linear_output=False`` puts σ there too); node widths ``widths = (n_0, ..., n_N)`` with
n_0 = the data dimension and n_N = K, the class scores (read-out P = I). Depth step Δt = 1
(t counts layers). R_k = (wd/2)‖θ_k‖², θ_k = (W_k, b_k).
"""

from __future__ import annotations

import numpy as np

from .datasets import network_data
from .network import NetworkProblem
from .neural_ode import _jsonable

DEFAULTS = {
    "widths": (2, 32, 16, 16, 3),
    "dataset": "spirals",
    "n_samples": 96,
    "seed": 0,
    "dataset_params": None,
    "activation": "tanh",
    "loss": "cross-entropy",
    "weight_decay": 0.0,
    "batch": None,
    "init_scale": 1.0,
    "linear_output": True,
    "data": None,
    "test_data": None,
    "n_classes": None,
}


def mlp(**params) -> NetworkProblem:
    """MLP classifier; keyword arguments override :data:`DEFAULTS`.

    widths : node widths n_0..n_N (N + 1 >= 2 entries); n_0 must equal the data dimension and
        n_N the number of classes K
    dataset, n_samples, seed, dataset_params, data, test_data, n_classes : as for
        :func:`problems.neural_ode.neural_ode`; with a mini-batch callable as ``data``, K
        defaults to ``widths[-1]``. E.g. ``mlp(dataset="digits", widths=(64, 32, 10))``
        trains on the digits' training split; ``problem.test_accuracy(theta)`` scores the
        held-out split.
    activation, loss, weight_decay, batch, init_scale : likewise
    linear_output : last layer without activation (default True)
    """
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown mlp parameter(s) {sorted(unknown)}; valid: "
                         f"{sorted(DEFAULTS)}")
    p = {**DEFAULTS, **params}
    widths = np.asarray(p["widths"])
    if (widths.ndim != 1 or widths.size < 2 or not np.issubdtype(widths.dtype, np.integer)
            or np.any(widths < 1)):
        raise ValueError(f"widths must list N + 1 >= 2 integers >= 1, got "
                         f"{np.asarray(p['widths']).tolist()}")
    data = network_data(p, given=params, default_classes=int(widths[-1]))
    X, labels, K = data.X, data.labels, data.n_classes
    if int(widths[-1]) != K:
        raise ValueError(f"widths[-1] = {int(widths[-1])} must equal the number of classes "
                         f"K = {K} (the last node holds the class scores)")
    return NetworkProblem(
        widths, X, labels, K, activation=p["activation"], loss=p["loss"],
        weight_decay=p["weight_decay"], residual=False, dt=1.0,
        linear_output=bool(p["linear_output"]), batch=p["batch"], init_scale=p["init_scale"],
        seed=p["seed"], name="mlp", params=_jsonable(p), batches=data.batches,
        test_data=data.test)
