"""Comparing a store's orders with another environment, day by day, up to the reference time.

Each side is summarised per UTC day as a count and an order-independent checksum of the
order ids (a sum of 64-bit hashes), computed by the database. Only days whose summaries
differ are read id by id, one day at a time, so memory stays flat however big the store.
"""

from datetime import datetime

from psycopg import sql

from checks import catalog
from checks.contract import orders_table
from checks.core import Check
from checks.target import Target

SHOWN_IDS = 100  # ids named per day and side; the count is always given

MATCHES = Check("matches_compared_env", "up to the reference time, every day holds the same orders as the "
                "compared environment",
                "restore from a later point, or re-ingest the listed orders (replay their Shopify webhooks)")


def daily_digests(target: Target, store: str, until: datetime) -> dict:
    rows = target.query(sql.SQL(
        "select (created_at at time zone 'UTC')::date as day, count(*) as orders, "
        " sum(hashtextextended(id, 0)::numeric) as checksum "
        "from {} where created_at <= %s group by 1").format(sql.Identifier("public", orders_table(store))), (until,))
    return {r["day"]: (r["orders"], r["checksum"]) for r in rows}


def day_ids(target: Target, store: str, day, until: datetime) -> set[str]:
    """The ids of one UTC day, streamed from a server-side cursor."""
    query = sql.SQL("select id from {} where created_at >= %s::date at time zone 'UTC' "
                    "and created_at < (%s::date + 1) at time zone 'UTC' and created_at <= %s").format(
        sql.Identifier("public", orders_table(store)))
    conn = target.conn
    try:
        with conn.cursor(name="ordak_day_ids") as cursor:
            cursor.itersize = 5000
            cursor.execute(query, (day, day, until))
            return {row["id"] for row in cursor}
    finally:
        conn.rollback()


def matches(target: Target, other: Target, store: str, until: datetime):
    blocker = catalog.missing_table(target, orders_table(store)) or catalog.missing_table(other, orders_table(store))
    if blocker:
        return MATCHES.blocked(store, blocker)
    ours, theirs = daily_digests(target, store, until), daily_digests(other, store, until)
    here, there = target.env.name, other.env.name
    violations, lost, gained = [], 0, 0
    for day in sorted(set(ours) | set(theirs)):
        if ours.get(day) == theirs.get(day):
            continue
        mine, others = day_ids(target, store, day, until), day_ids(other, store, day, until)
        missing, extra = sorted(others - mine), sorted(mine - others)
        lost, gained = lost + len(missing), gained + len(extra)
        if missing:
            violations.append({"object": f"{store} {day}", "problem": f"{here} lacks {len(missing)} order(s) of "
                               f"{day} that {there} has: {_some(missing)}"})
        if extra:
            violations.append({"object": f"{store} {day}", "problem": f"{here} has {len(extra)} order(s) of "
                               f"{day} that {there} lacks: {_some(extra)}"})
    return MATCHES.verdict(store, violations, days_compared=len(set(ours) | set(theirs)),
                           **({"orders_missing": lost} if lost else {}), **({"orders_extra": gained} if gained else {}))


def _some(ids: list[str]) -> str:
    shown = ", ".join(ids[:SHOWN_IDS])
    return shown + (f" (+{len(ids) - SHOWN_IDS} more)" if len(ids) > SHOWN_IDS else "")
