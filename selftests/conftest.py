import itertools
import os

import pytest

from checks.plugin import RUN
from selftests.harness import Clone, RunsAhead

_names = itertools.count(1)


@pytest.fixture(scope="session")
def reference(pytestconfig):
    """The embedded cluster and healthy template of this run (the self-tests need --env=local)."""
    run = pytestconfig.stash[RUN]
    if run.cluster is None:
        pytest.fail("the self-tests need the embedded reference: run them with --env=local (the default)",
                    pytrace=False)
    return run.cluster, run.template


@pytest.fixture
def ordak_clone(reference, tmp_path):
    """Factory: ordak_clone(*sql) -> a fresh clone of the healthy reference with sql applied."""
    cluster, template = reference
    made = []

    def make(*sql: str, as_admin: bool = False, copy_of: Clone | None = None) -> Clone:
        name = f"ordak_clone_{os.getpid()}_{next(_names)}"
        clone = copy_of.copy(name) if copy_of else Clone(cluster, template, name, tmp_path / name)
        made.append(clone)
        for statement in sql:
            clone.execute(statement, as_admin=as_admin)
        return clone

    yield make
    for clone in made:
        cluster.drop(clone.name)


@pytest.fixture(scope="module")
def runs_ahead(request, reference, tmp_path_factory):
    """Factory: runs_ahead({test id: job}, on_clone=True) -> {test id: Future[SuiteRun]}.

    Starts the inner run of each test of this module selected in this session before the test
    asks for it (selftests.harness.RunsAhead); a test takes its own by request.node.name.
    A job gets a fresh clone of the healthy reference (on_clone) or a folder of its own."""
    cluster, template = reference
    ahead = RunsAhead(cluster, template, tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]))
    selected = {item.name for item in request.session.items if item.module is request.module}

    def start(jobs: dict, on_clone: bool = True) -> dict:
        return {test: ahead.start(test, job, on_clone=on_clone) for test, job in jobs.items() if test in selected}

    yield start
    ahead.close()
