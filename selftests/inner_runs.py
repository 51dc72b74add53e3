"""Inner `python -m pytest` runs, forked from a process that has imported the suite once.

A fault self-test runs the verification suite as a user would: a new pytest, its own
arguments, environment and working directory, its own exit code and output. Started as a new
Python, each run spends about 1.5 s importing pytest, psycopg, Hypothesis and checks/ and
compiling the report's template before it asks the database anything, and the self-tests
make some 200 runs. So the runs are forked instead, with the standard library's
multiprocessing "forkserver": a server process imports this module once (which loads all of
that), and every run is a fork of it: a fresh process, pristine state, nothing to import.

The server has never started a pytest session, opened a connection or read an environment
variable that matters: each child gets the environment it is given, and so runs exactly as
`python -m pytest` would.
"""

import atexit
import faulthandler  # noqa: F401  (pytest's faulthandler plugin's)
import gc
import importlib
import multiprocessing
import multiprocessing.connection
import os
import pdb  # noqa: F401  (pytest's debugging plugin's)
import platform
import sys
import threading
import traceback
from pathlib import Path

# What every inner run imports; loaded once in the server (and already loaded in the outer run).
import _pytest._argcomplete  # noqa: F401
import _pytest.config
import execnet  # noqa: F401  (xdist's, at configure)
import hypothesis.stateful  # noqa: F401
import psycopg  # noqa: F401
import pytest
import pytest_html.plugin  # noqa: F401  (the report's writer)
import xdist.looponfail  # noqa: F401
import xdist.newhooks  # noqa: F401
import xdist.plugin  # noqa: F401

import checks.plugin  # noqa: F401  (and through it the rest of checks/)
from checks.report import html, postmortem, summary  # noqa: F401  (imported on use)
from checks.rules import security  # noqa: F401

for _plugin in _pytest.config.default_plugins:  # pytest's own plugins, imported by every session
    importlib.import_module(f"_pytest.{_plugin}")

summary.package_versions()  # read once, shared by every fork
platform.platform()  # the report's; it runs `uname -p` the first time

# Imported before pytest starts, these modules cannot have their asserts rewritten; none of
# the suite's verdicts rests on a rewritten assert (tests/ are imported, and rewritten, per run).
_ARGS = ("-W", "ignore::pytest.PytestAssertRewriteWarning")

_server = multiprocessing.get_context("forkserver")
_server.set_forkserver_preload([__name__])


def run(args: list[str], *, env: dict[str, str], cwd: Path, output: Path, timeout: float) -> int:
    """`python -m pytest *args` in cwd with exactly env; its stdout and stderr go to output.
    Returns its exit code; a run that outlives timeout is killed and raises TimeoutError."""
    child = _started(_pytest_main, [*_ARGS, *args], env, str(cwd), str(output))
    code = _ended(child, timeout)
    if code is None:
        child.kill()
        _ended(child, None)
        raise TimeoutError(f"the inner pytest run did not finish in {timeout:.0f} s: {output}")
    return code


def call(function, *args, timeout: float):
    """function(*args) in a fork of the server; returns its result (pickled back). For work that
    patches modules (a fault slipped between a drill's phases): the patch lives and dies with
    the fork, whatever else the asking process runs meanwhile. A failure comes back as a
    RuntimeError carrying the fork's traceback."""
    receive, send = _server.Pipe(duplex=False)
    child = _started(_call, send, function, args)
    send.close()
    try:
        if not receive.poll(timeout):
            child.kill()
            raise TimeoutError(f"{function.__name__} did not finish in {timeout:.0f} s")
        ok, value = receive.recv()
    finally:
        receive.close()
        _ended(child, None)
    if not ok:
        raise RuntimeError(f"{function.__name__} failed in its fork:\n{value}")
    return value


# The forkserver tells a child's exit code through a pipe that multiprocessing reads once, and
# every start() polls all the children of the process. Two threads reading one pipe at once
# (a start() in one, a join() in another) leave one of them with nothing, which multiprocessing
# takes for exit code 255. So children start, and are polled, under one lock.
_polling = threading.Lock()


def _started(target, *args) -> multiprocessing.Process:
    child = _server.Process(target=target, args=args)
    with _polling:
        child.start()
    return child


def _ended(child: multiprocessing.Process, timeout: float | None) -> int | None:
    """The child's exit code once it has ended (None if it outlives timeout)."""
    multiprocessing.connection.wait([child.sentinel], timeout)
    with _polling:
        return child.exitcode


def _call(send, function, args) -> None:
    try:
        result = (True, function(*args))
    except BaseException:  # noqa: BLE001  (everything goes back to the asking process, said)
        result = (False, traceback.format_exc())
    send.send(result)
    send.close()


def _pytest_main(args: list[str], env: dict[str, str], cwd: str, output: str) -> None:
    gc.freeze()  # what the server loaded is never garbage: pytest's gc.collect() skips it
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    # What a new `python -m` would put first on its path: the working directory, then PYTHONPATH.
    sys.path[:0] = [cwd, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    log = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    sys.argv = [pytest.__file__, *args]
    try:
        code = pytest.console_main()
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    atexit._run_exitfuncs()  # as the interpreter would at exit (multiprocessing skips them)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(code))
