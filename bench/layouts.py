"""Copies of a reference template whose stage_events lie on disk in another order.

The seed writes each order's events together (pg_stats.correlation of order_id ~0.93 at 1M).
Production appends events as they happen, in time order; and a table rewritten, restored or
vacuumed over years may be in any order. A plan that streams in index order is fast on the
first and can be many times slower on the others, so the benchmarks measure the suite and its
floor on copies whose stage_events were rewritten:

- ``time``: in at_ts order, as production appends them;
- ``shuffled``: in a random order (fixed seed);
- ``seed``: the template as built.

Only the heap's order changes: same rows, same indexes (rebuilt after the rewrite, so that
none is bloated by random inserts), same everything else. Each copy is kept in the cluster
for the next run (at 1M orders per store: ~2 minutes to make).
"""

import time

import psycopg

from checks.reference.cluster import ReferenceCluster, Template

LAYOUTS = ("seed", "time", "shuffled")
ORDER_BY = {"time": "at_ts, id", "shuffled": "k"}


def database(template: Template, layout: str) -> str:
    """The copy's name: it starts with the template's, so that a new build of the template
    drops it with the stale template (ReferenceCluster.template)."""
    return template.name if layout == "seed" else f"{template.name}_{layout}"


def ensure(cluster: ReferenceCluster, template: Template, layout: str, say=print) -> str:
    """The copy of `template` in `layout` (made now unless kept from an earlier run); its name."""
    name = database(template, layout)
    with psycopg.connect(cluster.server.admin_url(), autocommit=True) as admin:
        if layout == "seed":
            admin.execute(f'alter database "{name}" allow_connections true')
            return name
        if admin.execute("select 1 from pg_database where datname = %s", (name,)).fetchone():
            return name
        started = time.perf_counter()
        say(f"  making {name}: stage_events rewritten in {layout} order ...")
        admin.execute(f'drop database if exists "{name}_making" with (force)')
        admin.execute(f'create database "{name}_making" template "{template.name}" strategy file_copy')
    with psycopg.connect(cluster.server.admin_url(f"{name}_making"), autocommit=True) as conn:
        _rewrite(conn, layout)
    with psycopg.connect(cluster.server.admin_url(), autocommit=True) as admin:
        admin.execute(f'alter database "{name}_making" rename to "{name}"')
    say(f"  {name} ready ({time.perf_counter() - started:.0f} s)")
    return name


def _rewrite(conn: psycopg.Connection, layout: str) -> None:
    columns = ", ".join(f'"{c}"' for (c,) in conn.execute(
        "select attname from pg_attribute where attrelid = 'public.stage_events'::regclass and attnum > 0 "
        "and not attisdropped order by attnum"))
    constraints = conn.execute(
        "select conname, pg_get_constraintdef(oid) from pg_constraint "
        "where conrelid = 'public.stage_events'::regclass and contype in ('p', 'u')").fetchall()
    indexes = conn.execute(
        "select i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) from pg_index i "
        "where i.indrelid = 'public.stage_events'::regclass "
        "and not exists (select from pg_constraint c where c.conindid = i.indexrelid)").fetchall()
    with conn.transaction():
        conn.execute("select setseed(0.2026)")
        conn.execute(f"create temporary table rows_in_order as select {columns}, random() as k from public.stage_events")
        for name, _ in constraints:
            conn.execute(f'alter table public.stage_events drop constraint "{name}"')
        for index, _ in indexes:
            conn.execute(f"drop index {index}")
        conn.execute("truncate public.stage_events")
        conn.execute(f"insert into public.stage_events ({columns}) select {columns} from rows_in_order "
                     f"order by {ORDER_BY[layout]}")
        for name, definition in constraints:
            conn.execute(f'alter table public.stage_events add constraint "{name}" {definition}')
        for _, definition in indexes:
            conn.execute(definition)
    conn.execute("vacuum analyze public.stage_events")


def correlation(url: str) -> float | None:
    """pg_stats.correlation of stage_events.order_id: how close the heap is to the index's order."""
    with psycopg.connect(url) as conn:
        row = conn.execute("select correlation from pg_stats where schemaname = 'public' "
                           "and tablename = 'stage_events' and attname = 'order_id'").fetchone()
        return round(row[0], 2) if row and row[0] is not None else None
