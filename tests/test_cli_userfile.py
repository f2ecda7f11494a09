"""``wavecontrol solve path/to/file.py:NAME``: a user's problem object or factory, and the
one-line errors (exit 2) for a missing file, a missing name and a non-problem."""

import json
import re
import textwrap

import pytest

from problems.expressions import CACHE_ENV
from wavecontrol.cli import main

USER_FILE = textwrap.dedent('''
    from problems import from_expressions


    def make(N=20, T=2.0):
        return from_expressions(lambda x, u: [x[1], u[0]],
                                lambda x, u: (x[0] ** 2 + x[1] ** 2 + u[0] ** 2 / 10) / 2,
                                lambda x: 5 * (x[0] ** 2 + x[1] ** 2) / 2, [1.0, 0.0], T, N,
                                m=1, name="double-integrator")


    problem = make()
    number = 3


    def not_a_factory():
        return 42


    def broken():
        raise KeyError("oops")
''')


@pytest.fixture
def user_file(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "codegen"))
    path = tmp_path / "my_problems.py"
    path.write_text(USER_FILE)
    return path


def test_problem_object_and_factory(user_file, capsys):
    """The double integrator is an LQR: the matched port solves it in 2N τ-steps (40, 20)."""
    assert main(["solve", f"{user_file}:problem", "--port", "matched", "--backend", "numpy",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["success"] and doc["steps"] == 40 and doc["problem"].endswith(":problem")
    assert main(["solve", f"{user_file}:make", "--set", "N=10", "--port", "matched",
                 "--backend", "numpy", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["success"] and doc["steps"] == 20


@pytest.mark.parametrize("suffix, extra, match", [
    ("missing.py:problem", [], "problem file .*missing.py' does not exist"),
    ("my_problems.py:nothere", [], "has no name 'nothere' .*make, not_a_factory, problem"),
    ("my_problems.py:number", [], "is not a problem .* it is of type int"),
    ("my_problems.py:not_a_factory", [], "returned an object of type int, not a problem"),
    ("my_problems.py:broken", [], r"broken\(\) failed: KeyError"),
    ("my_problems.py:make", ["--set", "Q=1"], r"does not take the parameters \['Q'\]"),
    ("my_problems.py:problem", ["--set", "N=3"], "is a problem object, not a factory"),
])
def test_errors_are_one_line_exit_2(user_file, capsys, suffix, extra, match):
    arg = str(user_file.parent / suffix)
    assert main(["solve", arg, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("wavecontrol solve: error: ")
    assert re.search(match, err), err


def test_registered_classic_from_the_command_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "codegen"))
    assert main(["solve", "unicycle", "--port", "matched", "--backend", "numpy",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["success"] and doc["reference"]["name"] == "lbfgs"
    assert doc["reference"]["error"]["theta"] <= 1e-8
