"""The one place where numba settings are chosen.

All compiled kernels of the package go through :func:`jit`: results are cached on disk
(``cache=True``), fastmath is off (the ledger must close to round-off), and bounds checking is
switched on with ``WAVECONTROL_BOUNDSCHECK=1`` (the test suite does). With
``NUMBA_DISABLE_JIT=1`` every kernel runs as plain Python, which the tests also exercise.
"""

import os

import numba

BOUNDSCHECK = os.environ.get("WAVECONTROL_BOUNDSCHECK", "0") == "1"


def jit(func=None, **options):
    """Compile ``func`` with the project's numba settings (``nopython``, cached, no fastmath)."""
    settings = {"cache": True, "fastmath": False, "nogil": True}
    if BOUNDSCHECK:
        settings["boundscheck"] = True
    settings.update(options)
    if func is None:
        return lambda f: numba.njit(**settings)(f)
    return numba.njit(**settings)(func)


def jit_disabled() -> bool:
    """True when numba compilation is switched off (``NUMBA_DISABLE_JIT=1``)."""
    return bool(numba.config.DISABLE_JIT)
