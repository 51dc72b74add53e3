"""The pytest plugin: --env, the `target` fixture, the report, the write policy.

The controller process resolves the environment, starts the embedded reference when the
env is `local`, and probes the target once. Any problem becomes one line and a non-zero
exit, after the report is written. xdist workers receive the resolved target and connect.
"""

import json
import os
import sys
from datetime import datetime, timezone
from html import escape
from pathlib import Path

import psycopg
import pytest
from _pytest.junitxml import xml_key
from pytest_html import extras as html_extras

from checks.connect.guards import stopped_by_guard
from checks.connect.http import HttpError
from checks.connect.target import Target
from checks.contract import thresholds as contract_thresholds
from checks.core import TERMINAL_SHOWN, Clock, Verdict, message, unmatched
from checks.drill import restore_run
from checks.errors import SetupError, redact
from checks.report import causes as failures
from checks.report import html as fragments
from checks.report import postmortem, summary
from checks.report.html import CSS as REPORT_CSS
from checks.report.html import objectives_line
from checks.report.summary import recent_runs
from checks.rules.platform import Platform, lint_params
from checks.run import Options, Run, handoff, one_line, receive, resolve

EXIT_SETUP = pytest.ExitCode.USAGE_ERROR


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
    group.addoption("--deep-queue", action="store_true",
                    help="walk get_queue page by page to name every order it misses (one call per page: "
                         "for drills, not for the weekly run)")
    group.addoption("--migrations-dir", default=None, metavar="PATH",
                    help="the app's supabase/migrations folder to compare with the database "
                         "(default: the reference's)")
    group.addoption("--cold-exports", default=None, metavar="DIR",
                    help="the folder of the runbook's cold exports (pg_dump -Fc files named with their date): the "
                         "newest at most 7 days old, weekly for 4 weeks and monthly for 6 months, each one readable")
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
    drill.addoption("--dump-file", default=None, metavar="FILE",
                    help="--env=drill --drill-mode=dump: restore this cold export (pg_dump -Fc) into a throwaway "
                         "cluster and verify it as a drill's restore")


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
                            ("closes_timeline", "runs last: its verdict closes the drill's timeline"),
                            ("urgent", "a failure to act on before cut-over (lost orders): runs, and is listed, first")):
        config.addinivalue_line("markers", f"{marker}: {meaning}")
    run = Run()
    config.stash[RUN] = run
    if _is_worker(config):
        config.stash[RUN] = run = receive(config.workerinput)
        _ACCEPTED[:] = run.env.accepted
        return
    started = datetime.now(timezone.utc)
    config.pluginmanager.register(RunSummary(run), "ordak-summary")
    config.pluginmanager.register(restore_run.TimelineCloser(run, measured_facts), "ordak-timeline")
    try:
        resolve(run, config.rootpath, _options(config), _progress(config, run))
        _ACCEPTED[:] = run.env.accepted
    except (SetupError, psycopg.Error, KeyboardInterrupt) as exc:
        secrets = run.secrets()
        if isinstance(exc, KeyboardInterrupt):  # Ctrl-C while connecting or in a drill: still a report
            run.interrupted = run.doing
            run.error = f"interrupted (Ctrl-C) while {run.doing}; nothing was verified"
            if run.drill is not None:
                run.timeline = list(run.drill.timeline)
        else:
            run.error = redact(one_line(exc, run.env), secrets)
        # Nothing to distribute: stop before xdist (configured after us) starts workers.
        config.option.dist, config.option.tx, config.option.numprocesses = "no", [], 0
    if not (config.option.help or config.option.collectonly):
        paths = _report_paths(config, run, started)
        run.previous = summary.previous_counts(paths.history, run.env and run.env.name)
        config.pluginmanager.register(ReportWriter(config, paths, started), "ordak-report")


def _report_paths(config, run: Run, started: datetime) -> summary.ReportPaths:
    """Every run writes its reports (pytest-html's HTML, JUnit, JSON, postmortem draft): under
    reports/ as <env>-<UTC time>-<suffix>, named by the environment (only a name from the
    environments file), never overwriting; or where --html says (a folder given as --html gets
    that name inside it). The history lives in reports/, or in the folder of an absolute --html.
    A place that cannot be written (a folder that cannot be created, a read-only disk) is known
    now, and the reports go to a temp folder instead: nothing of the run is lost. pytest-html,
    configured after this plugin, then writes the HTML where these paths say (self-contained
    unless asked otherwise... it always is: a report attached to a postmortem must stand alone)."""
    env = run.env and run.env.name
    wanted = config.getoption("htmlpath")
    reports = config.rootpath / "reports"
    try:
        if not wanted:
            html = summary.reserve(reports, env, started)
        elif wanted.endswith(("/", os.sep)) or Path(wanted).is_dir():
            html = summary.reserve(Path(wanted), env, started)
        else:
            html = summary.claim(Path(wanted))
    except OSError as exc:
        html = summary.fallback(env, started)
        asked = Path(wanted).parent if wanted and not wanted.endswith(("/", os.sep)) else Path(wanted or reports)
        run.report_fallback = (f"cannot write the report in {asked} ({exc.strerror}); it was written to {html} "
                               f"instead: pass --html=PATH in a folder you can write")
    history = html.parent if not wanted or Path(wanted).is_absolute() or run.report_fallback else reports
    paths = summary.ReportPaths.beside(html.resolve(), config.option.xmlpath, history.resolve())
    config.option.xmlpath = str(paths.xml)
    config.option.htmlpath = str(paths.html)
    config.option.self_contained_html = True
    missing = [css for css in config.option.css if not Path(os.path.expandvars(css)).expanduser().is_file()]
    if missing and not run.error:  # pytest-html would stop with a traceback; this is one line, and a report
        run.error = f"--css {', '.join(missing)}: no such file; give the path of a CSS file to add to the report"
        config.option.dist, config.option.tx, config.option.numprocesses = "no", [], 0
    given = [css for css in config.option.css if css not in missing]
    config.option.css = [str(REPORT_CSS), *given]  # a user's --css comes after ours, and wins
    return paths


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """Hands the resolved run to an xdist worker (over execnet, never printed)."""
    _management(node.config)  # read once, here, so that every worker collects the same lints
    node.workerinput.update(handoff(node.config.stash[RUN], _environments_path(node.config)))


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session):
    error = session.config.stash[RUN].error
    if error:
        # Collect nothing; the session still ends normally, so the reports are written. The JUnit
        # file gets one error naming the reason, so that CI cannot read the run as green.
        junit = session.config.stash.get(xml_key, None)
        if junit is not None:
            junit.pytest_runtest_logreport(pytest.TestReport(
                "ordak::setup", ("ordak", None, "setup"), {}, "failed", error, "setup"))
        session.items = []
        return True
    return None


@pytest.hookimpl(wrapper=True)
def pytest_sessionfinish(session):
    run = session.config.stash[RUN]
    if run.timeline and not run.error and not _is_worker(session.config):
        restore_run.close_timeline(run.timeline)
    yield  # the reports are written, with the checks' own verdict; then the exit status says the rest
    if run.interrupted:
        session.exitstatus = pytest.ExitCode.INTERRUPTED
    elif run.error or run.report_fallback:
        session.exitstatus = EXIT_SETUP


def pytest_collection_modifyitems(config, items):
    """Restore checks run only where they mean something; the HTTP cron check runs first."""
    items[:], deselected = restore_run.select(config.stash[RUN], items)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
    _skip_platform_without_settings(config, items)


def _options(config) -> Options:
    drill = {"mode": "drill_mode", "incident": "incident", "workload_seconds": "workload_seconds",
             "restore_point": "restore_point", "recovery_target": "recovery_target", "dump_file": "dump_file"}
    return Options(env=config.getoption("env"), environments=_environments_path(config),
                   migrations_dir=config.getoption("migrations_dir"), restore_point=config.getoption("restore_point"),
                   compare_to=config.getoption("compare_to"), persist_smoke=config.getoption("persist_smoke"),
                   incident_at=config.getoption("incident_at"),
                   restore_started_at=config.getoption("restore_started_at"),
                   cold_exports=config.getoption("cold_exports"),
                   drill={key: config.getoption(option) for key, option in drill.items()})


def _progress(config, run: Run):
    """Prints one line now, through pytest's output capture (a drill's phases take a while);
    the line is also what the run is doing, should Ctrl-C stop it there."""
    capture = config.pluginmanager.getplugin("capturemanager")

    def say(line: str) -> None:
        run.doing = line.strip().rstrip(" .")
        with capture.global_and_fixture_disabled():
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
    return say


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter, config):
    # The JUnit XML and the HTML report are written by now, with every violation; the
    # terminal's failure section shows the first few of each.
    for report in terminalreporter.stats.get("failed", []):
        failed = [r for r in verdict_records(report) if r["status"] == "failed"]
        if failed:
            report.longrepr = "\n".join(message(r, TERMINAL_SHOWN) for r in failed)
    yield  # after the report paths, so that the error is the last thing a person reads
    error = config.stash[RUN].error if not _is_worker(config) else None
    if error:
        terminalreporter.write_line(f"ERROR: {error}", red=True, bold=True)


def pytest_runtest_setup(item):
    run = item.config.stash[RUN]
    env = run.env
    if item.get_closest_marker("writes") and env is not None and env.read_only:
        why = "the server is in recovery (a replica): it cannot be written" if run.facts.get("in_recovery") \
            else f"environment '{env.name}' is read-only"
        pytest.skip(f"writes to the database: skipped because {why}")


def pytest_unconfigure(config):
    run = config.stash.get(RUN, None)
    if run is not None:
        run.close(controller=not _is_worker(config))


# -- fixtures -------------------------------------------------------------------------
@pytest.fixture(scope="session")
def target(pytestconfig) -> Target:
    """The database under test (see checks.connect.target.Target)."""
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
def previous_run(pytestconfig) -> dict | None:
    """The last run of this environment in the history that counted orders, or None."""
    return pytestconfig.stash[RUN].previous


@pytest.fixture(scope="session")
def compared_or_none(pytestconfig) -> Target | None:
    """The --compare-to environment, or None: for checks that measure more with it."""
    return pytestconfig.stash[RUN].compare


@pytest.fixture(scope="session")
def deep_queue(pytestconfig) -> bool:
    return pytestconfig.getoption("deep_queue")


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
def cold_exports(pytestconfig) -> Path:
    """The folder of cold exports (--cold-exports); tests that ask for it run only when it is given."""
    return Path(pytestconfig.getoption("cold_exports")).expanduser()


@pytest.fixture(scope="session")
def replay_file(pytestconfig) -> Path:
    """Where the replay list goes: <report>-replay.csv, beside the HTML report (checks.replay)."""
    return restore_run.replay_file(pytestconfig)


@pytest.fixture(scope="session")
def migrations_dir(pytestconfig) -> Path:
    """The migrations folder to compare with the database (--migrations-dir)."""
    from checks.reference.cluster import MIGRATIONS_DIR
    return Path(pytestconfig.getoption("migrations_dir") or MIGRATIONS_DIR)


# -- the HTTP platform (checks.platform): tests of a part without settings skip, naming them
def _platform(config) -> Platform:
    run = config.stash[RUN]
    if run.platform is None:
        run.platform = Platform(run.env)
    return run.platform


def _management(config) -> dict | None:
    """The Management API's answers: read once by the controller, handed to xdist workers,
    so that every worker collects the same advisor lints. None without settings."""
    run = config.stash[RUN]
    if run.management is None and not _is_worker(config) and _platform(config).missing("management") is None:
        run.management = _platform(config).management_answers()
    return run.management


def pytest_generate_tests(metafunc):
    if "advisor_lint" in metafunc.fixturenames:  # one test id per security advisor lint
        values, ids = lint_params(_management(metafunc.config))
        metafunc.parametrize("advisor_lint", values, ids=ids)


_PLATFORM_PARTS = {"management_answers": "management", "rest_platform": "rest", "photo_platform": "photos"}


def _skip_platform_without_settings(config, items) -> None:
    """Platform tests of a part the environment has no settings for skip, saying what to set
    (a skip mark, so that the summary folds them into one line per reason)."""
    for item in items:
        for fixture, part in _PLATFORM_PARTS.items():
            reason = fixture in getattr(item, "fixturenames", ()) and _platform(config).missing(part)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))
                break


@pytest.fixture(scope="session")
def management_answers(pytestconfig) -> dict:
    return _management(pytestconfig)


@pytest.fixture(scope="session")
def rest_platform(pytestconfig) -> Platform:
    return _platform(pytestconfig)


@pytest.fixture(scope="session")
def photo_platform(pytestconfig) -> Platform:
    return _platform(pytestconfig)


# Facts a check measured (head versions, RPO...), kept with the test that measured them:
# in the JUnit properties, the HTML report and the terminal summary. The verdict itself
# travels as plain data under VERDICT_PROPERTY (through xdist too), for the report.
_facts: dict = {}
_verdicts: list = []
_ACCEPTED: list = []  # this environment's accepted findings ([[<env>.accepted]])
VERDICT_PROPERTY = "ordak_verdict"
CAUSE_PROPERTY = "ordak_cause"  # why a check raised (checks.report.causes), for the report


def expect_clean(verdict: Verdict) -> Verdict:
    """Fails the test with the verdict's own text when the check found violations (the
    findings the environment accepted aside); skips it when the check could not run because
    another test already reports what is missing."""
    verdict = verdict.accept(_ACCEPTED, datetime.now(timezone.utc).date())
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
        try:
            return (yield)
        except HttpError as exc:  # an API that did not answer as documented: its one line
            failure = str(exc)
        pytest.fail(failure, pytrace=False)  # raised outside the except: no chained traceback
    finally:
        item.user_properties.extend(_facts.items())
        item.user_properties.extend((VERDICT_PROPERTY, json.dumps(v, default=str)) for v in _verdicts)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A query stopped by a timeout fails its test in one line naming the setting to raise
    (never a QueryCanceled traceback); so does a connection that cannot be made. Any other
    error a check raises leads with its cause (SQLSTATE, message, object, fix): the traceback
    follows it, and the cause travels to the report as plain data (CAUSE_PROPERTY)."""
    report = yield
    env = item.config.stash[RUN].env
    error = call.excinfo.value if call.excinfo is not None else None
    line = str(error) if isinstance(error, SetupError) else stopped_by_guard(error, env) if env and error else None
    found = failures.cause(error) if error is not None and not line else None
    if line:
        report.outcome, report.longrepr = "failed", line
    elif found is not None and report.failed:
        traceback = report.longreprtext
        report.longrepr = f"{failures.lead(found)}\n\ntraceback:\n{traceback}"
        report.user_properties.append((CAUSE_PROPERTY, json.dumps({**found, "traceback": traceback})))
    # pytest-html shows these under the test's row: what it found and what to do
    # (the call's report only: the teardown's carries the same verdicts again)
    shown = [fragments.verdict_extra(r) for r in verdict_records(report) if r["status"] == "failed"] \
        if report.when == "call" else []
    if found is not None and report.failed:
        shown.append(fragments.cause_extra(found))
    if shown:
        report.extras = [*getattr(report, "extras", []), *map(html_extras.html, shown)]
    return report


def verdict_records(report) -> list[dict]:
    return [json.loads(value) for key, value in getattr(report, "user_properties", ()) if key == VERDICT_PROPERTY]


class RunSummary:
    """Collects facts and verdicts from every test report (xdist workers' too) for the
    terminal: facts measured, notes, accepted findings, acceptances that matched nothing."""

    def __init__(self, run: Run):
        self.run = run
        self.rows: list[tuple[str, list]] = []
        self.records: list[dict] = []

    def pytest_runtest_logreport(self, report):
        facts = measured_facts(report)
        if report.when == "call" and facts:
            self.rows.append((report.nodeid, facts))
        if report.when == "call":
            self.records += verdict_records(report)

    def pytest_terminal_summary(self, terminalreporter):
        write = terminalreporter.write_line
        if self.rows:
            terminalreporter.section("facts measured")
            for nodeid, facts in sorted(self.rows):
                write(f"{nodeid.split('::', 1)[-1]}: {_format_facts(facts)}")
        notes = [(r, n) for r in self.records for n in r["notes"]]
        if notes:
            terminalreporter.section("notes: shown, never failing")
            for record, note in notes:
                write(f"{record['check']}[{record['subject']}] {note['object']}: {note['problem']} ({note['note']})")
        accepted = [a for r in self.records for a in r["accepted"]]
        stale = unmatched(self.run.env.accepted, self.records) if self.run.env else []
        if accepted or stale:
            terminalreporter.section("accepted findings (environments.toml)")
            for finding in accepted:
                write(f"accepted until {finding['until']}: {finding['key']}: {finding['problem']} ({finding['reason']})")
            for acceptance in stale:
                write(f"accepted key matched nothing (fixed? remove it): {acceptance.key}", yellow=True)


def measured_facts(report) -> list[tuple[str, object]]:
    return [(key, value) for key, value in report.user_properties if key not in (VERDICT_PROPERTY, CAUSE_PROPERTY)]


def _format_facts(facts: list) -> str:
    return ", ".join(f"{key}={value}" for key, value in facts)


# -- report -------------------------------------------------------------------------
class ReportWriter:
    """Gathers every test's outcome (xdist workers' too) into the run's summary (checks.report.summary),
    gives pytest-html what it shows beyond its table (the first screen, the findings, the area
    and key of each row: checks.report.html), then writes the JSON summary, postmortem draft and
    history beside the HTML, and takes every secret the run knows out of the HTML too."""

    def __init__(self, config, paths: summary.ReportPaths, started: datetime):
        self.config, self.paths, self.started = config, paths, started
        self.results = summary.Results()
        self.failed: str | None = None  # why the reports could not be written
        self.data: dict | None = None
        self.running: str | None = None  # the test running now: where a Ctrl-C stopped the checks
        self.html_report = None  # pytest-html's ReportData, for its title

    def summary(self, session, exitstatus=None) -> dict:
        """The run's summary, built once, when the session ends (pytest-html asks first), from
        pytest's own exit status (before this plugin turns a setup error into status 4)."""
        if self.data is None:
            run = self.config.stash[RUN]
            exitstatus = session.exitstatus if exitstatus is None else exitstatus
            if exitstatus == pytest.ExitCode.INTERRUPTED and not run.interrupted:
                run.interrupted = f"running the checks, at {self.running}" if self.running else "starting the checks"
            self.data = summary.of_run(run, self.results.all(), started=self.started, exit_status=int(exitstatus),
                                       command=list(self.config.invocation_params.args), root=self.config.rootpath)
        return self.data

    # -- pytest-html's hooks --------------------------------------------------------------
    @pytest.hookimpl(optionalhook=True)
    def pytest_html_report_title(self, report):
        self.html_report = report
        report.title = "Ordak verification"

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(self, prefix, summary, postfix, session):
        data = self.summary(session)
        if self.html_report is not None:
            self.html_report.title = fragments.title(data)
        history = recent_runs(data, self.paths)  # (`summary` here is pytest-html's list, not the module)
        prefix.extend(fragments.first_screen(data, history, self.paths))
        postfix.extend(fragments.findings(data))

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_header(self, cells):
        cells.insert(2, '<th class="sortable" data-column-type="area">Area</th>')
        cells.insert(3, '<th class="sortable" data-column-type="key">Finding key</th>')

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_html(self, report, data):
        """A failing verdict's extra holds every violation and the fix: its text again as a log
        would only push the next check down. A skip reads as its reason, not as a Python tuple."""
        if report.when == "call" and any(r["status"] == "failed" for r in verdict_records(report)):
            data[:] = []
        elif report.skipped and isinstance(report.longrepr, tuple):
            data[:] = [escape(f"skipped: {report.longrepr[2].removeprefix('Skipped: ')}")]

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_row(self, report, cells):
        area = fragments.area_label(summary.area_of(report.nodeid))
        cells.insert(2, f'<td class="col-area">{escape(area)}</td>')
        cells.insert(3, f'<td class="col-key">{escape(fragments.finding_keys(verdict_records(report)))}</td>')

    def pytest_runtest_logstart(self, nodeid):
        self.running = nodeid

    def pytest_runtest_logreport(self, report):
        if report.skipped and isinstance(report.longrepr, tuple):
            text = report.longrepr[2].removeprefix("Skipped: ")
        else:
            text = report.longreprtext if report.failed else ""
        verdicts = [json.loads(value) for key, value in report.user_properties if key == VERDICT_PROPERTY]
        cause = next((json.loads(value) for key, value in report.user_properties if key == CAUSE_PROPERTY), None)
        urgent = any(marker in report.keywords for marker in restore_run.ACT_FIRST)
        self.results.add(report.nodeid, report.when, report.outcome, report.duration, text, verdicts,
                         cause=cause, urgent=urgent)

    @pytest.hookimpl(wrapper=True)
    def pytest_sessionfinish(self, session, exitstatus):
        """Around pytest-html's: after it wrote the HTML, the other files, and the HTML redacted
        as the JSON is."""
        yield
        data = self.summary(session, exitstatus)
        try:
            summary.write(data, self.paths)
            self.paths.markdown.write_text(postmortem.render(data, self.paths))
            summary.redact_file(self.paths.html, self.config.stash[RUN].secrets())
        except OSError as exc:
            self.failed = f"cannot write the report {exc.filename}: {exc.strerror}"
            session.exitstatus = EXIT_SETUP

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config):
        """After a drill or a restore with a timeline, the terminal's last line: RTO and data loss
        against the objectives, as the checks judged them, for a person to read at a glance."""
        objectives = objectives_line(self.data) if self.data else None
        terminal = config.pluginmanager.get_plugin("terminalreporter")
        if objectives and terminal is not None:
            terminal.write_line(objectives, bold=True, **({"red": True} if "NOT MET" in objectives else {"green": True}))

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter):
        if self.failed:
            terminalreporter.write_line(f"ERROR: {self.failed}", red=True, bold=True)
            return
        warnings = [self.data["environment"].get("replica"), (self.data["reference_time"] or {}).get("warning")] \
            if self.data else []
        for warning in filter(None, warnings):
            terminalreporter.write_line(f"WARNING: {warning}", yellow=True, bold=True)
        fallback = self.config.stash[RUN].report_fallback
        if fallback:
            terminalreporter.write_line(f"ERROR: {fallback}", red=True, bold=True)
        html = self.paths.html
        try:
            html = html.resolve().relative_to(Path.cwd())
        except ValueError:
            pass
        terminalreporter.write_sep("-", f"report: {html} (JUnit, JSON summary and postmortem draft beside it)")
