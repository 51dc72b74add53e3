import itertools
import os
import tempfile
from pathlib import Path

import pytest

from checks.plugin import RUN
from selftests.harness import Clone, FreshReference, RunsAhead, on_fresh_clone

_names = itertools.count(1)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """The self-tests' own run writes its report in a temp folder, never in the user's reports/
    (nor in its history): they verify the suite, not an Ordak. (Called before the suite's plugin
    configures the reports: this conftest registered later.) An explicit --html still wins."""
    if not config.getoption("htmlpath") and not hasattr(config, "workerinput"):
        config.option.htmlpath = str(Path(tempfile.mkdtemp(prefix="ordak-selftests-")) / "selftests.html")


@pytest.fixture(scope="session")
def reference(pytestconfig):
    """The embedded cluster and healthy template of this run (the self-tests need --env=local)."""
    run = pytestconfig.stash[RUN]
    if run.cluster is None:
        pytest.fail("the self-tests need the embedded reference: run them with --env=local (the default)",
                    pytrace=False)
    return run.cluster, run.template


@pytest.fixture(scope="session")
def fresh_reference(reference):
    """Where clones come from: the healthy reference with its clock moved to now."""
    source = FreshReference(*reference)
    yield source
    source.close()


@pytest.fixture
def ordak_clone(fresh_reference, tmp_path):
    """Factory: ordak_clone(*sql) -> a fresh clone of the healthy reference with sql applied."""
    made = []

    def make(*sql: str, as_admin: bool = False, copy_of: Clone | None = None) -> Clone:
        name = f"ordak_clone_{os.getpid()}_{next(_names)}"
        clone = copy_of.copy(name) if copy_of else Clone(fresh_reference, name, tmp_path / name)
        made.append(clone)
        for statement in sql:
            clone.execute(statement, as_admin=as_admin)
        return clone

    yield make
    for clone in made:
        clone.cluster.drop(clone.name)


@pytest.fixture(scope="session", autouse=True)
def started_ahead(request) -> dict:
    """{test node id: Future} for every inner run known up front, started as the session starts.

    A module that knows its runs declares them in `runs_ahead() -> {test name: job(clone)}`
    (e.g. its fault catalogue); the runs of the selected tests start in the order the tests
    will ask for them (selftests.harness.RunsAhead), so that while the session works through
    other tests both cores are busy. An xdist worker does not know which tests it will get:
    there, each test makes its run when it asks."""
    jobs = {}
    if not hasattr(request.config, "workerinput"):
        declared = {}
        for item in request.session.items:
            if item.module not in declared:
                declared[item.module] = getattr(item.module, "runs_ahead", dict)()
            if item.name in declared[item.module]:
                jobs[item.nodeid] = declared[item.module][item.name]
    if not jobs:
        yield {}
        return
    ahead = RunsAhead(request.getfixturevalue("fresh_reference"),
                      request.getfixturevalue("tmp_path_factory").mktemp("ahead"))
    yield {nodeid: ahead.start(nodeid, job) for nodeid, job in jobs.items()}
    ahead.close()


@pytest.fixture
def ahead_run(request, started_ahead, fresh_reference, tmp_path):
    """The result of this test's inner run: started ahead (started_ahead), or made now when
    this process could not start it ahead (an xdist worker)."""
    if request.node.nodeid in started_ahead:
        return started_ahead[request.node.nodeid].result()
    job = getattr(request.module, "runs_ahead", dict)().get(request.node.name)
    if job is None:
        pytest.fail(f"{request.node.name} asks for ahead_run but runs_ahead() of its module has no job for it")
    return on_fresh_clone(fresh_reference, tmp_path / "clone", job)
