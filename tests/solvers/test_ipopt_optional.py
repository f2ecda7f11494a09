"""The ipopt method without its optional extra (CasADi hidden from the import system): compare
lists it as skipped with the reason, solve_ipopt raises an ImportError naming the extra. Runs
whether or not CasADi is installed (tests/solvers/test_ipopt.py needs it)."""

import sys

import pytest

from problems import lqr
from solvers.compare import DEFAULT_METHODS, METHODS, compare_methods


def test_without_casadi_compare_skips_and_solve_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "casadi", None)
    assert "ipopt" in METHODS and "ipopt" not in DEFAULT_METHODS
    row = compare_methods(lqr(N=4), methods=["ipopt"])["methods"][0]
    assert row["status"] == "skipped"
    assert row["reason"] == ("CasADi is not installed (the optional extra: pip install "
                             "'wavecontrol[casadi]')")
    from solvers.ipopt import solve_ipopt
    with pytest.raises(ImportError, match=r"pip install 'wavecontrol\[casadi\]'"):
        solve_ipopt(lqr(N=4))
