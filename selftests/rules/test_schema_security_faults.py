"""Fault catalogue for schema sanity, migrations and security posture.

Each fault breaks a clone of the healthy reference in one precise way; the schema, security
and migrations tests then run against it as a user would run them, and exactly the intended
test ids must fail, each with a message naming the object at fault.
"""

import shutil
from dataclasses import dataclass, field

import pytest

from checks.reference.cluster import MIGRATIONS_DIR
from selftests.harness import NO_COMPARE, assert_outcomes, broken

PART = ("tests/test_schema.py", "tests/test_security.py", "tests/test_migrations.py")

REBUILD_STAGE_TYPE_WITHOUT_DECORATING = """
alter type public.stage_type rename to stage_type_old;
create type public.stage_type as enum ('Filling', 'Covering', 'Packing', 'Complete');
update public.orders_bannos set stage = 'Packing' where stage = 'Decorating';
update public.orders_flourlane set stage = 'Packing' where stage = 'Decorating';
alter table public.orders_bannos alter column stage drop default,
  alter column stage type public.stage_type using stage::text::public.stage_type,
  alter column stage set default 'Filling';
alter table public.orders_flourlane alter column stage drop default,
  alter column stage type public.stage_type using stage::text::public.stage_type,
  alter column stage set default 'Filling';
"""

SWAP_START_COVERING_ARGUMENTS = """
drop function public.start_covering(text, text);
create function public.start_covering(p_order_id text, p_store text) returns jsonb
language sql security definer set search_path = '' as $$
  select public._start_stage(p_store, p_order_id, 'Covering')
$$;
revoke all on function public.start_covering(text, text) from public, anon;
"""

STATS_FOR_ANYONE = """
create or replace function public.get_queue_stats(p_store text) returns table (
  total_orders bigint, completed_orders bigint, in_production bigint, unassigned_orders bigint,
  filling_count bigint, covering_count bigint, decorating_count bigint, packing_count bigint)
language sql stable security definer set search_path = '' as $$
  select count(*), count(*) filter (where stage = 'Complete'), count(*) filter (where stage <> 'Complete'),
         count(*) filter (where assignee_id is null), count(*) filter (where stage = 'Filling'),
         count(*) filter (where stage = 'Covering'), count(*) filter (where stage = 'Decorating'),
         count(*) filter (where stage = 'Packing')
  from public.orders_bannos
$$;
grant execute on function public.get_queue_stats(text) to anon;
"""

STATS_WITHOUT_IN_PRODUCTION = """
drop function public.get_queue_stats(text);
create function public.get_queue_stats(p_store text) returns table (
  total_orders bigint, completed_orders bigint, unassigned_orders bigint,
  filling_count bigint, covering_count bigint, decorating_count bigint, packing_count bigint)
language sql stable security definer set search_path = '' as $$
  select 0::bigint, 0::bigint, 0::bigint, 0::bigint, 0::bigint, 0::bigint, 0::bigint
$$;
revoke all on function public.get_queue_stats(text) from public, anon;
"""

SCAN_AS_A_SET = """
drop function public.get_order_for_scan(text);
create function public.get_order_for_scan(p_scan text) returns setof public.scanner_order_result
language sql stable security definer set search_path = '' as $$ select null::public.scanner_order_result $$;
revoke all on function public.get_order_for_scan(text) from public, anon;
"""

A_DISABLED_TRIGGER = """
create function public.stamp_note() returns trigger language plpgsql set search_path = '' as
  $$ begin new.notes := coalesce(new.notes, ''); return new; end $$;
create trigger stamp_note before insert on public.orders_bannos for each row execute function public.stamp_note();
alter table public.orders_bannos disable trigger stamp_note;
"""


@dataclass(frozen=True)
class Fault:
    sql: str
    fails: dict[str, tuple[str, ...]]  # test id -> fragments its failure message must contain
    skips: frozenset[str] = field(default_factory=frozenset)  # blocked by the failure above
    as_admin: bool = False


FAULTS = {
    "drop_column": Fault(
        "alter table public.orders_bannos drop column due_date",
        {"test_table[orders_bannos]": ("public.orders_bannos.due_date: column is missing",)}),
    "change_column_type": Fault(
        "alter table public.orders_flourlane alter column total_amount type numeric(10,2)",
        {"test_table[orders_flourlane]": ("public.orders_flourlane.total_amount: column has the wrong type",
                                          "expected=numeric(12,2)", "found=numeric(10,2)")}),
    "drop_unique_key": Fault(
        "alter table public.orders_bannos drop constraint orders_bannos_id_key",
        {"test_table[orders_bannos]": ("public.orders_bannos: no unique key on (id)",)}),
    "drop_table": Fault(
        "drop table public.orders_flourlane cascade",
        {"test_table[orders_flourlane]": ("public.orders_flourlane: table is missing",)},
        skips=frozenset({"test_realtime_table[orders_flourlane]"})),
    "drop_documented_table": Fault(
        "drop table public.breaks",
        {"test_table[breaks]": ("public.breaks: table is missing",)}),
    "enum_without_label": Fault(
        REBUILD_STAGE_TYPE_WITHOUT_DECORATING,
        {"test_enum[stage_type]": ("public.stage_type.Decorating: label is missing",)}),
    "drop_rpc": Fault(
        "drop function public.complete_covering(text, text, text)",
        {"test_rpc[complete_covering]": ("public.complete_covering: function is missing",)}),
    "runbook_rpc_missing": Fault(
        "drop function public.start_packing(text, text)",
        {"test_rpc[start_packing]": ("public.start_packing: function is missing; runbook vs live Ordak: the runbook "
                                     "expects that Packing is started explicitly",
                                     "set runbook.start_packing.holds = false in checks/contract.toml")}),
    "rpc_result_lacks_a_documented_column": Fault(
        STATS_WITHOUT_IN_PRODUCTION,
        {"test_rpc[get_queue_stats]": ("public.get_queue_stats(p_store text): result lacks column(s) in_production",)}),
    "scan_returns_a_set": Fault(
        SCAN_AS_A_SET,
        {"test_rpc[get_order_for_scan]": ("returns a set; documented: one row (a composite), not a set",)}),
    "changed_rpc_signature": Fault(
        SWAP_START_COVERING_ARGUMENTS,
        {"test_rpc[start_covering]": ("public.start_covering(p_order_id text, p_store text): signature differs",
                                      "expected=(p_store text, p_order_id text)")}),
    "rpc_security_invoker": Fault(
        "alter function public.print_barcode(text, text) security invoker",
        {"test_rpc[print_barcode]": ("public.print_barcode(p_store text, p_order_id text): is SECURITY INVOKER",)}),
    "definer_search_path_reset": Fault(
        "alter function public.get_queue_stats(text) reset search_path",
        {"test_definer_functions_pin_search_path": (
            "public.get_queue_stats(p_store text): SECURITY DEFINER with a mutable search_path",)}),
    "grant_insert_to_anon": Fault(
        "grant insert on public.orders_bannos to anon",
        {"test_no_write_grants_to_api_roles": ("public.orders_bannos: anon may INSERT",)}),
    "grant_on_a_documented_table": Fault(
        "grant update on public.shifts to authenticated",
        {"test_no_write_grants_to_api_roles": ("public.shifts: authenticated may UPDATE",)}),
    "grant_truncate_to_authenticated": Fault(
        "grant truncate on public.stage_events to authenticated",
        {"test_no_write_grants_to_api_roles": ("public.stage_events: authenticated may TRUNCATE",)}),
    "rls_disabled": Fault(
        "alter table public.work_queue disable row level security",
        {"test_rls_enabled": ("public.work_queue: row level security is off",)}),
    "policies_dropped": Fault(
        "drop policy admin_read on public.settings",
        {"test_rls_tables_have_policies": ("public.settings: RLS is on but the table has no policy",)}),
    "always_true_write_policy": Fault(
        "create policy anyone_inserts on public.orders_bannos for insert to anon with check (true)",
        {"test_no_always_true_write_policies": ("public.orders_bannos: policy anyone_inserts", "lets anon INSERT")}),
    "index_invalid": Fault(
        "update pg_index set indisvalid = false where indexrelid = 'public.orders_bannos_due_date_idx'::regclass",
        {"test_indexes_valid": ("public.orders_bannos_due_date_idx: index on orders_bannos is invalid",)},
        as_admin=True),
    "constraint_not_valid": Fault(
        "alter table public.orders_flourlane add constraint total_not_negative check (total_amount >= 0) not valid",
        {"test_constraints_validated": ("public.orders_flourlane.total_not_negative: check constraint is NOT VALID",)}),
    "trigger_disabled": Fault(
        A_DISABLED_TRIGGER,
        {"test_triggers_enabled": ("public.orders_bannos.stamp_note: trigger is disabled",)}),
    "table_out_of_publication": Fault(
        "alter publication supabase_realtime drop table public.messages",
        {"test_realtime_table[messages]": ("public.messages: table is not in publication supabase_realtime",)}),
    "publication_dropped": Fault(
        "drop publication supabase_realtime",
        {"test_realtime_publication": ("supabase_realtime: publication is missing",)},
        skips=frozenset(f"test_realtime_table[{t}]" for t in (
            "orders_bannos", "orders_flourlane", "staff_shared", "conversations",
            "conversation_participants", "messages"))),
    "cron_job_inactive": Fault(
        "update cron.job set active = false where jobname = 'order-monitor'",
        {"test_cron_job[order-monitor]": ("cron job order-monitor: job is inactive",)}),
    "cron_job_missing": Fault(
        "select cron.unschedule('sync-inventory-to-shopify')",
        {"test_cron_job[sync-inventory-to-shopify]": ("cron job sync-inventory-to-shopify: job is missing",)}),
    "pg_cron_missing": Fault(
        "drop extension pg_cron cascade",
        {"test_extension[pg_cron]": ("pg_cron: extension is not installed",)},
        skips=frozenset({"test_cron_job[order-monitor]", "test_cron_job[priority-escalation]",
                         "test_cron_job[sync-inventory-to-shopify]"}),
        as_admin=True),
    "sequence_behind": Fault(
        "select setval(pg_get_serial_sequence('public.audit_log', 'id'), 1)",
        {"test_sequences_ahead_of_data": ("public.audit_log_id_seq: next value 2 is not above max(public.audit_log.id) = 3",)}),
    "newest_migration_row_deleted": Fault(
        "delete from supabase_migrations.schema_migrations"
        " where version = (select max(version) from supabase_migrations.schema_migrations)",
        {"test_migration_files_applied": ("20241020100000_start_packing.sql: never applied to the database",)}),
    "bucket_public": Fault(
        "insert into storage.buckets (id, name, public) values ('order_photos', 'order_photos', true)",
        {"test_buckets_private": ("bucket order_photos: bucket is public",)}),
    "anon_executes_read_rpc": Fault(
        "grant execute on function public.get_queue_stats(text) to anon",
        {"test_anon_cannot_execute_definer_functions": (
            "public.get_queue_stats(p_store text): anon may execute this SECURITY DEFINER function",)}),
    "read_rpc_answers_anon": Fault(
        STATS_FOR_ANYONE,
        {"test_anon_cannot_execute_definer_functions": ("public.get_queue_stats(p_store text)",),
         "test_read_rpc_gives_anon_nothing[get_queue_stats]": ("public.get_queue_stats: returned data to anon",)}),
    "definer_view": Fault(
        "create view public.orders_overview as select id, customer_name, stage from public.orders_bannos",
        {"test_no_owner_rights_views": ("public.orders_overview: runs with its owner's rights and anon, authenticated may read it",),
         # Supabase's default privileges hand the new view to the API roles, writes included.
         "test_no_write_grants_to_api_roles": ("public.orders_overview: anon may INSERT, UPDATE, DELETE, TRUNCATE",)}),
}


def assert_fault(run, fault: Fault) -> None:
    assert_outcomes(run, fault.fails, fault.skips)


def runs_ahead() -> dict:
    """This module's inner runs, started when the session starts (selftests/conftest.py)."""
    return {
        **{f"test_fault_is_caught[{name}]": broken(f.sql, run=PART, as_admin=f.as_admin) for name, f in FAULTS.items()},
        **{f"test_reference_choice_is_a_note[{name}]": broken(sql, run=PART) for name, (sql, _) in NOTED.items()},
        "test_missing_migrations_table_is_one_failure": broken("drop schema supabase_migrations cascade", run=PART),
        "test_objects_the_contract_does_not_know_are_judged_by_the_general_rules": broken(FOREIGN_APP, run=PART),
        "test_long_finding_keeps_every_row_and_puts_the_order_tables_first": broken(
            "grant all on all tables in schema public to anon", run=("tests/test_security.py",)),
        "test_healthy_reference_passes_everything": broken(run=("tests",), hypothesis=True)}


@pytest.mark.parametrize("name", FAULTS)
def test_fault_is_caught(ahead_run, name):
    assert_fault(ahead_run, FAULTS[name])


@pytest.fixture
def migrations_copy(tmp_path):
    copy = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, copy)
    return copy


def test_migration_file_never_applied(ordak_clone, migrations_copy):
    (migrations_copy / "20250301090000_add_delivery_zones.sql").write_text(
        "create table public.delivery_zones (id int primary key, name text);\n")
    run = ordak_clone().run_suite(*PART, f"--migrations-dir={migrations_copy}")
    assert_fault(run, Fault("", {"test_migration_files_applied": (
        "20250301090000_add_delivery_zones.sql: never applied to the database",)}))
    assert "head_in_git=20250301090000" in run.output and "head_in_database=20241020100000" in run.output


def test_applied_migration_edited(ordak_clone, migrations_copy):
    path = migrations_copy / "20240915120000_queue_rpcs.sql"
    path.write_text(path.read_text().replace("least(greatest(p_limit, 1), 500)", "least(greatest(p_limit, 1), 5000)"))
    run = ordak_clone().run_suite(*PART, f"--migrations-dir={migrations_copy}")
    assert_fault(run, Fault("", {"test_applied_migrations_unchanged": (
        "20240915120000_queue_rpcs.sql: file differs from the statements applied",)}))


def test_applied_migration_reformatted_is_not_an_edit(ordak_clone, migrations_copy):
    """Comments, blank lines, indentation, keyword case and semicolons are not edits."""
    path = migrations_copy / "20240901090000_core_schema.sql"
    text = (path.read_text().replace("create table", "CREATE   TABLE")
            .replace("\ncreate index", "\n-- reviewed\nCREATE\n  INDEX").replace(" on public.", "  ON  public."))
    path.write_text("/* reformatted */\n" + text)
    run = ordak_clone().run_suite("tests/test_migrations.py", f"--migrations-dir={migrations_copy}")
    assert run.exit_code == 0, run.output


def test_version_applied_without_a_file(ordak_clone, migrations_copy):
    (migrations_copy / "20241001080000_messaging_and_platform.sql").unlink()
    run = ordak_clone().run_suite(*PART, f"--migrations-dir={migrations_copy}")
    assert_fault(run, Fault("", {"test_applied_migrations_have_files": (
        "version 20241001080000 (messaging_and_platform): applied to the database but has no file",)}))


def test_missing_migrations_table_is_one_failure(ahead_run):
    run = ahead_run
    assert_fault(run, Fault("", {"test_migration_files_applied": (
        "supabase_migrations.schema_migrations: table is missing",)},
        skips=frozenset({"test_applied_migrations_have_files", "test_applied_migrations_unchanged"})))


FOREIGN_APP = """
-- What another app's migrations leave behind under Supabase's default privileges.
create table public.customer_notes (id bigserial primary key, note text);
create function public.touch_note(p_id bigint) returns void language sql security definer as
  $$ update public.customer_notes set note = note where id = p_id $$;
create schema reporting;
grant usage on schema reporting to authenticated;
create table reporting.cache (k text primary key, v jsonb);
create view reporting.daily_orders as
  select created_at::date as day, count(*) as orders from public.orders_bannos group by 1;
grant select on reporting.daily_orders to authenticated;
create schema private;
create table private.secrets (k text primary key);
"""


def test_objects_the_contract_does_not_know_are_judged_by_the_general_rules(ahead_run):
    run = ahead_run
    assert not run.with_status("error"), run.output
    assert run.failed() == {"test_rls_enabled", "test_no_write_grants_to_api_roles",
                            "test_definer_functions_pin_search_path", "test_anon_cannot_execute_definer_functions",
                            "test_no_owner_rights_views"}, run.output
    rls = run.outcome("test_rls_enabled").message
    assert "public.customer_notes: row level security is off" in rls
    assert "reporting.cache: row level security is off" in rls
    assert "private.secrets" not in rls, "a schema the API roles cannot reach is out of scope"
    assert "public.customer_notes: anon may INSERT, UPDATE, DELETE, TRUNCATE" in \
        run.outcome("test_no_write_grants_to_api_roles").message
    assert "public.touch_note(p_id bigint)" in run.outcome("test_definer_functions_pin_search_path").message
    assert "public.touch_note(p_id bigint)" in run.outcome("test_anon_cannot_execute_definer_functions").message
    assert "reporting.daily_orders: runs with its owner's rights and authenticated may read it" in \
        run.outcome("test_no_owner_rights_views").message


# What the reference chose where SYSTEM.md is silent is a note: the run stays green and says so.
NOTED = {
    "cron_schedule_changed": ("select cron.alter_job((select jobid from cron.job where jobname = 'order-monitor'),"
                              " schedule := '0,30 * * * *')",
                              "cron job order-monitor: runs on '0,30 * * * *', the reference on '*/30 * * * *'"),
    "stage_events_without_primary_key": ("alter table public.stage_events drop constraint stage_events_pkey",
                                         "public.stage_events: no primary key on (id)"),
}


@pytest.mark.parametrize("name", NOTED)
def test_reference_choice_is_a_note(ahead_run, name):
    shown = NOTED[name][1]
    run = ahead_run
    assert_fault(run, Fault("", {}))
    notes = run.output.split("notes: shown, never failing", 1)
    assert len(notes) == 2 and shown in notes[1], run.output


def test_long_finding_keeps_every_row_and_puts_the_order_tables_first(ahead_run):
    run = ahead_run
    junit = run.outcome("test_no_write_grants_to_api_roles").message
    rows = [line for line in junit.splitlines() if line.startswith("  - ")]
    assert len(rows) >= 26 and "... and" not in junit, "JUnit carries every violation, one row per table"
    assert rows[0].startswith("  - public.orders_bannos: anon may INSERT, UPDATE, DELETE, TRUNCATE"), rows[:3]
    assert rows[1].startswith("  - public.orders_flourlane:"), rows[:3]
    assert "public.webhook_inbox_bannos" in junit and "public.users" in junit
    assert f"... and {len(rows) - 25} more: every one is in the HTML report and the JUnit XML" in run.output


def test_healthy_reference_passes_everything(ahead_run):
    run = ahead_run
    assert run.exit_code == 0, run.output
    compare = NO_COMPARE
    # No HTTP settings given: the platform checks skip (test_platform_faults runs them healthy).
    platform = {k.split("::", 1)[1] for k in run.outcomes if k.startswith("test_platform::")}
    assert len(platform) == 15 and run.with_status("skipped") == compare | platform, \
        "only the comparison (no --compare-to) and the platform checks (no HTTP settings) skip"
    assert run.with_status("passed") == {k.split("::", 1)[1] for k in run.outcomes} - compare - platform, run.output
