"""A forked inner run is a `python -m pytest` of its own: the environment, working directory,
path, output and exit code it is given, and nothing of the process that asked for it
(selftests/inner_runs.py). Every fault test stands on this."""

import os

import pytest

from selftests import inner_runs

PROBE = """
import os, sys

def test_sees_only_what_it_was_given():
    assert os.environ["ORDAK_PROBE"] == "forked"
    assert "ORDAK_OUTER_ONLY" not in os.environ
    assert os.getcwd() == {cwd!r}
    assert sys.path[:2] == [{cwd!r}, {extra!r}]
    print("probe ran")

def test_fails_when_asked():
    assert os.environ.get("ORDAK_PROBE_FAIL") != "yes", "failing as asked"
"""


def run_probe(tmp_path, *args, **variables) -> tuple[int, str]:
    extra = tmp_path / "on-path"
    extra.mkdir(exist_ok=True)
    (tmp_path / "test_probe.py").write_text(PROBE.format(cwd=str(tmp_path), extra=str(extra)))
    env = {"PATH": os.environ["PATH"], "ORDAK_PROBE": "forked", "PYTHONPATH": str(extra), **variables}
    output = tmp_path / "output.txt"
    code = inner_runs.run(["-p", "no:cacheprovider", "-s", "--rootdir", str(tmp_path), "test_probe.py", *args],
                          env=env, cwd=tmp_path, output=output, timeout=60)
    return code, output.read_text()


def test_a_forked_run_has_its_own_environment_folder_and_path(tmp_path, monkeypatch):
    monkeypatch.setenv("ORDAK_OUTER_ONLY", "the asking process's, not the run's")
    code, output = run_probe(tmp_path)
    assert code == 0, output
    assert "probe ran" in output and "2 passed" in output


def test_a_failing_run_says_so_in_its_exit_code_and_output(tmp_path):
    code, output = run_probe(tmp_path, ORDAK_PROBE_FAIL="yes")
    assert code == 1, output
    assert "failing as asked" in output and "1 failed, 1 passed" in output


def test_a_run_that_outlives_its_timeout_is_stopped(tmp_path):
    (tmp_path / "test_slow.py").write_text("import time\n\ndef test_slow():\n    time.sleep(30)\n")
    with pytest.raises(TimeoutError, match="did not finish in 1 s"):
        inner_runs.run(["-p", "no:cacheprovider", "--rootdir", str(tmp_path), "test_slow.py"],
                       env={"PATH": os.environ["PATH"]}, cwd=tmp_path, output=tmp_path / "out.txt", timeout=1)
