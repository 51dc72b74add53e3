"""Writing a run's reports (JSON summary, history line, HTML, postmortem draft), at the size of
a full run and of a badly broken one.

    python -m bench.report

A synthetic run of 200 checks (the suite has ~180), `failing` of them failing with `rows`
violations each (the checks fetch at most 200 rows), 29 earlier runs in the history. Prints
the median of 5 writes and the size of each file.
"""

import json
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

from checks.report.summary import AREAS, ReportPaths, Results, build, history_entry, write

CASES = [(0, 0), (6, 60), (20, 200)]  # (failing checks, violations each)


def synthetic(failing: int, rows: int) -> dict:
    results = Results()
    modules = list(AREAS)[:7]
    for i in range(200):
        module = modules[i % len(modules)]
        nodeid = f"tests/test_{'store_data' if module == 'data' else module}.py::test_check_{i}[subject]"
        bad = i < failing
        verdict = {"check": f"check_{i}", "subject": "subject", "description": "what a healthy Ordak has here",
                   "remediation": "what to do about it", "status": "failed" if bad else "ok", "blocked": None,
                   "violations": [{"key": f"check_{i}:public.orders_bannos#{n}", "object": f"bannos-{18000 + n}",
                                   "problem": "completed Covering but stage_events has no 'complete' event for it"}
                                  for n in range(rows if bad else 0)],
                   "accepted": [], "facts": {"orders": 300} if i == 7 else {}}
        results.add(nodeid, "call", "failed" if bad else "passed", 0.01, "failed" if bad else "", [verdict])
    now = datetime.now(timezone.utc)
    env = SimpleNamespace(name="production", description="Production", read_only=True,
                          has_secret=lambda key: False)
    target = SimpleNamespace(host="db.example.supabase.co", dbname="postgres")
    return build(env=env, target=target, compare=None, clock=SimpleNamespace(at=now, restore_point=False, label="now"),
                 error=None, thresholds={"rpo_hours": 24, "max_hours_since_last_order": 24},
                 stores=["bannos", "flourlane"], results=results.all(), timeline=[], started=now - timedelta(seconds=40),
                 finished=now, exit_status=1 if failing else 0, command=["--env=production"], root=Path("."),
                 server={})


def main() -> None:
    print("| failing checks × violations | write, median of 5 | HTML | JSON | Markdown |")
    print("|---|---|---|---|---|")
    for failing, rows in CASES:
        data = synthetic(failing, rows)
        samples = []
        for _ in range(5):
            with tempfile.TemporaryDirectory() as folder:
                paths = ReportPaths.beside(Path(folder) / "run.html")
                earlier = history_entry(data, paths.html)
                paths.history.write_text("".join(f"{json.dumps(earlier)}\n" for _ in range(29)))
                started = time.perf_counter()
                write(data, paths)
                samples.append(time.perf_counter() - started)
                sizes = [p.stat().st_size // 1024 for p in (paths.html, paths.json, paths.markdown)]
        print(f"| {failing} × {rows} | {statistics.median(samples) * 1000:.0f} ms | "
              f"{sizes[0]} KB | {sizes[1]} KB | {sizes[2]} KB |")


if __name__ == "__main__":
    main()
