"""Fault catalogue for RPC behaviour: idempotence, stage guards, roles, the stage machine,
scan forms and the smoke flow. Each fault rewrites one RPC of a clone the way a bad deploy
or a hand-fix would; exactly the intended test ids must fail, with the call that shows it."""

from dataclasses import dataclass

import pytest

from selftests.harness import assert_outcomes, broken, rpc_definition

PART = ("tests/test_rpc_behaviour.py", "tests/test_stage_machine.py", "tests/test_scan.py",
        "tests/test_smoke_flow.py")
BOTH = ("bannos", "flourlane")


def per_store(test: str, rpc: str, *fragments: str) -> dict:
    return {f"{test}[{store}-{rpc}]": fragments for store in BOTH}


MACHINE = "test_stage_machine_invariants"

PRINT = rpc_definition("print_barcode")
PRINT_RESETS = PRINT.replace("  if v_printed is null then\n    execute format(", "  if true then\n    execute format(")
PRINT_LOG = ("  perform public._log_event(p_store, p_order_id, 'Filling', 'print',\n"
             "                            jsonb_build_object('barcode', v_barcode, 'first_filling_print', v_printed is null));")
PRINT_LOGS_TWICE = PRINT.replace(PRINT_LOG, PRINT_LOG + "\n" + PRINT_LOG)
PRINT_LOGS_FIRST_ONLY = PRINT.replace(PRINT_LOG, "  if v_printed is null then\n" + PRINT_LOG + "\n  end if;")
PRINT_ALWAYS_FIRST = PRINT.replace("'first_filling_print', v_printed is null", "'first_filling_print', true")
PRINT_SILENT = PRINT.replace("'already_done', v_printed is not null, ", "")
PRINT_FOR_ANYONE = PRINT.replace("  perform public._require_staff('Staff');\n", "") + \
    ";\ngrant execute on function public.print_barcode(text, text) to anon"
PRINT_FOR_ANY_SIGNED_IN_USER = PRINT.replace(
    "  perform public._require_staff('Staff');\n",
    "  if auth.uid() is null then raise exception 'sign in first' using errcode = '42501'; end if;\n")
# No caller check: an unknown caller is stopped only by a foreign key on stage_events.staff_id.
PRINT_STOPPED_BY_A_FOREIGN_KEY = (
    "alter table public.stage_events add constraint stage_events_staff_fkey foreign key (staff_id) "
    "references public.staff_shared (user_id);\n" + PRINT.replace("  perform public._require_staff('Staff');\n", ""))

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

START_COVERING_UNGUARDED = """
create or replace function public.start_covering(p_store text, p_order_id text) returns jsonb
language plpgsql security definer set search_path = '' as $$
begin
  perform public._require_staff('Staff');
  execute format('update %s set covering_start_ts = coalesce(covering_start_ts, now()) where id = $1',
                 public._orders_table(p_store)) using p_order_id;
  return jsonb_build_object('success', true, 'skipped', false);
end $$;
"""

COMPLETE_DECORATING_LEAVES_PACKING_UNSTARTED = """
create or replace function public.complete_decorating(p_order_id text, p_store text, p_notes text default null)
returns boolean language plpgsql security definer set search_path = '' as $$
begin
  perform public._require_staff('Staff');
  if public._lock_order(p_store, p_order_id) <> 'Decorating' then
    raise exception 'not in Decorating' using errcode = 'P0001';
  end if;
  execute format('update %s set stage = ''Packing'', decorating_complete_ts = now() where id = $1',
                 public._orders_table(p_store)) using p_order_id;
  perform public._log_event(p_store, p_order_id, 'Decorating', 'complete');
  return true;
end $$;
"""

# The contract lets complete_covering keep or clear the assignee (may_clear: the live Ordak
# clears it), never hand the order to someone else: here it gives it to another active staff
# member, as a hand-off to the next stage's worker gone wrong would.
COMPLETE_COVERING_REASSIGNS = """
create or replace function public.complete_covering(p_order_id text, p_store text, p_notes text default null)
returns boolean language plpgsql security definer set search_path = '' as $$
begin
  perform public._complete_stage(p_store, p_order_id, 'Covering', p_notes);
  execute format('update %s o set assignee_id = (select s.user_id from public.staff_shared s where s.is_active '
                 'and s.user_id is distinct from o.assignee_id order by s.user_id limit 1) where o.id = $1',
                 public._orders_table(p_store)) using p_order_id;
  return true;
end $$;
"""

# start_covering clears the assignee when it starts Covering, as the live complete_* RPCs do
# when they move an order on; the contract does not let it (no may_clear on start_covering).
START_COVERING_UNASSIGNS = """
create or replace function public.start_covering(p_store text, p_order_id text) returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_answer jsonb;
begin
  v_answer := public._start_stage(p_store, p_order_id, 'Covering');
  if not (v_answer ->> 'skipped')::boolean then
    execute format('update %s set assignee_id = null where id = $1', public._orders_table(p_store)) using p_order_id;
  end if;
  return v_answer;
end $$;
"""

QC_RETURN = rpc_definition("qc_return_to_decorating")
ASSIGN = rpc_definition("assign_staff")


@dataclass(frozen=True)
class Fault:
    sql: str
    fails: dict
    skips: frozenset = frozenset()


FAULTS = {
    "print_resets_filling_start_ts": Fault(PRINT_RESETS, {
        **per_store("test_repeat_changes_nothing", "print_barcode", "second call: changed filling_start_ts"),
        MACHINE: ("print_barcode changed filling_start_ts once set", "state.call(")}),
    "print_logs_its_event_twice": Fault(PRINT_LOGS_TWICE, {
        **per_store("test_repeat_changes_nothing", "print_barcode",
                    "first call: logged 2 'print'; expected exactly one 'print' event"),
        MACHINE: ("print_barcode changed", "logged {'print': 2}; expected {'print': 1}"),
        "test_smoke_flow[bannos]": ("print barcode: logged {'print': 2}, expected one 'print' event",),
        "test_smoke_flow[flourlane]": ("print barcode: logged {'print': 2}, expected one 'print' event",)}),
    "reprint_logs_no_event": Fault(PRINT_LOGS_FIRST_ONLY, {
        **per_store("test_repeat_changes_nothing", "print_barcode",
                    "second call: logged nothing; expected exactly one 'print' event"),
        MACHINE: ("print_barcode changed nothing and logged no event; expected {'print': 1}",),
        "test_smoke_flow[bannos]": ("reprint barcode: logged no event, expected one 'print' event",),
        "test_smoke_flow[flourlane]": ("reprint barcode: logged no event, expected one 'print' event",)}),
    "reprint_marked_as_first_print": Fault(PRINT_ALWAYS_FIRST, {
        **per_store("test_repeat_changes_nothing", "print_barcode",
                    "second call: its 'print' event has meta.first_filling_print = True, expected False")}),
    "print_idempotent_but_silent": Fault(PRINT_SILENT, {
        **per_store("test_repeat_answers_as_documented", "print_barcode",
                    "repeat answered", 'documented: {"already_done": true}', "runbook vs live Ordak",
                    "set runbook.repeat_print_already_done.holds = false")}),
    "complete_filling_succeeds_twice": Fault(COMPLETE_FILLING_TWICE, {
        **per_store("test_repeat_changes_nothing", "complete_filling",
                    "second call: logged 1 more 'complete' event(s); a repeat must log none"),
        **per_store("test_repeat_answers_as_documented", "complete_filling",
                    "repeat answered True; documented: rejected"),
        **per_store("test_invalid_transition_rejected", "complete_filling", "in Covering: accepted, answering True"),
        MACHINE: ("complete_filling changed nothing and logged {'complete': 1}; expected no event",)}),
    "complete_covering_stage_guard_removed": Fault(COMPLETE_COVERING_UNGUARDED, {
        **per_store("test_repeat_changes_nothing", "complete_covering", "second call: logged 1 more 'complete' event"),
        **per_store("test_repeat_answers_as_documented", "complete_covering", "repeat answered True"),
        **per_store("test_invalid_transition_rejected", "complete_covering",
                    "in Filling: accepted, answering True", "changed stage Filling -> Decorating"),
        MACHINE: ("complete_covering moved the order", "not a move it may make")}),
    "start_covering_stage_guard_removed": Fault(START_COVERING_UNGUARDED, {
        **per_store("test_repeat_changes_nothing", "start_covering", "first call: logged nothing; expected exactly one"),
        **per_store("test_repeat_answers_as_documented", "start_covering", 'documented: {"skipped": true}'),
        **per_store("test_invalid_transition_rejected", "start_covering",
                    "start_covering", "in Filling: accepted", "changed covering_start_ts None ->"),
        MACHINE: ("start_covering changed ['covering_start_ts'] and logged no event; expected {'start': 1}",)}),
    "complete_decorating_leaves_packing_unstarted": Fault(COMPLETE_DECORATING_LEAVES_PACKING_UNSTARTED, {
        **per_store("test_repeat_changes_nothing", "complete_decorating", "first call: packing_start_ts was not set"),
        "test_smoke_flow[bannos]": ("complete Decorating: packing_start_ts should have been set now",),
        "test_smoke_flow[flourlane]": ("complete Decorating: packing_start_ts should have been set now",)}),
    # Its order is assigned (may_clear), so the first call shows the hand-off; the machine too.
    "complete_covering_hands_the_order_to_someone_else": Fault(COMPLETE_COVERING_REASSIGNS, {
        **per_store("test_repeat_changes_nothing", "complete_covering",
                    "first call: changed the assignee: ", "it may only clear it (contract may_clear)"),
        MACHINE: ("complete_covering changed the assignee: ", "it may only clear it (contract may_clear)")}),
    # Its order in test_rpc_behaviour has no assignee to clear: the machine, which assigns, finds it.
    # Every scenario that does not set the assignee acts on an assigned order (checks/rules/rpc.py,
    # prepare): clearing it shows on the first call, whatever the stage machine's search meets.
    "start_covering_clears_the_assignee": Fault(START_COVERING_UNASSIGNS, {
        **per_store("test_repeat_changes_nothing", "start_covering",
                    "first call: changed the assignee: ", " -> None; the contract does not let it change the assignee")}),
    "qc_return_keeps_packing_started": Fault(
        QC_RETURN.replace("'packing_start_ts = null, updated_at = now()", "'updated_at = now()"), {
            **per_store("test_repeat_changes_nothing", "qc_return_to_decorating",
                        "first call: packing_start_ts was not cleared")}),
    "qc_return_for_supervisors_only": Fault(
        QC_RETURN.replace("_require_staff('Staff')", "_require_staff('Supervisor')"), {
            **per_store("test_repeat_changes_nothing", "qc_return_to_decorating",
                        "as Staff: first call: rejected (error: permission denied: Supervisor role required)")}),
    "assign_staff_role_check_weakened": Fault(
        ASSIGN.replace("_require_staff('Supervisor')", "_require_staff('Staff')"),
        {"test_role_below_required_refused[assign_staff]": ("called by Staff: accepted, answering True",
                                                            "changed assignee_id None ->"),
         "test_role_below_required_refused[assign_staff_null]": ("called by Staff: accepted",
                                                                 "changed assignee_id")}),
    "assign_staff_refuses_null": Fault(
        ASSIGN.replace("  if p_staff_id is not null\n     and not exists", "  if p_staff_id is null or not exists"), {
            **per_store("test_repeat_changes_nothing", "assign_staff_null", "first call: rejected"),
            **per_store("test_repeat_changes_nothing", "unassign_staff", "first call: rejected"),
            "test_smoke_flow[bannos]": ("unassign (assign_staff null): assign_staff answered error",),
            "test_smoke_flow[flourlane]": ("unassign (assign_staff null): assign_staff answered error",)}),
    "assign_staff_accepts_inactive_staff": Fault(
        ASSIGN.replace("where user_id = p_staff_id and is_active)", "where user_id = p_staff_id)"), {
            **per_store("test_invalid_transition_rejected", "assign_staff",
                        "naming a deactivated staff member: accepted, answering True")}),
    "print_open_to_anyone": Fault(PRINT_FOR_ANYONE, {
        "test_anon_refused[print_barcode]": ("called by anon: accepted, answering",
                                            "changed filling_start_ts None ->", "logged 1 'print' event(s)"),
        "test_not_staff_refused[print_barcode-unknown]": ("called by a signed-in user who is not staff: accepted",),
        "test_not_staff_refused[print_barcode-inactive]": ("called by a deactivated Admin: accepted",)}),
    "print_open_to_any_signed_in_user": Fault(PRINT_FOR_ANY_SIGNED_IN_USER, {
        "test_not_staff_refused[print_barcode-unknown]": ("called by a signed-in user who is not staff: accepted",
                                                          "logged 1 'print' event(s)"),
        "test_not_staff_refused[print_barcode-inactive]": ("called by a deactivated Admin: accepted",)}),
    "print_stopped_only_by_a_foreign_key": Fault(PRINT_STOPPED_BY_A_FOREIGN_KEY, {
        "test_not_staff_refused[print_barcode-unknown]": (
            "failed only on a foreign key", "does not look the caller up in staff_shared itself"),
        "test_not_staff_refused[print_barcode-inactive]": ("called by a deactivated Admin: accepted",)}),
    # The live Ordak has neither: reported once, by test_rpc (schema); here they skip, pointing there.
    "runbook_rpcs_missing": Fault(
        "drop function public.start_packing(text, text); drop function public.unassign_staff(text, text)", {},
        skips=frozenset({*(f"{t}[{s}-start_packing]" for s in BOTH for t in (
            "test_repeat_changes_nothing", "test_repeat_answers_as_documented", "test_invalid_transition_rejected")),
            *(f"test_repeat_changes_nothing[{s}-unassign_staff]" for s in BOTH),
            *(f"test_anon_refused[{n}]" for n in ("start_packing", "unassign_staff")),
            *(f"test_not_staff_refused[{n}-{c}]" for n in ("start_packing", "unassign_staff")
              for c in ("unknown", "inactive"))})),
    "scan_ignores_flourlane_barcodes": Fault(
        rpc_definition("get_order_for_scan").replace("'^#[BF][0-9]+(-[A-Z0-9]+)?$' then", "'^#B[0-9]+(-[A-Z0-9]+)?$' then"),
        {"test_scan_forms_resolve_to_the_same_order": ("get_order_for_scan('#F", "gave nothing, expected flourlane-")}),
    # One failing form must not hide the others: the scan that raised is named with its error.
    "scan_raises_on_a_bare_number": Fault(
        rpc_definition("get_order_for_scan").replace(
            "v_ids := array['bannos-' || v_scan, 'flourlane-' || v_scan];",
            "raise exception 'cannot scan a bare number';"),
        {"test_scan_forms_resolve_to_the_same_order": ("') failed: cannot scan a bare number",)}),
    "scan_drops_the_split_suffix": Fault(
        rpc_definition("get_order_for_scan").replace(
            "v_ids := array[lower(split_part(v_scan, '-', 1)) || substr(v_scan, position('-' in v_scan))];",
            "v_ids := array[lower(split_part(v_scan, '-', 1)) || '-' || split_part(v_scan, '-', 2)];"),
        {"test_split_cakes_scan_to_their_own_row": ("bannos-18017-A: get_order_for_scan('bannos-18017-A') gave nothing",
                                                    "flourlane-24017-B: get_order_for_scan('flourlane-24017-B')"),
         "test_scan_forms_resolve_to_the_same_order": ("gave nothing, expected",)}),
}


def assert_fault(run, fault: Fault) -> None:
    assert_outcomes(run, fault.fails, fault.skips)


def machine_deselected(fault: Fault) -> tuple[str, ...]:
    """The stage machine is the costly test: it runs where the fault is one it must catch (and
    on the healthy reference)."""
    return () if MACHINE in fault.fails else (f"--deselect=tests/test_stage_machine.py::{MACHINE}",)


def runs_ahead() -> dict:
    """This module's inner runs, started when the session starts (selftests/conftest.py)."""
    return {
        **{f"test_fault_is_caught[{name}]": broken(f.sql, run=(*PART, *machine_deselected(f)),
                                                   hypothesis=not machine_deselected(f))
           for name, f in FAULTS.items()},
        "test_healthy_reference_passes": broken(run=PART, hypothesis=True),
        # A repeat's answer is no stage-machine invariant: the machine is left out, as for such faults.
        "test_idempotent_but_silent_is_its_own_finding": broken(
            PRINT_SILENT, run=(*PART, f"--deselect=tests/test_stage_machine.py::{MACHINE}")),
        "test_writes_are_skipped_on_a_read_only_env": broken(run=PART, env_name="production", hypothesis=True)}


@pytest.mark.parametrize("name", FAULTS)
def test_fault_is_caught(ahead_run, name):
    assert_fault(ahead_run, FAULTS[name])


def test_healthy_reference_passes(ahead_run):
    assert_fault(ahead_run, Fault("", {}))


def test_idempotent_but_silent_is_its_own_finding(ahead_run):
    """The report tells 'changes nothing' (passed) from 'answers as documented' (failed)."""
    run = ahead_run
    for store in BOTH:
        assert run.outcome(f"test_repeat_changes_nothing[{store}-print_barcode]").status == "passed"
        assert run.outcome(f"test_repeat_answers_as_documented[{store}-print_barcode]").status == "failed"
    html = run.report.read_text()
    assert "test_repeat_answers_as_documented[bannos-print_barcode]" in html


def test_writes_are_skipped_on_a_read_only_env(ahead_run):
    run = ahead_run
    assert run.exit_code == 0, run.output
    writing = {k.split("::", 1)[1] for k in run.outcomes if not k.startswith("test_scan")}
    assert run.with_status("skipped") == writing, run.output
    assert run.outcome("test_scan_forms_resolve_to_the_same_order").status == "passed"
    assert run.outcome("test_split_cakes_scan_to_their_own_row").status == "passed"
    assert "skipped because environment 'production' is read-only" in run.outcome("test_smoke_flow[bannos]").message
