"""Fault catalogue for RPC behaviour: idempotence, stage guards, roles, the stage machine,
scan forms and the smoke flow. Each fault rewrites one RPC of a clone the way a bad deploy
or a hand-fix would; exactly the intended test ids must fail, with the call that shows it."""

from dataclasses import dataclass

import pytest

from selftests.harness import assert_outcomes, rpc_definition

PART = ("tests/test_rpc_behaviour.py", "tests/test_stage_machine.py", "tests/test_scan.py",
        "tests/test_smoke_flow.py")
BOTH = ("bannos", "flourlane")


def per_store(test: str, rpc: str, *fragments: str) -> dict:
    return {f"{test}[{store}-{rpc}]": fragments for store in BOTH}


MACHINE = "test_stage_machine_invariants"

PRINT = rpc_definition("print_barcode")
PRINT_RESETS = PRINT.replace(
    "  if v_printed is not null then\n",
    "  if v_printed is not null then\n"
    "    execute format('update %s set filling_start_ts = now() where id = $1', public._orders_table(p_store))"
    " using p_order_id;\n")
PRINT_LOGS_TWICE = PRINT.replace(
    "  perform public._log_event(p_store, p_order_id, 'Filling', 'print', jsonb_build_object('barcode', v_barcode));",
    "  perform public._log_event(p_store, p_order_id, 'Filling', 'print', jsonb_build_object('barcode', v_barcode));\n"
    "  perform public._log_event(p_store, p_order_id, 'Filling', 'print', jsonb_build_object('barcode', v_barcode));")
PRINT_SILENT = PRINT.replace(
    "return jsonb_build_object('success', true, 'already_done', true, 'order_id', p_order_id,",
    "return jsonb_build_object('success', true, 'order_id', p_order_id,")

PRINT_FOR_ANYONE = PRINT.replace("  perform public._require_staff('Staff');\n", "") + \
    ";\ngrant execute on function public.print_barcode(text, text) to anon"
PRINT_FOR_ANY_SIGNED_IN_USER = PRINT.replace(
    "  perform public._require_staff('Staff');\n",
    "  if auth.uid() is null then raise exception 'sign in first' using errcode = '42501'; end if;\n")

COMPLETE_FILLING_TWICE = """
create or replace function public.complete_filling(p_order_id text, p_store text, p_notes text default null)
returns boolean language plpgsql security definer set search_path = '' as $$
begin
  perform public._require_staff('Staff');
  execute format('update %s set stage = ''Covering'', filling_start_ts = coalesce(filling_start_ts, now()),
                  filling_complete_ts = coalesce(filling_complete_ts, now())
                  where id = $1 and stage in (''Filling'', ''Covering'')', public._orders_table(p_store))
    using p_order_id;
  perform public._log_event(p_store, p_order_id, 'Filling', 'complete');
  return true;
end $$;
"""

COMPLETE_COVERING_UNGUARDED = """
create or replace function public.complete_covering(p_order_id text, p_store text, p_notes text default null)
returns boolean language plpgsql security definer set search_path = '' as $$
begin
  perform public._require_staff('Staff');
  execute format('update %s set stage = ''Decorating'', covering_start_ts = coalesce(covering_start_ts, now()),
                  covering_complete_ts = coalesce(covering_complete_ts, now()) where id = $1',
                 public._orders_table(p_store)) using p_order_id;
  perform public._log_event(p_store, p_order_id, 'Covering', 'complete');
  return true;
end $$;
"""


@dataclass(frozen=True)
class Fault:
    sql: str
    fails: dict
    skips: frozenset = frozenset()


FAULTS = {
    "print_resets_filling_start_ts": Fault(PRINT_RESETS, {
        **per_store("test_repeat_changes_nothing", "print_barcode", "second call changed filling_start_ts"),
        MACHINE: ("print_barcode changed filling_start_ts once set", "state.call(")}),
    "print_logs_its_event_twice": Fault(PRINT_LOGS_TWICE, {
        **per_store("test_repeat_changes_nothing", "print_barcode", "first call: logged 2 stage events, expected exactly 1"),
        MACHINE: ("print_barcode changed", "and logged 2 stage event(s); expected 1"),
        "test_smoke_flow[bannos]": ("print barcode: logged 2 stage events, expected 1",),
        "test_smoke_flow[flourlane]": ("print barcode: logged 2 stage events, expected 1",)}),
    "print_idempotent_but_silent": Fault(PRINT_SILENT, {
        **per_store("test_repeat_answers_as_documented", "print_barcode",
                    "repeat answered", 'documented: {"already_done": true}')}),
    "complete_filling_succeeds_twice": Fault(COMPLETE_FILLING_TWICE, {
        **per_store("test_repeat_changes_nothing", "complete_filling", "second call changed 1 stage event(s) logged"),
        **per_store("test_repeat_answers_as_documented", "complete_filling",
                    "repeat answered True; documented: rejected"),
        **per_store("test_invalid_transition_rejected", "complete_filling", "in Covering: accepted, answering True"),
        MACHINE: ("complete_filling changed nothing and logged 1 stage event(s); expected 0",)}),
    "complete_covering_stage_guard_removed": Fault(COMPLETE_COVERING_UNGUARDED, {
        **per_store("test_repeat_changes_nothing", "complete_covering", "second call changed 1 stage event(s) logged"),
        **per_store("test_repeat_answers_as_documented", "complete_covering", "repeat answered True"),
        **per_store("test_invalid_transition_rejected", "complete_covering",
                    "in Filling: accepted, answering True", "changed stage Filling -> Decorating"),
        MACHINE: ("complete_covering moved the order", "not a move it may make")}),
    "assign_staff_role_check_weakened": Fault(
        rpc_definition("assign_staff").replace("_require_staff('Supervisor')", "_require_staff('Staff')"),
        {"test_role_below_required_refused[assign_staff]": ("called by Staff: accepted, answering True",
                                                            "changed assignee None ->")}),
    "print_open_to_anyone": Fault(PRINT_FOR_ANYONE, {
        "test_anon_refused[print_barcode]": ("called by anon: accepted, answering",
                                            "changed filling_start_ts None ->"),
        "test_unknown_user_refused[print_barcode]": ("called by a user who is not staff: accepted",)}),
    "print_open_to_any_signed_in_user": Fault(PRINT_FOR_ANY_SIGNED_IN_USER, {
        "test_unknown_user_refused[print_barcode]": ("called by a user who is not staff: accepted",
                                                     "1 stage event(s) logged")}),
    "start_packing_missing": Fault(
        "drop function public.start_packing(text, text)",
        {"test_smoke_flow[bannos]": ("start Packing: public.start_packing is missing",),
         "test_smoke_flow[flourlane]": ("start Packing: public.start_packing is missing",)},
        skips=frozenset({*(f"{t}[{s}-start_packing]" for s in BOTH for t in (
            "test_repeat_changes_nothing", "test_repeat_answers_as_documented", "test_invalid_transition_rejected")),
            "test_anon_refused[start_packing]", "test_unknown_user_refused[start_packing]"})),
    "scan_ignores_flourlane_barcodes": Fault(
        rpc_definition("get_order_for_scan").replace("'^#[BF][0-9]+$'", "'^#B[0-9]+$'"),
        {"test_scan_forms_resolve_to_the_same_order": ("get_order_for_scan('#F", "failed: unrecognised scan")}),
}


def assert_fault(run, fault: Fault) -> None:
    assert_outcomes(run, fault.fails, fault.skips)


@pytest.mark.parametrize("name", FAULTS)
def test_fault_is_caught(ordak_clone, name):
    fault = FAULTS[name]
    assert_fault(ordak_clone(fault.sql).run_suite(*PART, hypothesis=True), fault)


def test_healthy_reference_passes(ordak_clone):
    assert_fault(ordak_clone().run_suite(*PART, hypothesis=True), Fault("", {}))


def test_idempotent_but_silent_is_its_own_finding(ordak_clone):
    """The report tells 'changes nothing' (passed) from 'answers as documented' (failed)."""
    run = ordak_clone(PRINT_SILENT).run_suite(*PART, hypothesis=True)
    for store in BOTH:
        assert run.outcome(f"test_repeat_changes_nothing[{store}-print_barcode]").status == "passed"
        assert run.outcome(f"test_repeat_answers_as_documented[{store}-print_barcode]").status == "failed"
    html = run.report.read_text()
    assert "test_repeat_answers_as_documented[bannos-print_barcode]" in html


def test_writes_are_skipped_on_a_read_only_env(ordak_clone):
    run = ordak_clone().run_suite(*PART, env_name="production", hypothesis=True)
    assert run.exit_code == 0, run.output
    writing = {k.split("::", 1)[1] for k in run.outcomes if not k.startswith("test_scan")}
    assert run.with_status("skipped") == writing, run.output
    assert run.outcome("test_scan_forms_resolve_to_the_same_order").status == "passed"
    assert "skipped because environment 'production' is read-only" in run.outcome("test_smoke_flow[bannos]").message
