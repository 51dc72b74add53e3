"""The runbook's optional cold exports: do they exist, are they kept, and do they restore?

The runbook recommends a weekly cold export (pg_dump) and keeps them "weekly for 4 weeks,
monthly for 6 months". `--cold-exports=DIR` names the folder that holds them: pg_dump
custom-format files (`pg_dump -Fc`) whose names carry the day they were taken
(`ordak-2026-11-29.dump`, `ordak_20261129.dump`). Files whose name carries no date are noted,
never judged. Three checks:

- cold_export_recent: the newest export is at most a week old;
- cold_export_retention: each of the last 4 weeks and each of the last 6 months holds one
  (rolling windows ending today, so that a weekly export on any weekday and a monthly one on
  any day of the month both satisfy them; the newest week is cold_export_recent's);
- cold_exports_restore: every export's table of contents reads (`pg_restore --list`), holds
  the data of both order tables and of stage_events, and the file reads to its end
  (`pg_restore -f /dev/null`: a file cut short, by a full disk or an upload that stopped,
  still lists its table of contents, which pg_dump writes first).

Nothing here writes: pg_restore only reads the files, into /dev/null.
"""

import os
import re
import subprocess
from calendar import monthrange
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from checks.contract import contract, orders_table
from checks.core import Check, Verdict
from checks.errors import SetupError
from checks.reference.embedded import binary

MAX_AGE_DAYS = 7  # runbook: a weekly cold export
WEEKS = 4  # runbook, Data Retention: "Weekly for 4 weeks"
MONTHS = 6  # runbook, Data Retention: "Monthly for 6 months"
_DATE = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?!\d)")
_CREATED = re.compile(r"^;\s+Archive created at (\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) UTC", re.M)
_FORMAT = re.compile(r"^;\s+Format: (\w+)", re.M)
_TABLE_DATA = re.compile(r"^\d+; \d+ \d+ TABLE DATA (\S+) (\S+) ", re.M)
HOW = "pg_dump -Fc --file=ordak-$(date -u +%F).dump \"$ORDAK_PRODUCTION_DB_URL\""

RECENT = Check("cold_export_recent", f"the newest cold export is at most {MAX_AGE_DAYS} days old (runbook: a weekly "
               f"cold export)", f"take one now ({HOW}), and check the job that takes them every week")
RETENTION = Check("cold_export_retention", f"each of the last {WEEKS} weeks and each of the last {MONTHS} months holds "
                  f"a cold export (runbook: weekly for {WEEKS} weeks, monthly for {MONTHS} months)",
                  "check the job that prunes old exports: keep one a week for 4 weeks and one a month for 6 months; "
                  "a missing one cannot be taken again, so note the gap in the postmortem")
RESTORES = Check("cold_exports_restore", "every cold export is a pg_dump archive whose table of contents reads "
                 "(pg_restore --list), holds the data of both order tables and stage_events, and reads to its end",
                 f"take a new export ({HOW}); a file that does not read to its end was cut short: check the disk or "
                 f"the upload that stored it")


def required_tables() -> list[str]:
    """public tables every export must hold the data of."""
    return [orders_table(store) for store in contract()["stores"]] + ["stage_events"]


def require_folder(text: str) -> Path:
    """--cold-exports=DIR: a folder that can be read, or one line saying what to give instead."""
    folder = Path(text).expanduser()
    if not folder.exists():
        raise SetupError(f"--cold-exports={text}: no such folder; give the folder that holds the pg_dump files "
                         f"(e.g. --cold-exports=/backups/ordak)")
    if not folder.is_dir():
        raise SetupError(f"--cold-exports={text}: is a file, not a folder; give the folder that holds it "
                         f"(--cold-exports={folder.parent}), or restore it with --env=drill --dump-file={text}")
    if not os.access(folder, os.R_OK | os.X_OK):
        raise SetupError(f"--cold-exports={text}: the folder cannot be read by this user; fix its permissions")
    return folder


def dated(name: str) -> date | None:
    """The day a file's name carries (2026-11-29 or 20261129), None when it carries none."""
    for match in _DATE.finditer(name):
        try:
            return date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            continue
    return None


def exports(folder: Path) -> tuple[list[tuple[date, Path]], list[Path]]:
    """(dated files, oldest first; files whose name carries no date). Hidden files are ignored."""
    found, undated = [], []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        day = dated(path.name)
        (found.append((day, path)) if day else undated.append(path))
    return sorted(found), undated


def _pg_restore(*args: str) -> subprocess.CompletedProcess:
    # TZ=UTC: pg_restore prints the archive's creation time in the reader's time zone.
    return subprocess.run([str(binary("pg_restore")), *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, env={**os.environ, "TZ": "UTC"})


def _error(done: subprocess.CompletedProcess) -> str:
    lines = [line.split("error:", 1)[1].strip() for line in done.stderr.splitlines() if "error:" in line]
    return lines[0] if lines else (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]


def table_of_contents(path: Path) -> dict:
    """What `pg_restore --list` says of a file: {created_at, format, data: {"schema.table"}}, or
    {"error": pg_restore's reason} when it cannot read it."""
    done = _pg_restore("--list", str(path))
    if done.returncode != 0:
        return {"error": _error(done)}
    created = _CREATED.search(done.stdout)
    kind = _FORMAT.search(done.stdout)
    return {"created_at": datetime.fromisoformat(created[1]).replace(tzinfo=timezone.utc) if created else None,
            "format": kind[1] if kind else "?", "data": {f"{m[1]}.{m[2]}" for m in _TABLE_DATA.finditer(done.stdout)}}


def reads_to_the_end(path: Path) -> str | None:
    """None when pg_restore reads every block of the file (into /dev/null), else why not."""
    done = _pg_restore("--file=/dev/null", str(path))
    return None if done.returncode == 0 else _error(done)


def require_archive(path: Path, option: str, full: bool = False) -> dict:
    """A pg_dump archive a person gave (--dump-file): its table of contents, or one line; with
    full, the whole file is read too (before a restore, which would take a cut file halfway)."""
    if not path.is_file():
        raise SetupError(f"{option}={path}: no such file; give a pg_dump archive (pg_dump -Fc)")
    if not os.access(path, os.R_OK):
        raise SetupError(f"{option}={path}: the file cannot be read by this user; fix its permissions")
    toc = table_of_contents(path)
    if "error" in toc:
        raise SetupError(f"{option}={path}: not a pg_dump archive pg_restore can read ({toc['error']}); give a file "
                         f"made by pg_dump -Fc")
    if toc["created_at"] is None:
        raise SetupError(f"{option}={path}: its table of contents does not say when it was taken; give a file made "
                         f"by pg_dump -Fc")
    if full:  # a file cut short lists its table of contents, then restores only part of its data
        cut = reads_to_the_end(path)
        if cut:
            raise SetupError(f"{option}={path}: does not read to its end (truncated?): {cut}; give a whole export")
    return toc


# -- the checks ---------------------------------------------------------------------------
def _notes(undated: list[Path]) -> list[dict]:
    return [{"object": p.name, "problem": "not considered: its name carries no date (e.g. ordak-2026-11-29.dump)",
             "note": "only files named with the day they were taken are exports"} for p in undated]


def recent(folder: Path, today: date) -> Verdict:
    found, undated = exports(folder)
    if not found:
        return RECENT.verdict(str(folder), [{"object": str(folder), "problem": (
            "holds no cold export: no file whose name carries the day it was taken (e.g. ordak-2026-11-29.dump)")}],
            _notes(undated), exports=0)
    day, newest = found[-1]
    age = (today - day).days
    violations = [] if age <= MAX_AGE_DAYS else [{"object": newest.name, "problem": (
        f"the newest cold export is from {day} ({age} days ago), more than {MAX_AGE_DAYS}")}]
    return RECENT.verdict(str(folder), violations, _notes(undated), exports=len(found), newest_export=newest.name,
                          newest_export_age_days=age)


def months_before(day: date, months: int) -> date:
    """The same day `months` calendar months earlier (the month's last day where it has fewer)."""
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    return date(year, month + 1, min(day.day, monthrange(year, month + 1)[1]))


def windows(today: date) -> list[tuple[str, date, date]]:
    """(name, first day, last day) of every window that must hold an export: weeks 2..WEEKS back
    (the newest week is cold_export_recent's), then months 1..MONTHS back, each ending today or
    where the one after it begins."""
    weeks = [(f"week {k} back", today - timedelta(days=7 * k - 1), today - timedelta(days=7 * (k - 1)))
             for k in range(2, WEEKS + 1)]
    months = [(f"month {k} back", months_before(today, k) + timedelta(days=1), months_before(today, k - 1))
              for k in range(1, MONTHS + 1)]
    return weeks + months


def retention(folder: Path, today: date) -> Verdict:
    found, _ = exports(folder)  # files without a date: noted once, by recent()
    days = [day for day, _ in found]
    violations = []
    for name, first, last in windows(today):
        if not any(first <= day <= last for day in days):
            violations.append({"key": f"{RETENTION.name}:{name}", "object": f"{name} ({first} to {last})",
                               "problem": "holds no cold export"})
    return RETENTION.verdict(str(folder), violations, exports=len(found),
                             oldest_export=found[0][1].name if found else None)


def restores(folder: Path) -> Verdict:
    found, _ = exports(folder)
    wanted = [f"public.{t}" for t in required_tables()]
    violations = []
    for _, path in found:
        toc = table_of_contents(path)
        if "error" in toc:
            violations.append({"object": path.name, "problem": f"its table of contents does not read: {toc['error']}"})
            continue
        lacking = [t for t in wanted if t not in toc["data"]]
        if lacking:
            violations.append({"object": path.name, "problem": f"holds no data of {', '.join(lacking)}"})
        if toc["format"] != "CUSTOM":
            violations.append({"object": path.name, "problem": f"is a {toc['format'].lower()}-format archive, not "
                                                                f"custom format (pg_dump -Fc)"})
        cut = reads_to_the_end(path)
        if cut:
            violations.append({"object": path.name, "problem": f"does not read to its end (truncated?): {cut}"})
    return RESTORES.verdict(str(folder), violations, exports_read=len(found),
                            bytes_read=sum(p.stat().st_size for _, p in found))
