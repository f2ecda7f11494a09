"""With NUMBA_DISABLE_JIT=1 every compiled kernel runs as plain Python: the suite that exercises
the kernels (transport, the fused τ-step, the ledger, the driver's compiled backend against the
NumPy twin) must pass that way too. Runs in a subprocess, since the JIT switch is read at import.
Measured: 25–35 s for this subset (pure-Python kernels on tiny problems).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from wavecontrol._jit import jit_disabled

ROOT = Path(__file__).resolve().parent.parent
SUBSET = ["tests/wavecontrol/test_schemes.py", "tests/wavecontrol/test_ledger.py",
          "tests/solvers/test_driver.py", "tests/solvers/test_bad_input.py"]


@pytest.mark.skipif(jit_disabled(), reason="already running without JIT")
def test_suite_subset_passes_without_jit():
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow",
           *SUBSET]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    tail = (proc.stdout + proc.stderr)[-4000:]
    assert proc.returncode == 0, tail
    # the subset really ran (a collection error or an empty selection would also exit != 0,
    # but make the count explicit)
    assert " passed" in proc.stdout and " failed" not in proc.stdout, tail
