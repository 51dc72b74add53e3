"""The HTML report: one self-contained page (inline CSS and SVG, no script, no network),
rendered from the run's summary (checks.summary) with the template report.html.j2.

We render it ourselves rather than restyle pytest-html: its page is a script-built table of
test rows, which cannot group checks by area, put failures first, or open with the verdict
and the facts a postmortem asks for; bending it would take more code than this page.

`python -m checks.report reports/<run>.json` renders a summary again (e.g. after a change
to the template)."""

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from checks.summary import AREAS, ReportPaths, _area_order, read_history

_TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).parent), autoescape=select_autoescape(["j2"]),
                         trim_blocks=True, lstrip_blocks=True)
COLOURS = {"passed": "#1a7f37", "failed": "#cf222e", "error": "#6e7781", "interrupted": "#9a6700"}


def render(data: dict, history: list[dict], paths: ReportPaths) -> str:
    template = _TEMPLATES.get_template("report.html.j2")
    groups = areas(data["checks"])
    failing = [check for group in groups for check in group["failing"]]
    return template.render(run=data, areas=groups, failing=failing, chart=chart(history), paths=paths,
                           colours=COLOURS, area_label=lambda a: AREAS.get(a, a.capitalize()))


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


# -- formatting (template filters) ------------------------------------------------------------
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


_TEMPLATES.filters.update(when=when, hours=hours, seconds=seconds, details=details, label=label)


# -- the history chart ------------------------------------------------------------------------
def chart(history: list[dict]) -> Markup:
    """The last runs as inline SVG: one square per run coloured by verdict, then RPO (the
    newest order's age at the reference time) and, for drills, RTO, in hours."""
    if not history:
        return Markup("")
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
    return Markup("\n".join(parts))


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].endswith(".json"):
        print("usage: python -m checks.report reports/<run>.json  (writes the .html beside it)", file=sys.stderr)
        return 2
    source = Path(argv[0])
    try:
        data = json.loads(source.read_text())
    except (OSError, ValueError) as exc:
        print(f"{source}: cannot read a run summary ({exc.__class__.__name__}: {exc})", file=sys.stderr)
        return 1
    paths = ReportPaths.beside(source.with_suffix(".html"))
    history = [h for h in read_history(paths.history, data["environment"]["name"], 10**6)
               if h.get("at", "") <= data["started_at"]]
    paths.html.write_text(render(data, history[-30:], paths))
    print(paths.html)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
