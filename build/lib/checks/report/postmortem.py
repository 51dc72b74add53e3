"""The postmortem draft: Markdown in the shape of the runbook's After-Action (timeline of events,
root cause, what worked / what didn't, concrete follow-ups with owners and dates), filled from
the run's summary (checks.report.summary) and left blank where only people know the answer."""

from pathlib import Path

from checks.report.html import areas, hours, seconds, when
from checks.report.summary import AREAS, ReportPaths

BLANK = "_(to fill in)_"


def render(data: dict, paths: ReportPaths) -> str:
    env = data["environment"]
    lines = [f"# Postmortem draft: {env['name'] or 'unknown environment'}, {when(data['started_at'], False)}", "",
             f"> Drafted by ordak-verify from the run in `{paths.html.name}` (summary: `{paths.json.name}`). "
             "Replace every blank, keep what is true, delete what does not apply.", "",
             f"**Verdict:** {data['headline']}  ",
             f"**Target:** {_target(env)}  ",
             f"**Reference time:** {_reference(data)}  ",
             f"**Suite:** ordak-verify {data['suite']['version']}, commit `{data['suite']['commit']}`: "
             f"`{data['suite']['command']}`", "",
             "## Timeline of events", ""]
    lines += _timeline(data)
    lines += ["", "## Root cause", "", BLANK, "", "## What worked", ""]
    lines += _worked(data)
    lines += ["", "## What didn't", ""]
    lines += _did_not(data)
    lines += ["", "## RTO / RPO measured", ""]
    lines += _measured(data)
    lines += ["", "## Follow-ups", "", "| action | owner | due date |", "|---|---|---|"]
    lines += _follow_ups(data)
    return "\n".join(lines) + "\n"


def _target(env: dict) -> str:
    if not env["host"]:
        return "—"
    parts = [f"`{env['host']}` / `{env['database']}`"]
    if env["project_ref"]:
        parts.append(f"project `{env['project_ref']}`")
    if env["compared_with"]:
        parts.append(f"compared with {env['compared_with']}")
    return ", ".join(parts)


def _reference(data: dict) -> str:
    ref = data["reference_time"]
    return f"{when(ref['at'])} ({ref['kind']})" if ref else "—"


def _timeline(data: dict) -> list[str]:
    rows = ["| time (UTC) | event | since the incident |", "|---|---|---|"]
    drill = data["timeline"]
    replay = data["facts"].get("restore", {}).get("replay")
    # The cut-over's next step: the deliveries to replay, in the file beside the report.
    to_replay = [f"| {when(data['finished_at'])} | replay list written for cut-over: {replay.get('replay_count', 0):,} "
                 f"Shopify orders in `{Path(str(replay.get('replay_file') or '')).name}` | |"] \
        if replay and replay["status"] != "blocked" else []
    if not drill:
        return ["No drill timeline in this run: add the incident's events (detected, writes frozen, restore "
                "started, restored, cut over, verified) with their times.", "", *rows,
                f"| {BLANK} | {BLANK} | |",
                f"| {when(data['started_at'])} | verification run started ({data['verdict']}) | |", *to_replay]
    for event in drill["events"]:
        extra = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in event.items()
                          if k not in ("event", "at", "since_incident_seconds", "phase_seconds"))
        name = event["event"].replace("_", " ") + (f" ({extra})" if extra else "")
        rows.append(f"| {when(event['at'])} | {_cell(name)} | {seconds(event['since_incident_seconds'])} |")
    return rows + to_replay


def _worked(data: dict) -> list[str]:
    lines = []
    for group in areas(data["checks"]):
        passed = len(group["passed"]) + len(group["accepted"]) + len(group["noted"])
        if passed and not group["failing"]:
            lines.append(f"- {AREAS.get(group['area'], group['area'])}: all {passed} checks passed")
        elif passed:
            lines.append(f"- {AREAS.get(group['area'], group['area'])}: {passed} checks passed, "
                         f"{len(group['failing'])} failed (below)")
    drill = data["timeline"]
    if drill and drill["rto"]["met"]:
        lines.append(f"- RTO within the objective: {hours(drill['rto']['hours'])} "
                     f"(≤ {hours(drill['rto']['objective_hours'])})")
    return lines or [f"- {BLANK}"]


def _did_not(data: dict) -> list[str]:
    if data["verdict"] == "interrupted" and data["error"]:
        return [f"- The verification run was {_text(data['error'])}"]
    if data["error"]:
        return [f"- The verification run could not start: {_text(data['error'])}"]
    lines = []
    for check in (c for group in areas(data["checks"]) for c in group["failing"]):
        failed = [v for v in check["verdicts"] if v["status"] == "failed"]
        if not failed:  # it raised: its cause, never the traceback's first line
            first = check["cause"]["line"] if check.get("cause") else \
                (check["message"] or "failed").strip().splitlines()[0]
            lines.append(f"- **{check['id']}** ({AREAS.get(check['area'], check['area'])}): {_text(first)}")
        for verdict in failed:
            count = len(verdict["violations"])
            lines.append(f"- **{verdict['check']}[{verdict['subject']}]** ({AREAS.get(check['area'], check['area'])}): "
                         f"{_text(verdict['description'])}: {count} violation{'s' if count != 1 else ''}")
            lines += [f"  - `{v.get('object', '?')}`: {_text(v.get('problem', ''))}" for v in verdict["violations"][:10]]
            if count > 10:
                lines.append(f"  - … and {count - 10} more (see the report)")
    for store in data["facts"]["stores"]:
        if store["within_objective"] is False:
            lines.append(f"- {store['store']}: newest order {hours(store['hours_before_reference'])} before the "
                         f"reference time, beyond the objective of {hours(store['objective_hours'])}")
    drill = data["timeline"]
    if drill and drill["rto"]["met"] is False:
        lines.append(f"- RTO missed: {hours(drill['rto']['hours'])} (objective ≤ {hours(drill['rto']['objective_hours'])})")
    return lines or ["- Every check passed."]


def _measured(data: dict) -> list[str]:
    facts, drill = data["facts"], data["timeline"]
    lines = ["| measure | measured | objective |", "|---|---|---|"]
    replay = facts.get("restore", {}).get("replay")
    if replay and replay["status"] != "blocked":  # the cut-over's to-do, named in the draft
        lines.append(f"| Shopify orders to replay at cut-over | {replay.get('replay_count', 0):,}, listed in "
                     f"`{Path(str(replay.get('replay_file') or '')).name}` | |")
    pages = facts.get("restore", {}).get("pages")
    if pages and pages["status"] != "blocked":
        lines.append(f"| pages that verify (amcheck) | "
                     f"{'every page sound' if pages['status'] == 'ok' else str(pages.get('corruptions', pages['problems'])) + ' corruption(s)'}"
                     f" | none corrupt |")
    if drill:
        lines.append(f"| RTO (incident to verdict) | {hours(drill['rto']['hours'])} ({_met(drill['rto']['met'])}) | "
                     f"≤ {hours(drill['rto']['objective_hours'])} |")
        lines += [f"| data loss, {d['store']} | {hours(d['hours'])}"
                  + (f", {d['orders_missing']:,} orders missing" if d["orders_missing"] is not None else "")
                  + f" ({_met(d['met'])}) | ≤ {hours(d['objective_hours'])} |" for d in drill["data_loss"]]
    else:
        lines.append(f"| RTO | {BLANK} (no drill timeline in this run) | ≤ {hours(data['objectives']['rto_hours'])} |")
    for store in (s for s in facts["stores"] if s["last_order_at"]):
        measured = store["hours_before_reference"]
        lines.append(f"| {facts['hours_measure']}, {store['store']} (newest order {when(store['last_order_at'])}) | "
                     f"{hours(measured) if measured >= 0 else hours(-measured) + ' after the reference time'} | "
                     f"{'≤ ' + hours(store['objective_hours']) if store['objective_hours'] is not None else ''} |")
    return lines


def _met(met) -> str:
    return "met" if met else "**not met**" if met is False else "not judged"


def _follow_ups(data: dict) -> list[str]:
    rows = []
    if data["error"]:
        rows.append(f"| Make the verification run start: {_cell(data['error'])} | {BLANK} | {BLANK} |")
    for check in (c for group in areas(data["checks"]) for c in group["failing"]):
        fixes = {v["remediation"] for v in check["verdicts"] if v["status"] == "failed"} or \
            {check["cause"]["fix"] if check.get("cause") else "investigate the failure"}
        rows += [f"| {_cell(check['id'])}: {_cell(fix)} | {BLANK} | {BLANK} |" for fix in sorted(fixes)]
    rows.append(f"| {BLANK} | {BLANK} | {BLANK} |")
    return rows


def _text(text) -> str:
    """Plain text as Markdown: `<table>` in a fix must not read as HTML."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cell(text) -> str:
    """Text that stays inside one Markdown table cell."""
    return _text(text).replace("|", "\\|").replace("\n", " ")
