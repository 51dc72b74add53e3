"""The runbook's cold exports, proven: a healthy folder passes; a missing week, a truncated
file, an export without stage_events and a stale newest export each fail the one check that
judges it, naming the file or the week; a cold export given to --env=drill --dump-file is
restored and verified as a drill's restore, and one cut short is refused before anything runs.

The exports are real `pg_dump -Fc` files of a clone of the reference (one dump, copied under
the dates a weekly-and-monthly schedule leaves), read by the suite as a user runs it.
"""

import shutil
import subprocess
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from checks.drill.pitr import DUMPED_SCHEMAS
from checks.reference.embedded import binary, data_root
from checks.rules.cold_exports import months_before
from selftests.harness import NEW_EACH_RUN, NO_COMPARE, assert_outcomes, run_suite

PART = "tests/test_platform_cold_exports.py"
CHECKS = {"test_cold_export_recent", "test_cold_export_retention", "test_cold_exports_restore"}
DRILL = """
[drill]
description = "a cold export, restored"
[drill.rehearsal]
mode = "dump"
"""


def schedule(today: date) -> list[date]:
    """The days a weekly export (every 7 days, the newest yesterday) and a monthly one (the 1st)
    leave after pruning to 4 weeks and 6 months."""
    weekly = {today - timedelta(days=1 + 7 * k) for k in range(4)}
    monthly = {months_before(today, k).replace(day=1) for k in range(6)}
    return sorted(weekly | monthly)


def dump(clone, dest: Path, *extra: str) -> Path:
    """pg_dump -Fc of the clone's app schemas (as a person with the database URL takes it)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(binary("pg_dump")), "-d", clone.cluster.server.admin_url(clone.name), "-Fc", "-f", str(dest),
                    *(f"--schema={s}" for s in DUMPED_SCHEMAS), *extra], check=True, capture_output=True)
    return dest


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])  # its table of contents, written first, still reads


def folder_of_exports(clone, change=None) -> tuple[Path, list[date]]:
    """The clone dumped once, copied under every day of schedule(); change(clone, folder, today)
    breaks it. Returns the folder and the days it holds."""
    folder = clone.workdir / "exports"
    folder.mkdir(parents=True)
    made = dump(clone, clone.workdir / "export.dump")
    today = datetime.now(timezone.utc).date()
    for day in schedule(today):
        shutil.copyfile(made, folder / f"ordak-{day}.dump")
    (folder / "README.txt").write_text("weekly and monthly pg_dump -Fc of production\n")
    if change is not None:
        change(clone, folder, today)
    return folder, sorted(d for d in (dated_file(p) for p in folder.iterdir()) if d)


def dated_file(path: Path) -> date | None:
    return date.fromisoformat(path.stem.removeprefix("ordak-")) if path.stem.startswith("ordak-") else None


def remove_between(folder: Path, first: date, last: date) -> None:
    for path in folder.iterdir():
        if dated_file(path) and first <= dated_file(path) <= last:
            path.unlink()


def missing_week(clone, folder: Path, today: date) -> None:
    """Every export of the third week back (15 to 21 days ago), a monthly one too if it fell there."""
    remove_between(folder, today - timedelta(days=20), today - timedelta(days=14))


def truncated(clone, folder: Path, today: date) -> None:
    truncate(folder / f"ordak-{today - timedelta(days=8)}.dump")


def without_stage_events(clone, folder: Path, today: date) -> None:
    dump(clone, folder / f"ordak-{schedule(today)[0]}.dump", "--exclude-table-data=public.stage_events")


def stale(clone, folder: Path, today: date) -> None:
    """No export in the last two weeks: the newest is the one of 15 days ago."""
    remove_between(folder, today - timedelta(days=14), today)


FAULTS = {  # how the folder is broken, then the one check that fails and what it says
    "healthy": (None, {}),
    "missing week": (missing_week, {"test_cold_export_retention": ("week 3 back (", "holds no cold export",
                                                                   "check the job that prunes old exports")}),
    "truncated file": (truncated, {"test_cold_exports_restore": (
        "does not read to its end (truncated?): could not read from input file: end of file",
        "a file that does not read to its end was cut short")}),
    "without stage_events": (without_stage_events, {"test_cold_exports_restore": (
        "holds no data of public.stage_events",)}),
    "stale": (stale, {"test_cold_export_recent": ("the newest cold export is from", "(15 days ago), more than 7",
                                                  "take one now (pg_dump -Fc"),
                      "test_cold_export_retention": ("week 2 back (",)}),
}


def exports_run(change):
    """A job for RunsAhead: the suite's cold-export checks on a folder made from its clone."""
    def job(clone):
        folder, days = folder_of_exports(clone, change)
        return clone.run_suite(PART, f"--cold-exports={folder}"), days
    return job


def drill_from(change=None, *args: str):
    """A job for RunsAhead: `pytest --env=drill --dump-file=<an export of its clone>` (change breaks it)."""
    def job(clone):
        export = dump(clone, clone.workdir / "ordak-given.dump")
        if change is not None:
            change(export)
        before = (export.stat().st_size, export.stat().st_mtime_ns)
        environments = clone.workdir / "environments.toml"
        environments.write_text(DRILL)
        run = run_suite("--env=drill", f"--environments={environments}", f"--dump-file={export}", *args,
                        "tests/test_drill.py", "tests/test_store_data.py", env={"ORDAK_DATA_DIR": str(data_root())},
                        workdir=clone.workdir / "run")
        return run, before == (export.stat().st_size, export.stat().st_mtime_ns)
    return job


def runs_ahead() -> dict:
    return {**{f"test_cold_exports[{case}]": exports_run(change) for case, (change, _) in FAULTS.items()},
            "test_a_cold_export_given_to_a_drill_is_restored_and_verified": drill_from(),
            "test_a_truncated_dump_file_is_refused_before_anything_runs": drill_from(truncate),
            "test_a_dump_file_takes_no_rehearsal_options": drill_from(None, "--incident=drop-table")}


@pytest.mark.parametrize("case", FAULTS)
def test_cold_exports(ahead_run, case):
    run, days = ahead_run
    fails = FAULTS[case][1]
    assert_outcomes(run, fails)
    assert set(run.outcomes) == {f"test_platform_cold_exports::{t}" for t in CHECKS}, run.outcomes
    if case == "healthy":
        age = (datetime.now(timezone.utc).date() - days[-1]).days
        assert f"test_cold_export_recent: exports={len(days)}, newest_export=ordak-{days[-1]}.dump, " \
               f"newest_export_age_days={age}" in run.output, run.output
        assert f"test_cold_exports_restore: exports_read={len(days)}" in run.output
        # a file without a date is noted, never judged
        assert "README.txt: not considered: its name carries no date" in run.output
    for test, fragments in fails.items():
        assert run.outcome(test).message.count("\n  - ") == 1, run.outcome(test).message  # that fault, once


def test_cold_exports_are_selected_only_when_given(ordak_clone):
    run = ordak_clone().run_suite(PART)
    assert run.exit_code == 5 and not run.outcomes, run.output  # deselected: nothing to run, nothing skipped


@pytest.mark.parametrize("given, error", [
    ("/nonexistent/exports", "--cold-exports=/nonexistent/exports: no such folder; give the folder that holds the "
                             "pg_dump files"),
    ("{file}", "is a file, not a folder; give the folder that holds it"),
])
def test_a_cold_exports_folder_that_cannot_be_read_is_one_line(tmp_path, given, error):
    (tmp_path / "ordak-2026-11-29.dump").write_text("x")
    run = run_suite(f"--cold-exports={given.format(file=tmp_path / 'ordak-2026-11-29.dump')}", PART, env={},
                    workdir=tmp_path / "run")
    assert run.exit_code == 4 and "Traceback" not in run.output, run.output
    errors = [line for line in run.output.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and error in errors[0], run.output


# -- a cold export, restored: --env=drill --dump-file ----------------------------------------------
def test_a_cold_export_given_to_a_drill_is_restored_and_verified(ahead_run):
    """Restored into a fresh Supabase-shaped cluster, its pages checked by pg_amcheck, the suite
    run against it and its freshness measured against the time it was taken; the file left as
    it was. No rehearsal: no canaries, no timeline, no production to compare or replay from."""
    run, unchanged = ahead_run
    assert run.exit_code == 0, run.output
    for phase in ("[1/3] restore", "[2/3] integrity", "[3/3] suite"):
        assert f"drill {phase}" in run.output, run.output
    assert "drill [1/3] restore: ordak-given.dump, taken " in run.output
    assert "verifying the restored export, measured against the time it was taken" in run.output
    canaries = {f"test_canaries[{s}]" for s in ("bannos", "flourlane")}
    assert run.with_status("skipped") == NO_COMPARE | NEW_EACH_RUN | canaries, run.output
    assert "holds no canary orders: only a rehearsal writes them" in run.outcome("test_canaries[bannos]").message
    assert {"test_pages_verify", "test_restore_source_untouched", "test_last_order_fresh[bannos]"} <= \
        run.with_status("passed")
    assert not {"test_replay_list", "test_rto_within_objective"} & set(run.with_status("passed") | run.failed())
    assert "test_restore_source_untouched: dump_files=1" in run.output and unchanged


def test_a_truncated_dump_file_is_refused_before_anything_runs(ahead_run):
    run, _ = ahead_run
    assert run.exit_code == 4, run.output
    errors = [line for line in run.output.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and "ordak-given.dump: does not read to its end (truncated?)" in errors[0], run.output
    assert "drill [1/" not in run.output and "Traceback" not in run.output


def test_a_dump_file_takes_no_rehearsal_options(ahead_run):
    run, _ = ahead_run
    assert run.exit_code == 4 and "drill [1/" not in run.output, run.output
    assert "ERROR: --incident: --dump-file restores a given cold export, taken when it was taken; there is no " \
           "production, incident or workload to rehearse (leave them out)" in run.output
