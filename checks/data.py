"""Store data: counts, freshness against the reference time (RPO), and the integrity a
restore can break. One store per call; every query reads one orders_<store> table."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg import sql

from checks.contract import orders_table, stage_columns, stages
from checks.core import Check
from checks.errors import SetupError
from checks.target import Target

SHOWN = 200  # violating rows fetched per check: enough to name them, never the whole table


@dataclass(frozen=True)
class Clock:
    """The reference time of a run: a restore's target time, or the database's now()."""
    at: datetime
    restore_point: bool

    @property
    def label(self) -> str:
        return "restore point" if self.restore_point else "now"


def parse_restore_point(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise SetupError(f"--restore-point {text!r} is not an ISO-8601 time; e.g. 2026-11-20T14:30:00Z") from None
    if moment.tzinfo is None:
        raise SetupError(f"--restore-point {text!r} has no time zone; add one, e.g. {text}Z for UTC")
    return moment


STORE_NOT_EMPTY = Check("store_not_empty", "the store has orders",
                        "an empty store after a restore means its data was not recovered: restore again")
LAST_ORDER_FRESH = Check("last_order_fresh", "the newest order is recent enough: within the RPO objective of "
                         "the restore point, or within the environment's limit of now",
                         "restore from a later point (PITR), then replay the missing Shopify webhooks")
NOTHING_AFTER = Check("nothing_after_reference_time", "no order was created after the reference time "
                      "(a restore past its target, or clocks gone wrong)",
                      "check the restore target time; rows from after it are not what was asked for")
STAGE_TIMESTAMPS = Check("stage_timestamps", "stage timestamps agree with the stage: earlier stages complete, "
                         "no completion before its start, none after the reference time",
                         "compare the orders with their stage_events and the backup; fix the rows by hand")
ASSIGNEES_EXIST = Check("assignees_exist", "every assignee of an order exists in staff_shared",
                        "restore the staff rows (staff_shared and auth.users) or unassign the orders")
STAGE_EVENTS = Check("stage_events_present", "every stage an order has completed has its 'complete' event",
                     "the audit trail lost rows: restore stage_events from the same point as the orders")
SHOPIFY_IDS_UNIQUE = Check("shopify_ids_unique", "no two orders share a Shopify order id or GID",
                           "remove the duplicates (keep the older row) and restore the unique constraint")


def _table(store: str) -> sql.Composable:
    return sql.Identifier("public", orders_table(store))


def _hours(delta: timedelta) -> float:
    return round(delta.total_seconds() / 3600, 2)


def store_not_empty(target: Target, store: str):
    rows = target.query(sql.SQL("select stage::text as stage, count(*) as n from {} group by stage").format(_table(store)))
    per_stage = {r["stage"]: r["n"] for r in rows}
    total = sum(per_stage.values())
    facts = {"orders": total, "per_stage": ", ".join(f"{s}={per_stage.get(s, 0)}" for s in stages())}
    violations = [] if total else [{"object": f"public.{orders_table(store)}", "problem": "table has no orders"}]
    return STORE_NOT_EMPTY.verdict(store, violations, **facts)


def last_order_fresh(target: Target, store: str, clock: Clock, thresholds: dict):
    newest = target.scalar(sql.SQL("select max(created_at) from {}").format(_table(store)))
    if newest is None:
        return LAST_ORDER_FRESH.blocked(store, f"no orders: see test_store_not_empty[{store}]")
    age = _hours(clock.at - newest)
    if clock.restore_point:
        limit, facts = thresholds["rpo_hours"], {"last_order_at": newest.isoformat(), "rpo_hours": age}
    else:
        limit, facts = thresholds["max_hours_since_last_order"], {"last_order_at": newest.isoformat(),
                                                                   "hours_since_last_order": age}
    violations = []
    if age > limit:
        violations.append({"object": f"public.{orders_table(store)}",
                           "problem": f"newest order ({newest:%Y-%m-%d %H:%M %Z}) is {age} h before the "
                                      f"{clock.label} ({clock.at:%Y-%m-%d %H:%M %Z}); the limit is {limit} h"})
    return LAST_ORDER_FRESH.verdict(store, violations, **facts)


def nothing_after(target: Target, store: str, clock: Clock, thresholds: dict):
    cutoff = clock.at + timedelta(minutes=thresholds["clock_skew_minutes"])
    rows = target.query(sql.SQL("select id, created_at, count(*) over () as total from {} where created_at > %s "
                                "order by created_at desc limit %s").format(_table(store)), (cutoff, SHOWN))
    return NOTHING_AFTER.verdict(store, [
        {"object": r["id"], "problem": f"created {r['created_at']:%Y-%m-%d %H:%M:%S %Z}, after the {clock.label} "
                                       f"({clock.at:%Y-%m-%d %H:%M %Z})"} for r in rows],
        **({"rows_after": rows[0]["total"]} if rows else {}))


def stage_timestamps(target: Target, store: str, clock: Clock, thresholds: dict):
    """One pass over the store: every rule is a CASE yielding the problem, or null."""
    cutoff = clock.at + timedelta(minutes=thresholds["clock_skew_minutes"])
    rules = []
    for rank, stage in enumerate(stages()[:-1]):  # Complete has no timestamps of its own
        start, done = stage_columns(stage)
        rules.append(sql.SQL("case when rank > {} and {} is null then {} end").format(
            sql.Literal(rank), sql.Identifier(done), sql.Literal(f"past {stage} but {done} is null")))
        rules.append(sql.SQL("case when {} < {} then {} end").format(
            sql.Identifier(done), sql.Identifier(start), sql.Literal(f"{done} is before {start}")))
        for column in (start, done):
            rules.append(sql.SQL("case when {} > %(cutoff)s then {} end").format(
                sql.Identifier(column), sql.Literal(f"{column} is after the {clock.label}")))
    query = sql.SQL(
        "select id, stage::text as stage, problem, count(*) over () as total from ("
        " select id, stage, unnest(array[{rules}]) as problem from ("
        "  select *, array_position(enum_range(null::public.stage_type), stage) - 1 as rank from {table}) o"
        ") x where problem is not null order by id limit %(shown)s"
    ).format(rules=sql.SQL(", ").join(rules), table=_table(store))
    rows = target.query(query, {"cutoff": cutoff, "shown": SHOWN})
    return STAGE_TIMESTAMPS.verdict(store, [{"object": r["id"], "problem": f"{r['stage']}: {r['problem']}"}
                                            for r in rows], **({"problems": rows[0]["total"]} if rows else {}))


def assignees_exist(target: Target, store: str):
    rows = target.query(sql.SQL(
        "select o.id, o.assignee_id, count(*) over () as total from {} o where o.assignee_id is not null "
        "and not exists (select from public.staff_shared s where s.user_id = o.assignee_id) "
        "order by o.id limit %s").format(_table(store)), (SHOWN,))
    return ASSIGNEES_EXIST.verdict(store, [
        {"object": r["id"], "problem": f"assigned to {r['assignee_id']}, who is not in staff_shared"} for r in rows],
        **({"orders_affected": rows[0]["total"]} if rows else {}))


def stage_events_present(target: Target, store: str):
    rows = target.query(sql.SQL(
        "with completed as ("
        " select o.id, s.label::text as stage from {} o, "
        "  unnest(enum_range(null::public.stage_type)) with ordinality as s (label, n) "
        " where s.n < array_position(enum_range(null::public.stage_type), o.stage)) "
        "select c.id, c.stage, count(*) over () as total from completed c where not exists ("
        " select from public.stage_events e where e.store = %s and e.order_id = c.id "
        "  and e.stage = c.stage and e.event_type = 'complete') "
        "order by c.id, c.stage limit %s").format(_table(store)), (store, SHOWN))
    return STAGE_EVENTS.verdict(store, [
        {"object": r["id"], "problem": f"completed {r['stage']} but stage_events has no 'complete' event for it"}
        for r in rows], **({"missing_events": rows[0]["total"]} if rows else {}))


def shopify_ids_unique(target: Target, store: str):
    rows = target.query(sql.SQL(
        "select 'shopify_order_id' as key, shopify_order_id::text as value, array_agg(id order by id) as ids "
        "from {t} where shopify_order_id is not null group by shopify_order_id having count(*) > 1 "
        "union all "
        "select 'shopify_order_gid', shopify_order_gid, array_agg(id order by id) "
        "from {t} where shopify_order_gid is not null group by shopify_order_gid having count(*) > 1 "
        "limit %s").format(t=_table(store)), (SHOWN,))
    return SHOPIFY_IDS_UNIQUE.verdict(store, [
        {"object": ", ".join(r["ids"]), "problem": f"share {r['key']} {r['value']}"} for r in rows])
