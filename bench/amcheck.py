"""What amcheck costs on a restored copy, at 100k and 1M orders per store.

    ORDAK_DATA_DIR=/tmp/ordak-amcheck-bench python -m bench.amcheck [--scales 100000 1000000]

For each scale, a copy of the reference of that size (`create database ... strategy
file_copy`, as a restore leaves a cluster whose pages are on disk, not in shared_buffers) in a
cluster of its own, restarted before each measurement (shared_buffers cold; the OS page cache
is left as it is: dropping it would hit every other process on the machine). Then:

- the drill's integrity phase as `pytest --env=drill` runs it (checks.amcheck.pg_amcheck:
  every table of schema public, heapallindexed on the order tables and stage_events, 2 jobs);
- its two passes apart, and the heavy tables without heapallindexed (what heapallindexed adds);
- the same with 1 job;
- a restored project's path (checks.amcheck.check_over_sql: one connection, read-only).

Each line carries the load average when it started (the machine is shared). The template of
each scale is built once and kept (1M: ~3 minutes, 4.5 GB, reported apart).
"""

import argparse
import os
import time

import psycopg

from checks.connect.environments import Environment
from checks.connect.target import Target
from checks.reference.cluster import ReferenceCluster
from checks.rules import amcheck

DB = "ordak_amcheck_bench"


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def timed(what: str, work) -> tuple[float, dict]:
    started_load = load()
    started = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - started
    print(f"| {what} | {seconds:.1f} s | {result.get('relations', '')} | {result.get('pages', ''):,} | "
          f"{len(result.get('corruptions', []))} | {started_load} |", flush=True)
    return seconds, result


def bench(scale: int) -> None:
    started = time.perf_counter()
    cluster = ReferenceCluster.open(f"amcheck-bench-{scale}")
    try:
        template = cluster.template(scale)
        print(f"\n### {scale:,} orders/store (template ready in {time.perf_counter() - started:.0f} s)\n", flush=True)
        server = cluster.server
        with psycopg.connect(server.admin_url(), autocommit=True) as conn:
            conn.execute(f'drop database if exists "{DB}"')
            copied = time.perf_counter()
            conn.execute(f'create database "{DB}" template "{template.name}" strategy file_copy')
            copied = time.perf_counter() - copied
        with psycopg.connect(server.admin_url(DB), autocommit=True) as conn:
            size = conn.execute("select pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
            heavy = conn.execute(
                "select pg_size_pretty(sum(pg_total_relation_size(c.oid))) from pg_class c "
                "where c.relnamespace = 'public'::regnamespace and c.relname = any(%s)",
                (amcheck.heapallindexed_tables(),)).fetchone()[0]
        print(f"database {size} (order tables and stage_events with their indexes and TOAST: {heavy}); "
              f"copied in {copied:.1f} s\n")
        print("| measurement | wall | relations | pages | corruptions | load avg (1/5/15 min) at start |")
        print("|---|---|---|---|---|---|")

        def cold(work):
            server.stop()
            server.start()
            return work()

        def pass_of(tables, extra):
            return lambda: amcheck._run(server, DB, [*(f'--table=public."{t}"' for t in tables), *extra],
                                        lambda line: None)

        with psycopg.connect(server.admin_url(DB), autocommit=True) as conn:
            tables = [r[0] for r in conn.execute("select relname from pg_class where relnamespace = "
                                                 "'public'::regnamespace and relkind in ('r', 'm')")]
        heavy_tables = [t for t in amcheck.heapallindexed_tables() if t in tables]
        light = [t for t in tables if t not in heavy_tables]
        for attempt in (1, 2):
            timed(f"drill's integrity phase (pg_amcheck, 2 jobs), run {attempt}",
                  lambda: cold(lambda: amcheck.pg_amcheck(server, DB)))
        with psycopg.connect(server.admin_url(DB), autocommit=True) as conn:  # the passes need the extension
            conn.execute("create extension amcheck")
        timed("  pass 1: the other tables, B-tree checks", lambda: cold(pass_of(light, [])))
        timed("  pass 2: order tables and stage_events, --heapallindexed",
              lambda: cold(pass_of(heavy_tables, ["--heapallindexed"])))
        timed("  pass 2 without --heapallindexed", lambda: cold(pass_of(heavy_tables, [])))
        amcheck.JOBS = 1
        timed("  pass 2, --heapallindexed, 1 job", lambda: cold(pass_of(heavy_tables, ["--heapallindexed"])))
        amcheck.JOBS = 2

        def over_sql():
            target = Target(Environment(name="restore", read_only=True, statement_timeout=3600), server.admin_url(DB))
            try:
                return amcheck.check_over_sql(target)
            finally:
                target.close()
        timed("restored project's path (verify_heapam + bt_index_check over one read-only connection)",
              lambda: cold(over_sql))
        with psycopg.connect(server.admin_url(), autocommit=True) as conn:
            conn.execute(f'drop database "{DB}"')
    finally:
        cluster.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[100_000, 1_000_000])
    for scale in parser.parse_args().scales:
        bench(scale)


if __name__ == "__main__":
    main()
