"""The reference's clock: moving a clone's data in time (checks/reference/shift_time.sql) gives the
same rows whichever way a table is moved, rewritten (big tables) or updated in place (small
ones), and a rewritten clone is as healthy as the reference. The self-tests' clones come from
one copy whose clock moved at most FreshReference.MAX_AGE seconds ago."""

import time
from datetime import datetime, timedelta, timezone

import psycopg

from checks.reference.cluster import REFERENCE_DIR
from selftests.harness import NO_COMPARE, Clone, FreshReference, assert_outcomes

SHIFTED = "select c.relnamespace::regnamespace || '.' || c.relname from pg_attribute a join pg_class c on c.oid = a.attrelid " \
          "where c.relnamespace::regnamespace::text in ('public', 'auth', 'storage') and c.relkind = 'r' " \
          "and a.atttypid in ('timestamptz'::regtype, 'date'::regtype) and not a.attisdropped group by 1"


def shifted(clone, by: str, rewrite_rows: int):
    """The clone moved by `by`; tables of at least `rewrite_rows` rows are rewritten, the
    others updated in place."""
    with psycopg.connect(clone.cluster.server.admin_url(clone.name), autocommit=True) as conn:
        conn.execute("select set_config('ordak.shift', %s, false), set_config('ordak.shift_rewrite_rows', %s, false)",
                     (by, str(rewrite_rows)))
        conn.execute((REFERENCE_DIR / "shift_time.sql").read_text())
    return clone


def digests(clone) -> dict[str, str]:
    with psycopg.connect(clone.cluster.server.admin_url(clone.name)) as conn:
        return {t: conn.execute(f"select md5(string_agg(x::text, ',' order by x::text)) from {t} x").fetchone()[0]
                for (t,) in conn.execute(SHIFTED).fetchall()}


def test_rewrite_and_update_move_the_clock_alike(ordak_clone):
    base = ordak_clone()
    rewritten = shifted(ordak_clone(copy_of=base), "3 days 04:05:06.789012", 0)
    updated = shifted(ordak_clone(copy_of=base), "3 days 04:05:06.789012", 10**12)
    # the rewrite made new files for the table, the update did not
    assert filenode(rewritten) != filenode(base) == filenode(updated)
    moved = digests(rewritten)
    assert {"public.orders_bannos", "public.stage_events", "auth.users", "public.work_queue"} <= set(moved)
    assert moved == digests(updated) != digests(base)


def filenode(clone) -> int:
    with psycopg.connect(clone.cluster.server.admin_url(clone.name)) as conn:
        return conn.execute("select pg_relation_filenode('public.stage_events')").fetchone()[0]


def test_a_rewritten_clone_is_healthy(ordak_clone):
    clone = shifted(ordak_clone(), "0", 0)
    run = clone.run_suite("tests/test_schema.py", "tests/test_security.py", "tests/test_store_data.py",
                          "tests/test_queue.py", "tests/test_scan.py")
    assert_outcomes(run, {}, NO_COMPARE)


def newest_order(clone) -> datetime:
    with psycopg.connect(clone.url) as conn:
        return conn.execute("select max(created_at) from public.orders_bannos").fetchone()[0]


def test_clones_are_never_older_than_the_freshness_limit(reference, tmp_path):
    """Clones made within MAX_AGE share one clock move; a clone made later gets a new one.
    The reference's newest order is 2 minutes old when its clock moves."""
    source = FreshReference(*reference)
    source.MAX_AGE = 1.0
    clones = []
    try:
        for name in ("first", "second", "after_the_limit"):
            if name == "after_the_limit":
                time.sleep(source.MAX_AGE + 0.2)
            clones.append(Clone(source, f"ordak_clone_age_{name}", tmp_path / name))
            age = datetime.now(timezone.utc) - newest_order(clones[-1])
            assert timedelta(minutes=2) <= age < timedelta(minutes=2, seconds=source.MAX_AGE + 1), (name, age)
        first, second, later = map(newest_order, clones)
        assert first == second < later
    finally:
        for clone in clones:
            clone.cluster.drop(clone.name)
        source.close()
