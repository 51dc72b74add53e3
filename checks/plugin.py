"""The pytest plugin: --env, the `target` fixture, the report, the write policy.

The controller process resolves the environment, starts the embedded reference when the
env is `local`, and probes the target once. Any problem becomes one line and a non-zero
exit, after the report is written. xdist workers receive the resolved target and connect.
"""

import json
import os
import sys
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import pytest
from dotenv import load_dotenv
from pytest_metadata.plugin import metadata_key

from checks import restore_run
from checks.contract import thresholds as contract_thresholds
from checks.core import Verdict
from checks.data import Clock, parse_restore_point
from checks.environments import Environment, load_environments, read_only
from checks.errors import SetupError, redact
from checks.schema import require_ordak
from checks.target import Target

EXIT_SETUP = pytest.ExitCode.USAGE_ERROR


@dataclass
class Run:
    """What this pytest process knows about the target of the run."""
    env: Environment | None = None
    target: Target | None = None
    error: str | None = None
    facts: dict = field(default_factory=dict)
    compare: Target | None = None  # --compare-to, always read-only
    clock: Clock | None = None  # what "now" means for freshness, RPO and queue ages
    cluster: object | None = None  # the embedded ReferenceCluster (env local)
    template: object | None = None  # the reference Template the run's clone came from
    clone: str | None = None
    # A drill's timeline: [{"event": "incident", "at": aware datetime, ...}], in order. The
    # drill fills it; the report, the JSON summary and the postmortem draft show it.
    timeline: list = field(default_factory=list)
    drill: object | None = None  # the rehearsed drill (checks.drill.Drill), cleaned up at the end
    drill_record: dict | None = None  # its canaries, incident, restore point... (checks.drill.Result.record)


RUN = pytest.StashKey[Run]()


def pytest_addoption(parser):
    group = parser.getgroup("ordak", "Ordak verification")
    group.addoption("--env", default="local", metavar="NAME",
                    help="target environment from environments.toml (default: local, the embedded reference)")
    group.addoption("--environments", default=None, metavar="PATH",
                    help="environments file (default: environments.toml at the project root)")
    group.addoption("--restore-point", default=None, metavar="ISO-8601",
                    help="the time the target was restored to (e.g. 2026-11-20T14:30:00Z): freshness and "
                         "RPO are measured against it instead of now")
    group.addoption("--compare-to", default=None, metavar="ENV",
                    help="another environment (typically production) to compare orders with, day by day "
                         "up to the reference time; read-only")
    group.addoption("--persist-smoke", action="store_true",
                    help="keep the smoke flow's test order (writable, non-production envs only); "
                         "the run prints how to remove it")
    group.addoption("--migrations-dir", default=None, metavar="PATH",
                    help="the app's supabase/migrations folder to compare with the database "
                         "(default: the reference's)")
    drill = parser.getgroup("ordak-drill", "Ordak drill: a restore, its RTO and RPO")
    drill.addoption("--incident-at", default=None, metavar="ISO-8601",
                    help="a real drill: when the incident happened (opens the timeline; RTO and data loss are "
                         "measured from it)")
    drill.addoption("--restore-started-at", default=None, metavar="ISO-8601",
                    help="a real drill: when the restore was started (e.g. the dashboard's restore button)")
    drill.addoption("--drill-mode", default=None, choices=["pitr", "dump"],
                    help="--env=drill: restore by point-in-time recovery (default) or from a pg_dump (cold export)")
    drill.addoption("--incident", default=None, metavar="KIND[:STORE]",
                    help="--env=drill: mass-delete, drop-table or bad-migration, of one store's orders "
                         "(default mass-delete:bannos)")
    drill.addoption("--workload-seconds", default=None, type=float, metavar="N",
                    help="--env=drill: seconds of production traffic before the incident")
    drill.addoption("--recovery-target", default=None, metavar="TIME",
                    help="--env=drill: the time the restore actually aims at, if not the restore point "
                         "(rehearses a restore to the wrong time)")


def _is_worker(config) -> bool:
    return hasattr(config, "workerinput")


def _environments_path(config) -> Path:
    return Path(config.getoption("environments") or config.rootpath / "environments.toml")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    config.addinivalue_line("markers", "writes: writes to the database inside sandbox(); "
                                       "skipped on read-only environments")
    for marker, meaning in (("restore_target", "runs only against a restored copy (env restore_target)"),
                            ("drill_timeline", "runs only with a drill's timeline (--env=drill, or --incident-at)"),
                            ("rehearsal", "runs only in a rehearsed drill (--env=drill)"),
                            ("closes_timeline", "runs last: its verdict closes the drill's timeline")):
        config.addinivalue_line("markers", f"{marker}: {meaning}")
    run = Run()
    config.stash[RUN] = run
    if _is_worker(config):
        _receive(config.workerinput, run)
        return
    _default_report_paths(config)
    config.pluginmanager.register(FactsSummary(), "ordak-facts")
    config.pluginmanager.register(restore_run.TimelineCloser(run, measured_facts), "ordak-timeline")
    try:
        _resolve(config, run)
    except SetupError as exc:
        secrets = run.target.secrets() if run.target else run.env.secret_values() if run.env else ()
        run.error = redact(str(exc), secrets)
        # Nothing to distribute: stop before xdist (configured after us) starts workers.
        config.option.dist, config.option.tx, config.option.numprocesses = "no", [], 0


def _resolve(config, run: Run) -> None:
    load_dotenv(config.rootpath / ".env", override=False)
    folder = config.getoption("migrations_dir")
    if folder and not Path(folder).is_dir():
        raise SetupError(f"--migrations-dir {folder}: no such folder; point it at the app's supabase/migrations")
    environments = load_environments(_environments_path(config))
    name = config.getoption("env")
    if name not in environments:
        raise SetupError(f"unknown environment '{name}'; known: {', '.join(environments)} "
                         f"(defined in {_environments_path(config).name})")
    run.env = env = environments[name]
    restore_run.check_options(env, _drill_options(config), {
        option: config.getoption(option.strip("-").replace("-", "_"))
        for option in ("--incident-at", "--restore-started-at", "--compare-to")})
    if env.rehearsal is not None:
        restore_run.rehearse(run, _drill_options(config), _progress(config))
        return
    if env.embedded:
        from checks.reference import DEFAULT_SCALE, ReferenceCluster
        run.cluster = ReferenceCluster.open("suite")
        run.template = run.cluster.template(env.scale or DEFAULT_SCALE)
        run.clone = f"ordak_run_{os.getpid()}"
        url = run.cluster.clone(run.template, run.clone)
    else:
        url = env.secret("db_url")
    run.target = Target(env, url)
    run.facts = {"server_version": run.target.scalar("show server_version"),
                 "user": run.target.scalar("select current_user")}
    # A real drill's timeline: the person's times, then the suite's first connection (just made).
    run.timeline = restore_run.timeline_of(config.getoption("incident_at"), config.getoption("restore_started_at"))
    require_ordak(run.target)
    if config.getoption("persist_smoke") and env.read_only:
        raise SetupError(f"--persist-smoke writes a test order; environment '{env.name}' is read-only")
    restore_point = config.getoption("restore_point")
    run.clock = Clock(parse_restore_point(restore_point), True) if restore_point else \
        Clock(run.target.scalar("select now()"), False)
    compare_to = config.getoption("compare_to")
    if compare_to:
        if compare_to not in environments:
            raise SetupError(f"--compare-to: unknown environment '{compare_to}'; known: {', '.join(environments)}")
        if environments[compare_to].embedded:
            raise SetupError("--compare-to needs an environment reached by URL, not the embedded reference")
        other = read_only(environments[compare_to])
        run.compare = Target(other, other.secret("db_url"))
        require_ordak(run.compare)


def _default_report_paths(config) -> None:
    """Every run writes a self-contained HTML report and JUnit XML, named by env and UTC time."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = config.rootpath / "reports" / f"{config.getoption('env')}-{stamp}"
    if not config.option.htmlpath:
        config.option.htmlpath = str(base.with_suffix(".html"))
    config.option.self_contained_html = True
    if not config.option.xmlpath:
        config.option.xmlpath = str(base.with_suffix(".xml"))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """Hands the resolved run to an xdist worker (over execnet, never printed)."""
    run, given = node.config.stash[RUN], node.workerinput
    given["ordak_environments"] = str(_environments_path(node.config))
    given["ordak_env"], given["ordak_url"] = run.env.name, run.target.url
    given["ordak_clock"], given["ordak_restore_point"] = run.clock.at.isoformat(), run.clock.restore_point
    if run.compare is not None:
        given["ordak_compare_env"], given["ordak_compare_url"] = run.compare.env.name, run.compare.url
    if run.cluster is not None:
        given["ordak_cluster"], given["ordak_template"] = str(run.cluster.home), run.template.name
        given["ordak_seeded_at"] = run.template.seeded_at.isoformat()
    given["ordak_timeline"] = json.dumps(run.timeline, default=str)
    if run.drill_record is not None:
        given["ordak_drill"] = json.dumps(run.drill_record)


def _receive(given: dict, run: Run) -> None:
    """A worker's side of pytest_configure_node."""
    environments = load_environments(Path(given["ordak_environments"]))
    run.env = environments[given["ordak_env"]]
    run.target = Target(run.env, given["ordak_url"])
    run.clock = Clock(datetime.fromisoformat(given["ordak_clock"]), given["ordak_restore_point"])
    if "ordak_compare_env" in given:
        compared = environments.get(given["ordak_compare_env"]) or replace(run.env, name=given["ordak_compare_env"])
        run.compare = Target(read_only(compared), given["ordak_compare_url"])
    run.timeline = restore_run.timeline_from_json(given["ordak_timeline"])
    run.drill_record = json.loads(given["ordak_drill"]) if "ordak_drill" in given else None
    if "ordak_cluster" in given:
        from checks.reference import ReferenceCluster, Template
        run.cluster = ReferenceCluster.attach(given["ordak_cluster"])
        run.template = Template(given["ordak_template"], datetime.fromisoformat(given["ordak_seeded_at"]))


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session):
    if session.config.stash[RUN].error:
        # Collect nothing; the session still ends normally, so the reports are written.
        session.items = []
        return True
    return None


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    run = session.config.stash[RUN]
    if run.error:
        session.exitstatus = EXIT_SETUP
    elif run.timeline and not _is_worker(session.config):
        restore_run.close_timeline(run.timeline)


def pytest_collection_modifyitems(config, items):
    """Restore checks run only where they mean something; the HTTP cron check runs first."""
    items[:], deselected = restore_run.select(config.stash[RUN], items)
    if deselected:
        config.hook.pytest_deselected(items=deselected)


def _drill_options(config) -> dict:
    names = {"mode": "drill_mode", "incident": "incident", "workload_seconds": "workload_seconds",
             "restore_point": "restore_point", "recovery_target": "recovery_target"}
    return {key: config.getoption(option) for key, option in names.items()}


def _progress(config):
    """Prints one line now, through pytest's output capture (a drill's phases take a while)."""
    capture = config.pluginmanager.getplugin("capturemanager")

    def say(line: str) -> None:
        with capture.global_and_fixture_disabled():
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
    return say


@pytest.hookimpl(wrapper=True)
def pytest_terminal_summary(terminalreporter, config):
    yield  # after the report paths, so that the error is the last thing a person reads
    error = config.stash[RUN].error if not _is_worker(config) else None
    if error:
        terminalreporter.write_line(f"ERROR: {error}", red=True, bold=True)


def pytest_runtest_setup(item):
    env = item.config.stash[RUN].env
    if item.get_closest_marker("writes") and env is not None and env.read_only:
        pytest.skip(f"writes to the database: skipped because environment '{env.name}' is read-only")


def pytest_unconfigure(config):
    run = config.stash.get(RUN, None)
    if run is None:
        return
    for target in (run.target, run.compare):
        if target is not None:
            target.close()
    if run.drill is not None:
        run.drill.close()
    if run.cluster is not None and not _is_worker(config):
        run.cluster.drop(run.clone)
        run.cluster.close()


# -- fixtures -------------------------------------------------------------------------
@pytest.fixture(scope="session")
def target(pytestconfig) -> Target:
    """The database under test (see checks.target.Target)."""
    return pytestconfig.stash[RUN].target


@pytest.fixture(scope="session")
def clock(pytestconfig) -> Clock:
    """The reference time: --restore-point, else the database's now() when the run began."""
    return pytestconfig.stash[RUN].clock


@pytest.fixture(scope="session")
def thresholds(pytestconfig) -> dict:
    """The contract's thresholds with this environment's overrides."""
    return contract_thresholds(pytestconfig.stash[RUN].env.thresholds)


@pytest.fixture(scope="session")
def compare_target(pytestconfig) -> Target:
    """The --compare-to environment (read-only); tests that need it skip without it."""
    other = pytestconfig.stash[RUN].compare
    if other is None:
        pytest.skip("no --compare-to environment given (e.g. --compare-to=production during a drill)")
    return other


@pytest.fixture(scope="session")
def drill(pytestconfig) -> dict:
    """The rehearsed drill's record (canaries, incident, restore point, what the restore read)."""
    return pytestconfig.stash[RUN].drill_record


@pytest.fixture(scope="session")
def timeline(pytestconfig) -> list:
    """The drill's timeline so far (incident, restore started, accepting connections)."""
    return pytestconfig.stash[RUN].timeline


@pytest.fixture(scope="session")
def persist_smoke(pytestconfig) -> bool:
    return pytestconfig.getoption("persist_smoke")


@pytest.fixture(scope="session")
def migrations_dir(pytestconfig) -> Path:
    """The migrations folder to compare with the database (--migrations-dir)."""
    from checks.reference import MIGRATIONS_DIR
    return Path(pytestconfig.getoption("migrations_dir") or MIGRATIONS_DIR)


# Facts a check measured (head versions, RPO...), kept with the test that measured them:
# in the JUnit properties, the HTML report and the terminal summary. The verdict itself
# travels as plain data under VERDICT_PROPERTY (through xdist too), for the report.
_facts: dict = {}
_verdicts: list = []
VERDICT_PROPERTY = "ordak_verdict"


def expect_clean(verdict: Verdict) -> Verdict:
    """Fails the test with the verdict's own text when the check found violations; skips it
    when the check could not run because another test already reports what is missing."""
    _facts.update({k: v for k, v in verdict.facts.items() if v not in (None, [], {})})
    _verdicts.append(verdict.record())
    if verdict.blocked:
        pytest.skip(verdict.blocked)
    if not verdict.ok:
        pytest.fail(verdict.message(), pytrace=False)
    return verdict


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    _facts.clear()
    _verdicts.clear()
    try:
        return (yield)
    finally:
        item.user_properties.extend(_facts.items())
        item.user_properties.extend((VERDICT_PROPERTY, json.dumps(v, default=str)) for v in _verdicts)


class FactsSummary:
    """Collects facts from every test report (xdist workers' too) for the terminal summary."""

    def __init__(self):
        self.rows: list[tuple[str, list]] = []

    def pytest_runtest_logreport(self, report):
        facts = measured_facts(report)
        if report.when == "call" and facts:
            self.rows.append((report.nodeid, facts))

    def pytest_terminal_summary(self, terminalreporter):
        if self.rows:
            terminalreporter.section("facts measured")
            for nodeid, facts in sorted(self.rows):
                terminalreporter.write_line(f"{nodeid.split('::', 1)[-1]}: {_format_facts(facts)}")


def measured_facts(report) -> list[tuple[str, object]]:
    return [(key, value) for key, value in report.user_properties if key != VERDICT_PROPERTY]


def _format_facts(facts: list) -> str:
    return ", ".join(f"{key}={value}" for key, value in facts)


# -- report -------------------------------------------------------------------------
@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    """The report's Environment table: where the run went, never with a secret."""
    config = session.config
    if _is_worker(config):
        return
    run = config.stash[RUN]
    metadata = config.stash[metadata_key]
    metadata["Environment"] = run.env.name if run.env else config.getoption("env")
    if run.env:
        metadata["Description"] = run.env.description
        metadata["Read-only"] = "yes" if run.env.read_only else "no"
    if run.target:
        metadata["Target host"] = run.target.host
        metadata["Target database"] = run.target.dbname
    if run.clock:
        metadata["Reference time"] = f"{run.clock.at.isoformat()} ({run.clock.label})"
    if run.compare:
        metadata["Compared with"] = f"{run.compare.env.name} ({run.compare.location}, read-only)"
    if run.drill_record:
        metadata["Drill"] = restore_run.describe(run.drill_record)
    for key, label in (("server_version", "Server version"), ("user", "Connected as")):
        if key in run.facts:
            metadata[label] = run.facts[key]
    if run.error:
        metadata["Run aborted"] = run.error


def pytest_html_report_title(report):
    report.title = "Ordak verification"


def pytest_html_results_table_html(report, data):
    facts = measured_facts(report)
    if report.when == "call" and facts:
        data.insert(0, f"<div><strong>Facts:</strong> {_escape(_format_facts(facts))}</div>")


def pytest_html_results_summary(prefix, summary, postfix, session):
    run = session.config.stash[RUN]
    if run.error:
        prefix.append(f"<p><strong>Run aborted:</strong> {_escape(run.error)}</p>")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
