"""Every phase of the drill, at several scales, and the restore against its floor.

    ORDAK_DATA_DIR=/tmp/ordak-drill-bench python -m bench.drill [--scales 10000 100000] [--mode pitr]

For each scale: the drill's phases as `pytest --env=drill` runs them (checks.drill.Drill),
then the suite against the restored cluster as a user would run it (`pytest --env=restore
--restore-point=... --compare-to=production`, a subprocess), then the floor of the restore:
a plain `cp -a` of the same base backup, the same archived WAL copied into its pg_wal, and
the same recovery_target_time, started with pg_ctl (no restore_command, no checks). The
ratio is the drill's restore phase over that floor, both measured in the same run.

The template of each scale is built once and kept in that scale's drill cluster (the first
run at 1M spends ~3-25 minutes building it: reported apart, as "template build").
"""

import argparse
import os
import subprocess
import sys
import time

from bench.common import ROOT
from checks.drill import pitr
from checks.drill.rehearsal import Drill, Plan, cluster_purpose
from checks.reference.cluster import REFERENCE_DIR, ReferenceCluster
from checks.reference.embedded import EmbeddedServer


def template_build(scale: int) -> float:
    """Builds (or finds) the template outside the timed drill."""
    started = time.perf_counter()
    cluster = ReferenceCluster.open(cluster_purpose(scale))
    try:
        cluster.template(scale)
    finally:
        cluster.close()
    return time.perf_counter() - started


def floor(drill: Drill) -> float:
    """cp -a of the base backup + WAL in pg_wal + recovery to the same target, no restore_command."""
    dest = drill.home / "floor"
    server = EmbeddedServer(dest, REFERENCE_DIR / "extensions", {
        "recovery_target_time": f"'{drill.result.recovery_target.isoformat()}'",
        "restore_command": "'/bin/false'",  # required by targeted recovery; the WAL is already in pg_wal
        "recovery_target_action": "'promote'", "hot_standby": "off", "archive_mode": "off",
        "track_commit_timestamp": "on"})
    started = time.perf_counter()
    pitr.copy_data_dir(server, drill.backup, dest)
    subprocess.run(f"cp {drill.archive}/0* {dest}/pg_wal/", shell=True, check=True, user=server.run_as)
    (dest / "recovery.signal").touch()
    server.start(wait_seconds=3600)
    pitr.wait_promoted(server)
    elapsed = time.perf_counter() - started
    server.destroy()
    return elapsed


def archived(drill: Drill) -> list[str]:
    return sorted(p.name for p in drill.archive.iterdir() if pitr.SEGMENT.match(p.name))


def wal_use(drill: Drill) -> str:
    """Archived WAL: segments older than the base backup's start (the restore never reads them:
    archiving's waste) and the rest."""
    label = (drill.backup / "backup_label").read_text()
    start = label.split("(file ", 1)[1].split(")", 1)[0]
    names = archived(drill)
    older = [n for n in names if n[8:] < start[8:]]
    return f"{len(older)} segments archived before the base backup's start ({start}), {len(names) - len(older)} after"


def suite(drill: Drill) -> tuple[float, str]:
    result = drill.result
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(ORDAK_RESTORE_DB_URL=result.target_url, ORDAK_PRODUCTION_DB_URL=result.compare_url)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rf", "--env=restore",
                           f"--restore-point={result.restore_point.isoformat()}", "--compare-to=production"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    failed = [line.split(" - ")[0].removeprefix("FAILED ") for line in lines if line.startswith("FAILED ")]
    return time.perf_counter() - started, (lines[-1] if lines else done.stderr.strip()[-200:]) + \
        (f"; failed: {', '.join(failed)}" if failed else "")


def bench(scale: int, mode: str, workload: float) -> None:
    built = template_build(scale)
    print(f"\n## {scale:,} orders/store ({mode}); template build {built:.1f} s (cached for later drills)", flush=True)
    drill = Drill(Plan(mode=mode, scale=scale, workload_seconds=workload), progress=lambda line: print("  " + line,
                                                                                                   flush=True))
    started = time.perf_counter()
    try:
        drill.result = drill.run()
        drill_seconds = time.perf_counter() - started
        suite_seconds, summary = suite(drill)
        print(f"  suite against the restored cluster: {suite_seconds:.1f} s ({summary})", flush=True)
        phases = {**drill.phases, "suite": round(suite_seconds, 1)}
        print("  | " + " | ".join(phases) + " | drill total | with the suite |")
        print("  | " + " | ".join(f"{v:.1f} s" for v in phases.values())
              + f" | {drill_seconds:.1f} s | {drill_seconds + suite_seconds:.1f} s |", flush=True)
        if mode == "pitr":
            print(f"  WAL archive: {wal_use(drill)}", flush=True)
            base = pitr.size_mb(drill.backup)
            floor_seconds = floor(drill)
            restore = drill.phases["restore"]
            print(f"  restore {restore:.2f} s vs floor (cp -a {base:,} MB + WAL replay) {floor_seconds:.2f} s: "
                  f"ratio {restore / floor_seconds:.2f}", flush=True)
    finally:
        drill.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--mode", choices=["pitr", "dump"], default="pitr")
    parser.add_argument("--workload-seconds", type=float, default=6.0)
    args = parser.parse_args()
    for scale in args.scales:
        bench(scale, args.mode, args.workload_seconds)


if __name__ == "__main__":
    main()
