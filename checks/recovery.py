"""Checks of a restore itself: canaries, data loss (RPO) and time to recover (RTO) against
the runbook's objectives, HTTP calls from pg_cron on the restored copy, and a restore that
left its sources as they were. Measurements are the verdicts' facts."""

import re
from datetime import datetime

from psycopg import sql

from checks.contract import orders_table
from checks.core import Check
from checks.target import Target
from checks.workload import Canary

SHOWN = 25

CANARIES = Check("canaries", "every canary order committed up to the restore point is in the restored database, "
                 "and none committed after it",
                 "the restore did not reach, or went past, its target: restore again to the restore point")
DATA_LOSS = Check("data_loss_within_objective", "per store, the incident time minus the newest recovered commit is "
                  "within the RPO objective", "restore from a later point (PITR), then replay the Shopify webhooks of "
                  "the lost window")
RTO = Check("rto_within_objective", "incident -> restore started -> restored database accepting connections -> "
            "suite verdict, within the RTO objective", "find the slowest phase in the timeline and shorten it "
            "(rehearse the runbook, script the steps)")
HTTP_CRON = Check("no_http_cron_jobs", "no active pg_cron job makes HTTP calls (net.http_*, http_*, an Edge Function "
                  "URL): a restored copy runs its jobs at once, against Shopify, as if it were production",
                  "before anything else, on the restored database: select cron.alter_job(<jobid>, active := false); "
                  "re-enable them only on the database that becomes production")
SOURCE_UNTOUCHED = Check("restore_source_untouched", "the restore left its sources as they were: base backup, "
                         "WAL archive and production unchanged", "a restore must only read its sources: find what "
                         "wrote there (restore_command, archive_command of the copy) before the next drill")

# What makes a cron job call out: pg_net (net.http_get/post/delete), the http extension
# (http_get(...), http((...)::http_request)), or an Edge Function / Supabase URL.
HTTP_PATTERN = r"(\mnet\.http_\w+|\mhttp_(get|post|put|patch|delete|head|request)\s*\(|\mhttp\s*\(\s*\(|/functions/v1/)"


def canaries(target: Target, store: str, ledger: list[Canary], restore_point: datetime):
    ours = [c for c in ledger if c.store == store]
    present = _present(target, store, [c.id for c in ours])
    missing = [c for c in ours if c.committed_at <= restore_point and c.id not in present]
    extra = [c for c in ours if c.committed_at > restore_point and c.id in present]
    violations = [{"object": c.id, "problem": f"committed {c.committed_at:%H:%M:%S.%f} UTC, before the restore point "
                                             f"({restore_point:%H:%M:%S.%f}), and missing"} for c in missing[:SHOWN]]
    violations += [{"object": c.id, "problem": f"committed {c.committed_at:%H:%M:%S.%f} UTC, after the restore point "
                                              f"({restore_point:%H:%M:%S.%f}), and present"} for c in extra[:SHOWN]]
    before = sum(c.committed_at <= restore_point for c in ours)
    return CANARIES.verdict(store, violations, canaries_before=before, canaries_after=len(ours) - before,
                            **({"missing": len(missing)} if missing else {}), **({"unexpected": len(extra)} if extra else {}))


def _present(target: Target, store: str, ids: list[str]) -> set[str]:
    if not ids or not target.scalar("select to_regclass(%s) is not null", (f"public.{orders_table(store)}",)):
        return set()
    rows = target.query(sql.SQL("select id from {} where id = any(%s)").format(
        sql.Identifier("public", orders_table(store))), (ids,))
    return {r["id"] for r in rows}


def data_loss(target: Target, store: str, incident_at: datetime, objective_hours: float,
              ledger: list[Canary] | None = None):
    """Newest recovered commit: the newest canary present (a drill), else the newest order
    ingested (created_at: the runbook's "last order ingested" clock)."""
    if ledger is not None:
        ours = [c for c in ledger if c.store == store]
        present = _present(target, store, [c.id for c in ours])
        newest = max((c.committed_at for c in ours if c.id in present), default=None)
        source = "newest canary order recovered"
    elif target.scalar("select to_regclass(%s) is not null", (f"public.{orders_table(store)}",)):
        newest = target.scalar(sql.SQL("select max(created_at) from {}").format(
            sql.Identifier("public", orders_table(store))))
        source = "newest order ingested (created_at)"
    else:
        newest, source = None, "public." + orders_table(store) + " is missing"
    if newest is None:
        return DATA_LOSS.verdict(store, [{"object": f"public.{orders_table(store)}",
                                          "problem": f"nothing recovered to measure from ({source})"}])
    loss = (incident_at - newest).total_seconds()
    facts = {"data_loss_seconds": round(loss, 3), "data_loss_hours": round(loss / 3600, 4),
             "newest_recovered_commit": newest.isoformat(), "measured_from": source,
             "incident_at": incident_at.isoformat(), "objective_hours": objective_hours}
    violations = [] if loss <= objective_hours * 3600 else [{
        "object": store, "problem": f"data loss {loss / 3600:.2f} h (incident {incident_at:%Y-%m-%d %H:%M:%S} UTC, "
                                    f"newest recovered commit {newest:%Y-%m-%d %H:%M:%S} UTC) exceeds the RPO "
                                    f"objective of {objective_hours} h"}]
    return DATA_LOSS.verdict(store, violations, **facts)


def rto(timeline: list[dict], verdict_at: datetime, objective_hours: float):
    """The RTO and its phases, from the timeline; the verdict closes it."""
    at = {e["event"]: e["at"] for e in timeline}
    at["verdict"] = verdict_at
    marks = [m for m in ("incident", "restore_started", "restored_accepting_connections", "verdict") if m in at]
    facts = {f"{a}_to_{b}_seconds": round((at[b] - at[a]).total_seconds(), 3) for a, b in zip(marks, marks[1:])}
    total = (verdict_at - at["incident"]).total_seconds()
    facts.update(rto_seconds=round(total, 3), rto_hours=round(total / 3600, 4), objective_hours=objective_hours,
                 verdict_at=verdict_at.isoformat())
    phases = ", ".join(f"{k.removesuffix('_seconds')} {v / 3600:.2f} h" for k, v in facts.items() if "_to_" in k)
    violations = [] if total <= objective_hours * 3600 else [{
        "object": "timeline", "problem": f"RTO {total / 3600:.2f} h (incident {at['incident']:%Y-%m-%d %H:%M} UTC -> "
                                         f"verdict {verdict_at:%Y-%m-%d %H:%M} UTC) exceeds the objective of "
                                         f"{objective_hours} h; phases: {phases}"}]
    return RTO.verdict("timeline", violations, **facts)


def http_cron_jobs(target: Target):
    """Active jobs whose command makes HTTP calls, or calls a function (one level) that does."""
    if not target.scalar("select to_regclass('cron.job') is not null"):
        return HTTP_CRON.verdict("pg_cron", [], active_jobs=0)
    rows = target.query(
        "select j.jobid, j.jobname, j.schedule, j.command, "
        " (select string_agg(distinct p.pronamespace::regnamespace || '.' || p.proname, ', ') from pg_proc p "
        "  where j.command ~ ('\\m' || p.proname || '\\s*\\(') and p.prosrc ~* %(pattern)s "
        "  and p.pronamespace::regnamespace::text not in ('pg_catalog', 'net', 'extensions')) as via "
        "from cron.job j where j.active order by j.jobid", {"pattern": HTTP_PATTERN})
    violations = []
    for r in rows:
        direct = re.search(HTTP_PATTERN.replace("\\m", "\\b"), r["command"], re.IGNORECASE)
        if direct or r["via"]:
            how = f"calls {direct.group(0).rstrip('( ')}" if direct else f"calls {r['via']}, which makes HTTP calls"
            violations.append({"object": f"cron job {r['jobname'] or r['jobid']} (jobid {r['jobid']})",
                               "problem": f"active, runs '{r['schedule']}' and {how}",
                               "command": r["command"][:120]})
    return HTTP_CRON.verdict("pg_cron", violations, active_jobs=len(rows))


def source_untouched(source: dict):
    """The drill's before/after comparison of what the restore read."""
    violations = [{"object": f"{name}: {path}", "problem": "changed during the restore"}
                  for name, seen in source.items() if "changed" in seen for path in seen["changed"][:SHOWN]]
    facts = {f"{name.replace(' ', '_')}_{'tables' if name == 'production' else 'files'}": seen["files"]
             for name, seen in source.items() if "files" in seen}
    return SOURCE_UNTOUCHED.verdict("restore", violations, **facts)
