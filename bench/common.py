"""Small helpers shared by the benchmarks."""

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 1)


def pytest_wall(*args: str, env: dict | None = None) -> tuple[float, int]:
    """Seconds a `python -m pytest` run takes from the project root, and its exit code."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
                          cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    return time.perf_counter() - started, done.returncode
