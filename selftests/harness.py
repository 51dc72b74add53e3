"""Runs the verification suite against a broken copy of the reference, as a user would.

A fault test clones the healthy reference, applies SQL that breaks it in one precise way,
then runs `pytest --env=staging tests/...` in a process of its own with ORDAK_STAGING_DB_URL
pointing at the clone: the same door a user opens. The outcome of every test id comes back from the
run's JUnit XML, with its failure text.
"""

import html
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import psycopg

from checks.reference.cluster import ReferenceCluster, Template
from selftests import inner_runs

ROOT = Path(__file__).resolve().parent.parent
SUITE_TIMEOUT = 900  # seconds; a hung inner run fails the self-test instead of hanging CI


@dataclass(frozen=True)
class Outcome:
    status: str  # passed, failed, error, skipped
    message: str = ""


@dataclass
class SuiteRun:
    exit_code: int
    output: str
    outcomes: dict[str, Outcome] = field(default_factory=dict)  # "module::test id" -> outcome
    report: Path | None = None

    def outcome(self, test: str) -> Outcome:
        """The outcome of one test, by id (`test_x[param]`) or `module::test_x[param]`."""
        matches = [key for key in self.outcomes if key == test or key.endswith("::" + test)]
        if len(matches) != 1:
            raise KeyError(f"{test!r} matches {len(matches)} tests of this run: {sorted(self.outcomes)}")
        return self.outcomes[matches[0]]

    def failed(self) -> set[str]:
        return {key.split("::", 1)[1] for key, o in self.outcomes.items() if o.status in ("failed", "error")}

    def with_status(self, status: str) -> set[str]:
        return {key.split("::", 1)[1] for key, o in self.outcomes.items() if o.status == status}


# The tests that skip without --compare-to: they compare with another environment.
NO_COMPARE = frozenset(f"{test}[{store}]" for store in ("bannos", "flourlane")
                       for test in ("test_matches_compared_env", "test_store_count_vs_compared"))


# The tests that skip where each run builds its data anew (--env=drill, the embedded local):
# there is no earlier count to keep.
NEW_EACH_RUN = frozenset(f"test_orders_not_dropped[{store}]" for store in ("bannos", "flourlane"))


def without_http(run: SuiteRun) -> frozenset[str]:
    """The platform checks of a run: with no HTTP settings (or variables) in its environment,
    each of them skips (selftests/rules/test_platform_faults.py runs them against a Supabase stand-in)."""
    platform = {key for key in run.outcomes if key.startswith("test_platform::")}
    assert platform and all(run.outcomes[key].status == "skipped" for key in platform), run.output
    return frozenset(key.split("::", 1)[1] for key in platform)


def assert_outcomes(run: SuiteRun, fails: dict[str, tuple[str, ...]], skips=frozenset()) -> None:
    """Exactly these tests failed, each message holding its fragments; exactly these skipped;
    nothing errored."""
    assert not run.with_status("error"), run.output
    assert run.failed() == set(fails), run.output
    for test, fragments in fails.items():
        message = run.outcome(test).message
        for fragment in fragments:
            assert fragment in message, f"{test}: {fragment!r} not in:\n{message}"
    assert run.with_status("skipped") == set(skips), run.output


def run_suite(*args: str, env: dict[str, str], workdir: Path, hypothesis: bool = False, root: Path = ROOT) -> SuiteRun:
    """`python -m pytest *args` from the project root (or a copy of it), reports written into workdir.

    Hypothesis's pytest plugin imports all of Hypothesis at startup (0.6 s a run); runs that
    include no Hypothesis test leave it out. Runs are forked from a server that has imported
    this checkout's suite already (selftests/inner_runs.py); a copy of the project, with code
    of its own (checks/), gets a new Python."""
    workdir.mkdir(parents=True, exist_ok=True)
    xml, html = workdir / "junit.xml", workdir / "report.html"
    pytest_args = ["-p", "no:cacheprovider", "-q", f"--junitxml={xml}", f"--html={html}", *args]
    if not hypothesis:
        pytest_args[2:2] = ["-p", "no:hypothesispytest"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "ORDAK_"))}
    # The inner suite searches as it does for a user, but shorter (tests/conftest.py, "selftest").
    run_env = {**clean, "HYPOTHESIS_PROFILE": "selftest", **env}
    if root == ROOT or not (root / "checks").exists():
        with tempfile.NamedTemporaryFile("r", prefix="inner-run-", suffix=".txt") as log:
            code = inner_runs.run(pytest_args, env=run_env, cwd=root, output=Path(log.name), timeout=SUITE_TIMEOUT)
            output = log.read()
    else:
        done = subprocess.run([sys.executable, "-m", "pytest", *pytest_args], cwd=root, env=run_env,
                              capture_output=True, text=True, timeout=SUITE_TIMEOUT)
        code, output = done.returncode, done.stdout + done.stderr
    return SuiteRun(code, output, _outcomes(xml) if xml.exists() else {}, html if html.exists() else None)


def report_rows(page: str) -> dict[str, list[dict]]:
    """pytest-html's results, from the JSON blob its script renders the table from: test id ->
    one entry per reported phase, each with its row cells, log and extras."""
    blob = re.search(r'data-jsonblob="([^"]*)"', page).group(1)
    return json.loads(html.unescape(blob))["tests"]


def cells(row: dict) -> dict[str, str]:
    """A row's cells by column (result, testId, area, key, duration, links), as text."""
    found = {}
    for cell in row["resultsTableRow"]:
        column = re.search(r'class="col-(\w+)"', cell).group(1)
        found[column] = html.unescape(re.sub(r"<[^>]+>", "", cell))
    return found


def _outcomes(xml: Path) -> dict[str, Outcome]:
    outcomes = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        module = case.get("classname", "").rsplit(".", 1)[-1]
        status, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                status = {"failure": "failed"}.get(child.tag, child.tag)
                message = (child.text or child.get("message") or "").strip()
                break
        outcomes[f"{module}::{case.get('name')}"] = Outcome(status, message)
    return outcomes


class Clone:
    """One copy of the healthy reference Ordak, to break and to verify."""

    def __init__(self, source: "FreshReference | AsItIs", name: str, workdir: Path):
        self.cluster, self.name, self.workdir = source.cluster, name, workdir
        self.url = source.copy_into(name)
        self.runs = 0

    def copy(self, name: str) -> "Clone":
        """An exact copy of this clone as it is now (same clock), e.g. to compare with."""
        return Clone(AsItIs(self.cluster, self.name), name, self.workdir.parent / name)

    def execute(self, sql: str, *, as_admin: bool = False) -> None:
        """Applies SQL as postgres (the owner, as a hand-fix would) or as the superuser."""
        url = self.cluster.server.admin_url(self.name) if as_admin else self.url
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql)

    def run_suite(self, *args: str, env_name: str = "staging", extra_env: dict | None = None,
                  hypothesis: bool = False, root: Path = ROOT) -> SuiteRun:
        """Runs the verification suite (tests/ unless args name tests) against this clone."""
        self.runs += 1
        variable = f"ORDAK_{env_name.upper()}_DB_URL"
        return run_suite(f"--env={env_name}", *args, env={variable: self.url, **(extra_env or {})},
                         workdir=self.workdir / f"run{self.runs}", hypothesis=hypothesis, root=root)


@dataclass(frozen=True)
class AsItIs:
    """A database of the cluster, copied as it is (its clock unmoved)."""
    cluster: ReferenceCluster
    name: str

    def copy_into(self, name: str) -> str:
        return self.cluster.clone(Template(self.name, datetime.now(timezone.utc)), name, shift_to_now=False)


class FreshReference:
    """Where the self-tests' clones come from: the healthy reference, its clock moved to now.

    Moving the clock rewrites the big tables (checks/reference/shift_time.sql): 0.2 CPU-seconds a
    copy, and the self-tests make some 230 copies. So one moved copy serves every clone made
    within MAX_AGE seconds of it, copied as it is. A clone's newest order is then at most
    MAX_AGE older than its own move would have made it (2 minutes old in the seed), far inside
    every limit the suite applies: hours since the last order, 15 minutes in the work queue."""

    MAX_AGE = 20.0  # seconds

    def __init__(self, cluster: ReferenceCluster, template: Template):
        self.cluster, self.template = cluster, template
        self._lock = threading.Lock()  # runs ahead clone from their own threads
        self._now: Template | None = None
        self._moved = 0.0

    def copy_into(self, name: str) -> str:
        with self._lock:
            if self._now is None or time.monotonic() - self._moved > self.MAX_AGE:
                self._move_clock()
            return self.cluster.clone(self._now, name, shift_to_now=False, file_copy=True)

    def _move_clock(self) -> None:
        moved = time.monotonic()
        name = f"ordak_clone_{os.getpid()}_now_{next(_fresh)}"  # swept with the clones after a crash
        self.cluster.clone(self.template, name)
        self.close()
        self._now, self._moved = Template(name, self.template.seeded_at), moved

    def close(self) -> None:
        if self._now is not None:
            self.cluster.drop(self._now.name)
            self._now = None


_fresh = itertools.count(1)


def on_fresh_clone(reference: FreshReference, workdir: Path, job):
    """job(clone) on a fresh clone of the healthy reference (its folder, workdir, is the job's
    too), dropped after."""
    clone = Clone(reference, f"ordak_clone_{os.getpid()}_fresh_{next(_fresh)}", workdir)
    try:
        return job(clone)
    finally:
        clone.cluster.drop(clone.name)


class RunsAhead:
    """Inner runs started before their tests ask for them, a few at a time.

    The self-tests run one after another, as CI runs them, and a fault test spends nearly all
    its time waiting for its inner run. Where runs are known up front (a fault and the suite's
    arguments), they start ahead, and each test takes its run's result: the same run it would
    have made itself, made while the session works on other tests (selftests/conftest.py)."""

    WORKERS = 4  # on two cores: drills spend most of their time waiting; six gave no more

    def __init__(self, reference: FreshReference, workdir: Path):
        self.reference, self.workdir = reference, workdir
        self._pool = ThreadPoolExecutor(self.WORKERS, thread_name_prefix="inner-run")
        self._started = itertools.count(1)

    def start(self, key: str, job) -> Future:
        """job(clone) -> a result, on a fresh clone (on_fresh_clone) in a folder of its own, named
        by the test (not by its parameters, which may hold a secret the test puts in a URL)."""
        workdir = self.workdir / f"{next(self._started)}-{key.split('::')[-1].split('[')[0]}"
        return self._pool.submit(on_fresh_clone, self.reference, workdir, job)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def broken(*sql: str, run: tuple = (), as_admin: bool = False, restore_point_now: bool = False, **options):
    """A job for RunsAhead: applies sql to its clone, then runs the suite with arguments run
    (and --restore-point at the moment it runs, with restore_point_now)."""
    def job(clone: Clone) -> SuiteRun:
        for statement in sql:
            clone.execute(statement, as_admin=as_admin)
        now = (f"--restore-point={datetime.now(timezone.utc).isoformat()}",) if restore_point_now else ()
        return clone.run_suite(*run, *now, **options)
    return job


def rpc_definition(name: str) -> str:
    """The CREATE OR REPLACE FUNCTION statement of a reference RPC, from its migration: a
    fault test edits it to break the RPC in one precise way."""
    from checks.migration_files import migration_files
    from checks.reference.cluster import MIGRATIONS_DIR
    for migration in migration_files(MIGRATIONS_DIR):
        for statement in migration.statements():
            start = statement.find(f"create function public.{name}(")
            if start >= 0:  # past the comments that lead the statement
                return statement[start:].replace("create function", "create or replace function", 1)
    raise LookupError(name)
