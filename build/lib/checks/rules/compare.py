"""Comparing a store's orders with another environment, day by day, up to a time.

Each side is summarised per UTC day as a count and an order-independent checksum of the
order ids (a sum of 64-bit hashes), computed by the database. Only days whose summaries
differ are read id by id, one day at a time, so memory stays flat however big the store:
what is kept of them is a count, the oldest and newest creation time, and the first ids.

The difference says which way a restore must move. Orders missing only after the restored
copy's newest order: the restore stopped short, a later point recovers them. Orders missing
from before its newest order: the copy holds the damage (a restore past the incident, or
the wrong backup), and only an earlier point can bring them back.
"""

import weakref
from dataclasses import dataclass, field
from datetime import datetime, timezone

from psycopg import sql

from checks.connect.target import Target
from checks.contract import orders_table
from checks.core import Check
from checks.rules import catalog

SHOWN_IDS = 20  # ids named per day and side; the count is always given

MATCHES = Check("matches_compared_env", "up to the reference time, every day holds the same orders as the "
                "compared environment",
                "re-ingest the listed orders (replay their Shopify webhooks), or restore again from the point "
                "the finding names")
COUNT = Check("store_count_vs_compared", "up to the reference time, the store holds at least the share of the "
              "compared environment's orders the threshold asks (min_share_of_compared_orders)",
              "this copy lost most of the store's orders: do not cut over; restore again from a point before "
              "the damage")

EARLIER = ("restore again from an earlier point, before the damage (the copy holds it: it went past the incident, "
           "or came from the wrong backup)")
LATER = "restore again from a later point, closer to the incident, then replay the Shopify webhooks of what is left"


@dataclass
class Span:
    """Orders counted on one side of a difference: how many, and when the oldest and newest were created."""
    count: int = 0
    oldest: datetime | None = None
    newest: datetime | None = None

    def add(self, created: list[datetime]) -> None:
        if created:
            self.count += len(created)
            self.oldest = min([self.oldest, *created] if self.oldest else created)
            self.newest = max([self.newest, *created] if self.newest else created)

    def merge(self, other: "Span") -> None:
        if other.count:
            count = self.count + other.count
            self.add([other.oldest, other.newest])
            self.count = count

    def hours(self) -> float:
        return round((self.newest - self.oldest).total_seconds() / 3600, 3) if self.count else 0.0


@dataclass
class Difference:
    """What this side lacks (missing) and has in excess (extra), per day and in all."""
    days_compared: int = 0
    missing: Span = field(default_factory=Span)
    extra: Span = field(default_factory=Span)
    days: list[dict] = field(default_factory=list)  # {day, missing: [ids], missing_count, extra: [...], ...}
    newest_here: datetime | None = None  # this side's newest order, whenever created


_DIGESTS: "weakref.WeakKeyDictionary[Target, dict[tuple, dict]]" = weakref.WeakKeyDictionary()


def daily_digests(target: Target, store: str, until: datetime) -> dict:
    """Per UTC day up to `until`: (orders, checksum). One pass over the store, kept for the run:
    the count check and the day-by-day comparison both read it."""
    found = _DIGESTS.setdefault(target, {})
    if (store, until) not in found:
        rows = target.query(sql.SQL(
            "select (created_at at time zone 'UTC')::date as day, count(*) as orders, "
            " sum(hashtextextended(id, 0)::numeric) as checksum "
            "from {} where created_at <= %s group by 1").format(sql.Identifier("public", orders_table(store))), (until,))
        found[(store, until)] = {r["day"]: (r["orders"], r["checksum"]) for r in rows}
    return found[(store, until)]


def day_ids(target: Target, store: str, day, until: datetime) -> dict[str, datetime]:
    """The ids of one UTC day with their creation times, streamed from a server-side cursor."""
    query = sql.SQL("select id, created_at from {} where created_at >= %s::date at time zone 'UTC' "
                    "and created_at < (%s::date + 1) at time zone 'UTC' and created_at <= %s").format(
        sql.Identifier("public", orders_table(store)))
    conn = target.conn
    try:
        with conn.cursor(name="ordak_day_ids") as cursor:
            cursor.itersize = 5000
            cursor.execute(query, (day, day, until))
            return {row["id"]: row["created_at"] for row in cursor}
    finally:
        conn.rollback()


def difference(target: Target, other: Target, store: str, until: datetime) -> Difference:
    """Orders created up to `until` that `other` has and `target` lacks, and the reverse."""
    ours, theirs = daily_digests(target, store, until), daily_digests(other, store, until)
    # Its newest order whenever created: a copy holding orders from after the time compared, yet
    # lacking older ones, holds the damage (a restore past the incident).
    newest = target.scalar(sql.SQL("select max(created_at) from {}").format(sql.Identifier("public", orders_table(store))))
    found = Difference(days_compared=len(set(ours) | set(theirs)), newest_here=newest)
    for day in sorted(set(ours) | set(theirs)):
        if ours.get(day) == theirs.get(day):
            continue
        mine, others = day_ids(target, store, day, until), day_ids(other, store, day, until)
        missing, extra = sorted(set(others) - set(mine)), sorted(set(mine) - set(others))
        found.missing.add([others[i] for i in missing])
        found.extra.add([mine[i] for i in extra])
        found.days.append({"day": day, "missing": missing[:SHOWN_IDS], "missing_count": len(missing),
                           "extra": extra[:SHOWN_IDS], "extra_count": len(extra)})
    return found


def holds_the_damage(found: Difference) -> bool:
    """Orders are missing from before this side's newest order: holes, not a short tail."""
    return bool(found.missing.count and found.newest_here and found.missing.oldest < found.newest_here)


def direction(found: Difference) -> str:
    """Which way to move the restore point, from where the missing orders sit."""
    return EARLIER if holds_the_damage(found) else LATER


def matches(target: Target, other: Target, store: str, until: datetime):
    blocker = catalog.missing_table(target, orders_table(store)) or catalog.missing_table(other, orders_table(store))
    if blocker:
        return MATCHES.blocked(store, blocker)
    found = difference(target, other, store, until)
    here, there = target.env.name, other.env.name
    violations = []
    if found.missing.count:
        where = ("some from before its newest order: the copy holds the damage" if holds_the_damage(found)
                 else "all after its newest order: the restore stopped short")
        violations.append({"object": f"{store} (all days)", "problem": (
            f"{here} lacks {found.missing.count:,} order(s) that {there} has, created {_when(found.missing.oldest)} "
            f"to {_when(found.missing.newest)} ({where})")})
    for day in found.days:
        if day["missing_count"]:
            violations.append({"object": f"{store} {day['day']}", "problem": f"{here} lacks {day['missing_count']} "
                               f"order(s) of {day['day']} that {there} has: {_some(day['missing'], day['missing_count'])}"})
        if day["extra_count"]:
            violations.append({"object": f"{store} {day['day']}", "problem": f"{here} has {day['extra_count']} "
                               f"order(s) of {day['day']} that {there} lacks: {_some(day['extra'], day['extra_count'])}"})
    fix = None
    if found.missing.count:
        fix = f"{direction(found)}; or re-ingest the listed orders (replay their Shopify webhooks)"
    elif found.extra.count:
        fix = (f"{here} holds orders {there} never had: check that --compare-to names the right environment, "
               f"then remove or explain the extra rows")
    return MATCHES.verdict(store, violations, fix=fix, days_compared=found.days_compared,
                           **({"orders_missing": found.missing.count} if found.missing.count else {}),
                           **({"orders_extra": found.extra.count} if found.extra.count else {}))


def count_vs_compared(target: Target, other: Target, store: str, until: datetime, min_share: float):
    """A headline guard that needs no day-by-day reading: the two counts up to `until`."""
    blocker = catalog.missing_table(target, orders_table(store)) or catalog.missing_table(other, orders_table(store))
    if blocker:
        return COUNT.blocked(store, blocker)
    # Each side's daily digests (which the day-by-day comparison reads too) hold its count.
    ours, theirs = (sum(n for n, _ in daily_digests(side, store, until).values()) for side in (target, other))
    violations = []
    if theirs and ours < min_share * theirs:
        violations.append({"object": f"public.{orders_table(store)}", "problem": (
            f"{target.env.name} holds {ours:,} orders created up to {_when(until)}, {other.env.name} holds "
            f"{theirs:,}: {ours / theirs:.1%} of them, below the {min_share:.0%} this check asks")})
    return COUNT.verdict(store, violations, orders=ours, orders_compared=theirs)


def _when(moment: datetime | None) -> str:
    return f"{moment.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC" if moment else "?"


def _some(ids: list[str], count: int) -> str:
    return ", ".join(ids) + (f" (+{count - len(ids)} more)" if count > len(ids) else "")
