"""The read-only suite against its floor, part by part, at several sizes and layouts.

    ORDAK_DATA_DIR=/tmp/ordak-bench python -m bench.floor [--scales 10000 100000 1000000]
        [--layouts time shuffled] [--rounds 3] [--before DIR] [--load]

At each size and layout of stage_events (bench/layouts.py: ``time``, appended in time order as
production writes them; ``shuffled``; ``seed``, as the reference is built), side by side and
interleaved, the order rotating each round:

- the suite: the whole read-only weekly run (`pytest --env=production`, the restore point the
  reference's "now"); a module's time is the sum of its tests' times (JUnit);
- the floor: bench/floor.sql in one psql session, every question the run asks answered by the
  least SQL found for it; a module's time is the sum of its statements' \\timing;
- with --before DIR: the same suite from another checkout (e.g. `git archive <commit>`), to
  show what changed.

Medians of the rounds, ratios within one size and layout, and the 1-minute load average of
the machine around the runs beside them. First, once: the floor's answers are checked against
the suite's on a broken copy (same violating rows, or the run stops). --load adds what each
module asks of the target (pg_stat_statements). Templates and layouts are kept in the cluster
for the next run (1M orders per store: ~4 minutes to build, ~2 more per layout).
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import psycopg

from bench import layouts
from bench.common import ROOT
from bench.parts import env_base
from checks.reference.cluster import DEFAULT_SCALE, ReferenceCluster, Template
from checks.reference.embedded import binary

MODULES = ["access", "schema", "security", "migrations", "store_data", "queue", "scan", "integrity"]
PARTS = {"the integrity rules": ["integrity"],
         "the runbook's questions": ["access", "schema", "security", "migrations", "store_data", "queue"],
         "scan": ["scan"]}
# The integrity rules are tests of test_store_data; the rest of it (counts, freshness) is a
# runbook question.
INTEGRITY_TESTS = ("test_stage_timestamps_consistent", "test_assignees_exist", "test_stage_events_present",
                   "test_no_shopify_duplicates")
STATS = {"shared_preload_libraries": "'pg_stat_statements'", "pg_stat_statements.track": "all"}


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def suite(root: Path, url: str, restore_point: str, tests: tuple[str, ...] = ()) -> dict:
    """One read-only run: wall seconds, seconds per module (JUnit) and its last line."""
    with tempfile.TemporaryDirectory() as out:
        xml = Path(out) / "junit.xml"
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--env=production",
                               f"--restore-point={restore_point}", f"--junitxml={xml}", f"--html={out}/r.html",
                               *tests], cwd=root, capture_output=True, text=True,
                              env={**env_base(), "ORDAK_PRODUCTION_DB_URL": url})
        wall = time.perf_counter() - started
        if not xml.exists():
            raise SystemExit(f"the suite in {root} wrote no JUnit:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        per_module: dict[str, float] = defaultdict(float)
        for case in ET.parse(xml).getroot().iter("testcase"):
            module = case.get("classname", "").rsplit(".", 1)[-1].removeprefix("test_")
            if case.get("name", "").startswith(INTEGRITY_TESTS):
                module = "integrity"
            per_module[module] += float(case.get("time", 0))
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr.strip()[-200:]
    return {"wall": wall, "modules": per_module, "summary": summary}


def floor(url: str, cutoff: str, show: Path | None = None) -> dict:
    """bench/floor.sql in one psql session: wall seconds and its statements' time per module."""
    shown = ["-v", f"show={show}"] if show else []
    started = time.perf_counter()
    done = subprocess.run([str(binary("psql")), "-X", "-q", "-v", f"cutoff='{cutoff}'", *shown, "-f",
                           str(ROOT / "bench" / "floor.sql"), url], capture_output=True, text=True, env=env_base())
    wall = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"bench/floor.sql failed:\n{done.stderr[-3000:]}")
    per_module: dict[str, float] = defaultdict(float)
    module = None
    for line in done.stdout.splitlines():
        if line.startswith("module:"):
            module = line.removeprefix("module:")
        elif (timing := re.match(r"Time: ([\d.]+) ms", line)) and module:
            per_module[module] += float(timing.group(1)) / 1000
    return {"wall": wall, "modules": per_module, "summary": "psql"}


# -- the floor gives the suite's answers -------------------------------------------------------
# Faults of selftests/rules/test_data_queue_faults.py, all at once on one copy of the reference.
FAULTS = [
    "update public.orders_bannos set filling_complete_ts = null where id = "
    "(select id from public.orders_bannos where stage = 'Packing' order by id limit 1)",
    "update public.orders_flourlane set covering_complete_ts = covering_start_ts - interval '1 hour' "
    "where id = 'flourlane-24001'",
    "update public.orders_bannos set created_at = created_at + interval '2 days', "
    "decorating_start_ts = now() + interval '2 days' where id = 'bannos-18100'",
    "delete from public.stage_events where store = 'bannos' and order_id = 'bannos-18001' "
    "and stage in ('Covering', 'Packing') and event_type = 'complete'",
    "update public.stage_events set store = 'bannos' where store = 'flourlane' and order_id = 'flourlane-24003'",
    "delete from public.orders_flourlane where id = 'flourlane-24006'",
    "delete from public.stage_events where store = 'flourlane' and order_id = 'flourlane-24008' and stage = 'Filling'",
    "update public.orders_bannos set covering_complete_ts = null, covering_start_ts = null where id = "
    "(select id from public.orders_bannos where stage = 'Complete' and cancelled_at is null "
    " and packing_start_ts is not null order by id offset 3 limit 1)",
    "alter table public.orders_flourlane drop constraint orders_flourlane_assignee_id_fkey",
    "update public.orders_flourlane set assignee_id = '00000000-0000-4000-8000-000000000001' "
    "where id in ('flourlane-24010', 'flourlane-24011')",
    "insert into public.orders_bannos (id, shopify_order_id, shopify_order_gid, shopify_order_number, stage) "
    "select 'bannos-18017', shopify_order_id, shopify_order_gid, shopify_order_number, 'Filling' "
    "from public.orders_bannos where id = 'bannos-18017-A'",
    "update public.orders_bannos set shopify_order_id = 5200000000034, "
    "shopify_order_gid = 'gid://shopify/Order/5200000000034' where id = 'bannos-18017-B'",
]


def same_answers(cluster: ReferenceCluster) -> None:
    """The floor's integrity answers are the suite's (the same orders, the same groups) on a
    copy of the reference broken in the ways the self-tests break it."""
    from checks.connect.environments import Environment
    from checks.connect.target import Target
    from checks.contract import contract, thresholds
    from checks.rules import data

    template = cluster.template(DEFAULT_SCALE)
    copy = "ordak_bench_floor_same"
    cluster.drop(copy)
    url = cluster.clone(template, copy, shift_to_now=False)
    target = None
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            for fault in FAULTS:
                conn.execute(fault)
        target = Target(Environment(name="bench", read_only=True), url)
        clock = data.Clock(template.seeded_at, True)
        suite_says, floor_says = defaultdict(set), defaultdict(set)
        for store in contract()["stores"]:
            for check, rule in ((data.stage_timestamps(target, store, clock, thresholds()), "timestamps"),
                                (data.stage_events_present(target, store), "events"),
                                (data.assignees_exist(target, store), "assignees")):
                suite_says[(store, rule)] = {v["object"] for v in check.violations}
            for v in data.shopify_duplicates(target, store).violations:
                suite_says[(store, "shopify")].add((v["problem"].split(" but ")[0].split()[-1], v["object"]))
        with tempfile.TemporaryDirectory() as out:
            answers = Path(out) / "answers.txt"
            floor(url, template.seeded_at.isoformat(), answers)
            question = store = None
            for line in answers.read_text().splitlines():
                if line == "end":
                    question = None
                    continue
                if line.startswith("question:"):
                    question, store, header = *line.removeprefix("question:").split(), True
                    continue
                if question is None or header:
                    header = False
                    continue
                cells = line.split("|")
                if question == "stage_trail":
                    for rule, flag in (("timestamps", cells[1]), ("events", cells[2])):
                        if flag == "t":
                            floor_says[(store, rule)].add(cells[0])
                elif question == "assignees":
                    floor_says[(store, "assignees")].add(cells[0])
                elif question == "shopify":
                    floor_says[(store, "shopify")].add((cells[0], ", ".join(sorted(cells[1].strip("{}").split(",")))))
        found = sum(len(v) for v in suite_says.values())
        differ = {k: (sorted(suite_says[k]), sorted(floor_says[k])) for k in set(suite_says) | set(floor_says)
                  if suite_says[k] != floor_says[k]}
        if differ or not found:
            raise SystemExit(f"the floor does not give the suite's answers: {differ or 'nothing found'}")
        print(f"the floor's answers are the suite's on a broken copy: {found} violating rows and groups, "
              f"{', '.join(f'{s} {r} {len(v)}' for (s, r), v in sorted(suite_says.items()))}", flush=True)
    finally:
        if target is not None:
            target.close()
        cluster.drop(copy)


# -- measuring ---------------------------------------------------------------------------------
def measure(cluster: ReferenceCluster, template: Template, layout: str, rounds: int, before: Path | None,
            label: str) -> dict:
    url = cluster.server.url(layouts.database(template, layout))
    restore_point = template.seeded_at.isoformat()
    sides = [("suite", lambda: suite(ROOT, url, restore_point)), ("floor", lambda: floor(url, restore_point))]
    if before:
        sides.insert(1, ("before", lambda: suite(before, url, restore_point)))
    runs, loads = defaultdict(list), []
    for r in range(rounds):
        for name, run in sides[r % len(sides):] + sides[:r % len(sides)]:  # the order rotates each round
            load = loadavg()
            result = run()
            loads += [load, loadavg()]
            runs[name].append(result)
            print(f"  [{label} round {r + 1}/{rounds}] {name}: {result['wall']:.1f} s ({result['summary']}); "
                  f"load {load:.1f} -> {loads[-1]:.1f}", flush=True)
    return {"runs": runs, "load": (min(loads), max(loads)), "correlation": layouts.correlation(url)}


def median(runs: list[dict], modules: list[str] | None) -> float:
    if modules is None:
        return statistics.median(r["wall"] for r in runs)
    return statistics.median(sum(r["modules"].get(m, 0) for m in modules) for r in runs)


def report(label: str, measured: dict) -> None:
    runs = measured["runs"]
    before = "before" in runs
    print(f"\n### {label} (stage_events order_id correlation {measured['correlation']}; "
          f"load {measured['load'][0]:.1f}-{measured['load'][1]:.1f} on {os.cpu_count()} cores; "
          f"suite: {runs['suite'][0]['summary']})")
    print("| part | suite (s) | floor (s) | ratio |" + (" before (s) | before / floor |" if before else ""))
    print("|---|---|---|---|" + ("---|---|" if before else ""))
    rows = [(m, [m]) for m in MODULES] + [(f"**{p}**", ms) for p, ms in PARTS.items()]
    rows.append(("**whole run**, wall: pytest start to exit vs psql", None))
    for name, modules in rows:
        a, b = median(runs["suite"], modules), median(runs["floor"], modules)
        line = f"| {name} | {a:.2f} | {b:.3f} | {a / b:.2f} |" if b else f"| {name} | {a:.2f} | - | - |"
        if before:
            c = median(runs["before"], modules)
            line += f" {c:.2f} | {c / b:.2f} |" if b else f" {c:.2f} | - |"
        print(line, flush=True)


def summary(results: dict) -> None:
    before = any("before" in m["runs"] for m in results.values())
    print("\n## Summary: suite / floor (ratio), medians" + (", and the suite before" if before else ""))
    print("| orders/store | layout (correlation) | integrity rules | runbook's questions | whole run |"
          + (" before: integrity / whole |" if before else "") + " load |")
    print("|---|---|---|---|---|" + ("---|" if before else "") + "---|")
    for (scale, layout), m in results.items():
        cells = []
        for modules in (PARTS["the integrity rules"], PARTS["the runbook's questions"], None):
            a, b = median(m["runs"]["suite"], modules), median(m["runs"]["floor"], modules)
            cells.append(f"{a:.2f} / {b:.2f} s ({a / b:.2f})")
        if before:
            cells.append(f"{median(m['runs']['before'], PARTS['the integrity rules']):.2f} / "
                         f"{median(m['runs']['before'], None):.2f} s")
        print(f"| {scale:,} | {layout} ({m['correlation']}) | " + " | ".join(cells)
              + f" | {m['load'][0]:.1f}-{m['load'][1]:.1f} |", flush=True)


def load_per_module(cluster: ReferenceCluster, template: Template, layout: str) -> None:
    """What each module asks of the target, from pg_stat_statements."""
    name = layouts.database(template, layout)
    url, admin = cluster.server.url(name), cluster.server.admin_url(name)
    restore_point = template.seeded_at.isoformat()
    print(f"\n  load on the target at {name}, per module (pg_stat_statements; blocks are 8 kB, hit or read):")
    print("  | module | statements | calls | blocks touched | rows returned |\n  |---|---|---|---|---|")
    slowest = []
    for module in [m for m in MODULES if m != "integrity"]:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("select pg_stat_statements_reset()")
        suite(ROOT, url, restore_point, (f"tests/test_{module}.py",))
        with psycopg.connect(admin, autocommit=True) as conn:
            rows = conn.execute("select query, calls, total_exec_time, shared_blks_hit + shared_blks_read, rows "
                                "from pg_stat_statements where dbid = (select oid from pg_database where datname = "
                                "current_database()) and query not like '%pg_stat_statements%'").fetchall()
        print(f"  | {module} | {len(rows)} | {sum(r[1] for r in rows)} | {sum(r[3] for r in rows):,} | "
              f"{sum(r[4] for r in rows):,} |", flush=True)
        slowest += [(r[2], module, r[1], " ".join(r[0].split())[:110]) for r in rows]
    print("\n  slowest statements (total time, module, calls, statement):")
    for total, module, calls, query in sorted(slowest, reverse=True)[:8]:
        print(f"  - {total / 1000:.2f} s  {module}  x{calls}  {query}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--layouts", nargs="+", choices=layouts.LAYOUTS, default=["time", "shuffled"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", type=Path, help="a checkout of the suite to run too (e.g. from git archive)")
    parser.add_argument("--load", action="store_true", help="also pg_stat_statements per module (largest scale)")
    args = parser.parse_args()
    started = time.perf_counter()
    cluster = ReferenceCluster.open("bench-floor", settings=STATS)
    if cluster.private:
        raise SystemExit(f"{cluster.home.parent / 'bench-floor'} is in use by another process: stop it first")
    results = {}
    try:
        same_answers(cluster)
        for scale in args.scales:
            t = time.perf_counter()
            template = cluster.template(scale, progress=lambda line: print(line, flush=True))
            layouts.ensure(cluster, template, "seed")  # opened: pg_stat_statements goes in before any copy
            with psycopg.connect(cluster.server.admin_url(template.name), autocommit=True) as conn:
                conn.execute("create extension if not exists pg_stat_statements")
            for layout in args.layouts:
                layouts.ensure(cluster, template, layout)
            print(f"({scale:,} orders/store and its layouts ready in {time.perf_counter() - t:.0f} s)", flush=True)
            for layout in args.layouts:
                label = f"{scale:,} orders/store, stage_events {layout}"
                results[(scale, layout)] = measure(cluster, template, layout, args.rounds, args.before, label)
                report(label, results[(scale, layout)])
        summary(results)
        if args.load:
            load_per_module(cluster, template, args.layouts[0])
        print(f"\n(bench.floor took {timedelta(seconds=round(time.perf_counter() - started))})")
    finally:
        cluster.close()


if __name__ == "__main__":
    main()
