import itertools
import os

import pytest

from checks.plugin import RUN
from selftests.harness import Clone

_names = itertools.count(1)


@pytest.fixture
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
