"""Store data: counts, freshness against the reference time (RPO), and the integrity a
restore can break. One store per call; every query reads one orders_<store> table."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg import sql

from checks import catalog
from checks.contract import contract, orders_table, stage_columns, stages
from checks.core import Check
from checks.target import Target

SHOWN = 1000  # violating rows fetched per check; past that, one row says how many more there are


@dataclass(frozen=True)
class Clock:
    """The reference time of a run: a restore's target time, or the database's now()."""
    at: datetime
    restore_point: bool

    @property
    def label(self) -> str:
        return "restore point" if self.restore_point else "now"


STORE_NOT_EMPTY = Check("store_not_empty", "the store has orders",
                        "an empty store after a restore means its data was not recovered: restore again")
LAST_ORDER_FRESH = Check("last_order_fresh", "the newest order is recent enough: within the RPO objective of "
                         "the restore point, or within the environment's limit of now",
                         "restore from a later point (PITR), then replay the missing Shopify webhooks")
ORDERS_NOT_DROPPED = Check("orders_not_dropped", "the store holds no fewer orders than in the last run of the "
                           "same environment (Ordak does not delete orders; max_orders_dropped is the tolerance)",
                           "find where the orders went before anything else (a delete, a restore to an older "
                           "point, the wrong database): compare with that run's report; restore nothing over "
                           "production on this finding alone")
NOTHING_AFTER = Check("nothing_after_reference_time", "no order was created after the reference time "
                      "(a restore past its target, or clocks gone wrong)",
                      "if --restore-point is right, the copy went past it: restore again to that point (earlier "
                      "than this copy); if it is not, give --restore-point the time the copy was restored to")
STAGE_TIMESTAMPS = Check("stage_timestamps", "stage timestamps agree with the stage: an order in production, or "
                         "Complete through complete_packing, has every earlier stage complete; no completion "
                         "before its start; none after the reference time",
                         "compare the orders with their stage_events and the backup; fix the rows by hand")
ASSIGNEES_EXIST = Check("assignees_exist", "every assignee of an order exists in staff_shared",
                        "restore the staff rows (staff_shared and auth.users) or unassign the orders")
STAGE_EVENTS = Check("stage_events_present", "every stage an order in production (or Complete through "
                     "complete_packing) has completed has its 'complete' event",
                     "the audit trail lost rows: restore stage_events from the same point as the orders")
# Said of a Packing 'complete' event missing: the one shape an Admin's hand can leave too.
PACKED_BY_HAND = (" (lost, or an Admin closed it from Packing with mark_order_complete, which logs none: if so, "
                  "accept this finding by its key)")
SHOPIFY_DUPLICATES = Check("shopify_duplicates", "rows sharing a Shopify order id or GID are distinct siblings "
                           "of one split order (<store>-<number>-A, -B, ...)",
                           "remove the duplicate rows (keep the older one); a re-delivered webhook must upsert on id")

# SYSTEM.md: the stage trail is required of orders still in production and of Complete orders
# that went through complete_packing. Point-of-sale orders (born Complete), cancelled orders and
# Admin-completed ones reach Complete without it.
# Whether a Complete order went through the stages is decided from evidence its missing trail
# cannot erase (a rule must never exempt an order by the very loss it checks for): its source
# and cancelled_at, and that it reached Packing, shown by any of decorating_complete_ts,
# packing_start_ts (set on entering Packing) or a Decorating 'complete' event. Its Packing
# 'complete' event is what is checked, so it is no evidence: a packed order that lost exactly
# that event is named. (An Admin who closes an order already in Packing leaves the same shape:
# SYSTEM.md describes Admin-completed orders as skipping the trail, so such an order is named
# too, and a team that knows it was closed by hand accepts that one finding by its key.)
# One pass over the store's stage events: for each order, one flag per stage it has a
# 'complete' event for (done_filling, ...). Flags, not an array of stages: an array per order
# costs a memory context per group, and at 1M orders the aggregate spills sooner (20% slower).
_COMPLETED = ("(select order_id, " + ", ".join(f"bool_or(stage = '{s}') as done_{s.lower()}" for s in stages()[:-1])
              + " from public.stage_events where store = %(store)s and event_type = 'complete' group by order_id)")
_TRAIL_REQUIRED = ("(o.stage <> 'Complete' or (o.cancelled_at is null and not ("
                   + contract()["queue"]["point_of_sale"].replace("order_json", "o.order_json") + ") and ("
                   "o.decorating_complete_ts is not null or o.packing_start_ts is not null "
                   "or coalesce(c.done_decorating, false))))")


def _table(store: str) -> sql.Composable:
    return sql.Identifier("public", orders_table(store))


def _hours(delta: timedelta) -> float:
    return round(delta.total_seconds() / 3600, 2)


def store_not_empty(target: Target, store: str):
    blocker = catalog.missing_table(target, orders_table(store))
    if blocker:
        return STORE_NOT_EMPTY.blocked(store, blocker)
    rows = target.query(sql.SQL("select stage::text as stage, count(*) as n from {} group by stage").format(_table(store)))
    per_stage = {r["stage"]: r["n"] for r in rows}
    total = sum(per_stage.values())
    facts = {"orders": total, "per_stage": ", ".join(f"{s}={per_stage.get(s, 0)}" for s in stages())}
    violations = [] if total else [{"object": f"public.{orders_table(store)}", "problem": "table has no orders"}]
    return STORE_NOT_EMPTY.verdict(store, violations, **facts)


def last_order_fresh(target: Target, store: str, clock: Clock, thresholds: dict):
    blocker = catalog.missing_table(target, orders_table(store))
    if blocker:
        return LAST_ORDER_FRESH.blocked(store, blocker)
    newest = target.scalar(sql.SQL("select max(created_at) from {}").format(_table(store)))
    if newest is None:
        return LAST_ORDER_FRESH.blocked(store, f"no orders: see test_store_not_empty[{store}]")
    age = _hours(clock.at - newest)
    if clock.restore_point:
        limit, facts = thresholds["rpo_hours"], {"last_order_at": newest.isoformat(), "rpo_hours": age}
    else:
        limit, facts = thresholds["max_hours_since_last_order"], {"last_order_at": newest.isoformat(),
                                                                   "hours_since_last_order": age}
    violations, fix = [], None
    if age > limit:
        violations.append({"object": f"public.{orders_table(store)}",
                           "problem": f"newest order ({newest:%Y-%m-%d %H:%M %Z}) is {age} h before the "
                                      f"{clock.label} ({clock.at:%Y-%m-%d %H:%M %Z}); the limit is {limit} h"})
    elif age * 60 < -thresholds["clock_skew_minutes"]:
        # An impossible value, never "within objective": data newer than the time it was restored to.
        where = (f"the restore point {clock.at:%Y-%m-%d %H:%M %Z} is {-age:,} h before the newest order "
                 f"({newest:%Y-%m-%d %H:%M %Z}): a typo in --restore-point?") if clock.restore_point else \
            (f"the newest order ({newest:%Y-%m-%d %H:%M %Z}) is {-age:,} h after the database's clock "
             f"({clock.at:%Y-%m-%d %H:%M %Z}): created_at or the clock is wrong")
        violations.append({"object": f"public.{orders_table(store)}", "problem": where})
        fix = ("give --restore-point the time the copy was restored to (it cannot be before the data it holds); "
               "if it is right, the copy holds data from after it: restore again to that point") \
            if clock.restore_point else "check the server's clock and the writers' created_at"
    return LAST_ORDER_FRESH.verdict(store, violations, fix=fix, **facts)


def orders_not_dropped(target: Target, store: str, previous: dict | None, env_name: str, tolerance: int):
    """Ordak does not delete orders in normal operation: a store holding fewer orders than the
    last run of the same environment lost some since, whatever else this run measured."""
    blocker = catalog.missing_table(target, orders_table(store))
    if blocker:
        return ORDERS_NOT_DROPPED.blocked(store, blocker)
    now = target.scalar(sql.SQL("select count(*) from {}").format(_table(store)))
    before = ((previous or {}).get("orders") or {}).get(store)
    if before is None:
        return ORDERS_NOT_DROPPED.verdict(store, [], notes=[{
            "object": f"public.{orders_table(store)}", "problem": f"{now:,} orders; nothing to compare with",
            "note": f"no earlier run of {env_name} in the history holds this store's count"}], orders=now)
    violations = [] if now >= before - tolerance else [{
        "object": f"public.{orders_table(store)}",
        "problem": f"{now:,} orders now, {before:,} in the last run of {env_name} ({previous['at']}, report "
                   f"{previous['report']}): {before - now:,} fewer"}]
    return ORDERS_NOT_DROPPED.verdict(store, violations, orders=now, orders_last_run=before)


def nothing_after(target: Target, store: str, clock: Clock, thresholds: dict):
    blocker = catalog.missing_table(target, orders_table(store))
    if blocker:
        return NOTHING_AFTER.blocked(store, blocker)
    cutoff = clock.at + timedelta(minutes=thresholds["clock_skew_minutes"])
    rows = target.query(sql.SQL("select id, created_at, count(*) over () as total from {} where created_at > %s "
                                "order by created_at desc limit %s").format(_table(store)), (cutoff, SHOWN))
    return NOTHING_AFTER.verdict(store, [
        {"object": r["id"], "problem": f"created {r['created_at']:%Y-%m-%d %H:%M:%S %Z}, after the {clock.label} "
                                       f"({clock.at:%Y-%m-%d %H:%M %Z})"} for r in rows],
        **({"rows_after": rows[0]["total"]} if rows else {}))


def stage_timestamps(target: Target, store: str, clock: Clock, thresholds: dict):
    """One pass over the store and one over its stage events: every rule is a CASE yielding
    its problem or null, and only orders with a problem come back."""
    blocker = catalog.missing_table(target, orders_table(store), "stage_events")
    if blocker:
        return STAGE_TIMESTAMPS.blocked(store, blocker)
    cutoff = clock.at + timedelta(minutes=thresholds["clock_skew_minutes"])
    rules = []
    for stage in stages()[:-1]:  # Complete has no timestamps of its own
        start, done = stage_columns(stage)
        rules.append(sql.SQL("case when {} is null and o.stage > {} and {} then {} end").format(
            sql.Identifier(done), sql.Literal(stage), sql.SQL(_TRAIL_REQUIRED),
            sql.Literal(f"past {stage} but {done} is null")))
        rules.append(sql.SQL("case when {} < {} then {} end").format(
            sql.Identifier(done), sql.Identifier(start), sql.Literal(f"{done} is before {start}")))
        for column in (start, done):
            rules.append(sql.SQL("case when {} > %(cutoff)s then {} end").format(
                sql.Identifier(column), sql.Literal(f"{column} is after the {clock.label}")))
    rows = target.query(sql.SQL(
        "select id, stage, problems, count(*) over () as total from ("
        " select o.id, o.stage::text as stage, array_remove(array[{rules}], null) as problems "
        " from {table} o left join {completed} c on c.order_id = o.id) x "
        "where problems <> '{{}}' order by id limit %(shown)s").format(
        rules=sql.SQL(", ").join(rules), table=_table(store), completed=sql.SQL(_COMPLETED)),
        {"cutoff": cutoff, "shown": SHOWN, "store": store})
    return STAGE_TIMESTAMPS.verdict(store, _capped([{"object": r["id"], "problem": f"{r['stage']}: {problem}"}
                                                    for r in rows for problem in r["problems"]], rows, store),
                                    **({"orders_with_problems": rows[0]["total"]} if rows else {}))


def _capped(violations: list[dict], rows: list[dict], store: str) -> list[dict]:
    """The violations fetched, plus one row saying how many were not (SHOWN at most are)."""
    missing = rows[0]["total"] - len(rows) if rows else 0
    if missing > 0:
        violations.append({"object": f"public.{orders_table(store)}",
                           "problem": f"{missing} more orders like these, not listed (the first {len(rows)} are)"})
    return violations


def assignees_exist(target: Target, store: str):
    blocker = catalog.missing_table(target, orders_table(store), "staff_shared")
    if blocker:
        return ASSIGNEES_EXIST.blocked(store, blocker)
    rows = target.query(sql.SQL(
        "select o.id, o.assignee_id, count(*) over () as total from {} o where o.assignee_id is not null "
        "and not exists (select from public.staff_shared s where s.user_id = o.assignee_id) "
        "order by o.id limit %s").format(_table(store)), (SHOWN,))
    return ASSIGNEES_EXIST.verdict(store, _capped([
        {"object": r["id"], "problem": f"assigned to {r['assignee_id']}, who is not in staff_shared"} for r in rows],
        rows, store), **({"orders_affected": rows[0]["total"]} if rows else {}))


def stage_events_present(target: Target, store: str):
    """One pass over the store and one over its 'complete' events, joined by hash; only
    orders missing an event come back, with the stages they lack."""
    blocker = catalog.missing_table(target, orders_table(store), "stage_events")
    if blocker:
        return STAGE_EVENTS.blocked(store, blocker)
    lacks = [sql.SQL("case when o.stage > {s} and not coalesce(c.{done}, false) then {s} end").format(
        s=sql.Literal(stage), done=sql.Identifier(f"done_{stage.lower()}")) for stage in stages()[:-1]]
    rows = target.query(sql.SQL(
        "select id, missing, count(*) over () as total from ("
        " select o.id, array_remove(array[{lacks}], null) as missing "
        " from {table} o left join {completed} c on c.order_id = o.id where {trail}) x "
        "where missing <> '{{}}' order by id limit %(shown)s").format(
        lacks=sql.SQL(", ").join(lacks), table=_table(store), completed=sql.SQL(_COMPLETED),
        trail=sql.SQL(_TRAIL_REQUIRED)), {"store": store, "shown": SHOWN})
    return STAGE_EVENTS.verdict(store, _capped([
        {"object": r["id"], "problem": f"completed {stage} but stage_events has no 'complete' event for it"
                                       + (PACKED_BY_HAND if stage == "Packing" else "")}
        for r in rows for stage in r["missing"]], rows, store),
        **({"orders_missing_events": rows[0]["total"]} if rows else {}))


# A split sibling's id: <store>-<number>-<suffix>, the suffix a letter, or a number past J.
_SIBLING = r"^[a-z]+-[0-9]+-[A-Z0-9]+$"


def shopify_duplicates(target: Target, store: str):
    """Rows that share a Shopify id must be distinct siblings of one split (SYSTEM.md): all
    suffixed, all of one order number, no suffix twice. Anything else is a duplicate. One pass:
    both ids are grouped at once (grouping sets)."""
    blocker = catalog.missing_table(target, orders_table(store))
    if blocker:
        return SHOPIFY_DUPLICATES.blocked(store, blocker)
    # Grouping keeps only each id list (a sort-free aggregate); the sibling rules then run on
    # the few shared ids alone.
    rows = target.query(sql.SQL(
        "select key, value, ids, s.* from ("
        " select case when grouping(shopify_order_id) = 0 then 'shopify_order_id' else 'shopify_order_gid' end as key,"
        "  coalesce(shopify_order_id::text, shopify_order_gid) as value, array_agg(id) as ids "
        " from {t} group by grouping sets ((shopify_order_id), (shopify_order_gid)) having count(*) > 1) g, "
        "lateral (select bool_and(i ~ %(sibling)s) as all_suffixed, "
        "  count(distinct substring(i from '^([a-z]+-[0-9]+)-')) as numbers, "
        "  count(distinct upper(substring(i from '-([A-Za-z0-9]+)$'))) = count(*) as distinct_suffixes "
        "  from unnest(g.ids) i) s "
        "where value is not null and not (all_suffixed and numbers = 1 and distinct_suffixes) "
        "order by value limit %(shown)s").format(t=_table(store)), {"sibling": _SIBLING, "shown": SHOWN})
    return SHOPIFY_DUPLICATES.verdict(store, [
        {"object": ", ".join(sorted(r["ids"])), "problem": f"share {r['key']} {r['value']} but are not distinct siblings of "
                                                   f"one split: {_why_not_siblings(r)}"} for r in rows])


def _why_not_siblings(group: dict) -> str:
    if not group["all_suffixed"]:
        return "a row without a -A/-B suffix sits beside the others (the same order ingested twice)"
    if group["numbers"] != 1:
        return "their ids carry different order numbers"
    return "the same suffix appears twice"
