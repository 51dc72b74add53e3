"""What pytest-html cannot show by itself: the run's first screen, each failing check's
violations and fix, the notes and accepted findings, and the trend of the last runs.

pytest-html writes the report (a self-contained page by default; --html, --self-contained-html
and --css as it documents). The plugin hands it these fragments through pytest-html's hooks:
the first screen and the findings go into its summary, a failing check's verdict into that
test's extras, the area and the finding's key into its results table. They are built here
from the run's summary (checks.report.summary) and the verdict records, as plain HTML strings, every
value escaped. The postmortem draft (checks.report.postmortem) uses the same formatting helpers.
"""

from datetime import datetime, timezone
from html import escape
from pathlib import Path

from checks.report.summary import AREAS, ReportPaths, _area_order

CSS = Path(__file__).with_name("report.css")  # appended to pytest-html's style (as --css is)
COLOURS = {"passed": "#1a7f37", "failed": "#cf222e", "error": "#6e7781", "interrupted": "#9a6700"}
ICONS = {"passed": "✔", "failed": "✘", "error": "⚠", "interrupted": "■"}


def area_label(area: str) -> str:
    return AREAS.get(area, area.capitalize())


def title(data: dict) -> str:
    env = data["environment"]["name"] or "unknown environment"
    return f"{data['verdict'].upper()} · Ordak verification · {env} · {when(data['started_at'], False)}"


# -- the first screen ---------------------------------------------------------------------------
def first_screen(data: dict, history: list[dict], paths: ReportPaths) -> list[str]:
    """The verdict, what to act on first, the run and the facts side by side, the drill's
    timeline and the trend: what a postmortem asks first, before any test row."""
    env = data["environment"]
    parts = [_banner(data)]
    for warning in filter(None, [env.get("replica"), (data["reference_time"] or {}).get("warning")]):
        parts.append(f'<div class="ordak-warn"><strong>Warning:</strong> {escape(warning)}</div>')
    if data["error"] and data["verdict"] == "error":
        parts.append(f'<div class="ordak-error"><strong>No check ran.</strong> Fix what the line above says, then '
                     f'run again: <code>{escape(data["suite"]["command"])}</code></div>')
    elif data["verdict"] == "interrupted":
        where = f" while {escape(data['interrupted'])}" if data.get("interrupted") else ""
        parts.append(f'<div class="ordak-warn"><strong>Interrupted{where}.</strong> What ran is below; nothing here '
                     f'clears a cut-over. Run again to the end: <code>{escape(data["suite"]["command"])}</code></div>')
    parts.append(_act_first(data))
    parts.append(f'<div class="ordak-top">{_run_table(data, paths)}{_facts(data, history)}</div>')
    if data["timeline"]:
        parts.append(_timeline(data["timeline"]))
    return [p for p in parts if p]


def _banner(data: dict) -> str:
    env, drill = data["environment"], data["timeline"]
    where = f" · {escape(env['host'])} / {escape(env['database'])}" if env["host"] else ""
    rto = ""
    if drill and drill["incident_at"]:
        met = {True: "met", False: "missed"}.get(drill["rto"]["met"], "not judged")
        rto = f" · drill: RTO {hours(drill['rto']['hours'])} (objective ≤ {hours(drill['rto']['objective_hours'])}, {met})"
    name = escape(env["name"] or "an unknown environment")
    return (f'<header class="ordak-verdict {data["verdict"]}"><h1>{ICONS.get(data["verdict"], "")} '
            f'{escape(data["headline"])}</h1><p>Ordak verification of <strong>{name}</strong>{where} · '
            f'{when(data["started_at"])}{rto}</p></header>')


def _act_first(data: dict) -> str:
    urgent = [c for c in data["checks"] if c.get("urgent") and c["outcome"] in ("failed", "error")]
    if not urgent:
        return ""
    items = []
    for check in urgent:
        failed = [v for v in check["verdicts"] if v["status"] == "failed"]
        if failed:
            first, more = failed[0]["violations"][0], len(failed[0]["violations"]) - 1
            what = (f"{escape(str(first.get('object', '?')))}: {escape(str(first.get('problem', '')))}"
                    + (f" (+{more} more)" if more > 0 else "") + f"<br><strong>Fix:</strong> "
                    f"{escape(failed[0]['remediation'])}")
        else:
            what = escape((check.get("cause") or {}).get("line") or (check["message"] or "failed").splitlines()[0])
        items.append(f'<li><span class="mono">{escape(check["id"])}</span>: {what}</li>')
    return (f'<div class="ordak-error"><strong>Act first, before any cut-over:</strong>'
            f'<ul class="ordak-act">{"".join(items)}</ul></div>')


def _run_table(data: dict, paths: ReportPaths) -> str:
    env, counts, ref = data["environment"], data["counts"], data["reference_time"]
    rows = [("Environment", f"<strong>{escape(env['name'] or '—')}</strong>" + (" (read-only)" if env["read_only"] else "")
             + (f'<br><span class="muted">{escape(env["description"])}</span>' if env["description"] else "")),
            ("Target", f'host <span class="mono">{escape(env["host"])}</span>, database <span class="mono">'
                       f'{escape(env["database"])}</span>' if env["host"] else "—")]
    if env.get("project_ref"):
        rows.append(("Project ref", f'<span class="mono">{escape(env["project_ref"])}</span>'))
    if env.get("compared_with"):
        rows.append(("Compared with", escape(env["compared_with"])))
    if env.get("drill"):
        rows.append(("Drill", escape(env["drill"])))
    server = data["versions"]
    if server.get("server version"):
        rows.append(("Server", f'PostgreSQL {escape(str(server["server version"]))}, connected as <span class="mono">'
                               f'{escape(str(server["connected as"]))}</span>; {escape(str(server["connection"]))}'))
    rows.append(("When", f"{when(data['started_at'])}, took {seconds(data['duration_seconds'])}"))
    if ref:
        kind = ref["kind"] + (": the database's clock at the start" if ref["kind"] == "now" else "")
        rows.append(("Reference time", f"{when(ref['at'])} ({escape(kind)})"))
    else:
        rows.append(("Reference time", "—"))
    rows.append(("Suite", f'ordak-verify {escape(data["suite"]["version"])}, commit <span class="mono">'
                          f'{escape(data["suite"]["commit"])}</span>'))
    rows.append(("Command", f'<code>{escape(data["suite"]["command"])}</code>'))
    if data["error"] and data["verdict"] == "error":
        rows.append(("Checks", "none ran"))
    else:
        bad = ' class="bad"' if counts["failed"] else ""
        rows.append(("Checks", f'{counts["passed"]} passed, <span{bad}>{counts["failed"]} failed</span>'
                               + (f', <span class="bad">{counts["error"]} error</span>' if counts["error"] else "")
                               + f', {counts["skipped"]} skipped'))
    failing = [c["id"] for c in data["checks"] if c["outcome"] in ("failed", "error")]
    if failing:
        rows.append(("Failed", ", ".join(f'<span class="mono">{escape(i)}</span>' for i in failing)))
    rows.append(("Files", f'<span class="mono">{escape(paths.html.stem)}</span>: .html (this report), .json '
                          f'(summary), .md (postmortem draft)' + (", .xml (JUnit)" if paths.xml.stem == paths.html.stem
                                                                  else f"; JUnit: {escape(paths.xml.name)}")))
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<section><h2>Run</h2><table class="ordak-kv">{body}</table></section>'


def _facts(data: dict, history: list[dict]) -> str:
    f = data["facts"]
    parts = ['<section class="ordak-facts"><h2>Facts measured</h2>']
    if not any(s["orders"] is not None for s in f["stores"]) and not f["migrations"] and not f["queue"]:
        why = "the run stopped before any check." if data["error"] else "no check that measures them ran."
        parts.append(f'<p class="muted">No facts: {why}</p>')
    else:
        compared = any(s.get("orders_missing") is not None for s in f["stores"])
        measure = "RPO" if f["hours_measure"] == "RPO" else "age"
        head = ("<tr><th>store</th><th class='num'>orders</th>"
                + ("<th class='num' title='orders production held (before the incident, when there is one; else up "
                   "to the reference time) that this copy lacks'>missing</th>" if compared else "")
                + f"<th>newest order</th><th class='num' title='{escape(f['hours_measure'])}'>{measure}</th>"
                  "<th class='num'>objective</th><th>per stage</th></tr>")
        rows = []
        for s in f["stores"]:
            age = s["hours_before_reference"]
            bad = " bad" if s["within_objective"] is False or (age or 0) < 0 else ""
            shown = f"{hours(-age)} after" if (age or 0) < 0 else hours(age)
            missing = ""
            if compared:
                n = s.get("orders_missing")
                missing = f'<td class="num{" bad" if n and s.get("missing_ok") is False else ""}">' \
                          f'{"—" if n is None else f"{n:,}"}</td>'
            rows.append(f'<tr><td><strong>{escape(s["store"])}</strong></td><td class="num">'
                        f'{"—" if s["orders"] is None else s["orders"]}</td>{missing}<td class="nowrap">'
                        f'{when(s["last_order_at"], False)}</td><td class="num{bad}">{shown}</td><td class="num muted">'
                        + (f"≤ {hours(s['objective_hours'])}" if s["objective_hours"] is not None else "")
                        + f'</td><td class="muted">{escape(s["per_stage"] or "")}</td></tr>')
        parts.append(f"<h3>Orders per store</h3><table>{head}{''.join(rows)}</table>")
        if f["migrations"]:
            git, db = f["migrations"].get("head_in_git"), f["migrations"].get("head_in_database")
            same = '<span class="ok">same</span>' if git and git == db else '<span class="bad">differs</span>'
            parts.append(f'<h3>Head migration</h3><table class="ordak-kv"><tr><th>in Git</th><td class="mono">'
                         f'{escape(str(git or "—"))}</td></tr><tr><th>in the database</th><td class="mono">'
                         f'{escape(str(db or "—"))} {same}</td></tr></table>')
        if f.get("restore"):
            parts.append(_restore_proofs(f["restore"]))
        if f["queue"]:
            heads = "".join(f'<th class="num">{escape(str(k))}</th>' for k in f["queue"])
            cells = "".join(f'<td class="num">{escape(str(v))}</td>' for v in f["queue"].values())
            parts.append(f"<h3>Work queue</h3><table><tr>{heads}</tr><tr>{cells}</tr></table>")
        if f["other"]:
            rows = "".join(f'<tr><td class="mono">{escape(o["check"])}</td><td>{escape(label(o["name"]))}</td>'
                           f'<td>{escape(str(o["value"]))}</td></tr>' for o in f["other"])
            parts.append(f'<details><summary>{len(f["other"])} other measurements</summary><table>{rows}</table>'
                         f'</details>')
    if history:
        parts.append(f'<h2>Last runs against {escape(data["environment"]["name"] or "this environment")}</h2>'
                     f'{chart(history)}')
    parts.append("</section>")
    return "".join(parts)


def _restore_proofs(restore: dict) -> str:
    """A restored copy's pages (amcheck) and its replay list: beyond counts."""
    rows = []
    pages = restore.get("pages")
    if pages:
        if pages["status"] == "blocked":
            shown = f'<span class="muted">not checked: {escape(pages["blocked"] or "")}</span>'
        elif pages["status"] == "failed":
            shown = f'<span class="bad">{pages.get("corruptions", pages["problems"])} corruption(s) found</span>: see test_pages_verify'
        else:
            mode = ", heapallindexed" if pages.get("heapallindexed") else ""
            shown = (f'<span class="ok">every page reads back sound</span>: {pages.get("relations_checked", "?")} '
                     f'relations{mode}, {seconds(pages.get("amcheck_seconds"))}')
        rows.append(f"<tr><th>Pages (amcheck)</th><td>{shown}</td></tr>")
    replay = restore.get("replay")
    if replay:
        if replay["status"] == "blocked":
            shown = f'<span class="muted">not listed: {escape(replay["blocked"] or "")}</span>'
        else:
            count = replay.get("replay_count") or 0
            where = Path(str(replay.get("replay_file") or "")).name
            since = f' (production\'s since {when(replay["replay_from"])})' if replay.get("replay_from") else ""
            shown = (f'<strong>{count:,}</strong> Shopify order{"s" if count != 1 else ""} to replay at cut-over'
                     f'{since}' + (f': <a href="{escape(where)}">{escape(where)}</a>' if where else ""))
        rows.append(f"<tr><th>Replay list</th><td>{shown}</td></tr>")
    return f'<h3>Restore</h3><table class="ordak-kv">{"".join(rows)}</table>'


def _timeline(drill: dict) -> str:
    rows = []
    for e in drill["events"]:
        extra = "".join(f'<br><span class="muted">{escape(label(k))}: {escape(str(v))}</span>' for k, v in e.items()
                        if k not in ("event", "at", "since_incident_seconds", "phase_seconds"))
        phase = seconds(e["phase_seconds"]) if e["phase_seconds"] is not None else ""
        rows.append(f'<tr><td><strong>{escape(label(e["event"]))}</strong>{extra}</td><td class="nowrap">'
                    f'{when(e["at"])}</td><td class="num">{seconds(e["since_incident_seconds"])}</td>'
                    f'<td class="num muted">{phase}</td></tr>')
    events = (f'<table><tr><th>event</th><th>at</th><th class="num">since incident</th><th class="num">phase</th>'
              f'</tr>{"".join(rows)}</table>')
    rto = drill["rto"]
    measures = [f'<tr><td><strong>RTO</strong> (incident to verdict)</td><td class="num">{hours(rto["hours"])}</td>'
                f'<td class="num">≤ {hours(rto["objective_hours"])}</td><td>{_met(rto["met"], rto.get("note"))}</td></tr>']
    for d in drill["data_loss"]:
        n = d.get("orders_missing")
        missing = "" if n is None else (f'<br><span class="{"bad" if n and d["met"] is False else "muted"}">{n:,} order'
                                        f'{"s" if n != 1 else ""} missing</span>')
        measures.append(f'<tr><td><strong>Data loss</strong>, {escape(d["store"])}{missing}</td><td class="num'
                        f'{" bad" if (d["hours"] or 0) < 0 else ""}">{hours(d["hours"])}</td><td class="num">'
                        + (f"≤ {hours(d['objective_hours'])}" if d["objective_hours"] is not None else "")
                        + f'</td><td>{_met(d["met"])}</td></tr>')
    if not drill["data_loss"]:
        measures.append('<tr><td><strong>Data loss</strong></td><td colspan="3" class="muted">not judged: '
                        'test_data_loss_within_objective did not run</td></tr>')
    table = (f'<table><tr><th>measure</th><th class="num">measured</th><th class="num">objective</th><th></th></tr>'
             f'{"".join(measures)}</table>')
    return f'<section><h2>Drill timeline</h2><div class="ordak-top ordak-drill">{events}{table}</div></section>'


def _met(met, note: str | None = None) -> str:
    if met:
        return '<span class="ok">met</span>'
    if met is False:
        return '<span class="bad">missed</span>'
    return f'<span class="muted">{escape(note or "not judged")}</span>'


# -- findings: notes and accepted, where a reader finds them without scrolling through passes ----
def findings(data: dict) -> list[str]:
    accepted = [(c, v) for c in data["checks"] for v in c["verdicts"] if v.get("accepted")]
    noted = [(c, v) for c in data["checks"] for v in c["verdicts"] if v.get("notes")]
    parts = []
    if accepted:
        parts.append("<section><h2>Accepted findings</h2><p class='muted'>Violations the team accepted in "
                     "environments.toml, each until its date; they fail again after it.</p>"
                     + "".join(accepted_table(v) for _, v in accepted) + "</section>")
    if noted:
        parts.append("<section><h2>Notes</h2><p class='muted'>Shown, never failing: the reference's choices where "
                     "the documentation is silent, files skipped as the Supabase CLI skips them, counts with nothing "
                     "to compare with.</p>" + "".join(notes_table(v) for _, v in noted) + "</section>")
    return parts


def accepted_table(v: dict) -> str:
    return _findings_table(v, "accepted finding", [("finding", "mono", lambda r: r.get("object") or r["key"]),
                                                   ("problem", "", lambda r: r.get("problem") or ""),
                                                   ("accepted because", "", lambda r: r.get("reason") or "—"),
                                                   ("until", "nowrap", lambda r: r.get("until") or "—"),
                                                   ("key", "mono muted", lambda r: r["key"])], v["accepted"])


def notes_table(v: dict) -> str:
    return _findings_table(v, "note", [("object", "mono", lambda r: r.get("object", "?")),
                                       ("noted", "", lambda r: r.get("problem", "")),
                                       ("why only a note", "muted", lambda r: r.get("note", ""))], v["notes"])


def _findings_table(v: dict, noun: str, columns: list, rows: list[dict]) -> str:
    """A verdict's accepted findings or notes: a line naming the check, then a scrolling table."""
    head = "".join(f"<th>{escape(title)}</th>" for title, _, _ in columns)
    body = "".join("<tr>" + "".join(f'<td class="{css}">{escape(str(value(r)))}</td>' for _, css, value in columns)
                   + "</tr>" for r in rows)
    return (f'<p class="what"><strong>{escape(v["check"])}[{escape(v["subject"])}]</strong>: {len(rows)} {noun}'
            f'{"s" if len(rows) != 1 else ""}</p><div class="ordak-scroll"><table><tr>{head}</tr>{body}</table></div>')


# -- a test's extras: what it found and what to do ----------------------------------------------
def verdict_extra(record: dict) -> str:
    """A failing verdict: every violation (a scrolling table) and its fix."""
    violations = record["violations"]
    extra = [k for v in violations for k in v if k not in ("object", "problem", "key")]
    head = "<tr><th>object</th><th>problem</th>" + ("<th>details</th>" if extra else "") + "<th>key</th></tr>"
    rows = "".join(f'<tr><td class="mono">{escape(str(v.get("object", "?")))}</td><td>{escape(str(v.get("problem", "")))}'
                   f'</td>' + (f'<td class="muted">{escape(details(v))}</td>' if extra else "")
                   + f'<td class="mono muted">{escape(v["key"])}</td></tr>' for v in violations)
    n = len(violations)
    return (f'<div class="ordak-extra"><p class="what"><strong>{escape(record["check"])}[{escape(record["subject"])}]'
            f'</strong>: {escape(record["description"])} — <span class="bad">{n} violation{"s" if n != 1 else ""}'
            f'</span></p><div class="ordak-scroll"><table>{head}{rows}</table></div><p class="fix"><strong>Fix:'
            f'</strong> {escape(record["remediation"])}</p></div>')


def cause_extra(cause: dict) -> str:
    """A check that raised: the database's cause and the fix, above pytest-html's log (the traceback)."""
    named = f' — object <span class="mono">{escape(cause["object"])}</span>' if cause.get("object") else ""
    return (f'<div class="ordak-extra"><p class="cause"><strong>Cause:</strong> <code>{escape(cause["line"])}</code>'
            f'{named}</p><p class="fix"><strong>Fix:</strong> {escape(cause["fix"])}</p></div>')


def finding_keys(records: list[dict]) -> str:
    """The results table's key cell: the failing findings' keys, or the check that judged."""
    keys = [v["key"] for r in records for v in r["violations"]]
    if keys:
        first = keys[0] if len(keys[0]) <= 80 else keys[0][:79] + "…"
        return first + (f" (+{len(keys) - 1} more)" if len(keys) > 1 else "")
    return ", ".join(f"{r['check']}[{r['subject']}]" for r in records)


def areas(checks: list[dict]) -> list[dict]:
    """Checks grouped by area, areas with failures first; inside each, failures, then passes
    with accepted findings, then passes with notes, then skips, then passes."""
    groups: dict[str, dict] = {}
    for check in checks:
        group = groups.setdefault(check["area"], {"area": check["area"], "failing": [], "accepted": [],
                                                  "noted": [], "skipped": [], "passed": []})
        if check["outcome"] in ("failed", "error"):
            group["failing"].append(check)
        elif check["outcome"] == "skipped":
            group["skipped"].append(check)
        elif any(v.get("accepted") for v in check["verdicts"]):
            group["accepted"].append(check)
        elif any(v.get("notes") for v in check["verdicts"]):
            group["noted"].append(check)
        else:
            group["passed"].append(check)
    # An area holding a failure to act on before cut-over (checks.summary: urgent) comes first.
    return sorted(groups.values(), key=lambda g: (not any(c.get("urgent") for c in g["failing"]), not g["failing"],
                                                  _area_order(g["area"])))



# -- formatting -------------------------------------------------------------------------------------
def when(iso: str | None, seconds: bool = True) -> str:
    """'2026-11-20 14:30:05 UTC' from any ISO time."""
    if not iso:
        return "—"
    moment = datetime.fromisoformat(iso).astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def hours(value) -> str:
    """A number of hours for a person: '42 min', '3 h 05 min', '2 d 4 h'."""
    if value is None or value == "":
        return "—"
    value = float(value)
    sign, value = ("−" if value < 0 else ""), abs(value)
    minutes = round(value * 60)
    if minutes < 60:
        return f"{sign}{minutes} min" if minutes else f"{sign}{round(value * 3600)} s"
    if minutes < 48 * 60:
        return f"{sign}{minutes // 60} h" + (f" {minutes % 60:02d} min" if minutes % 60 else "")
    return f"{sign}{minutes // 1440} d {minutes % 1440 // 60} h"


def seconds(value) -> str:
    return "—" if value is None else hours(float(value) / 3600)


def details(violation: dict) -> str:
    """A violation's other fields, `name: value`, for the table's third column."""
    return "; ".join(f"{k}: {v}" for k, v in violation.items() if k not in ("object", "problem", "key"))


def label(name: str) -> str:
    return name.replace("_", " ")


def objectives_line(data: dict) -> str | None:
    """One line a person reads at a glance after a drill or a restore with a timeline:
    'RTO 23 s of 4 h: met; data loss bannos 2.3 s (0 orders missing) of 24 h: met; ...'."""
    drill_part = data.get("timeline")
    if not drill_part or not drill_part["incident_at"]:
        return None
    def verdict(met) -> str:
        return "met" if met else "NOT MET" if met is False else "not judged"
    rto = drill_part["rto"]
    parts = [f"RTO {hours(rto['hours'])} of {hours(rto['objective_hours'])}: {verdict(rto['met'])}"]
    for row in drill_part["data_loss"]:
        missing = f" ({row['orders_missing']:,} orders missing)" if row.get("orders_missing") is not None else ""
        parts.append(f"data loss {row['store']} {hours(row['hours'])}{missing} of {hours(row['objective_hours'])}: "
                     f"{verdict(row['met'])}")
    if not drill_part["data_loss"]:
        parts.append("data loss: not judged (test_data_loss_within_objective did not run)")
    return "; ".join(parts)



# -- the history chart ------------------------------------------------------------------------
def chart(history: list[dict]) -> str:
    """The last runs as inline SVG: one square per run coloured by verdict, then RPO (the
    newest order's age at the reference time) and, for drills, RTO, in hours."""
    if not history:
        return ""
    width, left, step = 760, 46, 22
    count = len(history)
    step = min(step, (width - left - 10) / max(count, 1))
    x = [left + step * i + step / 2 for i in range(count)]
    series = [("RPO", "rpo_hours", "#0969da"), ("RTO", "rto_hours", "#8250df")]
    values = [run.get(key) for _, key, _ in series for run in history if isinstance(run.get(key), (int, float))]
    top, bottom = 40, 160 if values else 40
    height = bottom + 40
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="verdicts, RPO and RTO of the last {count} runs" '
             f'font-size="11" font-family="system-ui, sans-serif">',
             '<text x="0" y="15" fill="#57606a">verdict</text>']
    for i, run in enumerate(history):
        colour = COLOURS.get(run.get("verdict"), "#6e7781")
        tip = f"{when(run.get('at'), False)}: {run.get('verdict')}"
        if run.get("failed") or run.get("error"):
            tip += f", {run.get('failed', 0) + run.get('error', 0)} failed"
        parts.append(f'<rect x="{x[i] - step * 0.4:.1f}" y="4" width="{step * 0.8:.1f}" height="14" rx="2" '
                     f'fill="{colour}"><title>{escape(tip)}</title></rect>')
    parts.append(f'<line x1="{left}" y1="{bottom}" x2="{width - 6}" y2="{bottom}" stroke="#d0d7de"/>')
    if values:
        # A negative RPO (the newest order after the reference time) is drawn below a zero line.
        ceiling, floor = max(max(values), 1 / 60) * 1.15, min(min(values), 0) * 1.15
        y = lambda v: bottom - (bottom - top) * (v - floor) / (ceiling - floor)  # noqa: E731
        parts += [f'<text x="{left + 2}" y="{top - 4}" fill="#57606a">{hours(ceiling)}</text>',
                  f'<line x1="{left}" y1="{top}" x2="{width - 6}" y2="{top}" stroke="#eaeef2"/>',
                  f'<text x="{left - 6}" y="{y(0) + 4:.1f}" text-anchor="end" fill="#57606a">0</text>',
                  f'<line x1="{left}" y1="{y(0):.1f}" x2="{width - 6}" y2="{y(0):.1f}" stroke="#d0d7de"/>']
        if floor < 0:
            parts.append(f'<text x="{width - 6}" y="{bottom - 4}" text-anchor="end" fill="#57606a">{hours(floor)}</text>')
        for name, key, colour in series:
            points = [(x[i], y(run[key]), run) for i, run in enumerate(history)
                      if isinstance(run.get(key), (int, float))]
            if len(points) > 1:
                path = " ".join(f"{px:.1f},{py:.1f}" for px, py, _ in points)
                parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
            for px, py, run in points:
                tip = f"{when(run.get('at'), False)}: {name} {hours(run[key])}"
                parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}">'
                             f'<title>{escape(tip)}</title></circle>')
    parts += [f'<text x="{left}" y="{bottom + 16}" fill="#57606a">{escape(when(history[0].get("at"), False))}</text>',
              f'<text x="{width - 6}" y="{bottom + 16}" text-anchor="end" fill="#57606a">'
              f'{escape(when(history[-1].get("at"), False))} (this run)</text>']
    legend = [("#0969da", "RPO: the newest order's age at the reference time"),
              ("#8250df", "RTO: a drill's incident to its verdict")] if values else [
              ("#d0d7de", "no RPO or RTO measured in these runs")]
    for i, (colour, text) in enumerate(legend):
        parts.append(f'<circle cx="{left + 4 + 340 * i}" cy="{bottom + 32}" r="4" fill="{colour}"/>'
                     f'<text x="{left + 12 + 340 * i}" y="{bottom + 36}" fill="#57606a">{text}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


