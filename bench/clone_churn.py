"""Why the clusters live in /dev/shm: template clone time under create/drop churn, on the
system temp folder's file system vs on tmpfs, in one run.

    python -m bench.clone_churn [--cycles 200]
"""

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import psycopg

from checks.reference.cluster import DEFAULT_SCALE, ReferenceCluster


def churn(root: Path, cycles: int) -> list[float]:
    os.environ["ORDAK_DATA_DIR"] = str(root)
    cluster = ReferenceCluster.open("bench-churn")
    try:
        template = cluster.template(DEFAULT_SCALE)
        samples = []
        with psycopg.connect(cluster.server.admin_url(), autocommit=True) as conn:
            for _ in range(cycles):
                started = time.perf_counter()
                conn.execute(f'create database ordak_clone_churn template "{template.name}"')
                samples.append(time.perf_counter() - started)
                conn.execute("drop database ordak_clone_churn")
        return samples
    finally:
        cluster.server.destroy()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cycles", type=int, default=200)
    args = parser.parse_args()
    for label, base in (("system temp folder", Path(tempfile.gettempdir())), ("/dev/shm (tmpfs)", Path("/dev/shm"))):
        samples = churn(base / f"ordak-churn-{os.getpid()}", args.cycles)
        quarter = len(samples) // 4
        print(f"{label:>20}: clone median {statistics.median(samples) * 1000:.1f} ms; first quarter "
              f"{statistics.median(samples[:quarter]) * 1000:.1f} ms, last quarter "
              f"{statistics.median(samples[-quarter:]) * 1000:.1f} ms ({args.cycles} create/drop cycles)")


if __name__ == "__main__":
    main()
