"""Fault catalogue for store data, RPO, the day-by-day comparison and queue health.

Each fault breaks a clone of the healthy reference (whose clock is moved to now); the store
data and queue tests run against it as a user would, and exactly the intended test ids must
fail, naming the orders, jobs or values at fault.
"""

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pytest

from selftests.harness import NO_COMPARE, assert_outcomes, broken, rpc_definition

PART = ("tests/test_store_data.py", "tests/test_queue.py")
# Without --compare-to, the comparison has nothing to compare with: skipped, with that reason.
OPEN_RPCS = frozenset(f"{test}[{store}]" for store in ("bannos", "flourlane") for test in (
    "test_get_queue_lists_the_queue", "test_unassigned_counts_match", "test_queue_stats_match"))


@dataclass(frozen=True)
class Fault:
    sql: str
    fails: dict[str, tuple[str, ...]]
    skips: frozenset[str] = NO_COMPARE
    as_admin: bool = False
    restore_point_now: bool = False
    absent: dict[str, tuple[str, ...]] = field(default_factory=dict)  # test -> what its message must not say


FIRST_PACKING_BANNOS = "(select id from public.orders_bannos where stage = 'Packing' order by id limit 1)"
# A Complete order that went through complete_packing: its Packing 'complete' event says so.
PACKED_BANNOS = ("(select order_id from public.stage_events where store = 'bannos' and stage = 'Packing' "
                 "and event_type = 'complete' order by order_id limit 1)")
GET_QUEUE = rpc_definition("get_queue")

FAULTS = {
    "empty_store": Fault(
        "delete from public.orders_flourlane",
        {"test_store_not_empty[flourlane]": ("public.orders_flourlane: table has no orders",)},
        skips=NO_COMPARE | {"test_last_order_fresh[flourlane]"}),
    "created_at_in_the_future": Fault(
        "update public.orders_bannos set created_at = now() + interval '2 days' where id = 'bannos-18100'",
        # The newest order after the clock: its age is negative, an impossible value, not "fresh".
        {"test_no_orders_after_reference_time[bannos]": ("bannos-18100: created", "after the now"),
         "test_last_order_fresh[bannos]": ("48.0 h after the database's clock", "created_at or the clock is wrong")}),
    "shifted_past_the_rpo": Fault(
        "update public.orders_bannos set created_at = created_at - interval '3 days';"
        "update public.orders_flourlane set created_at = created_at - interval '3 days'",
        {"test_last_order_fresh[bannos]": ("h before the restore point", "the limit is 24 h"),
         "test_last_order_fresh[flourlane]": ("h before the restore point", "the limit is 24 h")},
        restore_point_now=True),
    "packing_without_filling_complete": Fault(
        f"update public.orders_bannos set filling_complete_ts = null where id = {FIRST_PACKING_BANNOS}",
        {"test_stage_timestamps_consistent[bannos]": ("Packing: past Filling but filling_complete_ts is null",)}),
    "packed_order_lost_its_covering_timestamp": Fault(
        f"update public.orders_bannos set covering_complete_ts = null, covering_start_ts = null where id = {PACKED_BANNOS}",
        {"test_stage_timestamps_consistent[bannos]": ("bannos-18001: Complete: past Covering but covering_complete_ts "
                                                      "is null",)}),
    "completed_before_started": Fault(
        "update public.orders_flourlane set covering_complete_ts = covering_start_ts - interval '1 hour'"
        " where id = 'flourlane-24001'",
        {"test_stage_timestamps_consistent[flourlane]": (
            "flourlane-24001: Complete: covering_complete_ts is before covering_start_ts",)}),
    "assignee_gone": Fault(
        "alter table public.orders_flourlane drop constraint orders_flourlane_assignee_id_fkey;"
        "update public.orders_flourlane set assignee_id = '00000000-0000-4000-8000-000000000001'"
        " where id = 'flourlane-24010'",
        {"test_assignees_exist[flourlane]": (
            "flourlane-24010: assigned to 00000000-0000-4000-8000-000000000001, who is not in staff_shared",)}),
    "same_shopify_order_ingested_twice": Fault(
        "insert into public.orders_bannos (id, shopify_order_id, shopify_order_gid, shopify_order_number, stage)"
        " select 'bannos-18017', shopify_order_id, shopify_order_gid, shopify_order_number, 'Filling'"
        " from public.orders_bannos where id = 'bannos-18017-A'",
        {"test_no_shopify_duplicates[bannos]": (
            "bannos-18017, bannos-18017-A, bannos-18017-B: share shopify_order_id 5200000000017",
            "a row without a -A/-B suffix sits beside the others")}),
    "sibling_of_another_order_number": Fault(
        "update public.orders_bannos set shopify_order_id = 5200000000034,"
        " shopify_order_gid = 'gid://shopify/Order/5200000000034' where id = 'bannos-18017-B'",
        {"test_no_shopify_duplicates[bannos]": (
            "bannos-18017-B, bannos-18034-A, bannos-18034-B: share shopify_order_id 5200000000034",
            "their ids carry different order numbers")}),
    "packed_order_lost_an_event": Fault(
        f"delete from public.stage_events where store = 'bannos' and order_id = {PACKED_BANNOS}"
        " and stage = 'Covering' and event_type = 'complete'",
        {"test_stage_events_present[bannos]": (
            "bannos-18001: completed Covering but stage_events has no 'complete' event for it",)}),
    # Its exemption rests on evidence this loss cannot erase: the order reached Packing (its own
    # decorating_complete_ts, packing_start_ts and Decorating event), so its last event is required.
    "packed_order_lost_its_packing_event": Fault(
        f"delete from public.stage_events where store = 'bannos' and order_id = {PACKED_BANNOS}"
        " and stage = 'Packing' and event_type = 'complete'",
        {"test_stage_events_present[bannos]": (
            "bannos-18001: completed Packing but stage_events has no 'complete' event for it",
            "or an Admin closed it from Packing with mark_order_complete")}),
    # The stage rules read a store's events by store: events filed under the other store are
    # no trail of this store's order (and no finding of the other store, which has no such order).
    "order_with_events_filed_under_the_other_store": Fault(
        f"update public.stage_events set store = 'flourlane' where store = 'bannos' and order_id = {PACKED_BANNOS}",
        {"test_stage_events_present[bannos]": (
            "bannos-18001: completed Filling but stage_events has no 'complete' event for it",
            "bannos-18001: completed Decorating but", "bannos-18001: completed Packing but")}),
    # An order gone with its events left behind, beside an order that lost one event: events
    # of no order are no finding of the stage rules, and are not taken for its neighbour's.
    "events_of_a_missing_order_beside_an_order_that_lost_one": Fault(
        "delete from public.orders_flourlane where id = 'flourlane-24002';"
        "delete from public.stage_events where store = 'flourlane' and order_id = 'flourlane-24003'"
        " and stage = 'Covering' and event_type = 'complete'",
        {"test_stage_events_present[flourlane]": (
            "flourlane-24003: completed Covering but stage_events has no 'complete' event for it",)},
        absent={"test_stage_events_present[flourlane]": ("flourlane-24002", "flourlane-24001", "flourlane-24004")}),
    # Without its unique index, nothing keeps two rows from carrying one id: the sibling rule
    # counts the ids itself then (with the index, no id can appear twice).
    "duplicated_id_without_the_unique_index": Fault(
        "alter table public.orders_bannos drop constraint orders_bannos_id_key;"
        "create temporary table twice as select * from public.orders_bannos where id = 'bannos-18017-B';"
        "update twice set row_id = gen_random_uuid();"
        "insert into public.orders_bannos select * from twice",
        {"test_no_shopify_duplicates[bannos]": (
            "bannos-18017-A, bannos-18017-B, bannos-18017-B: share shopify_order_id 5200000000017",
            "share shopify_order_gid gid://shopify/Order/5200000000017", "the same suffix appears twice")}),
    "order_in_production_lost_an_event": Fault(
        f"delete from public.stage_events where store = 'bannos' and order_id = {FIRST_PACKING_BANNOS}"
        " and stage = 'Filling' and event_type = 'complete'",
        {"test_stage_events_present[bannos]": ("completed Filling but stage_events has no 'complete' event for it",)}),
    "600_pending_jobs": Fault(
        "insert into public.work_queue (topic, status, dedupe_key)"
        " select 'inventory_push', 'pending', 'flood-' || i from generate_series(1, 600) i",
        {"test_queue_pending_below_limit": ("603 pending jobs; the limit is 500",)}),
    "pending_job_2h_old": Fault(
        "insert into public.work_queue (topic, status, created_at, dedupe_key)"
        " values ('inventory_push', 'pending', now() - interval '2 hours', 'stuck-1')",
        {"test_queue_oldest_pending_recent": ("(inventory_push): pending since", "120 min before the now",
                                              "the limit is 15 min")}),
    "pending_job_locked_1h": Fault(
        "insert into public.work_queue (topic, status, created_at, locked_at, locked_by, dedupe_key)"
        " values ('order_label', 'pending', now() - interval '10 minutes', now() - interval '60 minutes',"
        " 'worker-9', 'locked-1')",
        {"test_queue_no_stale_locks": ("(order_label, pending): locked by worker-9 for 60 min",)}),
    "get_queue_lists_complete": Fault(
        GET_QUEUE.replace("where o.stage <> 'Complete'\n      and ", "where "),
        {"test_get_queue_lists_the_queue[bannos]": (
            "get_queue('bannos')", "lists Complete orders (279 with p_stage => 'Complete'; e.g. bannos-18003",
            "runbook vs live Ordak",
            "set runbook.get_queue_excludes_complete.holds = false in checks/contract.toml"),
         "test_get_queue_lists_the_queue[flourlane]": ("lists Complete orders", "runbook vs live Ordak")}),
    "get_queue_lists_point_of_sale": Fault(
        GET_QUEUE.replace("where o.stage <> 'Complete'\n      and coalesce(o.order_json ->> 'source_name', '') <> 'pos'",
                          "where true"),
        {"test_get_queue_lists_the_queue[bannos]": ("point-of-sale order(s) listed: bannos-", "lists Complete orders"),
         "test_get_queue_lists_the_queue[flourlane]": ("point-of-sale order(s) listed: flourlane-",)}),
    "get_queue_misses_orders": Fault(
        GET_QUEUE.replace("and ($5 is null or o.storage = $5)", "and ($5 is null or o.storage = $5) and o.priority <> 'Low'"),
        {"test_get_queue_lists_the_queue[bannos]": ("get_queue('bannos'): total_count says", "open orders"),
         "test_get_queue_lists_the_queue[flourlane]": ("total_count says",)}),
    "unassigned_counts_off_by_one": Fault(
        rpc_definition("get_unassigned_counts").replace(
            "select s.label::text, count(o.id)", "select s.label::text, count(o.id) + (s.label = 'Covering')::int"),
        {"test_unassigned_counts_match[bannos]": ("get_unassigned_counts('bannos')", "Covering: says"),
         "test_unassigned_counts_match[flourlane]": ("Covering: says",)}),
    "queue_stats_counts_unassigned_as_active_work": Fault(
        rpc_definition("get_queue_stats").replace("filter (where stage = 'Covering' and assignee_id is not null)",
                                                  "filter (where stage = 'Covering')"),
        {"test_queue_stats_match[bannos]": ("get_queue_stats('bannos').covering_count: says",),
         "test_queue_stats_match[flourlane]": ("covering_count: says",)}),
    "queue_stats_miscounts_completed": Fault(
        rpc_definition("get_queue_stats").replace("count(*) filter (where stage = 'Complete'),",
                                                  "count(*) filter (where stage = 'Packing'),"),
        {"test_queue_stats_match[bannos]": ("get_queue_stats('bannos').completed_orders: says 16, the table has 293",),
         "test_queue_stats_match[flourlane]": ("completed_orders: says",)}),
    "no_staff_to_call_as": Fault(
        "update public.staff_shared set is_active = false where role in ('Admin', 'Supervisor')",
        {"test_staff_user_available": ("public.staff_shared: no active, approved Admin or Supervisor",)},
        skips=NO_COMPARE | OPEN_RPCS),
}

# What the reference chose where SYSTEM.md is silent is a note: the run stays green and says so.
NOTED = {
    "processing_job_locked_1h": (
        "insert into public.work_queue (topic, status, created_at, locked_at, locked_by, dedupe_key)"
        " values ('order_label', 'processing', now() - interval '61 minutes', now() - interval '60 minutes',"
        " 'worker-9', 'locked-2')", "(order_label, processing): locked by worker-9 for 60 min"),
    "retries_past_the_reference_limit": (
        "update public.work_queue set retry_count = 9 where dedupe_key = 'inventory_push:seed-f1'",
        "(inventory_push, failed): retried 9 times; the maximum is 5"),
}


def runs_ahead() -> dict:
    """This module's inner runs, started when the session starts (selftests/conftest.py)."""
    return {
        **{f"test_fault_is_caught[{name}]": broken(f.sql, run=PART, as_admin=f.as_admin,
                                                   restore_point_now=f.restore_point_now)
           for name, f in FAULTS.items()},
        **{f"test_reference_choice_is_a_note[{name}]": broken(sql, run=PART) for name, (sql, _) in NOTED.items()},
        "test_dropped_table_skips_what_stands_on_it": broken("drop table public.work_queue", run=PART),
        "test_healthy_reference_passes": broken(run=PART)}


@pytest.mark.parametrize("name", FAULTS)
def test_fault_is_caught(ahead_run, name):
    fault = FAULTS[name]
    assert_outcomes(ahead_run, fault.fails, fault.skips)
    for test, fragments in fault.absent.items():
        message = ahead_run.outcome(test).message
        assert not [f for f in fragments if f in message], message


@pytest.mark.parametrize("name", NOTED)
def test_reference_choice_is_a_note(ahead_run, name):
    shown = NOTED[name][1]
    run = ahead_run
    assert_outcomes(run, {}, NO_COMPARE)
    notes = run.output.split("notes: shown, never failing", 1)
    assert len(notes) == 2 and shown in notes[1], run.output


def test_dropped_table_skips_what_stands_on_it(ahead_run):
    run = ahead_run
    assert_outcomes(run, {}, NO_COMPARE | {"test_queue_pending_below_limit", "test_queue_oldest_pending_recent",
                                           "test_queue_no_stale_locks", "test_queue_retries_noted"})
    assert run.outcome("test_queue_pending_below_limit").message.endswith(
        "public.work_queue is missing: see test_table[work_queue]")
    assert "UndefinedTable" not in run.output and "Traceback" not in run.output


def test_healthy_reference_passes(ahead_run):
    run = ahead_run
    assert_outcomes(run, {}, NO_COMPARE)
    assert "hours_since_last_order=0.0" in run.output, "the freshness of each store is in the output"


def test_a_restore_point_a_year_off_fails_the_rpo_saying_typo(ordak_clone):
    """An impossible value is a failure: data newer than the time it was restored to."""
    run = ordak_clone().run_suite("tests/test_store_data.py", "--restore-point=2020-01-01T00:00:00Z")
    typo = ("the restore point 2020-01-01 00:00 UTC is", "h before the newest order", "a typo in --restore-point?",
            "fix: give --restore-point the time the copy was restored to")
    fails = {f"test_last_order_fresh[{store}]": typo for store in ("bannos", "flourlane")}
    fails.update({f"{test}[{store}]": ("after the restore point",) for store in ("bannos", "flourlane")
                  for test in ("test_no_orders_after_reference_time", "test_stage_timestamps_consistent")})
    assert_outcomes(run, fails, NO_COMPARE)
    stores = json.loads(run.report.with_suffix(".json").read_text())["facts"]["stores"]
    assert [(s["within_objective"], s["hours_before_reference"] < -60_000) for s in stores] == [(False, True)] * 2


def test_a_store_halved_since_the_last_run_fails_naming_both_counts_and_runs(ordak_clone, tmp_path):
    clone = ordak_clone()
    first = clone.run_suite("tests/test_store_data.py", f"--html={tmp_path / 'week1.html'}")
    assert_outcomes(first, {}, NO_COMPARE)
    assert "nothing to compare with (no earlier run of staging in the history holds this store's count)" in first.output
    clone.execute("delete from public.orders_bannos where shopify_order_number % 2 = 0")
    second = clone.run_suite("tests/test_store_data.py", f"--html={tmp_path / 'week2.html'}")
    assert_outcomes(second, {"test_orders_not_dropped[bannos]": (
        "orders now, 342 in the last run of staging", "report week1.html", "fewer")}, NO_COMPARE)
    assert (tmp_path / "history.jsonl").read_text().count('"orders": {"bannos"') == 2


def test_rpo_per_store_is_in_the_output(ordak_clone):
    run = ordak_clone().run_suite("tests/test_store_data.py", f"--restore-point={datetime.now(timezone.utc).isoformat()}")
    assert run.exit_code == 0, run.output
    for store in ("bannos", "flourlane"):
        assert f"test_last_order_fresh[{store}]: last_order_at=" in run.output and "rpo_hours=0.0" in run.output


FIVE = ("bannos-18200", "bannos-18201", "bannos-18202", "bannos-18203", "bannos-18206")
DELETE_FIVE = f"delete from public.orders_bannos where id in ({', '.join(repr(i) for i in FIVE)})"


@pytest.mark.parametrize("side", ["restored copy", "compared env"])
def test_comparison_names_the_five_missing_orders(ordak_clone, side):
    production = ordak_clone()
    restored = ordak_clone(copy_of=production)
    (restored if side == "restored copy" else production).execute(DELETE_FIVE)
    run = restored.run_suite(*PART, "--compare-to=production", extra_env={"ORDAK_PRODUCTION_DB_URL": production.url})
    assert_outcomes(run, {"test_matches_compared_env[bannos]": FIVE}, frozenset())
    message = run.outcome("test_matches_compared_env[bannos]").message
    assert ("staging lacks" if side == "restored copy" else "that production lacks") in message
    assert ("orders_missing=5" if side == "restored copy" else "orders_extra=5") in run.output
    if side == "restored copy":  # old orders gone, newer ones there: the copy holds the damage
        assert "the copy holds the damage" in message and "fix: restore again from an earlier point" in message


def test_comparison_of_a_restore_that_stopped_short_says_later(ordak_clone):
    production = ordak_clone()
    newest = "(select id from public.orders_bannos order by created_at desc limit 5)"
    restored = ordak_clone(f"delete from public.orders_bannos where id in {newest}", copy_of=production)
    run = restored.run_suite(*PART, "--compare-to=production", extra_env={"ORDAK_PRODUCTION_DB_URL": production.url})
    assert_outcomes(run, {"test_matches_compared_env[bannos]": (
        "staging lacks 5 order(s) that production has", "all after its newest order: the restore stopped short",
        "fix: restore again from a later point, closer to the incident")}, frozenset())


def test_a_copy_holding_far_fewer_orders_than_the_compared_env_fails_with_both_counts(ordak_clone):
    production = ordak_clone()
    restored = ordak_clone("delete from public.orders_bannos where shopify_order_number % 10 <> 0", copy_of=production)
    run = restored.run_suite(*PART, "--compare-to=production", extra_env={"ORDAK_PRODUCTION_DB_URL": production.url})
    assert_outcomes(run, {
        "test_store_count_vs_compared[bannos]": ("staging holds ", "production holds 342", "below the 90% this check asks",
                                                 "do not cut over"),
        "test_matches_compared_env[bannos]": ("staging lacks",)}, frozenset())


def test_comparison_finds_a_lost_day(ordak_clone):
    production = ordak_clone()
    day = "(select (created_at at time zone 'UTC')::date from public.orders_flourlane where id = 'flourlane-24151')"
    restored = ordak_clone(f"delete from public.orders_flourlane where (created_at at time zone 'UTC')::date = {day}",
                           copy_of=production)
    run = restored.run_suite(*PART, "--compare-to=production", extra_env={"ORDAK_PRODUCTION_DB_URL": production.url})
    assert_outcomes(run, {"test_matches_compared_env[flourlane]": ("staging lacks", "flourlane-24151")}, frozenset())


def test_identical_copies_compare_clean(ordak_clone):
    production = ordak_clone()
    run = ordak_clone(copy_of=production).run_suite(
        "tests/test_store_data.py", "--compare-to=production", extra_env={"ORDAK_PRODUCTION_DB_URL": production.url})
    assert run.exit_code == 0, run.output
    assert "days_compared=" in run.output
