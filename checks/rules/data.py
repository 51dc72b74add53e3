"""Store data: counts, freshness against the reference time (RPO), and the integrity a
restore can break. One store per call. What two checks can learn from one read is read once
per run and kept for the other (the store's counts; the two stage-trail rules)."""

import weakref
from datetime import datetime, timedelta

from psycopg import sql

from checks.connect.target import Target
from checks.contract import contract, orders_table, stage_columns, stages
from checks.core import Check, Clock
from checks.rules import catalog

SHOWN = 1000  # violating rows fetched per check; past that, one row says how many more there are


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
#
# An order's 'complete' events are folded into one small value, a bit per stage (c.done).
# The ORDER BY inside the aggregate is what keeps it small: PostgreSQL never hashes an ordered
# aggregate, so the store's events arrive as one sorted stream, folded as they pass, and no
# hash table of a million orders spills at 4 MB of work_mem. Where the events lie in order on
# disk (pg_stats.correlation of order_id near 1) the planner streams them from the
# (store, order_id) index; where they do not (appended in time order, or shuffled), reading
# them through that index would visit a page per event, and it sorts them instead, in
# parallel. Either way the fold meets the orders, read once in id order, in a merge join.
# (bench/RESULTS.md, issue 20, has both layouts measured.)
_TRAIL_STAGES = stages()[:-1]  # Complete has no trail of its own


def _bit(stage: str) -> int:
    return 1 << _TRAIL_STAGES.index(stage)


_DONE = ("(select order_id, bit_or(case stage "
         + " ".join(f"when '{s}' then {_bit(s)}" for s in _TRAIL_STAGES)
         + " end order by order_id) as done from public.stage_events "
         "where store = %(store)s and event_type = 'complete' group by order_id order by order_id)")
_TRAIL_REQUIRED = ("(o.stage <> 'Complete' or (o.cancelled_at is null and not ("
                   + contract()["queue"]["point_of_sale"].replace("order_json", "o.order_json") + ") and ("
                   "o.decorating_complete_ts is not null or o.packing_start_ts is not null "
                   f"or coalesce(c.done, 0) & {_bit('Decorating')} <> 0)))")


def _table(store: str) -> sql.Composable:
    return sql.Identifier("public", orders_table(store))


def _hours(delta: timedelta) -> float:
    return round(delta.total_seconds() / 3600, 2)


# -- one pass over a store's orders for every count the run needs -------------------------------
# The counts per stage (store_not_empty), the total (orders_not_dropped) and the truths the
# queue RPCs are checked against (checks/rules/queue.py) come from one pass over orders_<store>,
# grouped by what they depend on: the stage, whether there is an assignee, whether it is a
# point-of-sale order (at most 20 groups, whatever the size).
# The contract's queue-stats rules read `stage` and `assignee_id` (null or not): each group
# stands for its rows, with a placeholder uuid for "assigned".
_COUNTS: "weakref.WeakKeyDictionary[Target, dict[str, dict]]" = weakref.WeakKeyDictionary()


def count_query(store: str) -> sql.Composable:
    rules = contract()["queue"]
    stats = [sql.SQL("({}) as {}").format(sql.SQL(rule), sql.Identifier(f"stats:{name}"))
             for name, rule in rules["stats"].items()]
    return sql.SQL(
        "select g.stage::text as stage, g.unassigned, g.pos, ({complete}) as complete, g.n, {stats} "
        "from (select stage, assignee_id is null as unassigned, {pos} as pos, count(*) as n "
        "      from {table} group by 1, 2, 3) g, "
        "lateral (select case when not g.unassigned then '00000000-0000-0000-0000-000000000000'::uuid end "
        "         as assignee_id) a").format(
        complete=sql.SQL(rules["complete"]), stats=sql.SQL(", ").join(stats),
        pos=sql.SQL(rules["point_of_sale"]), table=_table(store))


def tally(groups: list[dict]) -> dict:
    """The counts a run needs, from count_query's groups."""
    def n(keep) -> int:
        return sum(g["n"] for g in groups if keep(g))
    return {"orders": n(lambda g: True),
            "per_stage": {s: n(lambda g, s=s: g["stage"] == s) for s in {g["stage"] for g in groups}},
            "unassigned": {s: n(lambda g, s=s: g["unassigned"] and g["stage"] == s) for s in _TRAIL_STAGES},
            "open": n(lambda g: not g["pos"] and not g["complete"]), "complete": n(lambda g: not g["pos"] and g["complete"]),
            "stats": {name: n(lambda g, name=name: g[f"stats:{name}"]) for name in contract()["queue"]["stats"]}}


def remember_counts(target: Target, store: str, counts: dict) -> None:
    _COUNTS.setdefault(target, {})[store] = counts


def store_counts(target: Target, store: str) -> dict:
    """The store's counts, from the run's one pass over its orders (made now if no check made it
    yet; the queue checks make it in the snapshot they call the RPCs in)."""
    counts = _COUNTS.get(target, {}).get(store)
    if counts is None:
        counts = tally(target.query(count_query(store)))
        remember_counts(target, store, counts)
    return counts


def store_not_empty(target: Target, store: str):
    blocker = catalog.missing_table(target, orders_table(store))
    if blocker:
        return STORE_NOT_EMPTY.blocked(store, blocker)
    counts = store_counts(target, store)
    per_stage, total = counts["per_stage"], counts["orders"]
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
    now = store_counts(target, store)["orders"]
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


# -- the stage trail: timestamps and 'complete' events, one statement per store ----------------
_TRAILS: "weakref.WeakKeyDictionary[Target, dict[tuple, list[dict]]]" = weakref.WeakKeyDictionary()


def _trail_statement(store: str) -> sql.Composable:
    """Both stage-trail rules of one store in one statement: the orders, read once in id order,
    meet the fold of their 'complete' events (_DONE); each rule is a CASE yielding its problem
    or null, written out only for the few orders a cheap test flags. Up to SHOWN orders per
    rule come back, by id, with how many there are in all."""
    trail, ts_rules, pasts, ts_flags, lacks, lack_flags = sql.SQL(_TRAIL_REQUIRED), [], [], [], [], []
    for stage in _TRAIL_STAGES:
        start, done = (sql.Identifier("o", c) for c in stage_columns(stage))
        past = sql.SQL("{} is null and o.stage > {}").format(done, sql.Literal(stage))
        ts_rules.append(sql.SQL("case when {} and {} then {} end").format(
            past, trail, sql.Literal(f"past {stage} but {stage_columns(stage)[1]} is null")))
        ts_rules.append(sql.SQL("case when {} < {} then {} end").format(
            done, start, sql.Literal(f"{stage_columns(stage)[1]} is before {stage_columns(stage)[0]}")))
        for column in stage_columns(stage):
            ts_rules.append(sql.SQL("case when {} > %(cutoff)s then {} || %(label)s end").format(
                sql.Identifier("o", column), sql.Literal(f"{column} is after the ")))
        pasts.append(past)
        ts_flags.append(sql.SQL("{} < {}").format(done, start))
        lack = sql.SQL("o.stage > {} and coalesce(c.done, 0) & {} = 0").format(sql.Literal(stage),
                                                                                 sql.Literal(_bit(stage)))
        lacks.append(sql.SQL("case when {} then {} end").format(lack, sql.Literal(stage)))
        lack_flags.append(lack)
    names = [c for stage in _TRAIL_STAGES for c in stage_columns(stage)]
    columns = [sql.Identifier(c) for c in names]
    ts_flags.insert(0, sql.SQL("({}) and {}").format(sql.SQL(" or ").join(pasts), trail))
    ts_flags.append(sql.SQL("greatest({}) > %(cutoff)s").format(sql.SQL(", ").join(
        sql.Identifier("o", c) for c in names)))
    return sql.SQL(
        "with found as materialized ("
        " select o.id, o.stage::text as stage, "
        "  case when {ts_any} then array_remove(array[{ts_rules}], null) else '{{}}' end as problems, "
        "  case when {trail} and ({ev_any}) then array_remove(array[{lacks}], null) else '{{}}' end as missing "
        " from (select id, stage, {columns}, cancelled_at, order_json from {table} order by id) o "
        " left join {done} c on c.order_id = o.id "
        " where {ts_any} or {trail} and ({ev_any})) "
        "(select 'stage_timestamps' as rule, id, stage, problems as found, count(*) over () as total "
        " from found where problems <> '{{}}' order by id limit %(shown)s) "
        "union all "
        "(select 'stage_events_present', id, stage, missing, count(*) over () "
        " from found where missing <> '{{}}' order by id limit %(shown)s)").format(
        ts_any=sql.SQL(" or ").join(ts_flags), ts_rules=sql.SQL(", ").join(ts_rules), trail=trail,
        ev_any=sql.SQL(" or ").join(lack_flags), lacks=sql.SQL(", ").join(lacks), columns=sql.SQL(", ").join(columns),
        table=_table(store), done=sql.SQL(_DONE))


def _trail_findings(target: Target, store: str, rule: str, cutoff: datetime | None = None, label: str = "") -> list[dict]:
    """Rows of one stage-trail rule for one store. The one statement answers both rules: what
    it found for the other is kept for that rule's check, in this run (one snapshot for both).
    The events rule does not depend on the reference time; the timestamps rule does."""
    found = _TRAILS.setdefault(target, {})
    key = (store, "stage_events_present") if rule == "stage_events_present" else (store, rule, cutoff, label)
    if key not in found:
        rows = target.query(_trail_statement(store), {"store": store, "cutoff": cutoff, "label": label, "shown": SHOWN})
        found[(store, "stage_events_present")] = [r for r in rows if r["rule"] == "stage_events_present"]
        if cutoff is not None:
            found[(store, "stage_timestamps", cutoff, label)] = [r for r in rows if r["rule"] == "stage_timestamps"]
    return found[key]


def stage_timestamps(target: Target, store: str, clock: Clock, thresholds: dict):
    """Every order's stage timestamps against its stage and the reference time (with the
    stage events rule, one statement per store: see _trail_statement)."""
    blocker = catalog.missing_table(target, orders_table(store), "stage_events")
    if blocker:
        return STAGE_TIMESTAMPS.blocked(store, blocker)
    cutoff = clock.at + timedelta(minutes=thresholds["clock_skew_minutes"])
    rows = _trail_findings(target, store, "stage_timestamps", cutoff, clock.label)
    return STAGE_TIMESTAMPS.verdict(store, _capped([{"object": r["id"], "problem": f"{r['stage']}: {problem}"}
                                                    for r in rows for problem in r["found"]], rows, store),
                                    **({"orders_with_problems": rows[0]["total"]} if rows else {}))


def _capped(violations: list[dict], rows: list[dict], store: str) -> list[dict]:
    """The violations fetched, plus one row saying how many were not (SHOWN at most are)."""
    missing = rows[0]["total"] - len(rows) if rows else 0
    if missing > 0:
        violations.append({"object": f"public.{orders_table(store)}",
                           "problem": f"{missing} more orders like these, not listed (the first {len(rows)} are)"})
    return violations


def assignees_exist(target: Target, store: str):
    """The few distinct assignees first (walked through an index on assignee_id where one
    exists: a lookup per assignee, not a read of every order), then staff_shared; the orders
    are read only for an assignee who is missing."""
    blocker = catalog.missing_table(target, orders_table(store), "staff_shared")
    if blocker:
        return ASSIGNEES_EXIST.blocked(store, blocker)
    table = _table(store)
    if _leading_btree(target, orders_table(store), "assignee_id"):
        distinct = sql.SQL(
            "with recursive a (assignee_id) as ("
            " (select assignee_id from {t} where assignee_id is not null order by assignee_id limit 1) union all "
            " select (select o.assignee_id from {t} o where o.assignee_id > a.assignee_id order by o.assignee_id limit 1) "
            " from a where a.assignee_id is not null) "
            "select assignee_id from a where assignee_id is not null").format(t=table)
    else:
        distinct = sql.SQL("select distinct assignee_id from {} where assignee_id is not null").format(table)
    gone = [r["assignee_id"] for r in target.query(sql.SQL(
        "select d.assignee_id from ({}) d where not exists "
        "(select from public.staff_shared s where s.user_id = d.assignee_id)").format(distinct))]
    rows = target.query(sql.SQL(
        "select o.id, o.assignee_id, count(*) over () as total from {} o where o.assignee_id = any(%s) "
        "order by o.id limit %s").format(table), (gone, SHOWN)) if gone else []
    return ASSIGNEES_EXIST.verdict(store, _capped([
        {"object": r["id"], "problem": f"assigned to {r['assignee_id']}, who is not in staff_shared"} for r in rows],
        rows, store), **({"orders_affected": rows[0]["total"]} if rows else {}))


def _leading_btree(target: Target, table: str, column: str) -> bool:
    """Whether a valid btree index of public.<table> leads with <column> (and covers every row)."""
    return bool(target.scalar(
        "select exists (select from pg_index i join pg_class c on c.oid = i.indexrelid "
        " join pg_am m on m.oid = c.relam join pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[0] "
        " where i.indrelid = (select oid from pg_class where relname = %s "
        "                     and relnamespace = (select oid from pg_namespace where nspname = 'public')) "
        " and i.indisvalid and i.indpred is null and m.amname = 'btree' and a.attname = %s)", (table, column)))


def stage_events_present(target: Target, store: str):
    """Every stage an order has completed has its 'complete' event (with the timestamps rule,
    one statement per store: see _trail_statement)."""
    blocker = catalog.missing_table(target, orders_table(store), "stage_events")
    if blocker:
        return STAGE_EVENTS.blocked(store, blocker)
    rows = _trail_findings(target, store, "stage_events_present")
    return STAGE_EVENTS.verdict(store, _capped([
        {"object": r["id"], "problem": f"completed {stage} but stage_events has no 'complete' event for it"
                                       + (PACKED_BY_HAND if stage == "Packing" else "")}
        for r in rows for stage in r["found"]], rows, store),
        **({"orders_missing_events": rows[0]["total"]} if rows else {}))


# A split sibling's id: <store>-<number>-<suffix>, the suffix a letter, or a number past J.
_SIBLING = r"^[a-z]+-[0-9]+-[A-Z0-9]+$"
_SUFFIX_CHARACTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_SHOPIFY_KEYS = {"shopify_order_id": "shopify_order_id::text", "shopify_order_gid": "shopify_order_gid"}


def shopify_duplicates(target: Target, store: str):
    """Rows that share a Shopify id must be distinct siblings of one split (SYSTEM.md): all
    suffixed, all of one order number, no suffix twice. Anything else is a duplicate.

    One pass per key, in the order of its index where there is one: the values held more than
    once are found from the index alone (1M orders hold ~80k such values, their legitimate
    splits), and only their rows are read, by value. The sibling rule is plain string work on
    those rows: the id pattern, and the order number as what is left when the suffix's
    characters are trimmed from the right (one per id, no sort per group). No suffix twice
    means no id twice among them: a valid unique index on id guarantees it, so it is counted
    only where there is none."""
    blocker = catalog.missing_table(target, orders_table(store))
    if blocker:
        return SHOPIFY_DUPLICATES.blocked(store, blocker)
    unique_ids = any(k["columns"] == ["id"] and k["valid"] for k in catalog.keys(target, "public", orders_table(store)))
    table, parts = _table(store), []
    for key, value in _SHOPIFY_KEYS.items():
        parts.append(sql.SQL(
            "select {name} as key, {value} as value, g.* "
            "from (select {key} as k from {t} where {key} is not null group by 1 having count(*) > 1) d, "
            "lateral (select array_agg(o.id) as ids, bool_and(o.id ~ %(sibling)s) as all_suffixed, "
            "  min(rtrim(o.id, %(suffix)s)) = max(rtrim(o.id, %(suffix)s)) as one_number, "
            "  {distinct} as distinct_suffixes from {t} o where o.{key} = d.k) g "
            "where not (g.all_suffixed and g.one_number and g.distinct_suffixes)").format(
            name=sql.Literal(key), value=sql.SQL(value.replace(key, "d.k")), key=sql.Identifier(key), t=table,
            distinct=sql.SQL("true" if unique_ids else "count(distinct o.id) = count(*)")))
    rows = target.query(sql.SQL("select * from ({}) x order by value limit %(shown)s").format(
        sql.SQL(" union all ").join(parts)), {"sibling": _SIBLING, "suffix": _SUFFIX_CHARACTERS, "shown": SHOWN})
    return SHOPIFY_DUPLICATES.verdict(store, [
        {"object": ", ".join(sorted(r["ids"])), "problem": f"share {r['key']} {r['value']} but are not distinct siblings of "
                                                   f"one split: {_why_not_siblings(r)}"} for r in rows])


def _why_not_siblings(group: dict) -> str:
    if not group["all_suffixed"]:
        return "a row without a -A/-B suffix sits beside the others (the same order ingested twice)"
    if not group["one_number"]:
        return "their ids carry different order numbers"
    return "the same suffix appears twice"
