"""The read-only parts of the suite against the reference at 1M orders per store.

    ORDAK_DATA_DIR=/tmp/ordak-bench python -m bench.parts [--scale 1000000]

- schema + security + migrations: wall time at scale vs at the default scale (catalog
  queries must not scan user tables, so the two should be close), and the sequential scans
  the run caused on the order tables;
- store data + queue: wall time of the pytest run vs a replay of the very same SQL statements
  (taken from the server log) in one psql session. The replay shows what pytest and Python
  add to the suite's own SQL; it is no floor (the least SQL for the same answers is
  bench/floor.sql, measured by bench.floor);
- the day-by-day comparison with one day missing: its result and peak memory, at scale and
  at the default scale (memory must stay flat).

The cluster (and its 1M template, ~3 minutes to build) is kept for the next run.
"""

import argparse
import re
import subprocess
import sys
import time

import psycopg

from bench.common import ROOT
from checks.reference.cluster import DEFAULT_SCALE, ReferenceCluster, Template
from checks.reference.embedded import binary

SCHEMA_PART = ["tests/test_schema.py", "tests/test_security.py", "tests/test_migrations.py"]
DATA_PART = ["tests/test_store_data.py", "tests/test_queue.py"]


class Bench:
    def __init__(self, cluster: ReferenceCluster):
        self.cluster = cluster

    def admin(self, sql: str, dbname: str = "postgres"):
        with psycopg.connect(self.cluster.server.admin_url(dbname), autocommit=True) as conn:
            return conn.execute(sql).fetchall() if sql.lstrip().lower().startswith("select") else conn.execute(sql)

    def open_template(self, template: Template) -> str:
        """Lets the read-only runs connect to the template itself (no 4.5 GB copy)."""
        self.admin(f'alter database "{template.name}" allow_connections true')
        return self.cluster.server.url(template.name)

    def close_template(self, template: Template) -> None:
        self.admin(f"select pg_terminate_backend(pid) from pg_stat_activity where datname = '{template.name}'")
        self.admin(f'alter database "{template.name}" allow_connections false')

    def pytest(self, args: list[str], env: dict) -> tuple[float, str, int]:
        """Wall seconds, output and peak RSS (kB) of one pytest run, read-only (--env=production)."""
        started = time.perf_counter()
        done = subprocess.run(["/usr/bin/time", "-f", "MAXRSS %M", sys.executable, "-m", "pytest", "-p",
                               "no:cacheprovider", "-q", "--env=production", *args],
                              cwd=ROOT, env={**env_base(), **env}, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        rss = int(re.search(r"MAXRSS (\d+)", done.stderr).group(1))
        return elapsed, done.stdout + done.stderr, rss


def env_base() -> dict:
    import os
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}


def seq_scans(bench: Bench, dbname: str) -> int:
    return bench.admin("select coalesce(sum(seq_scan), 0) from pg_stat_user_tables "
                       "where relname in ('orders_bannos', 'orders_flourlane', 'stage_events')", dbname)[0][0]


def schema_part(bench: Bench, templates: dict) -> None:
    print("\n## schema + security + migrations (read-only)")
    for scale, template in templates.items():
        url = bench.open_template(template)
        try:
            before = seq_scans(bench, template.name)
            bench.admin("select pg_stat_force_next_flush()", template.name)
            runs = [bench.pytest(SCHEMA_PART, {"ORDAK_PRODUCTION_DB_URL": url}) for _ in range(3)]
            time.sleep(1)  # let the statistics collector flush
            scans = seq_scans(bench, template.name) - before
            best = min(r[0] for r in runs)
            summary = runs[0][1].strip().splitlines()[-1]
            print(f"{scale:>9} orders/store: best of 3 {best:.2f} s wall ({summary}); "
                  f"sequential scans of the order/event tables during 3 runs: {scans}")
        finally:
            bench.close_template(template)


def data_part(bench: Bench, template: Template, scale: int) -> None:
    print(f"\n## store data + queue at {scale} orders/store, vs a replay of its own SQL in one psql session (no floor)")
    url = bench.open_template(template)
    log = bench.cluster.server.datadir / "log"
    try:
        bench.admin(f'alter database "{template.name}" set log_statement = \'all\'')
        start = log.stat().st_size
        restore_point = template.seeded_at.isoformat()
        wall, output, _ = bench.pytest([*DATA_PART, f"--restore-point={restore_point}"],
                                       {"ORDAK_PRODUCTION_DB_URL": url})
        bench.admin(f'alter database "{template.name}" reset log_statement')
        statements = logged_statements(log.read_text(errors="replace")[start:])
        script = ROOT / "bench" / "out" / f"data_part_{scale}.sql"
        script.parent.mkdir(exist_ok=True)
        script.write_text("".join(s.rstrip().rstrip(";") + ";\n" for s in statements))
        started = time.perf_counter()
        subprocess.run([str(binary("psql")), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-o", "/dev/null", "-f",
                        str(script), url], check=True,
                       env={**env_base(), "PGOPTIONS": "-c default_transaction_read_only=on"})
        replay = time.perf_counter() - started
        summary = output.strip().splitlines()[-1]
        print(f"pytest (start to exit, {summary}): {wall:.2f} s; its statements replayed ({len(statements)}, one psql "
              f"session): {replay:.2f} s; ratio {wall / replay:.2f}")
        for line in output.splitlines():
            if "rpo_hours" in line or "listed=" in line:
                print("  " + line)
    finally:
        bench.close_template(template)


def logged_statements(log: str) -> list[str]:
    """Statements as the server ran them: parameters of extended-protocol ones substituted."""
    entries = re.split(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \w+ \[\d+\] ", log, flags=re.M)
    statements, pending = [], None
    for entry in entries:
        if entry.startswith("LOG:  statement: "):
            statements.append(entry[len("LOG:  statement: "):].strip())
        elif re.match(r"LOG:  execute [^:]*: ", entry):
            pending = re.sub(r"^LOG:  execute [^:]*: ", "", entry).strip()
            statements.append(pending)
        elif entry.lower().startswith("detail:  parameters: ") and pending is not None:
            values = dict(re.findall(r"\$(\d+) = ('(?:[^']|'')*'|NULL)", entry))
            statements[-1] = re.sub(r"\$(\d+)\b", lambda m: values.get(m.group(1), m.group(0)), pending)
            pending = None
    return statements


def comparison(bench: Bench, templates: dict) -> None:
    print("\n## day-by-day comparison with one day of bannos orders missing (peak memory of the run)")
    for scale, template in templates.items():
        copy = f"ordak_bench_copy_{scale}"
        bench.cluster.drop(copy)
        bench.cluster.clone(template, copy, shift_to_now=False)
        bench.admin("delete from public.orders_bannos where (created_at at time zone 'UTC')::date = "
                    "(select (max(created_at) at time zone 'UTC')::date - 10 from public.orders_bannos)", copy)
        url = bench.open_template(template)
        try:
            wall, output, rss = bench.pytest(
                ["tests/test_store_data.py", "-k", "matches_compared_env", "--compare-to=restore",
                 f"--restore-point={template.seeded_at.isoformat()}"],
                {"ORDAK_PRODUCTION_DB_URL": url, "ORDAK_RESTORE_DB_URL": bench.cluster.server.url(copy)})
            found = re.search(r"orders_missing=\d+|orders_extra=\d+", output)
            print(f"{scale:>9} orders/store: {wall:.2f} s, peak RSS {rss / 1024:.0f} MB, "
                  f"{found.group(0) if found else 'no difference found?!'}")
        finally:
            bench.close_template(template)
            bench.cluster.drop(copy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=int, default=1_000_000)
    parser.add_argument("parts", nargs="*", metavar="PART", help="any of: schema, data, compare (default: all)")
    args = parser.parse_args()
    args.parts = args.parts or ["schema", "data", "compare"]
    cluster = ReferenceCluster.open("bench-parts")
    try:
        bench = Bench(cluster)
        started = time.perf_counter()
        templates = {DEFAULT_SCALE: cluster.template(DEFAULT_SCALE), args.scale: cluster.template(args.scale)}
        print(f"templates ready in {time.perf_counter() - started:.0f} s")
        if "schema" in args.parts:
            schema_part(bench, templates)
        if "data" in args.parts:
            for scale, template in templates.items():
                data_part(bench, template, scale)
        if "compare" in args.parts:
            comparison(bench, templates)
    finally:
        cluster.close()


if __name__ == "__main__":
    main()
