"""What the connection guards cost: a new connection (with its verification), and a query
in its own transaction through each door, against the same connection without the guards.

    python -m bench.guards [--queries 2000] [--connections 50]
"""

import argparse
import time

import psycopg
from psycopg.rows import dict_row

from bench.common import median_ms
from checks.connect.environments import Environment
from checks.connect.target import Target
from checks.reference.cluster import DEFAULT_SCALE, ReferenceCluster
from selftests.pgbouncer import binary, pgbouncer

PRODUCTION = Environment("production", read_only=True)


def per_query(conn: psycopg.Connection, queries: int) -> float:
    """Seconds per `select 1` in its own transaction (as Target.query runs every read)."""
    started = time.perf_counter()
    for _ in range(queries):
        conn.execute("select 1").fetchall()
        conn.rollback()
    return (time.perf_counter() - started) / queries


def bare(url: str) -> psycopg.Connection:
    """The floor: read-only by psycopg's BEGIN READ ONLY only, no settings, no verification."""
    conn = psycopg.connect(url, prepare_threshold=None, row_factory=dict_row)
    conn.read_only = True
    return conn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    cluster = ReferenceCluster.open("bench-guards")
    try:
        template = cluster.template(DEFAULT_SCALE)
        cluster.drop("ordak_bench_guards")
        url = cluster.clone(template, "ordak_bench_guards")
        doors = {"direct": url}
        with pgbouncer(cluster.server.datadir) if binary() else _none() as port:
            if port:
                doors["PgBouncer (transaction mode)"] = f"postgresql://postgres@127.0.0.1:{port}/ordak_bench_guards"
            for door, door_url in doors.items():
                target = Target(PRODUCTION, door_url)
                first, again, unguarded = [], [], []
                for _ in range(args.connections):
                    first.append(_timed(lambda: Target(PRODUCTION, door_url).connect().close()))
                    again.append(_timed(lambda: target.connect().close()))  # what a run's probes do
                    unguarded.append(_timed(lambda: bare(door_url).close()))
                with target.connect() as conn, bare(door_url) as floor:
                    per_query(conn, 100), per_query(floor, 100)  # warm up
                    # Interleaved in chunks, so that the machine's changing load hits both alike.
                    chunks = [(per_query(conn, 50), per_query(floor, 50)) for _ in range(args.queries // 50)]
                    with_guards, without = (sum(c[i] for c in chunks) / len(chunks) for i in (0, 1))
                print(f"{door} ({target.door}), medians of {args.connections}: connect {median_ms(again)} ms "
                      f"(first of a run {median_ms(first)} ms) vs {median_ms(unguarded)} ms bare; "
                      f"a query in its own transaction {with_guards * 1e6:.0f} us vs {without * 1e6:.0f} us bare, "
                      f"ratio {with_guards / without:.2f} (means of {args.queries})")
        cluster.drop("ordak_bench_guards")
    finally:
        cluster.close()


def _timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


class _none:
    def __enter__(self):
        print("PgBouncer is not installed: only the direct door is measured")
        return None

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    main()
