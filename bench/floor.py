"""The read-only suite against its floor, module by module, at several sizes.

    ORDAK_DATA_DIR=/tmp/ordak-bench python -m bench.floor [--scales 10000 100000 1000000] [--rounds 3]

At each size: the whole read-only suite (`pytest --env=production`, as the weekly run goes)
and bench/floor.sql (the same questions, the least SQL, one psql session) run interleaved,
A, B, A, B, ...; per module, the suite's time is the sum of its tests' times (JUnit) and the
floor's the sum of its statements' \\timing. Medians of the rounds; ratios within one size.
Then the load the suite puts on the target, per module, from pg_stat_statements: statements,
calls, blocks touched (8 kB each) and rows returned, and the slowest statements.

Templates are kept in the cluster for the next run (1M orders per store: ~5 minutes to build).
"""

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path


from bench.common import ROOT
from bench.parts import Bench, env_base
from checks.embedded import binary
from checks.reference import ReferenceCluster

MODULES = ["schema", "security", "migrations", "store_data", "integrity", "queue", "scan"]
# The integrity rules (aim: 1.5x the floor) are tests of test_store_data; the rest of it is
# the runbook's counts and freshness (aim: 2x, like every other module).
RUNBOOK = ["schema", "security", "migrations", "store_data", "queue"]  # counts, freshness, queue, catalog
INTEGRITY_TESTS = ("test_stage_timestamps_consistent", "test_assignees_exist", "test_stage_events_present",
                   "test_no_shopify_duplicates")
STATS = {"shared_preload_libraries": "'pg_stat_statements'", "pg_stat_statements.track": "all"}


def suite(url: str, restore_point: str, tests: list[str]) -> tuple[float, dict[str, float], str]:
    """Wall seconds of one read-only run, seconds per module (from JUnit), and its last line."""
    with tempfile.TemporaryDirectory() as out:
        xml = Path(out) / "junit.xml"
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--env=production",
                               f"--restore-point={restore_point}", f"--junitxml={xml}", f"--html={out}/r.html",
                               *tests], cwd=ROOT, capture_output=True, text=True,
                              env={**env_base(), "ORDAK_PRODUCTION_DB_URL": url})
        wall = time.perf_counter() - started
        per_module: dict[str, float] = defaultdict(float)
        for case in ET.parse(xml).getroot().iter("testcase"):
            module = case.get("classname", "").rsplit(".", 1)[-1].removeprefix("test_")
            if case.get("name", "").startswith(INTEGRITY_TESTS):
                module = "integrity"
            per_module[module] += float(case.get("time", 0))
    return wall, per_module, done.stdout.strip().splitlines()[-1]


def floor(url: str, cutoff: str) -> tuple[float, dict[str, float]]:
    """Wall seconds of bench/floor.sql in one psql session, and its statements' time per module."""
    started = time.perf_counter()
    done = subprocess.run([str(binary("psql")), "-X", "-q", "-v", f"cutoff='{cutoff}'", "-f",
                           str(ROOT / "bench" / "floor.sql"), url], capture_output=True, text=True, check=True,
                          env=env_base())
    wall = time.perf_counter() - started
    per_module: dict[str, float] = defaultdict(float)
    module = None
    for line in done.stdout.splitlines():
        if line.startswith("module:"):
            module = line.removeprefix("module:")
        elif (timing := re.match(r"Time: ([\d.]+) ms", line)) and module:
            per_module[module] += float(timing.group(1)) / 1000
    return wall, per_module


def load(bench: Bench, dbname: str, url: str, restore_point: str) -> None:
    """What each module asks of the target, from pg_stat_statements."""
    print("\n  load on the target, per module (pg_stat_statements; blocks are 8 kB, hit or read):")
    print("  | module | statements | calls | blocks touched | rows returned |\n  |---|---|---|---|---|")
    slowest = []
    for module in [m for m in MODULES if m != "integrity"]:
        bench.admin("select pg_stat_statements_reset()", dbname)
        suite(url, restore_point, [f"tests/test_{module}.py"])
        rows = bench.admin("select query, calls, total_exec_time, shared_blks_hit + shared_blks_read, rows "
                           "from pg_stat_statements where dbid = (select oid from pg_database where datname = "
                           "current_database()) and query not like '%pg_stat_statements%'", dbname)
        print(f"  | {module} | {len(rows)} | {sum(r[1] for r in rows)} | {sum(r[3] for r in rows):,} | "
              f"{sum(r[4] for r in rows):,} |")
        slowest += [(r[2], module, r[1], " ".join(r[0].split())[:110]) for r in rows]
    print("\n  slowest statements (total time, module, calls, statement):")
    for total, module, calls, query in sorted(slowest, reverse=True)[:6]:
        print(f"  - {total / 1000:.2f} s  {module}  x{calls}  {query}")


def measure(bench: Bench, scale: int, rounds: int) -> None:
    template = bench.cluster.template(scale)
    url = bench.open_template(template)
    restore_point = template.seeded_at.isoformat()
    try:
        bench.admin("create extension if not exists pg_stat_statements", template.name)
        runs, floors = [], []
        for _ in range(rounds):  # interleaved: the machine's noise hits both sides alike
            runs.append(suite(url, restore_point, ["tests"]))
            floors.append(floor(url, restore_point))
        print(f"\n## {scale:,} orders per store ({runs[0][2]})")
        print("| module | suite (s) | floor (s) | ratio |\n|---|---|---|---|")
        for module in MODULES:
            a = statistics.median(r[1].get(module, 0) for r in runs)
            b = statistics.median(f[1].get(module, 0) for f in floors)
            aim = 1.5 if module == "integrity" else 2
            print(f"| {module} | {a:.2f} | {b:.3f} | {a / b:.1f} (aim {aim}) |" if b else f"| {module} | {a:.2f} | - | - |")
        for label, group, aim in (("the runbook's questions", RUNBOOK, 2), ("the integrity rules", ["integrity"], 1.5)):
            a = statistics.median(sum(r[1].get(m, 0) for m in group) for r in runs)
            b = statistics.median(sum(f[1].get(m, 0) for m in group) for f in floors)
            print(f"| **{label}** | {a:.2f} | {b:.3f} | {a / b:.1f} (aim {aim}) |")
        a, b = statistics.median(r[0] for r in runs), statistics.median(f[0] for f in floors)
        print(f"| **whole run**, wall: pytest start to exit vs psql | {a:.2f} | {b:.3f} | {a / b:.1f} |")
        load(bench, template.name, url, restore_point)
    finally:
        bench.close_template(template)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cluster = ReferenceCluster.open("bench-floor", settings=STATS)
    try:
        for scale in args.scales:
            started = time.perf_counter()
            cluster.template(scale)
            print(f"(template at {scale:,} ready in {time.perf_counter() - started:.0f} s)", flush=True)
            measure(Bench(cluster), scale, args.rounds)
    finally:
        cluster.close()


if __name__ == "__main__":
    main()
