"""The drill, proven: healthy it passes end to end; each way a restore goes wrong is caught,
named, and leaves its sources and no throwaway cluster behind. Beyond counts: pages of the
restored copy that do not read back sound are named by amcheck (a drill's pg_amcheck, a
restored project's read-only amcheck), and the replay list holds exactly the orders the
restore lacks.

Drills here are small (300 orders per store, seconds of traffic). Some run as a user would
(`pytest --env=drill` in a process of its own, with an environments file of their own); faults that
strike between two phases drive checks.drill.Drill phase by phase, in a fork of their own.
"""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from functools import partial
from html import escape as html_escape
from pathlib import Path

import psycopg
import pytest
from markupsafe import escape

from checks.connect.environments import Environment
from checks.connect.target import Target
from checks.drill import pitr
from checks.drill.rehearsal import RESTORED_DB, Drill, Plan
from checks.errors import SetupError
from checks.reference.embedded import data_root
from checks.rules import amcheck, recovery, replay
from selftests import inner_runs
from selftests.harness import NEW_EACH_RUN, ROOT, SUITE_TIMEOUT, assert_outcomes, run_suite, without_http

SCALE = 300
ENVIRONMENTS = f"""
[drill]
description = "a small rehearsal"
scale = {SCALE}
[drill.rehearsal]
workload_seconds = 3
workload_rate = 25
after_incident_seconds = 1
restore_point = "-1.5s"
incident = "mass-delete:bannos"
"""
DRILL_TESTS = ["tests/test_drill.py", "tests/test_store_data.py"]
HTTP_JOB = ("select cron.schedule('push-stock-http', '*/5 * * * *', $$select net.http_post("
            "url := 'https://bannos.myshopify.com/admin/api/2024-10/graphql.json')$$)")
# The reference's own HTTP job (as the live one: net.http_post to an Edge Function).
SYNC = "sync-inventory-to-shopify"
PAUSE = "select cron.alter_job(jobid, active := false) from cron.job where jobname = '{}'"
PAUSED_FIRST = PAUSE.format(SYNC)  # what a person does first on a restored copy
# A restored project without the amcheck extension (the reference has none): its pages cannot be
# verified, and the suite never creates it there.
NO_AMCHECK = frozenset({"test_pages_verify"})


def drill_run(environments, tmp_path, *args):
    return run_suite("--env=drill", f"--environments={environments}", *args, env={"ORDAK_DATA_DIR": str(data_root())},
                     workdir=tmp_path / f"run{len(list(tmp_path.glob('run*')))}")


def dead_leftovers() -> list[str]:
    """Drill folders whose process has ended: a drill must remove its own."""
    dead = []
    for folder in data_root().glob("drill-*-*"):
        try:
            os.kill(int(folder.name.rsplit("-", 1)[1]), 0)
        except ProcessLookupError:
            dead.append(folder.name)
    return dead


def small_drill(**plan) -> Drill:
    return Drill(Plan(scale=SCALE, workload_seconds=3, workload_rate=25, restore_point="-1.5s", **plan),
                 progress=lambda _: None)


def in_a_fork(drive, **plan):
    """A job for RunsAhead: drive(drill) -> what it saw, on a small drill of its own (plan
    changes its Plan), in a fork of the inner-run server (selftests/inner_runs.call), so that
    the fault it patches into checks.pitr touches no other drill; the drill is closed whatever
    happens."""
    def job(clone):
        return inner_runs.call(_drive, drive, plan, timeout=SUITE_TIMEOUT)
    return job


def _drive(drive, plan: dict) -> dict:
    drill = small_drill(**plan)
    try:
        return drive(drill)
    finally:
        drill.close()


def stopped(drill: Drill, phase: str, work) -> str | None:
    """The one-line error the phase stopped with, or None when it went through."""
    try:
        drill.phase(phase, work)
    except SetupError as exc:
        return str(exc)
    return None


def until_incident(drill: Drill) -> None:
    for name, work in (("production", drill.production), ("base backup", drill.base_backup),
                       ("workload", drill.workload), ("incident", drill.incident)):
        drill.phase(name, work)


WRONG_TIMES = {  # restore point, where recovery really stops, what the canaries then show
    "too-early": ("-1s", "-2.5s", "before the restore point (.*), and missing"),  # canaries missing
    "too-late": ("-2.5s", "-1s", "after the restore point (.*), and present"),  # canaries that must not be there
}


def rehearsal(*args: str, environments: str = ENVIRONMENTS):
    """A job for RunsAhead: `pytest --env=drill *args` with an environments file of its own (in
    its clone's folder; the drill makes its own production)."""
    def job(clone):
        return drill_run(environments_file(clone, environments), clone.workdir, *args)
    return job


def environments_file(clone, text: str = ENVIRONMENTS) -> Path:
    """An environments file of its own, in the clone's folder."""
    clone.workdir.mkdir(parents=True, exist_ok=True)
    path = clone.workdir / "environments.toml"
    path.write_text(text)
    return path


def runs_ahead() -> dict:
    """This module's drills as a user runs them, started when the session starts
    (selftests/conftest.py): each spends most of its time waiting for its workload's seconds."""
    return {
        "test_healthy_drill_passes_end_to_end_and_prints_rto_and_data_loss": rehearsal(),
        "test_rehearsal_that_forgets_to_pause_http_cron_is_caught_naming_the_job": rehearsal(
            "tests/test_drill.py", "tests/test_schema.py", environments=ENVIRONMENTS + "pause_http_cron = false\n"),
        "test_restore_point_after_the_incident_names_the_lost_orders": rehearsal("--restore-point=+0.5s", *DRILL_TESTS),
        "test_restore_past_the_incident_fails_data_loss_naming_the_missing_orders": rehearsal(
            "--recovery-target=+1s", *DRILL_TESTS),
        **{f"test_restore_to_the_wrong_time_is_caught_by_the_canaries[{case}]": rehearsal(
            f"--restore-point={restore_point}", f"--recovery-target={recovery_target}", *DRILL_TESTS)
           for case, (restore_point, recovery_target, _) in WRONG_TIMES.items()},
        "test_failed_restore_says_where_in_one_line_and_still_writes_the_report": rehearsal(
            "--restore-point=-60s", "tests/test_drill.py"),
        "test_dump_mode_losses_are_findings_not_crashes": rehearsal(
            "--drill-mode=dump", "tests/test_schema.py", "tests/test_migrations.py", "tests/test_security.py",
            "tests/test_drill.py"),
        "test_missing_wal_segment_stops_the_restore_naming_the_gap": in_a_fork(missing_wal_segment),
        "test_corrupted_base_backup_is_rejected_by_pg_verifybackup_naming_the_file": in_a_fork(corrupted_base_backup),
        "test_a_restore_that_writes_to_its_sources_is_caught": in_a_fork(restore_writing_to_its_sources),
        "test_active_http_cron_job_on_the_restored_database_is_named": in_a_fork(
            http_cron_jobs_on_the_restored_database, pause_http_cron=False),
        **{f"test_a_page_overwritten_on_the_restored_copy_is_named_by_amcheck[{kind}]": in_a_fork(
            PAGE_FAULTS[kind]) for kind in PAGE_FAULTS},
        **{f"test_the_replay_list_is_exactly_what_the_restore_lacks[{incident}]": in_a_fork(
            replay_after_the_incident, incident=incident) for incident in REPLAY_INCIDENTS},
        **{f"test_pages_verify_on_a_restored_project[{case}]": restored_project(*sql)
           for case, (sql, _) in RESTORED_AMCHECK.items()},
        "test_the_replay_list_collapses_a_split_order_and_lists_its_inbox_row": split_order_after_the_restore_point,
        "test_ctrl_c_during_the_drill_leaves_nothing_behind_and_writes_its_report": interrupted_drill,
    }


# -- healthy ------------------------------------------------------------------------------
def test_healthy_drill_passes_end_to_end_and_prints_rto_and_data_loss(ahead_run):
    run = ahead_run
    assert run.exit_code == 0, run.output
    assert not run.failed() and run.with_status("skipped") == without_http(run) | NEW_EACH_RUN, run.output
    for phase in ("[1/7] production", "[2/7] base backup", "[3/7] workload", "[4/7] incident", "[5/7] restore",
                  "[6/7] integrity", "[7/7] suite"):
        assert f"drill {phase}" in run.output
    assert "test_rto_within_objective: incident_to_restore_started_seconds=" in run.output
    # the workload kept its pace: 25 orders a second for 3 s (flat out: 745 here)
    ingested = int(re.search(r"drill \[3/7\] workload: (\d+) canary orders ingested", run.output).group(1))
    assert 60 <= ingested <= 80, run.output
    assert "test_data_loss_within_objective[bannos]: data_loss_seconds=" in run.output
    assert {"test_canaries[bannos]", "test_matches_compared_env[bannos]", "test_no_http_cron_jobs",
            "test_restore_source_untouched", f"test_cron_job[{SYNC}]"} <= run.with_status("passed")
    # the rehearsal paused the restored copy's HTTP job first, and the timeline says when
    assert f"HTTP cron jobs paused first: {SYNC}" in run.output
    assert re.search(r"UTC +\+ *[\d.]+ s +restored_accepting_connections\n.*UTC +\+ *[\d.]+ s +http_cron_jobs_paused\n",
                     run.output), run.output
    assert f"test_cron_job[{SYNC}]: paused_until_cut_over=calls net.http_post (a restored copy)" in run.output
    # its pages verified by pg_amcheck, heapallindexed on the tables a cut-over stands on
    assert re.search(r"drill \[6/7\] integrity: pg_amcheck [\d.]+: \d+ relations, [\d,]+ pages \(heapallindexed: "
                     r"orders_bannos, orders_flourlane, stage_events\): every page reads back sound", run.output)
    assert "test_pages_verify: amcheck=pg_amcheck" in run.output and ", corruptions=0," in run.output
    # the replay list beside the report: every canary committed after the restore point
    csv_file = run.report.with_name(f"{run.report.stem}-replay.csv")
    after = sum(int(n) for n in re.findall(r"test_canaries\[\w+\]: canaries_before=\d+, canaries_after=(\d+)",
                                           run.output))
    rows = list(csv.DictReader(csv_file.open()))
    assert after and len([r for r in rows if r["source"].startswith("webhook_inbox_")]) == after, rows
    assert f"test_replay_list: replay_file={csv_file}, replay_count={after}," in run.output
    summary = json.loads(run.report.with_suffix(".json").read_text())
    facts = {v["check"]: v["facts"] for c in summary["checks"] for v in c["verdicts"]}
    assert facts["replay_list"]["replay_count"] == after and facts["replay_list"]["replay_file"] == str(csv_file)
    assert facts["pages_verify"]["corruptions"] == 0 and facts["pages_verify"]["relations_checked"] > 50
    assert dead_leftovers() == []


def test_rehearsal_that_forgets_to_pause_http_cron_is_caught_naming_the_job(ahead_run):
    run = ahead_run
    assert "its HTTP cron jobs left running (rehearsal: pause_http_cron = false)" in run.output
    assert_outcomes(run, {"test_no_http_cron_jobs": (f"cron job {SYNC} (jobid", "calls net.http_post",
                                                     "cron.alter_job(<jobid>, active := false)")})


# -- faults ---------------------------------------------------------------------------------
# Faults that strike between two phases: each drives a drill in a fork (in_a_fork) and returns
# what it saw; the test judges that.
def missing_wal_segment(d: Drill) -> dict:
    # WAL shipped every second, as Supabase ships it every two minutes: segments to lose one of
    real = pitr.archiving
    pitr.archiving = lambda archive: {**real(archive), "archive_timeout": "'1s'"}
    until_incident(d)
    backup_wal = {p.name for p in (d.backup / "pg_wal").iterdir() if pitr.SEGMENT.match(p.name)}
    needed = sorted(p.name for p in d.archive.iterdir() if pitr.SEGMENT.match(p.name) and p.name > max(backup_wal))
    if len(needed) < 3:
        return {"needed": needed}
    (d.archive / needed[0]).unlink()
    archive_before, backup_before = pitr.manifest(d.archive), pitr.manifest(d.backup)
    error = stopped(d, "restore", d.restore)
    with psycopg.connect(d.production_url) as conn:
        production_orders = conn.execute("select count(*) from public.orders_flourlane").fetchone()[0]
    return {"needed": needed, "gone": needed[0], "error": error, "production_orders": production_orders,
            "sources_unchanged": pitr.manifest(d.archive) == archive_before and pitr.manifest(d.backup) == backup_before}


def test_missing_wal_segment_stops_the_restore_naming_the_gap(ahead_run):
    seen = ahead_run
    assert len(seen["needed"]) >= 3, seen["needed"]
    message = seen["error"]
    assert message and message.startswith("the drill stopped at phase [5/7] 'restore': "), message
    assert f"WAL segment {seen['gone']} is missing from the archive" in message
    assert "\n" not in message
    # the failed restore left its sources as they were, and production answers
    assert seen["sources_unchanged"] and seen["production_orders"] > SCALE


def corrupted_base_backup(d: Drill) -> dict:
    d.phase("production", d.production)
    with psycopg.connect(d.production_url) as conn:
        relation = conn.execute("select pg_relation_filepath('public.orders_bannos')").fetchone()[0]
    real = pitr.base_backup

    def corrupting(server, dest):
        real(server, dest)
        path = dest / relation
        data = bytearray(path.read_bytes())
        data[100:108] = b"CORRUPT!"
        path.write_bytes(bytes(data))

    pitr.base_backup = corrupting
    return {"relation": relation, "error": stopped(d, "base backup", d.base_backup)}


def test_corrupted_base_backup_is_rejected_by_pg_verifybackup_naming_the_file(ahead_run):
    message = ahead_run["error"]
    assert message and message.startswith("the drill stopped at phase [2/7] 'base backup': pg_verifybackup rejects")
    assert ahead_run["relation"] in message


def test_restore_point_after_the_incident_names_the_lost_orders(ahead_run):
    run = ahead_run
    # production as of that restore point lost them too: only the canaries can tell, and the data
    # loss, which holds that a copy with commits after the incident went past it (both stores
    # took traffic after it), and says to restore from an earlier point
    past = ("the restored copy holds commits made after the incident", "restore again from an earlier point")
    assert_outcomes(run, {"test_canaries[bannos]": ("before the restore point", "and missing", "bannos-9000001"),
                          **{f"test_data_loss_within_objective[{s}]": past for s in ("bannos", "flourlane")}},
                    NEW_EACH_RUN)
    assert "bannos-9000002: committed" in run.outcome("test_canaries[bannos]").message
    assert "order(s) production held before the incident are missing" not in \
        run.outcome("test_data_loss_within_objective[flourlane]").message


def test_restore_past_the_incident_fails_data_loss_naming_the_missing_orders(ahead_run):
    """The issue's case: the restore point is before the incident, the restore aims after it, so
    the mass delete is in the copy. The first screen must not say "data loss 0 s, met"."""
    run = ahead_run
    bannos = run.outcome("test_data_loss_within_objective[bannos]").message
    assert re.search(r"data loss [\d,.]+ h exceeds the RPO objective of 24 h: \d[\d,]* order\(s\) production held "
                     r"before the incident are missing", bannos), bannos
    assert "the restored copy holds commits made after the incident" in bannos
    assert "fix: restore again from an earlier point, before the damage" in bannos
    matches = run.outcome("test_matches_compared_env[bannos]").message
    assert "some from before its newest order: the copy holds the damage" in matches
    assert "fix: restore again from an earlier point" in matches and "later point" not in matches
    assert "below the 90% this check asks" in run.outcome("test_store_count_vs_compared[bannos]").message
    summary = json.loads(run.report.with_suffix(".json").read_text())
    loss = {d["store"]: d for d in summary["timeline"]["data_loss"]}
    assert loss["bannos"]["met"] is False and loss["bannos"]["orders_missing"] > SCALE, loss
    assert summary["act_first"][:2] == ["test_canaries[bannos]", "test_canaries[flourlane]"] or \
        "test_data_loss_within_objective[bannos]" in summary["act_first"], summary["act_first"]
    assert "data loss bannos" in run.output and "NOT MET" in run.output.split("data loss bannos")[1].splitlines()[0]
    html = run.report.read_text()
    assert "Act first, before any cut-over" in html and ">missed<" in html


@pytest.mark.parametrize("case", WRONG_TIMES)
def test_restore_to_the_wrong_time_is_caught_by_the_canaries(ahead_run, case):
    run = ahead_run
    seen = WRONG_TIMES[case][2]
    canaries = {f"test_canaries[{store}]": (f"{store}-900",) for store in ("bannos", "flourlane")}
    if "missing" in seen:  # orders created before the restore point are missing: the comparison sees them too
        canaries.update({f"test_matches_compared_env[{store}]": ("drill lacks",) for store in ("bannos", "flourlane")})
    assert_outcomes(run, canaries, NEW_EACH_RUN)
    for store in ("bannos", "flourlane"):
        assert re.search(seen, run.outcome(f"test_canaries[{store}]").message), run.output


def restore_writing_to_its_sources(d: Drill) -> dict:
    until_incident(d)
    real = pitr.recover
    touched: list[str] = []

    def writing(backup, archive, dest, target, extension_dir):
        server = real(backup, archive, dest, target, extension_dir)
        segment = sorted(p for p in archive.iterdir() if pitr.SEGMENT.match(p.name))[0]
        os.utime(segment)  # as an archive_command left on in the copy would rewrite it
        with open(backup / "postgresql.auto.conf", "a") as conf:
            conf.write("# touched\n")
        touched.extend([segment.name, "postgresql.auto.conf"])
        return server

    pitr.recover = writing
    d.phase("restore", d.restore)
    verdict = recovery.source_untouched(d.source)
    return {"touched": touched, "objects": [v["object"] for v in verdict.violations], "message": verdict.message()}


def test_a_restore_that_writes_to_its_sources_is_caught(ahead_run):
    seen = ahead_run
    assert seen["objects"] == [f"base backup: {seen['touched'][1]}", f"WAL archive: {seen['touched'][0]}"]
    assert "changed during the restore" in seen["message"]


def http_cron_jobs_on_the_restored_database(d: Drill) -> dict:
    d.phase("production", d.production)
    with psycopg.connect(d.production_url, autocommit=True) as conn:
        conn.execute(HTTP_JOB)
        conn.execute("create function public.push_stock() returns void language sql as "
                     "$$ select 1 /* net.http_post(url := 'https://x.supabase.co/functions/v1/push') */ $$")
        conn.execute("select cron.schedule('push-stock-edge', '*/10 * * * *', 'select public.push_stock()')")
        conn.execute("select cron.schedule('quiet-http', '0 0 * * *', 'select net.http_get(''https://example.org'')')")
        conn.execute("update cron.job set active = false where jobname = 'quiet-http'")
    for name, work in (("base backup", d.base_backup), ("workload", d.workload), ("incident", d.incident),
                       ("restore", d.restore)):
        d.phase(name, work)
    restored = Target(Environment(name="restore", restore_target=True), d.restored_url)
    try:
        verdict = recovery.http_cron_jobs(restored)
        paused = recovery.pause_http_cron_jobs(restored)  # what the rehearsal does by default
        after = recovery.http_cron_jobs(restored)
    finally:
        restored.close()
    return {"named": {v["object"].split(" (")[0]: v["problem"] for v in verdict.violations},
            "message": verdict.message(), "paused": sorted(paused),
            "after_ok": after.ok, "after_facts": after.facts, "after_message": after.message()}


def test_active_http_cron_job_on_the_restored_database_is_named(ahead_run):
    seen = ahead_run
    named = seen["named"]
    assert set(named) == {f"cron job {SYNC}", "cron job push-stock-http", "cron job push-stock-edge"}, seen["message"]
    assert "calls net.http_post" in named["cron job push-stock-http"]
    assert "calls public.push_stock, which makes HTTP calls" in named["cron job push-stock-edge"]
    # what the rehearsal does by default: every one of them paused, the other jobs left running
    assert seen["paused"] == ["push-stock-edge", "push-stock-http", SYNC]
    assert seen["after_ok"] and seen["after_facts"]["active_jobs"] == 2, seen["after_message"]
    assert seen["after_facts"]["paused_http_jobs"] == f"{SYNC}, push-stock-http, push-stock-edge, quiet-http"


def test_http_cron_job_is_the_first_finding_of_a_restore_run(ordak_clone):
    clone = ordak_clone(HTTP_JOB)
    run = clone.run_suite("tests/test_drill.py", "tests/test_schema.py", env_name="restore")
    assert_outcomes(run, {"test_no_http_cron_jobs": ("push-stock-http", SYNC, "net.http_post", "cron.alter_job")},
                    NO_AMCHECK)
    assert list(run.outcomes)[0].endswith("::test_no_http_cron_jobs"), list(run.outcomes)[:3]  # run order


@pytest.mark.parametrize("env_name, paused, fails", [
    # on a restored copy, an HTTP job paused until cut-over is right
    ("restore", [SYNC], {}),
    # a paused job that makes no HTTP call is still a finding there
    ("restore", [SYNC, "order-monitor"], {"test_cron_job[order-monitor]": ("cron job order-monitor: job is inactive",)}),
    # production keeps requiring every job active, the HTTP one included
    ("production", [SYNC], {f"test_cron_job[{SYNC}]": (f"cron job {SYNC}: job is inactive",)}),
])
def test_cron_job_spares_only_paused_http_jobs_and_only_on_a_restored_copy(ordak_clone, env_name, paused, fails):
    clone = ordak_clone(*(PAUSE.format(job) for job in paused))
    run = clone.run_suite("tests/test_schema.py", "tests/test_drill.py", "-k", "cron", env_name=env_name)
    assert_outcomes(run, fails)
    ran = run.with_status("passed") | run.failed()
    assert f"test_cron_job[{SYNC}]" in ran and ("test_no_http_cron_jobs" in ran) == (env_name == "restore")


# -- pages that do not read back sound (amcheck) -----------------------------------------------
def overwrite_page(path: Path, block: int) -> None:
    """64 bytes of junk in the middle of one 8 kB page: its checksum no longer matches."""
    data = bytearray(path.read_bytes())
    assert len(data) >= (block + 1) * 8192, f"{path} has no block {block}"
    at = block * 8192 + 4000
    data[at:at + 64] = b"OVERWRITTEN ON DISK!" * 3 + b"...."
    path.write_bytes(bytes(data))


def page_overwritten(relation: str, d: Drill, block: int = 1) -> dict:
    """A drive for in_a_fork (bound to a relation): the drill up to its restore, then the restored
    cluster stopped, one page of `relation` overwritten on disk, the cluster started again, and
    the integrity phase."""
    until_incident(d)
    d.phase("restore", d.restore)
    with psycopg.connect(d.restored.admin_url(RESTORED_DB)) as conn:
        path = conn.execute("select pg_relation_filepath(%s)", (relation,)).fetchone()[0]
    d.restored.stop()
    overwrite_page(d.restored.datadir / path, block)
    d.restored.start()
    lines = []
    d.say = lines.append
    d.phase("integrity", d.integrity)
    verdict = amcheck.pages_verify(d.amcheck)
    return {"objects": {v["object"]: v["problem"] for v in verdict.violations}, "message": verdict.message(),
            "facts": verdict.facts, "phase": lines[-1]}


PAGE_FAULTS = {"heap": partial(page_overwritten, "public.orders_bannos"),  # partial: pickled into the fork
               "index": partial(page_overwritten, "public.orders_flourlane_created_at_idx")}


@pytest.mark.parametrize("kind", PAGE_FAULTS)
def test_a_page_overwritten_on_the_restored_copy_is_named_by_amcheck(ahead_run, kind):
    seen = ahead_run
    objects, message = seen["objects"], seen["message"]
    assert seen["facts"]["corruptions"] == len(objects) and "CORRUPTION(S): see test_pages_verify" in seen["phase"]
    if kind == "heap":
        # the page itself, and each of the table's indexes whose heapallindexed check read it
        assert objects["public.orders_bannos"].startswith("heap table, block 1: invalid page in block 1 of relation")
        assert set(objects) - {"public.orders_bannos"} and all(o.startswith("public.orders_bannos_") for o in
                                                               set(objects) - {"public.orders_bannos"}), message
        assert all("reading block 1 of public.orders_bannos" in objects[o] for o in objects if o.endswith(("_idx", "_key", "_pkey")))
        assert "fix: do not cut over to this copy: restore again" in message
    else:
        assert set(objects) == {"public.orders_flourlane_created_at_idx"}, message
        assert objects["public.orders_flourlane_created_at_idx"].startswith(
            "btree index, block 1: invalid page in block 1 of relation")
        assert "fix: only indexes are damaged" in message and "reindex index concurrently" in message


# A restored project: amcheck over the suite's own connection, where the extension is installed.
CREATE_AMCHECK = "create extension amcheck with schema extensions"
GRANT_AMCHECK = "grant execute on all functions in schema extensions to postgres"
# An index missing rows, as a lost page would leave it: the index is not kept while one row moves.
INDEX_MISSES_A_ROW = [
    "update pg_index set indisready = false where indexrelid = 'public.orders_bannos_created_at_idx'::regclass",
    "update public.orders_bannos set created_at = created_at - interval '1 second' "
    "where id = (select min(id) from public.orders_bannos)",
    "update pg_index set indisready = true where indexrelid = 'public.orders_bannos_created_at_idx'::regclass"]
RESTORED_AMCHECK = {  # the clone's SQL (as the superuser), then what test_pages_verify says
    "not installed": ([], ("skipped", "the amcheck extension is not installed on",
                           "the suite never creates it on a target", "create extension amcheck with schema extensions;")),
    "installed": ([CREATE_AMCHECK, GRANT_AMCHECK], ("passed",)),
    "no execute": ([CREATE_AMCHECK], ("skipped", "the connected role (postgres) may not execute amcheck's functions",
                                      "grant execute on function extensions.bt_index_check(regclass)")),
    "index misses a row": ([CREATE_AMCHECK, GRANT_AMCHECK, *INDEX_MISSES_A_ROW], (
        "failed", "public.orders_bannos_created_at_idx: btree index: heap tuple (",
        'lacks matching index tuple within index "orders_bannos_created_at_idx"', "fix: only indexes are damaged")),
}


def restored_project(*sql: str):
    """A job for RunsAhead: its clone as a restored project (--env=restore), sql applied as the
    superuser, test_pages_verify run; the extensions the clone holds afterwards come back too."""
    def job(clone):
        for statement in sql:
            clone.execute(statement, as_admin=True)
        run = clone.run_suite("tests/test_drill.py", "-k", "pages_verify", env_name="restore")
        with psycopg.connect(clone.url) as conn:
            extensions = {r[0] for r in conn.execute("select extname from pg_extension")}
        return run, extensions
    return job


@pytest.mark.parametrize("case", RESTORED_AMCHECK)
def test_pages_verify_on_a_restored_project(ahead_run, case):
    run, extensions = ahead_run
    status, *fragments = RESTORED_AMCHECK[case][1]
    outcome = run.outcome("test_pages_verify")
    assert outcome.status == status, run.output
    for fragment in fragments:
        assert fragment in outcome.message, outcome.message
    assert ("amcheck" in extensions) == bool(RESTORED_AMCHECK[case][0]), "the suite never creates the extension"
    if case == "installed":
        assert re.search(r"test_pages_verify: amcheck=amcheck [\d.]+ \(verify_heapam, bt_index_check\) in schema "
                         r"extensions, relations_checked=\d+, pages_checked=\d+, heapallindexed=orders_bannos, "
                         r"orders_flourlane, stage_events, corruptions=0", run.output), run.output


# -- the replay list --------------------------------------------------------------------------
REPLAY_INCIDENTS = ["mass-delete:bannos", "drop-table:bannos"]


def replay_after_the_incident(d: Drill) -> dict:
    """The drill up to its restore, then the replay list against production as it is after the
    incident; what it lists, and the canaries to judge it by."""
    until_incident(d)
    d.phase("restore", d.restore)
    restored = Target(Environment(name="drill", restore_target=True), d.restored_url)
    production = Target(Environment(name="production", read_only=True), d.production_url)
    path = d.home / "replay.csv"
    try:
        verdict = replay.replay_list(restored, production, datetime.fromtimestamp(d.restore_at, timezone.utc), path)
    finally:
        restored.close()
        production.close()
    return {"rows": list(csv.DictReader(path.open())), "facts": verdict.facts, "notes": verdict.notes,
            "ok": verdict.ok, "restore_point": d.restore_at, "incident_at": d.incident_at.timestamp(),
            "canaries": [(c.id, c.store, c.committed_at.timestamp()) for c in d.canaries]}


@pytest.mark.parametrize("incident", REPLAY_INCIDENTS)
def test_the_replay_list_is_exactly_what_the_restore_lacks(ahead_run, incident):
    """The restore (to the restore point) lacks every canary committed after it: each is listed,
    from the order tables where production still holds it, and from the inbox in every case;
    an order table the incident dropped is read from its inbox alone, and said so."""
    seen = ahead_run
    after = {(id_, store): at for id_, store, at in seen["canaries"] if at > seen["restore_point"]}
    assert after and {s for _, s in after} == {"bannos", "flourlane"}, seen["canaries"]
    kind = incident.split(":")[0]
    # production still holds the orders the incident did not delete or drop
    held = {key for key, at in after.items() if key[1] != "bannos" or kind == "mass-delete" and at > seen["incident_at"]}
    rows = seen["rows"]
    inbox = {(r["id"], r["store"]) for r in rows if r["source"].startswith("webhook_inbox_")}
    orders = {(r["id"], r["store"]) for r in rows if r["source"].startswith("orders_")}
    assert inbox == set(after), (sorted(inbox ^ set(after)), rows)
    assert orders == held, sorted(orders ^ held)
    assert all(r["shopify_order_id"] and r["shopify_order_gid"].endswith(r["shopify_order_id"]) for r in rows)
    assert all(r["created_at"] > datetime.fromtimestamp(seen["restore_point"], timezone.utc).isoformat() for r in rows)
    assert seen["ok"] and seen["facts"]["replay_count"] == len(after) and seen["facts"]["replay_orders"] == len(held)
    notes = [n["object"] for n in seen["notes"]]
    assert notes == (["production: public.orders_bannos"] if kind == "drop-table" else []), seen["notes"]


def split_order_after_the_restore_point(clone) -> tuple:
    """A job for RunsAhead: a restored project (its clone) and production (a copy of it), into
    which, after the restore point, a three-cake order arrives as process-inbox stores it, then
    the replay list (--env=restore --compare-to=production)."""
    production = clone.copy(f"{clone.name}_production")
    try:
        restore_point = datetime.now(timezone.utc)
        time.sleep(0.05)
        production.execute(SPLIT_ORDER, as_admin=True)
        run = clone.run_suite("tests/test_drill.py", "-k", "replay_list", f"--restore-point={restore_point.isoformat()}",
                              "--compare-to=production", env_name="restore",
                              extra_env={"ORDAK_PRODUCTION_DB_URL": production.url})
    finally:
        clone.cluster.drop(production.name)
    return run, restore_point


SPLIT_ORDER = """
insert into public.webhook_inbox_bannos (id, payload, processed)
values ('bannos-77001', '{"id": 7100000077001, "admin_graphql_api_id": "gid://shopify/Order/7100000077001",
        "order_number": 77001}', true);
insert into public.orders_bannos (id, shopify_order_id, shopify_order_gid, shopify_order_number, human_id,
                                  customer_name, product_title)
select 'bannos-77001-' || s, 7100000077001, 'gid://shopify/Order/7100000077001', 77001, '#B77001-' || s,
       'Split Customer', 'Cake ' || s from unnest(array['A', 'B', 'C']) s;
"""


def test_the_replay_list_collapses_a_split_order_and_lists_its_inbox_row(ahead_run):
    run, restore_point = ahead_run
    assert run.outcome("test_replay_list").status == "passed", run.output
    rows = list(csv.DictReader(run.report.with_name(f"{run.report.stem}-replay.csv").open()))
    assert [(r["source"], r["id"], r["cakes"], r["shopify_order_id"]) for r in rows] == [
        ("orders_bannos", "bannos-77001-A bannos-77001-B bannos-77001-C", "3", "7100000077001"),
        ("webhook_inbox_bannos", "bannos-77001", "", "7100000077001")], rows
    assert "replay_count=1, replay_orders=1, replay_order_rows=3, replay_inbox_rows=1" in run.output
    assert f"replay_from={restore_point.isoformat()}" in run.output and "replay_compared_with=production" in run.output


# -- failure, cleanup, a real drill's timeline ------------------------------------------
def test_failed_restore_says_where_in_one_line_and_still_writes_the_report(ahead_run):
    run = ahead_run
    assert run.exit_code == 4, run.output
    error = [line for line in run.output.splitlines() if line.startswith("ERROR: ")]
    assert len(error) == 1 and "is before the base backup (started " in error[0], run.output
    assert error[0].startswith("ERROR: the drill stopped at phase [5/7] 'restore': the recovery target "), run.output
    assert "Traceback" not in run.output and run.report is not None
    reason, html = error[0].removeprefix("ERROR: "), run.report.read_text()
    assert str(escape(reason)) in html or html_escape(reason) in html, "the reason, on the report"
    assert dead_leftovers() == []


def interrupted_drill(clone) -> dict:
    """A job for RunsAhead: `pytest --env=drill` as a user runs it, Ctrl-C during its workload."""
    environments = environments_file(clone)
    report = clone.workdir / "report.html"
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--env=drill",
               f"--environments={environments}", "--workload-seconds=30", f"--html={report}", "tests/test_drill.py"]
    clean = {**{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}, "ORDAK_DATA_DIR": str(data_root())}
    process = subprocess.Popen(command, cwd=ROOT, env=clean, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in process.stdout:
        seen.append(line)
        if "drill [3/7] workload ..." in line:
            break
    time.sleep(1)
    folder = data_root() / f"drill-run-{process.pid}"
    existed = folder.exists()
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=120)
    summary = report.with_suffix(".json")
    return {"output": "".join(seen) + rest, "existed": existed, "left": folder.exists(), "exit_code": process.returncode,
            "private_left": [p.name for p in data_root().glob(f"drill-*-private-{process.pid}")],
            "summary": json.loads(summary.read_text()) if summary.exists() else None}


def test_ctrl_c_during_the_drill_leaves_nothing_behind_and_writes_its_report(ahead_run):
    seen = ahead_run
    assert seen["existed"], seen["output"]
    assert not seen["left"]
    assert not seen["private_left"]  # when another drill held the shared one
    # nothing lost: the report says interrupted, and where
    assert seen["exit_code"] == 2 and "Traceback" not in seen["output"], seen["output"]
    assert "ERROR: interrupted (Ctrl-C) while drill [3/7] workload; nothing was verified" in seen["output"]
    summary = seen["summary"]
    assert summary["verdict"] == "interrupted" and summary["interrupted"] == "drill [3/7] workload", summary
    assert [e["event"] for e in summary["timeline"]["events"]][-1] == "interrupted"


def restored_to(hours_ago: float) -> str:
    """What a restore to that time leaves of the live clone: no order created after it."""
    return ";".join(f"delete from public.orders_{store} where created_at > now() - interval '{hours_ago} hours'"
                    for store in ("bannos", "flourlane"))


def test_real_drill_timeline_measures_rto_and_data_loss(ordak_clone):
    clone = ordak_clone(PAUSED_FIRST, restored_to(5), "delete from public.orders_bannos where created_at > now() - interval '30 hours'")
    now = datetime.now(timezone.utc)
    run = clone.run_suite("tests/test_drill.py", "--restore-point=" + (now - timedelta(minutes=20)).isoformat(),
                          "--incident-at=" + (now - timedelta(hours=5)).isoformat(),
                          "--restore-started-at=" + (now - timedelta(hours=4, minutes=30)).isoformat(),
                          env_name="restore")
    assert_outcomes(run, {
        "test_rto_within_objective": ("exceeds the objective of 4 h", "incident_to_restore_started 0.50 h"),
        "test_data_loss_within_objective[bannos]": ("exceeds the RPO objective of 24 h",),
    }, NO_AMCHECK)
    assert "test_data_loss_within_objective[flourlane]: data_loss_seconds=" in run.output


def test_real_drill_within_objectives_passes(ordak_clone):
    now = datetime.now(timezone.utc)
    run = ordak_clone(PAUSED_FIRST, restored_to(1.1)).run_suite("tests/test_drill.py", "--incident-at=" + (now - timedelta(hours=1)).isoformat(),
                                  "--restore-started-at=" + (now - timedelta(minutes=40)).isoformat(),
                                  env_name="restore")
    assert run.exit_code == 0, run.output
    assert run.with_status("passed") == {"test_no_http_cron_jobs", "test_data_loss_within_objective[bannos]",
                                         "test_data_loss_within_objective[flourlane]", "test_rto_within_objective"}
    assert "rto_hours=1.0" in run.output


def test_real_restore_holding_orders_from_after_the_incident_fails_data_loss_and_says_earlier(ordak_clone):
    """The live clone's newest order is minutes old; an incident an hour ago means this copy went
    past it: an impossible data loss (negative), a failure, never "0 s, met"."""
    now = datetime.now(timezone.utc)
    run = ordak_clone(PAUSED_FIRST).run_suite("tests/test_drill.py", "--incident-at=" + (now - timedelta(hours=1)).isoformat(),
                                              env_name="restore")
    past = ("the restored copy holds commits made after the incident", "h after the incident",
            "restore again from an earlier point, before the damage")
    assert_outcomes(run, {f"test_data_loss_within_objective[{store}]": past for store in ("bannos", "flourlane")},
                    NO_AMCHECK)
    summary = json.loads(run.report.with_suffix(".json").read_text())
    assert [(d["store"], d["met"], d["hours"] < 0) for d in summary["timeline"]["data_loss"]] == \
        [("bannos", False, True), ("flourlane", False, True)]
    assert re.search(r"data loss bannos −\d+ min \(0 orders missing\) of 24 h: NOT MET", run.output), run.output


def test_timeline_options_are_checked(ordak_clone):
    run = ordak_clone().run_suite("tests/test_drill.py", "--incident-at=yesterday", env_name="restore")
    assert run.exit_code == 4 and "ERROR: --incident-at 'yesterday' is not an ISO-8601 time" in run.output


def test_dump_mode_losses_are_findings_not_crashes(ahead_run):
    """What a logical restore into a fresh project loses shows up as findings of the checks."""
    run = ahead_run
    assert run.exit_code == 1 and not run.with_status("error"), run.output
    for phase in ("[1/6] production", "[2/6] workload", "[3/6] incident", "[4/6] restore", "[5/6] integrity",
                  "[6/6] suite"):
        assert f"drill {phase}" in run.output
    lost = {"test_realtime_table[orders_bannos]": "not in",  # publication membership
            "test_cron_job[order-monitor]": "",  # cron jobs
            "test_migration_files_applied": "",  # schema_migrations rows
            "test_anon_cannot_execute_definer_functions": "anon may execute"}  # grants: default privileges
    for test, fragment in lost.items():
        assert run.outcome(test).status == "failed" and fragment in run.outcome(test).message, run.output
    assert {"test_canaries[bannos]", "test_canaries[flourlane]", "test_restore_source_untouched",
            "test_rto_within_objective"} <= run.with_status("passed")


@pytest.mark.parametrize("args, error", [
    (["--env=drill", "--incident=meteor"], "--incident=meteor: expected KIND[:STORE] with KIND one of mass-delete"),
    (["--env=drill", "--restore-point=soon"], "--restore-point=soon: expected seconds relative to the incident"),
    (["--env=drill", "--compare-to=production"], "--compare-to: a rehearsed drill times its own incident"),
    (["--drill-mode=dump"], "--drill-mode: only for a rehearsed drill (--env=drill); environment 'local' is not one"),
])
def test_bad_drill_options_get_one_line_before_anything_runs(tmp_path, args, error):
    run = run_suite(*args, "tests/test_drill.py", env={"ORDAK_DATA_DIR": str(data_root())}, workdir=tmp_path)
    assert run.exit_code == 4, run.output
    assert f"ERROR: {error}" in run.output and "Traceback" not in run.output
    assert "drill [1/" not in run.output


@pytest.mark.parametrize("setting, error", [
    ("workload_rate = 0", "rehearsal.workload_rate must be a positive number of orders per second"),
    ("workload_rate = 'fast'", "rehearsal.workload_rate must be a number of orders per second"),
])
def test_bad_workload_rate_gets_one_line_before_anything_runs(tmp_path, setting, error):
    environments = tmp_path / "environments.toml"
    environments.write_text(ENVIRONMENTS.replace("workload_rate = 25", setting))
    run = drill_run(environments, tmp_path, "tests/test_drill.py")
    assert run.exit_code == 4, run.output
    assert error in run.output and "Traceback" not in run.output, run.output
    assert "drill [1/" not in run.output
