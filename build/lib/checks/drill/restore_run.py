"""How a run becomes a drill, for plugin.py: rehearse one (an environment with a `rehearsal`
table, e.g. --env=drill), or measure a real one (--incident-at and --restore-started-at
against the restored project); which restore checks a run selects; the timeline's close;
where the replay list goes (beside the report, in every process)."""

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from checks.connect.environments import Environment
from checks.connect.target import Target, require_ordak
from checks.core import Clock
from checks.errors import SetupError
from checks.rules import replay

# Markers of tests/test_drill.py: what each restore check needs to mean something.
NEEDS = {
    "restore_target": lambda run: run.env is not None and run.env.restore_target,
    "drill_timeline": lambda run: bool(run.timeline),
    "rehearsal": lambda run: run.drill_record is not None,
}
# Act on HTTP cron jobs first, then on lost orders (URGENT); the verdict closes the RTO.
FIRST, URGENT, LAST = "restore_target", "urgent", "closes_timeline"
ACT_FIRST = (FIRST, URGENT)  # their failures lead the failed list and the report
AS_OF = "production@restore-point"


DRILL_OPTIONS = {"mode": "--drill-mode", "incident": "--incident", "workload_seconds": "--workload-seconds",
                 "recovery_target": "--recovery-target", "dump_file": "--dump-file"}
# What rehearses a production of its own; a given cold export (--dump-file) has none.
REHEARSAL_ONLY = {"incident": "--incident", "workload_seconds": "--workload-seconds",
                  "restore_point": "--restore-point", "recovery_target": "--recovery-target"}


def check_options(env, drill: dict, real: dict) -> None:
    """Rehearsal options need a rehearsal; a rehearsal times its own incident and restore."""
    if env.rehearsal is None:
        given = [DRILL_OPTIONS[k] for k in DRILL_OPTIONS if drill.get(k) is not None]
        if given:
            raise SetupError(f"{', '.join(given)}: only for a rehearsed drill (--env=drill); environment "
                             f"'{env.name}' is not one")
        return
    given = [option for option, value in real.items() if value]
    if given:
        raise SetupError(f"{', '.join(given)}: a rehearsed drill times its own incident and restore and compares "
                         f"with its own production; these are for a real one (--env=restore)")
    if drill.get("dump_file") is not None:
        rehearsing = [option for key, option in REHEARSAL_ONLY.items() if drill.get(key) is not None]
        if rehearsing:
            raise SetupError(f"{', '.join(rehearsing)}: --dump-file restores a given cold export, taken when it was "
                             f"taken; there is no production, incident or workload to rehearse (leave them out)")


def rehearse(run, options: dict, progress) -> None:
    """Runs the drill; the suite then verifies the restored cluster, compared with production
    as of the restore point (a copy production's own server made then: see checks/drill/rehearsal.py)."""
    from checks.drill.rehearsal import Drill, plan_from
    env = run.env
    run.drill = Drill(plan_from(env.rehearsal, env.scale, options), progress)
    result = run.drill.run()
    run.drill_record, run.timeline = result.record(), result.timeline
    run.target = Target(env, result.target_url)
    require_ordak(run.target)
    run.clock = Clock(result.restore_point, True)
    steps = f"drill [{len(run.drill.steps)}/{len(run.drill.steps)}] suite"
    if result.compare_url is None:  # a given cold export: measured against the time it was taken
        progress(f"{steps}: verifying the restored export, measured against the time it was taken "
                 f"({result.restore_point:%Y-%m-%d %H:%M:%S} UTC) ...")
        return
    production = Environment(name=AS_OF, description="the drill's production as of the restore point", read_only=True)
    run.compare = Target(production, result.compare_url)
    progress(f"{steps}: verifying the restored database, compared with {AS_OF} "
             f"({result.restore_point:%H:%M:%S} UTC) ...")


def timeline_of(incident_at: str | None, restore_started_at: str | None) -> list[dict]:
    """A real drill's timeline from the times a person noted, closed (for now) by the suite's
    first connection to the restored database, which has just succeeded."""
    if restore_started_at and not incident_at:
        raise SetupError("--restore-started-at needs --incident-at: the RTO is measured from the incident")
    if not incident_at:
        return []
    now = datetime.now(timezone.utc)
    incident = _moment(incident_at, "--incident-at")
    timeline = [{"event": "incident", "at": incident}]
    if restore_started_at:
        started = _moment(restore_started_at, "--restore-started-at")
        if started < incident:
            raise SetupError(f"--restore-started-at {restore_started_at} is before --incident-at {incident_at}")
        timeline.append({"event": "restore_started", "at": started})
    if timeline[-1]["at"] > now:
        raise SetupError(f"{'--restore-started-at' if restore_started_at else '--incident-at'} is in the future "
                         f"({timeline[-1]['at']:%Y-%m-%d %H:%M:%S %Z}); give the time it happened")
    timeline.append({"event": "restored_accepting_connections", "at": now, "measured": "the suite's first connection"})
    return timeline


def _moment(text: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise SetupError(f"{option} {text!r} is not an ISO-8601 time; e.g. 2026-11-20T14:30:00Z") from None
    if moment.tzinfo is None:
        raise SetupError(f"{option} {text!r} has no time zone; add one, e.g. {text}Z for UTC")
    return moment


def timeline_from_json(text: str) -> list[dict]:
    return [{**e, "at": datetime.fromisoformat(e["at"])} for e in json.loads(text)]


# Checks that run only where their input was given: deselected elsewhere (never skipped: a
# run that was not asked about them does not list them). Keyed by the fixture they ask for.
GIVEN = {
    "cold_exports": lambda run, item: item.config.getoption("cold_exports", None) is not None,
    # test_rotated_key_refused[previous_anon_key]: the environment names a previous key (secrets)
    "previous_key": lambda run, item: run.env is not None and item.callspec.params["previous_key"] in run.env.secrets,
    # test_replay_list: production to list from (a drill's own, or --compare-to) and a restore point
    "replay_file": lambda run, item: replay_production(run) is not None and bool(run.clock and run.clock.restore_point),
}


def replay_production(run) -> tuple[str, str] | None:
    """(name, URL) of the production the replay list is read from: a rehearsed drill's own, as it
    is after the incident (its --compare-to is production as of the restore point, which by
    definition holds nothing after it); else --compare-to. None: nothing to list from."""
    if run.drill_record is not None:
        url = run.drill_record.get("production_url")
        return ("production (drill, after the incident)", url) if url else None
    return (run.compare.env.name, run.compare.url) if run.compare is not None else None


def select(run, items: list) -> tuple[list, list]:
    """(kept, deselected): a restore check runs only where what it needs is there; a check of
    an input (--cold-exports, a previous key) only where it was given."""
    kept, deselected = [], []
    for item in items:
        needs = [m.name for m in item.iter_markers() if m.name in NEEDS]
        given = [f for f in GIVEN if f in getattr(item, "fixturenames", ())]
        wanted = all(NEEDS[n](run) for n in needs) and all(GIVEN[f](run, item) for f in given)
        (kept if wanted else deselected).append(item)
    def rank(item) -> int:
        return 0 if item.get_closest_marker(FIRST) else 1 if item.get_closest_marker(URGENT) else \
            3 if item.get_closest_marker(LAST) else 2
    return sorted(kept, key=rank), deselected  # sorted() is stable: the rest keep their order


def close_timeline(timeline: list[dict]) -> None:
    """The suite's verdict closes the timeline (when no RTO check recorded it)."""
    if timeline and timeline[-1]["event"] != "verdict":
        timeline.append({"event": "verdict", "at": datetime.now(timezone.utc)})


WORKER_REPLAY_FILE = "ordak_replay_file"


def report_html(config) -> Path | None:
    """The run's HTML report, in the controller: the suite's report writer's ("ordak-report"),
    else pytest-html's --html."""
    writer = config.pluginmanager.get_plugin("ordak-report")
    if getattr(writer, "paths", None) is not None:
        return writer.paths.html
    html = getattr(config.option, "htmlpath", None)
    return Path(html) if html else None


def replay_file(config) -> Path:
    """Where this run's replay list goes: <report>-replay.csv beside the HTML report (an xdist
    worker gets the controller's path, see TimelineCloser.pytest_configure_node)."""
    given = getattr(config, "workerinput", {}).get(WORKER_REPLAY_FILE)
    if given:
        return Path(given)
    html = report_html(config)
    if html is None:  # no report (e.g. --collect-only): the reports folder, named by the time
        html = config.rootpath / "reports" / f"run-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.html"
    return replay.file_beside(html)


class TimelineCloser:
    """The RTO check runs last and measures up to its own verdict: that moment becomes the
    timeline's `verdict` event in the controller (from the test report, through xdist too).
    It also hands each xdist worker the replay list's path, beside the controller's report."""

    def __init__(self, run, measured_facts):
        self.run, self.measured_facts = run, measured_facts

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node):
        node.workerinput[WORKER_REPLAY_FILE] = str(replay_file(node.config))

    def pytest_terminal_summary(self, terminalreporter):
        timeline = self.run.timeline
        if timeline:
            close_timeline(timeline)
            terminalreporter.section("drill timeline")
            start = timeline[0]["at"]
            for event in timeline:
                offset = (event["at"] - start).total_seconds()
                terminalreporter.write_line(f"{event['at']:%Y-%m-%d %H:%M:%S.%f}"[:-3] + f" UTC  {offset:+10.1f} s  "
                                            f"{event['event']}")

    def pytest_runtest_logreport(self, report):
        facts = dict(self.measured_facts(report))
        if report.when == "call" and "verdict_at" in facts and self.run.timeline:
            if self.run.timeline[-1]["event"] != "verdict":
                self.run.timeline.append({"event": "verdict", "at": datetime.fromisoformat(facts["verdict_at"])})
