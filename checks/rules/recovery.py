"""Checks of a restore itself: canaries, data loss (RPO) and time to recover (RTO) against
the runbook's objectives, HTTP calls from pg_cron on the restored copy, and a restore that
left its sources as they were. Measurements are the verdicts' facts."""

from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from psycopg import sql

from checks.connect.target import Target
from checks.contract import orders_table
from checks.core import Check
from checks.rules import catalog
from checks.rules import compare as differences
from checks.rules import privileges
from checks.rules.compare import Span


@dataclass(frozen=True)
class Canary:
    """An order the drill's workload ingested, with its commit time as the server read it: a
    restore to time T must hold exactly the canaries committed at or before T."""
    id: str
    store: str
    committed_at: datetime

    def record(self) -> dict:
        return {**asdict(self), "committed_at": self.committed_at.isoformat()}

    @classmethod
    def from_record(cls, data: dict) -> "Canary":
        return cls(data["id"], data["store"], datetime.fromisoformat(data["committed_at"]))


SHOWN = 25

CANARIES = Check("canaries", "every canary order committed up to the restore point is in the restored database, "
                 "and none committed after it",
                 "the restore did not reach, or went past, its target: restore again to the restore point")
DATA_LOSS = Check("data_loss_within_objective", "per store, what the restore lost (the orders production held "
                  "before the incident that it lacks, back to the oldest of them, or else back to the newest "
                  "recovered commit) is within the RPO objective, and it holds nothing from after the incident",
                  "restore again from a point that loses less, then replay the Shopify webhooks of the lost window")
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


def canaries(target: Target, store: str, ledger: list[Canary], restore_point: datetime):
    ours = [c for c in ledger if c.store == store]
    present = _present(target, store, [c.id for c in ours])
    missing = [c for c in ours if c.committed_at <= restore_point and c.id not in present]
    extra = [c for c in ours if c.committed_at > restore_point and c.id in present]
    violations = [{"object": c.id, "problem": f"committed {c.committed_at:%H:%M:%S.%f} UTC, before the restore point "
                                             f"({restore_point:%H:%M:%S.%f}), and missing"} for c in missing[:SHOWN]]
    violations += [{"object": c.id, "problem": f"committed {c.committed_at:%H:%M:%S.%f} UTC, after the restore point "
                                              f"({restore_point:%H:%M:%S.%f}), and present"} for c in extra[:SHOWN]]
    newest = max((c.committed_at for c in ours if c.id in present), default=None)
    # Canaries missing from before the newest one present: holes, not a short tail.
    holes = newest is not None and any(c.committed_at < newest for c in missing)
    fix = None
    if extra or holes:
        fix = ("the restore went past the restore point (or holds damage from after it): restore again with the "
               "recovery target at the restore point, earlier than this one")
    elif missing:
        fix = ("the restore stopped before the restore point: restore again with the recovery target at the restore "
               "point, later than this one (is every WAL segment up to it archived?)")
    before = sum(c.committed_at <= restore_point for c in ours)
    return CANARIES.verdict(store, violations, fix=fix, canaries_before=before, canaries_after=len(ours) - before,
                            **({"missing": len(missing)} if missing else {}), **({"unexpected": len(extra)} if extra else {}))


def _present(target: Target, store: str, ids: list[str]) -> set[str]:
    if not ids or not target.scalar("select to_regclass(%s) is not null", (f"public.{orders_table(store)}",)):
        return set()
    rows = target.query(sql.SQL("select id from {} where id = any(%s)").format(
        sql.Identifier("public", orders_table(store))), (ids,))
    return {r["id"] for r in rows}


def data_loss(target: Target, store: str, incident_at: datetime, objective_hours: float,
              ledger: list[Canary] | None = None, compare: Target | None = None, slack_minutes: float = 0):
    """Data loss is what is missing, counted, and the time it spans: the orders production held
    before the incident that the restored copy lacks (from the compared environment, and in a
    drill from the canaries' ledger too), and the newest recovered commit. The loss runs from
    the oldest of those to the incident. A copy holding commits after the incident (beyond
    `slack_minutes`, for an incident time a person noted) went past it: a failure, never "0 s".

    Newest recovered commit: the newest canary present (a drill), else the newest order
    ingested (created_at: the runbook's "last order ingested" clock)."""
    table = f"public.{orders_table(store)}"
    present_here = target.scalar("select to_regclass(%s) is not null", (table,))
    missing = Span()
    if compare is not None and present_here and not catalog.missing_table(compare, orders_table(store)):
        missing.merge(differences.difference(target, compare, store, incident_at).missing)
    if ledger is not None:
        ours = [c for c in ledger if c.store == store]
        here = _present(target, store, [c.id for c in ours])
        before = [c for c in ours if c.committed_at <= incident_at and c.id not in here]
        # Canaries the compared copy holds were counted with it already.
        counted = _present(compare, store, [c.id for c in before]) if compare is not None and present_here else set()
        missing.add([c.committed_at for c in before if c.id not in counted])
        recovered = [c.committed_at for c in ours if c.id in here]
        newest, source = max(recovered, default=None), "newest canary order recovered"
    elif present_here:
        newest = target.scalar(sql.SQL("select max(created_at) from {}").format(
            sql.Identifier("public", orders_table(store))))
        source = "newest order ingested (created_at)"
    else:
        newest, source = None, f"{table} is missing"
    if newest is None and not missing.count:
        return DATA_LOSS.verdict(store, [{"object": table, "problem": f"nothing recovered to measure from ({source})"}],
                                 fix=differences.EARLIER)
    starts = [t for t in (newest, missing.oldest) if t is not None]
    loss = (incident_at - min(starts)).total_seconds()
    facts = {"data_loss_seconds": round(loss, 3), "data_loss_hours": round(loss / 3600, 4),
             "orders_missing": missing.count,
             **({"missing_created_from": missing.oldest.isoformat(), "missing_created_to": missing.newest.isoformat(),
                 "missing_span_hours": missing.hours()} if missing.count else {}),
             "newest_recovered_commit": newest.isoformat() if newest else None, "measured_from": source,
             "incident_at": incident_at.isoformat(), "objective_hours": objective_hours}
    past = newest is not None and (newest - incident_at).total_seconds() > slack_minutes * 60
    holes = bool(missing.count and newest is not None and missing.oldest < newest)
    violations = []
    if past:
        violations.append({"object": store, "problem": (
            f"the restored copy holds commits made after the incident: its newest ({_at(newest)}) is "
            f"{_span(newest - incident_at)} after the incident ({_at(incident_at)}); the restore went past the "
            f"incident, so the damage may be in the copy too")})
    if loss > objective_hours * 3600:
        what = (f"{missing.count:,} order(s) production held before the incident are missing, created "
                f"{_at(missing.oldest)} to {_at(missing.newest)}" if missing.count else
                f"the newest recovered commit is {_at(newest)}")
        violations.append({"object": store, "problem": (
            f"data loss {loss / 3600:,.2f} h exceeds the RPO objective of {objective_hours} h: {what} "
            f"(incident {_at(incident_at)})")})
    fix = differences.EARLIER if past or holes else differences.LATER
    return DATA_LOSS.verdict(store, violations, fix=fix, **facts)


def _at(moment: datetime) -> str:
    return f"{moment.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC"


def _span(delta) -> str:
    seconds = delta.total_seconds()
    return f"{seconds:,.1f} s" if seconds < 120 else f"{seconds / 3600:,.2f} h"


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
    blind = privileges.blocker(target, "cron.job")
    if blind:  # an empty list from a role that sees no job is no all-clear
        return HTTP_CRON.blocked("pg_cron", blind)
    jobs = catalog.cron_jobs(target) or []
    active = [j for j in jobs if j["active"]]
    violations = [{"object": f"cron job {j['name'] or j['jobid']} (jobid {j['jobid']})",
                   "problem": f"active, runs '{j['schedule']}' and {j['http']}", "command": j["command"][:120]}
                  for j in active if j["http"]]
    paused = [j["name"] or str(j["jobid"]) for j in jobs if j["http"] and not j["active"]]
    return HTTP_CRON.verdict("pg_cron", violations, active_jobs=len(active),
                             **({"paused_http_jobs": ", ".join(paused)} if paused else {}))


def pause_http_cron_jobs(target: Target) -> list[str]:
    """What a person does first on a restored copy: every active job that makes HTTP calls is
    paused with cron.alter_job(..., active := false), as the database owner (postgres) does it
    on Supabase. Returns the names of the jobs paused."""
    jobs = [j for j in catalog.cron_jobs(target) or [] if j["active"] and j["http"]]
    with target.connect() as conn:
        for job in jobs:
            conn.execute("select cron.alter_job(%s, active := false)", (job["jobid"],))
        conn.commit()
    return [j["name"] or str(j["jobid"]) for j in jobs]


def source_untouched(source: dict):
    """The drill's before/after comparison of what the restore read."""
    violations = [{"object": f"{name}: {path}", "problem": "changed during the restore"}
                  for name, seen in source.items() if "changed" in seen for path in seen["changed"][:SHOWN]]
    facts = {f"{name.replace(' ', '_')}_{'tables' if name == 'production' else 'files'}": seen["files"]
             for name, seen in source.items() if "files" in seen}
    return SOURCE_UNTOUCHED.verdict("restore", violations, **facts)
