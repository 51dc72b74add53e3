"""Run options end to end: the report's environment table, --persist-smoke, and xdist
workers receiving everything the controller resolved."""

import json
import re
from datetime import datetime, timedelta, timezone

import psycopg

SECRET = "s3cret-in-the-url"


def test_report_names_the_target_and_never_the_secret(ordak_clone, reference):
    cluster, _ = reference
    clone = ordak_clone()
    with psycopg.connect(cluster.server.admin_url(), autocommit=True) as conn:
        conn.execute("drop role if exists ordak_password_reporter")
        conn.execute(f"create role ordak_password_reporter login password '{SECRET}' in role postgres")
    url = clone.url.replace("postgres@", f"ordak_password_reporter:{SECRET}@")
    run = clone.run_suite("tests/test_schema.py", "-k", "test_enum", extra_env={"ORDAK_STAGING_DB_URL": url})
    assert run.exit_code == 0, run.output
    html = run.report.read_text()
    for shown in ("Environment", "staging", "database", clone.name, "PostgreSQL 18.", "connected as"):
        assert shown in html, shown
    assert SECRET not in html and SECRET not in run.output


def test_persist_smoke_keeps_the_order_and_says_how_to_remove_it(ordak_clone):
    clone = ordak_clone()
    run = clone.run_suite("tests/test_smoke_flow.py", "--persist-smoke")
    assert run.exit_code == 0, run.output
    kept = re.findall(r"kept=(bannos-\d+|flourlane-\d+) is kept", run.output)
    assert len(kept) == 2, run.output
    removal = re.search(r"remove it with: (delete from public\.stage_events where store = 'bannos'.*?;.*?;)", run.output)
    with psycopg.connect(clone.url, autocommit=True) as conn:
        for order_id in kept:
            store = order_id.split("-")[0]
            stage = conn.execute(f"select stage::text from public.orders_{store} where id = %s", (order_id,)).fetchone()
            assert stage == ("Complete",), f"{order_id} was not kept"
        conn.execute(removal.group(1))
        assert conn.execute("select count(*) from public.orders_bannos where id = %s", (kept[0],)).fetchone() == (0,)


def test_persist_smoke_is_refused_on_a_read_only_env(ordak_clone):
    run = ordak_clone().run_suite("tests/test_smoke_flow.py", "--persist-smoke", env_name="production")
    assert run.exit_code == 4
    assert "ERROR: --persist-smoke writes a test order; environment 'production' is read-only" in run.output


def xdist_comparison(production) -> tuple:
    """A job for RunsAhead: a restored copy of production, one order short, checked by two
    workers against production and a restore point two days ago (so the orders of the last
    two days are "after the restore point"; flourlane-24007 is six weeks old)."""
    restored = production.copy(f"{production.name}_restored")
    try:
        restored.execute("delete from public.orders_flourlane where id = 'flourlane-24007'")
        restore_point = datetime.now(timezone.utc) - timedelta(days=2)
        return restored.run_suite("tests/test_store_data.py", "-n", "2", "--compare-to=production",
                                  f"--restore-point={restore_point:%Y-%m-%dT%H:%MZ}",
                                  extra_env={"ORDAK_PRODUCTION_DB_URL": production.url}), restore_point
    finally:
        production.cluster.drop(restored.name)


def runs_ahead() -> dict:
    """This module's costliest run, started when the session starts (selftests/conftest.py)."""
    return {"test_xdist_workers_get_the_comparison_and_the_restore_point": xdist_comparison}


def test_xdist_workers_get_the_comparison_and_the_restore_point(ahead_run):
    run, restore_point = ahead_run
    # The copy holds orders from after that restore point: its RPO is negative, a failure too.
    assert run.failed() == {"test_matches_compared_env[flourlane]", *(
        f"{test}[{store}]" for test in ("test_no_orders_after_reference_time", "test_stage_timestamps_consistent",
                                        "test_last_order_fresh")
        for store in ("bannos", "flourlane"))}, run.output
    assert "flourlane-24007" in run.outcome("test_matches_compared_env[flourlane]").message
    assert f"after the restore point ({restore_point:%Y-%m-%d %H:%M}" in \
        run.outcome("test_no_orders_after_reference_time[bannos]").message


def test_a_restore_without_its_restore_point_says_rpo_was_measured_against_now(ordak_clone):
    """Not refused (in an incident the run still answers), but said on the first screen, in the
    JSON and in the terminal; with --restore-point, not said."""
    clone = ordak_clone()
    run = clone.run_suite("tests/test_store_data.py", "-k", "last_order_fresh", env_name="restore")
    warning = "no --restore-point: freshness and RPO were measured against now, not against the time restore was restored to"
    assert f"WARNING: {warning}" in run.output, run.output
    summary = json.loads(run.report.with_suffix(".json").read_text())
    assert summary["reference_time"]["warning"].startswith(warning)
    assert "ordak-warn" in run.report.read_text() and warning in run.report.read_text()
    given = clone.run_suite("tests/test_store_data.py", "-k", "last_order_fresh",
                            f"--restore-point={datetime.now(timezone.utc).isoformat()}", env_name="restore")
    assert "WARNING:" not in given.output and given.exit_code == 0, given.output
