"""The files a run leaves behind (pytest-html's report, JUnit, JSON summary, postmortem draft,
history) for a passing, a failing and a setup-error run, under xdist, with a drill's timeline,
with a secret in every secret variable; pytest-html's own options; report names; and the CI
workflows that run the suite.

pytest-html renders its results table in the browser from a JSON blob in the page; the tests
read that blob (report_rows) for what each row shows, and the page's static part for the first
screen the suite adds to pytest-html's summary."""

import html as markup
import json
import os
import re
import shutil
import tempfile
import tomllib
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import psycopg
import yaml

from checks.migration_files import migration_files
from checks.reference.cluster import MIGRATIONS_DIR
from checks.report import html as fragments
from checks.report import postmortem
from checks.report.summary import AREAS, ReportPaths, area_of, reserve
from selftests import inner_runs
from selftests.harness import NO_COMPARE, ROOT, broken, cells, report_rows, run_suite

# Read-only parts of the suite that measure every fact the first screen shows (~150 tests, seconds).
PART = ("tests/test_schema.py", "tests/test_migrations.py", "tests/test_security.py",
        "tests/test_store_data.py", "tests/test_queue.py")


# -- what every run must leave ----------------------------------------------------------------
class _Balanced(HTMLParser):
    """Every element closed, in order (void elements aside)."""
    VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr", "source"}

    def __init__(self):
        super().__init__()
        self.open, self.problems = [], []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag, attrs):  # <meta ... />, <br />
        pass

    def handle_endtag(self, tag):
        if not self.open or self.open[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.open[-1:] or 'nothing'}")
        else:
            self.open.pop()


def files_of(run) -> ReportPaths:
    assert run.report is not None, run.output
    return ReportPaths.beside(run.report, run.report.parent / "junit.xml")


def balanced(fragment: str) -> None:
    checker = _Balanced()
    checker.feed(fragment)
    checker.close()
    assert not checker.problems and not checker.open, (checker.problems, checker.open)


def well_formed(paths: ReportPaths) -> dict:
    """Asserts every file of the run exists and parses; returns the JSON summary."""
    html = paths.html.read_text()
    balanced(html)
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert "pytest-html" in html, "the report is pytest-html's"
    # Self-contained: styles and script inline; nothing fetched from anywhere.
    assert not re.search(r"<link|src=\"[^\"]|url\(|@import", html), "the report must not load anything"
    assert ".ordak-verdict" in html, "the suite's style, added as --css adds one"
    assert not list(paths.html.parent.glob("assets")), "self-contained: no assets folder"
    for fragment in report_rows(html).values():
        for row in fragment:
            for extra in row["extras"]:
                balanced(extra["content"])
    ET.parse(paths.xml)
    summary = json.loads(paths.json.read_text())
    assert summary["schema"] == 1
    markdown = paths.markdown.read_text()
    for heading in ("# Postmortem draft", "## Timeline of events", "## Root cause", "## What worked",
                    "## What didn't", "## RTO / RPO measured", "## Follow-ups"):
        assert heading in markdown, heading
    history = [json.loads(line) for line in paths.history.read_text().splitlines()]
    mine = [entry for entry in history if entry["report"] == paths.html.name]
    assert len(mine) == 1 and mine[0]["verdict"] == summary["verdict"] and mine[0]["at"] == summary["started_at"]
    return summary


def junit_counts(paths: ReportPaths) -> dict:
    suite = ET.parse(paths.xml).getroot().find("testsuite")
    return {k: int(suite.get(k)) for k in ("tests", "failures", "errors", "skipped")}


def facts_in_database(url: str) -> dict:
    with psycopg.connect(url) as conn:
        orders = {store: conn.execute(f"select count(*) from public.orders_{store}").fetchone()[0]
                  for store in ("bannos", "flourlane")}
        queue = dict(conn.execute("select status, count(*) from public.work_queue group by 1").fetchall())
        head = conn.execute("select max(version) from supabase_migrations.schema_migrations").fetchone()[0]
    return {"orders": orders, "queue": queue, "head": head}


# -- a passing run -----------------------------------------------------------------------------
def passing_runs(clone) -> tuple:
    """A job for RunsAhead: a passing run, a second one into the same folder, the facts the
    database holds and its name."""
    run = clone.run_suite(*PART)
    again = clone.run_suite("tests/test_store_data.py", f"--html={files_of(run).html.parent / 'again.html'}")
    return run, again, facts_in_database(clone.url), clone.name


def test_passing_run_reports_the_verdict_and_the_facts(ahead_run):
    run, again, truth, database = ahead_run
    assert run.exit_code == 0, run.output
    paths = files_of(run)
    summary = well_formed(paths)
    counts = junit_counts(paths)
    assert counts["failures"] == counts["errors"] == 0
    assert summary["verdict"] == "passed"
    skipped = len(NO_COMPARE)
    assert summary["headline"] == f"Passed: {counts['tests'] - skipped} checks passed, {skipped} skipped"
    assert summary["counts"] == {"passed": counts["tests"] - skipped, "failed": 0, "error": 0, "skipped": skipped}

    facts = summary["facts"]
    assert {s["store"]: s["orders"] for s in facts["stores"]} == truth["orders"]
    assert all(s["last_order_at"] and s["hours_before_reference"] < 1 and s["within_objective"] for s in facts["stores"])
    assert facts["migrations"] == {"head_in_git": migration_files(MIGRATIONS_DIR)[-1].version,
                                   "head_in_database": truth["head"]}
    assert facts["queue"] == truth["queue"]
    environment = summary["environment"]
    assert (environment["name"], environment["database"], environment["read_only"]) == ("staging", database, False)
    assert environment["host"] and environment["project_ref"] is None and environment["compared_with"] is None
    assert summary["started_at"].endswith("+00:00") and summary["suite"]["command"].startswith("pytest ")
    assert summary["timeline"] is None

    html = paths.html.read_text()
    first_screen = html[:html.index('<table id="results-table">')]
    for shown in (summary["headline"], "Orders per store", str(truth["orders"]["bannos"]), truth["head"],
                  "UTC", "staging", database, summary["suite"]["commit"], "--env=staging tests/test_schema.py",
                  "connected as"):
        assert shown in first_screen, shown
    assert "<title id=\"head-title\">PASSED · Ordak verification · staging" in html
    # pytest-metadata's table (Python, packages, plugins) is moved below the results table
    assert "#environment-header, #environment { order: 3; }" in html and "#results-table { order: 2; }" in html
    rows = report_rows(html)
    # every row says its area; a skip reads as a sentence, never as a Python tuple
    area = {cells(r)["testId"].split("::")[1]: cells(r)["area"] for runs in rows.values() for r in runs}
    assert area["test_rls_enabled"] == "Security" and area["test_store_not_empty[bannos]"] == "Store data"
    skipped = next(r for r in rows["tests/test_store_data.py::test_matches_compared_env[bannos]"]
                   if r["result"] == "Skipped")
    assert skipped["log"] == "skipped: no --compare-to environment given (e.g. --compare-to=production during a drill)"
    assert "- Every check passed." in paths.markdown.read_text()

    # A second run in the same folder: the history has both, and the chart draws both.
    history = [json.loads(line) for line in paths.history.read_text().splitlines()]
    assert [h["report"] for h in history] == ["report.html", "again.html"], again.output
    chart = (paths.html.parent / "again.html").read_text()
    chart = chart[chart.index("<svg xmlns"):chart.index("</svg>")]
    assert chart.count("<rect") == 2 and chart.count("<circle") >= 2 + 2, chart


# -- a failing run -----------------------------------------------------------------------------
BREAK = ("alter table public.work_queue disable row level security;"
         # The same Shopify order ingested twice: an unsuffixed row beside its split siblings.
         "insert into public.orders_bannos (id, shopify_order_id, shopify_order_gid, shopify_order_number, stage)"
         " select 'bannos-18017', shopify_order_id, shopify_order_gid, shopify_order_number, 'Filling'"
         " from public.orders_bannos where id = 'bannos-18017-A';"
         # 60 packed orders lose their Covering 'complete' events: more rows than fit on a screen.
         "delete from public.stage_events where store = 'flourlane' and stage = 'Covering' and event_type = 'complete'"
         " and order_id in (select order_id from public.stage_events where store = 'flourlane'"
         " and stage = 'Packing' and event_type = 'complete' order by order_id limit 60)")


def test_failing_run_puts_failures_first_with_every_violation_and_its_fix(ahead_run):
    run = ahead_run
    assert run.exit_code == 1, run.output
    paths = files_of(run)
    summary = well_formed(paths)
    failing = {"test_rls_enabled", "test_no_shopify_duplicates[bannos]", "test_stage_events_present[flourlane]"}
    assert run.failed() == failing, run.output
    assert summary["verdict"] == "failed" and summary["failed_areas"] == ["security", "data"]
    total = junit_counts(paths)["tests"]
    assert summary["headline"] == f"Failed: 3 of {total} checks failed (security 1, store data 2), " \
                                  f"{len(NO_COMPARE)} skipped"

    by_id = {c["id"]: c for c in summary["checks"]}
    events = by_id["test_stage_events_present[flourlane]"]["verdicts"][0]
    assert events["status"] == "failed" and len(events["violations"]) == 60
    assert all(v["key"].startswith("stage_events_present:flourlane-") for v in events["violations"])

    html = paths.html.read_text()
    rows = report_rows(html)
    call = next(r for r in rows["tests/test_store_data.py::test_stage_events_present[flourlane]"]
                if r["result"] == "Failed")
    assert cells(call)["area"] == "Store data"
    assert cells(call)["key"].startswith("stage_events_present:flourlane-") and "(+59 more)" in cells(call)["key"]
    (extra,) = call["extras"]  # the verdict, once, as the row's extra; no log repeating it
    table = extra["content"]
    assert table.count("<tr>") == 61, "every violation has its row (plus the header)"
    for violation in events["violations"]:
        assert f'<td class="mono">{violation["object"]}</td>' in table
        assert f'<td class="mono muted">{violation["key"]}</td>' in table
    assert f"<strong>Fix:</strong> {markup.escape(events['remediation'])}" in table and not call["log"]
    rls = next(r for r in rows["tests/test_security.py::test_rls_enabled"] if r["result"] == "Failed")
    assert "public.work_queue</td><td>row level security is off" in rls["extras"][0]["content"]
    first_screen = html[:html.index('<table id="results-table">')]
    for failed in failing:
        assert failed in first_screen
    assert "initialSort&#34;: &#34;result" in html or '"initialSort": "result"' in markup.unescape(html), \
        "failures first: pytest-html sorts by result"

    markdown = paths.markdown.read_text()
    did_not = markdown[markdown.index("## What didn't"):markdown.index("## RTO")]
    assert "**rls_enabled[all]** (Security)" in did_not and "`public.work_queue`: row level security is off" in did_not
    assert "… and 50 more (see the report)" in did_not
    assert "| test_rls_enabled: alter table &lt;table&gt; enable row level security" in markdown
    assert "- Schema: all" in markdown[markdown.index("## What worked"):]
    assert junit_counts(paths)["failures"] == 3


# -- a run stopped by a setup error --------------------------------------------------------------
def test_setup_error_says_so_in_every_file(tmp_path):
    run = run_suite("--env=production", env={}, workdir=tmp_path)
    assert run.exit_code == 4, run.output
    paths = files_of(run)
    summary = well_formed(paths)
    reason = "environment 'production' needs ORDAK_PRODUCTION_DB_URL (db_url)"
    assert summary["verdict"] == "error" and reason in summary["error"]
    assert summary["headline"].startswith(f"Did not run: {reason}")

    suite = ET.parse(paths.xml).getroot().find("testsuite")
    assert suite.get("errors") == "1" and suite.get("tests") == "1", "CI must not read this run as green"
    error = suite.find("testcase/error")
    assert reason in error.get("message") and reason in error.text

    html = paths.html.read_text()
    assert html.index("needs ORDAK_PRODUCTION_DB_URL (db_url): export it") < html.index("<h2>Run</h2>"), \
        "the reason comes first"
    assert '<title id="head-title">ERROR · Ordak verification' in html
    assert f"The verification run could not start: {summary['error']}" in paths.markdown.read_text()


# -- xdist ---------------------------------------------------------------------------------------
def xdist_run(clone):
    """A job for RunsAhead: the run with two workers, and the facts the database holds."""
    return clone.run_suite(*PART, "-n", "2"), facts_in_database(clone.url)


def runs_ahead() -> dict:
    """This module's runs known up front, started when the session starts (selftests/conftest.py)."""
    return {"test_passing_run_reports_the_verdict_and_the_facts": passing_runs,
            "test_failing_run_puts_failures_first_with_every_violation_and_its_fix": broken(BREAK, run=PART),
            "test_xdist_run_writes_one_report_with_the_workers_facts": xdist_run,
            "test_pytest_html_options_work_as_documented": html_options}


def test_xdist_run_writes_one_report_with_the_workers_facts(ahead_run):
    run, truth = ahead_run
    assert run.exit_code == 0, run.output
    paths = files_of(run)
    summary = well_formed(paths)
    assert sorted(p.name for p in paths.html.parent.iterdir()) == [
        "history.jsonl", "junit.xml", "report.html", "report.json", "report.md"]
    assert len(paths.history.read_text().splitlines()) == 1
    assert sum(summary["counts"].values()) == junit_counts(paths)["tests"]
    assert {s["store"]: s["orders"] for s in summary["facts"]["stores"]} == truth["orders"]
    assert summary["facts"]["queue"] == truth["queue"]
    assert all(c["verdicts"] for c in summary["checks"] if c["outcome"] == "passed")


# -- a drill's timeline ----------------------------------------------------------------------------
FAKE_DRILL = '''
from datetime import datetime, timedelta, timezone
import pytest

@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    from checks.plugin import RUN  # loaded by then, by the project's conftest
    if not hasattr(config, "workerinput"):
        now = datetime.now(timezone.utc)
        config.stash[RUN].timeline += [
            {"event": "incident", "at": now - timedelta(hours=3), "note": "orders_flourlane mass-deleted"},
            {"event": "restore_started", "at": now - timedelta(hours=2, minutes=30)},
            {"event": "restored_accepting_connections", "at": now - timedelta(minutes=40)}]
'''


def test_a_drill_timeline_shows_rto_and_data_loss_against_the_objectives(ordak_clone, tmp_path):
    """The drill (issue 10) fills Run.timeline; here a stand-in plugin does, on a clone whose
    newest orders are 5 h old, restored to a point 4 h ago."""
    (tmp_path / "fake_drill.py").write_text(FAKE_DRILL)
    clone = ordak_clone("update public.orders_bannos set created_at = created_at - interval '5 hours';"
                        "update public.orders_flourlane set created_at = created_at - interval '5 hours'")
    restore_point = datetime.now(timezone.utc).replace(microsecond=0).timestamp() - 4 * 3600
    restore_point = datetime.fromtimestamp(restore_point, timezone.utc).isoformat().replace("+00:00", "Z")
    # The drill's own checks judge RTO and data loss; the first screen shows their verdicts.
    run = clone.run_suite("tests/test_store_data.py", "tests/test_drill.py", "-k",
                          "not_empty or last_order_fresh or data_loss or rto", "-p", "fake_drill",
                          f"--restore-point={restore_point}", extra_env={"PYTHONPATH": str(tmp_path)})
    assert run.exit_code == 0, run.output
    paths = files_of(run)
    summary = well_formed(paths)
    drill = summary["timeline"]
    assert [e["event"] for e in drill["events"]] == ["incident", "restore_started", "restored_accepting_connections",
                                                     "verdict"]
    assert 2.99 < drill["rto"]["hours"] < 3.2 and drill["rto"]["objective_hours"] == 4 and drill["rto"]["met"]
    assert {d["store"] for d in drill["data_loss"]} == {"bannos", "flourlane"}
    # Data loss is incident (3 h ago) - newest order (5 h ago) = 2 h: not restore point - newest
    # (1 h), nor now - newest (5 h), the two measures a wrong implementation would give.
    for loss in drill["data_loss"]:
        assert 1.95 < loss["hours"] < 2.1 and loss["objective_hours"] == 24 and loss["met"], loss
    assert summary["facts"]["hours_measure"] == "RPO"
    assert all(0.95 < s["hours_before_reference"] < 1.1 for s in summary["facts"]["stores"])

    html = paths.html.read_text()
    timeline = html[html.index("Drill timeline"):html.index('<table id="results-table">')]
    for shown in ("restore started", "restored accepting connections", "orders_flourlane mass-deleted",
                  "RTO</strong> (incident to verdict)", "Data loss</strong>, flourlane", "met"):
        assert shown in timeline, shown
    markdown = paths.markdown.read_text()
    assert "| incident (note: orders_flourlane mass-deleted) |" in markdown
    assert "| RTO (incident to verdict) | 3 h" in markdown
    assert json.loads(paths.history.read_text().splitlines()[-1])["rto_hours"] == drill["rto"]["hours"]


# -- no secret in any file ---------------------------------------------------------------------------
PASSWORD = "pa55-Wh0le-s3cret"
SECRETS = {"ORDAK_STAGING_SUPABASE_URL": "https://supabase-url-s3cret.example.net",
           "ORDAK_STAGING_ANON_KEY": "anon-key-s3cret-eyJhbGciOi",
           "ORDAK_STAGING_SERVICE_ROLE_KEY": "service-role-s3cret-eyJhbGciOi",
           "SUPABASE_ACCESS_TOKEN": "sbp_access_token_s3cret_0123456789"}
PROJECT_REF = "abcdefghijklmnopqrst"  # shown on purpose: the project's name, part of its host name too


def test_no_secret_in_any_file_of_a_passing_or_a_failed_run(ordak_clone, reference):
    cluster, _ = reference
    with psycopg.connect(cluster.server.admin_url(), autocommit=True) as conn:
        conn.execute("drop role if exists ordak_password_reporter")
        conn.execute(f"create role ordak_password_reporter login password '{PASSWORD}' in role postgres")
    clone = ordak_clone()
    url = clone.url.replace("postgres@", f"ordak_password_reporter:{PASSWORD}@")
    wrong = url.replace(PASSWORD, PASSWORD + "-wrong")
    environment = {**SECRETS, "ORDAK_STAGING_PROJECT_REF": PROJECT_REF}
    passing = clone.run_suite("tests/test_store_data.py", "tests/test_queue.py",
                              extra_env={**environment, "ORDAK_STAGING_DB_URL": url})
    failed = clone.run_suite(extra_env={**environment, "ORDAK_STAGING_DB_URL": wrong})
    assert passing.exit_code == 0, passing.output
    assert failed.exit_code == 4 and "wrong password for user 'ordak_password_reporter'" in failed.output
    for run in (passing, failed):
        paths = files_of(run)
        well_formed(paths)
        for path in (paths.html, paths.xml, paths.json, paths.markdown, paths.history):
            text = path.read_text()
            for secret in (*SECRETS.values(), PASSWORD, url, wrong):
                assert secret not in text, f"{secret!r} in {path.name}"
        assert PROJECT_REF in paths.html.read_text()
        for secret in (*SECRETS.values(), PASSWORD):
            assert secret not in run.output


# -- names of reports written without --html -----------------------------------------------------
def test_two_runs_in_the_same_second_get_different_names(tmp_path):
    moment = datetime(2026, 11, 20, 14, 30, 5, tzinfo=timezone.utc)
    first, second = reserve(tmp_path, "production", moment), reserve(tmp_path, "production", moment)
    assert first != second and first.exists() and second.exists()
    assert re.fullmatch(r"production-20261120T143005Z-[0-9a-f]{4}\.html", first.name)
    assert reserve(tmp_path, "../../x", moment).parent == tmp_path


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str


def _default_named_runs(*env_options: str) -> list[tuple[Ran, ReportPaths]]:
    """Runs pytest with each --env at once, as a user would (no --html), and returns each run
    with the files it printed; a finalizer must call _forget()."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "ORDAK_"))}

    def run(option: str, log: Path) -> Ran:
        code = inner_runs.run(["-p", "no:cacheprovider", option], env=clean, cwd=ROOT, output=log, timeout=120)
        return Ran(code, log.read_text())

    with tempfile.TemporaryDirectory() as logs, ThreadPoolExecutor(len(env_options)) as pool:
        started = [pool.submit(run, option, Path(logs) / f"run{n}.txt") for n, option in enumerate(env_options)]
        runs = []
        for future in started:
            ran = future.result()
            printed = re.search(r"report: (\S+\.html)", ran.stdout)
            assert printed, ran.stdout
            runs.append((ran, ReportPaths.beside(ROOT / printed.group(1))))
    return runs


def _forget(runs) -> None:
    """Removes these runs' files and history lines from the project's reports/."""
    names = set()
    for _, paths in runs:
        names.add(paths.html.name)
        for path in (paths.html, paths.xml, paths.json, paths.markdown):
            path.unlink(missing_ok=True)
    history = ROOT / "reports" / "history.jsonl"
    if history.exists():
        kept = [line for line in history.read_text().splitlines() if json.loads(line).get("report") not in names]
        history.write_text("".join(f"{line}\n" for line in kept))


def test_runs_started_together_write_their_own_reports():
    runs = _default_named_runs("--env=production", "--env=production")
    try:
        (first, a), (second, b) = runs
        assert first.returncode == second.returncode == 4
        assert a.html != b.html
        for paths in (a, b):
            assert paths.html.parent == ROOT / "reports"
            assert re.fullmatch(r"production-\d{8}T\d{6}Z-[0-9a-f]{4}\.html", paths.html.name)
            well_formed(paths)
    finally:
        _forget(runs)


def test_env_that_is_a_path_is_refused_and_writes_nothing_outside_reports():
    runs = _default_named_runs("--env=../x")
    try:
        (run, paths), = runs
        assert run.returncode == 4
        errors = [line for line in run.stdout.splitlines() if line.startswith("ERROR:")]
        assert errors == ["ERROR: unknown environment '../x'; known: local, staging, production, restore, drill "
                          "(defined in environments.toml)"], run.stdout
        assert paths.html.parent == ROOT / "reports" and paths.html.name.startswith("unknown-")
        assert not list(ROOT.parent.glob("x-*")), "a report was written outside reports/"
        assert well_formed(paths)["verdict"] == "error"
    finally:
        _forget(runs)


def test_environment_names_must_be_plain(tmp_path):
    path = tmp_path / "envs.toml"
    path.write_text('[local]\nembedded = true\n["../x"]\nembedded = true\n')
    run = run_suite("--env=../x", f"--environments={path}", env={}, workdir=tmp_path / "run")
    assert run.exit_code == 4, run.output
    assert "envs.toml:3: [../x] an environment's name is letters, digits, - and _" in run.output


# -- the area of every test module ------------------------------------------------------------------
def test_every_test_module_has_an_area():
    for module in sorted((ROOT / "tests").glob("test_*.py")):
        assert area_of(f"tests/{module.name}::test_x") in AREAS, module.name


# -- CI workflows ----------------------------------------------------------------------------------
WORKFLOWS = ROOT / ".github" / "workflows"


def _workflow(name: str) -> dict:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads a bare `on` as true
    return data


def _pytest_commands(workflow: dict) -> list[tuple[dict, dict, list[str]]]:
    """(job, step, argv) of every pytest command the workflow runs."""
    found = []
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            script = step.get("run", "").replace("\\\n", " ")
            for line in script.splitlines():
                if line.strip().startswith("pytest"):
                    found.append((job, step, line.split()))
    return found


def _documented(argv: list[str]) -> None:
    """Every option is in the README's table (or its text, for -n), every environment in the file."""
    readme = (ROOT / "README.md").read_text()
    environments = tomllib.loads((ROOT / "environments.toml").read_text())
    for word in argv[1:]:
        option, _, value = word.partition("=")
        if option == "-n":
            assert "`-n 2`" in readme or "-n auto" in readme
        elif option.startswith("--"):
            assert f"| `{option}" in readme, f"{option} is not documented in the README's table of options"
        if option in ("--env", "--compare-to"):
            assert value in environments and f"`{value}`" in readme, value


def test_weekly_production_workflow():
    workflow = _workflow("weekly-production.yml")
    assert workflow["on"]["schedule"][0]["cron"] and "workflow_dispatch" in workflow["on"]
    (job, step, argv), = _pytest_commands(workflow)
    assert argv[:4] == ["pytest", "--env=production", "-n", "auto"]
    _documented(argv)
    needed = tomllib.loads((ROOT / "environments.toml").read_text())["production"]["secrets"].values()
    env = {**workflow.get("env", {}), **job.get("env", {}), **step.get("env", {})}
    for variable in needed:
        assert env.get(variable) == f"${{{{ secrets.{variable} }}}}", variable
    upload = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()" and upload["with"]["path"].startswith("reports/")
    assert not step.get("continue-on-error"), "a failing check must fail the job"


def test_drill_workflow():
    workflow = _workflow("drill.yml")
    inputs = workflow["on"]["workflow_dispatch"]["inputs"]
    assert set(inputs) == {"restore_point", "incident_at", "restore_started_at"}
    assert all(i["required"] for i in inputs.values())
    (job, step, argv), = _pytest_commands(workflow)
    assert argv[:2] == ["pytest", "--env=restore"] and "--compare-to=production" in argv
    for option, given in (("--restore-point", "restore_point"), ("--incident-at", "incident_at"),
                          ("--restore-started-at", "restore_started_at")):
        variable = next(w.partition("=")[2] for w in argv if w.startswith(option + "="))
        # The inputs reach the command through the environment, never pasted into the script.
        assert step["env"][variable.strip('"$')] == f"${{{{ inputs.{given} }}}}", option
    _documented(argv)
    environments = tomllib.loads((ROOT / "environments.toml").read_text())
    env = {**workflow.get("env", {}), **job.get("env", {}), **step.get("env", {})}
    for variable in [*environments["restore"]["secrets"].values(), *environments["production"]["secrets"].values()]:
        assert env.get(variable) == f"${{{{ secrets.{variable} }}}}", variable
    upload = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()"


def test_a_report_that_cannot_be_written_falls_back_to_a_temp_folder_in_one_line(ordak_clone, tmp_path):
    (tmp_path / "a-file").write_text("")
    run = ordak_clone().run_suite("tests/test_migrations.py", f"--html={tmp_path / 'a-file' / 'report.html'}")
    assert run.exit_code == 4, run.output
    errors = [line for line in run.output.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and "Traceback" not in run.output, run.output
    assert errors[0].startswith(f"ERROR: cannot write the report in {tmp_path / 'a-file'} (File exists); it was "
                                f"written to "), errors
    written = Path(errors[0].split("written to ", 1)[1].split(" instead")[0])
    # nothing lost: the whole run's reports, beside each other, in the temp folder
    assert json.loads(written.with_suffix(".json").read_text())["verdict"] == "passed"
    assert "Passed" in written.read_text() and written.with_suffix(".md").exists()


# -- every kind of outcome, rendered (no database needed) ----------------------------------------
def test_every_kind_of_outcome_renders(tmp_path):
    """Accepted findings (issue 8 fills them), a check that errored in setup, a failure with no
    verdict (a Hypothesis counterexample), violations with details, and a skip."""
    from types import SimpleNamespace

    from checks.report.summary import Results, build, write

    def verdict(check, status, violations=(), accepted=()):
        return {"check": check, "subject": "all", "description": f"{check} holds", "remediation": f"fix {check}",
                "status": status, "blocked": None, "violations": list(violations), "accepted": list(accepted),
                "facts": {}}

    results = Results()
    results.add("tests/test_security.py::test_rls_enabled", "call", "passed", 0.1, "", [verdict(
        "rls_enabled", "ok", accepted=[{"key": "rls_enabled:public.staff_notes", "object": "public.staff_notes",
                                        "problem": "row level security is off", "reason": "read by the kiosk only",
                                        "until": "2027-01-31"}])])
    results.add("tests/test_security.py::test_no_write_grants_to_api_roles", "call", "failed", 0.1, "1 violation", [
        verdict("no_write_grants", "failed", [{"key": "k", "object": "public.orders_bannos",
                                              "problem": "anon may INSERT", "grantor": "postgres"}])])
    results.add("tests/test_queue.py::test_queue_stats_match[bannos]", "setup", "failed", 0.1,
                "psycopg.errors.QueryCanceled: canceling statement due to statement timeout", [])
    results.add("tests/test_stage_machine.py::test_stage_machine_invariants", "call", "failed", 2.0,
                "Falsifying example: state.call(order=v1, name='complete_filling', caller='anon')", [])
    results.add("tests/test_store_data.py::test_matches_compared_env[bannos]", "setup", "skipped", 0.0,
                "no --compare-to environment given", [])
    now = datetime.now(timezone.utc)
    data = build(env=SimpleNamespace(name="production", description="", read_only=True, restore_target=False,
                                     has_secret=lambda k: False),
                 target=SimpleNamespace(host="db.example.supabase.co", dbname="postgres"), compare=None,
                 clock=SimpleNamespace(at=now, restore_point=False, label="now"), error=None,
                 thresholds={"rpo_hours": 24, "max_hours_since_last_order": 24}, stores=["bannos", "flourlane"],
                 results=results.all(), timeline=[], started=now, finished=now, exit_status=1,
                 command=["--env=production"], root=ROOT, server={})
    assert data["counts"] == {"passed": 1, "failed": 2, "error": 1, "skipped": 1}
    assert data["headline"] == ("Failed: 3 of 5 checks failed (security 1, work queue 1, RPCs 1), "
                                "1 of them with an error, 1 skipped")
    paths = ReportPaths.beside(tmp_path / "run.html")
    write(data, paths)
    assert json.loads(paths.json.read_text())["verdict"] == "failed"
    # what the suite hands pytest-html: the first screen and the findings, then each row's extra
    screen = "".join(fragments.first_screen(data, [], paths)) + "".join(fragments.findings(data))
    balanced(screen)
    accepted = screen[screen.index("<h2>Accepted findings</h2>"):]
    for shown in ("public.staff_notes", "read by the kiosk only", "2027-01-31", "rls_enabled:public.staff_notes"):
        assert shown in accepted, shown
    for failed in ("test_no_write_grants_to_api_roles", "test_queue_stats_match[bannos]",
                   "test_stage_machine_invariants"):
        assert failed in screen
    grants = next(c for c in data["checks"] if c["id"] == "test_no_write_grants_to_api_roles")["verdicts"][0]
    extra = fragments.verdict_extra(grants)
    balanced(extra)
    assert "<th>details</th>" in extra and "grantor: postgres" in extra and "<strong>Fix:</strong> fix no_write_grants" in extra
    setup = next(c for c in data["checks"] if c["id"] == "test_queue_stats_match[bannos]")
    assert setup["outcome"] == "error" and "error in setup: psycopg.errors.QueryCanceled" in setup["message"]
    markdown = postmortem.render(data, paths)
    assert "- **test_stage_machine_invariants** (RPCs): Falsifying example" in markdown
    summary = data
    assert summary["verdict"] == "failed"


# -- pytest-html's options, as it documents them ----------------------------------------------------
def project_copy(clone) -> Path:
    """A copy of the project (no virtual environment, no history): runs here may write into its
    root and its reports/ as a user's runs would, without touching the user's."""
    copy = clone.workdir / "project"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".venv", ".git", "reports", "*.egg-info", "__pycache__"))
    return copy


def html_options(clone) -> dict:
    """A job for RunsAhead: the suite run with pytest-html's own options, in a project copy."""
    copy = project_copy(clone)
    (copy / "extra.css").write_text("/* a team's own style */ .ordak-verdict h1 { letter-spacing: 1px; }\n")
    (copy / "somewhere").mkdir()
    env = {"ORDAK_STAGING_DB_URL": clone.url}

    def run(*args, name):
        return run_suite("--env=staging", "tests/test_migrations.py", *args, env=env, workdir=clone.workdir / name,
                         root=copy)
    return {"copy": copy,
            # as every pytest-html recipe writes it: a relative path, self-contained, a CSS file of one's own
            "relative": run("--html=x.html", "--self-contained-html", "--css=extra.css", name="relative"),
            "folder": run("--html=out/", name="folder"),
            "existing": run("--html=somewhere", name="existing"),
            "missing_css": run("--css=nope.css", name="missing_css")}


def test_pytest_html_options_work_as_documented(ahead_run):
    seen = ahead_run
    copy, relative = seen["copy"], seen["relative"]
    # --html (the harness also passes one; the last wins, as argparse has it) and --self-contained-html
    assert relative.exit_code == 0, relative.output
    html = (copy / "x.html").read_text()
    assert "<style" in html and ".ordak-verdict" in html and "/* a team's own style */" in html
    assert html.index(".ordak-verdict {") < html.index("/* a team's own style */"), "a user's --css comes after ours"
    for suffix in (".json", ".md"):
        assert (copy / "x.html").with_suffix(suffix).exists()
    # the history of a relative --html lives in reports/, never in the project's root
    assert not (copy / "history.jsonl").exists()
    history = [json.loads(line)["report"] for line in (copy / "reports" / "history.jsonl").read_text().splitlines()]
    assert "x.html" in history, history
    # a folder given as --html gets a report named inside it, never a file named after the folder
    for name, folder in (("folder", copy / "out"), ("existing", copy / "somewhere")):
        run = seen[name]
        assert run.exit_code == 0, run.output
        assert folder.is_dir() and not (copy / "out.xml").exists() and not (copy / "somewhere.xml").exists()
        (report,) = folder.glob("staging-*.html")
        assert report.with_suffix(".json").exists() and report.with_suffix(".md").exists()
    # a CSS file that is not there: one line, and the report still written
    missing = seen["missing_css"]
    errors = [line for line in missing.output.splitlines() if line.startswith("ERROR:")]
    assert missing.exit_code == 4 and errors == [
        "ERROR: --css nope.css: no such file; give the path of a CSS file to add to the report"], missing.output
    assert "Traceback" not in missing.output and missing.report is not None


def test_the_self_tests_leave_the_users_reports_alone(pytestconfig):
    """`pytest selftests` verifies the suite, not an Ordak: its own report goes to a temp folder
    (selftests/conftest.py), and every inner run writes into its own work folder."""
    written = Path(pytestconfig.option.htmlpath).resolve()
    assert not written.is_relative_to(ROOT.resolve() / "reports"), written
    assert written.is_absolute() and Path(tempfile.gettempdir()) in written.parents
