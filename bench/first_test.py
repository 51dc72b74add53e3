"""pytest plugin for bench/startup.py: writes the wall-clock time the first test starts."""

import os
import time

_written = False


def pytest_runtest_setup(item):
    global _written
    if not _written:
        _written = True
        with open(os.environ["BENCH_FIRST_TEST_FILE"], "w") as out:
            out.write(repr(time.time()))
