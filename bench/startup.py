"""Start-up costs of the embedded reference: pytest to first test (cold and warm), template
clone, seed at several scales.

    python -m bench.startup [startup] [clone] [seed] [--seed-scales 10000 1000000]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import psycopg

from bench.common import ROOT, median_ms
from checks.reference.cluster import DEFAULT_SCALE, ReferenceCluster
from checks.reference.embedded import EmbeddedServer, data_root


def time_to_first_test() -> float:
    with tempfile.NamedTemporaryFile() as mark:
        started = time.time()
        subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "bench.first_test", "-q",
                        "tests/test_schema.py::test_enum"], cwd=ROOT, capture_output=True,
                       env={**os.environ, "BENCH_FIRST_TEST_FILE": mark.name}, check=True)
        return float(open(mark.name).read()) - started


def startup(warm_runs: int) -> None:
    suite = data_root() / "suite"
    EmbeddedServer(suite / "pg").stop_leftover()
    shutil.rmtree(suite, ignore_errors=True)
    cold = time_to_first_test()
    warm = [time_to_first_test() for _ in range(warm_runs)]
    print(f"pytest to first test: cold {cold:.2f} s (initdb + build), warm median {median_ms(warm) / 1000:.2f} s "
          f"over {warm_runs} runs (min {min(warm):.2f})")


def clones(runs: int) -> None:
    cluster = ReferenceCluster.open("bench-clone")
    try:
        template = cluster.template(DEFAULT_SCALE)
        plain, shifted = [], []
        for i in range(runs):
            started = time.perf_counter()
            cluster.clone(template, "ordak_clone_b", shift_to_now=False)
            plain.append(time.perf_counter() - started)
            cluster.drop("ordak_clone_b")
            started = time.perf_counter()
            cluster.clone(template, "ordak_clone_b")
            shifted.append(time.perf_counter() - started)
            cluster.drop("ordak_clone_b")
        print(f"template clone ({DEFAULT_SCALE} orders/store) in {data_root()}: median {median_ms(plain)} ms, "
              f"with the clock shift {median_ms(shifted)} ms ({runs} runs, new connection each)")
    finally:
        cluster.server.destroy()
        shutil.rmtree(cluster.home, ignore_errors=True)


def seeds(scales: list[int]) -> None:
    cluster = ReferenceCluster.open("bench-seed")
    try:
        for scale in scales:
            started = time.perf_counter()
            template = cluster.template(scale)
            elapsed = time.perf_counter() - started
            with psycopg.connect(cluster.server.admin_url(), autocommit=True) as conn:
                size = conn.execute("select pg_size_pretty(pg_database_size(%s))", (template.name,)).fetchone()[0]
            print(f"build at {scale} orders/store (migrations + seed + vacuum analyze): {elapsed:.1f} s, {size}")
            cluster.drop_template(template)
    finally:
        cluster.server.destroy()
        shutil.rmtree(cluster.home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--warm-runs", type=int, default=5)
    parser.add_argument("--clone-runs", type=int, default=20)
    parser.add_argument("--seed-scales", type=int, nargs="*", default=[10_000])
    parser.add_argument("parts", nargs="*", metavar="PART", help="any of: startup, clone, seed (default: all)")
    args = parser.parse_args()
    args.parts = args.parts or ["startup", "clone", "seed"]
    if "startup" in args.parts:
        startup(args.warm_runs)
    if "clone" in args.parts:
        clones(args.clone_runs)
    if "seed" in args.parts:
        seeds(args.seed_scales)


if __name__ == "__main__":
    main()
