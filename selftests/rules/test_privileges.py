"""Privilege is diagnosed once, where it is, and a check that raises leads with its cause.

A role without grants, or a member of postgres that is not postgres (pg_cron shows each user
only its own jobs), gets one finding per missing privilege from test_connected_role_privileges;
the checks standing on it skip and point there: no "restore the table" for a table that is
there, no "schedule the job again" for a job the role cannot see, no traceback. And an RPC the
app no longer lets `authenticated` execute fails the checks that call it with the database's
own SQLSTATE and message first, in the terminal, the HTML, the JSON summary and the postmortem.
"""

import json

from selftests.harness import assert_outcomes, broken, report_rows

POINTER = "see test_connected_role_privileges"


def as_role(role: str, *grants: str, run: tuple = (), env_name: str = "staging"):
    """A job for RunsAhead: a login role made on the clone's cluster (cluster-wide, made once),
    then the suite connected as it."""
    def job(clone):
        clone.execute(f"do $$ begin create role {role} login; exception when duplicate_object then null; end $$",
                      as_admin=True)
        for grant in grants:
            clone.execute(grant, as_admin=True)
        clone.url = clone.url.replace("postgres@", f"{role}@", 1)
        return clone.run_suite(*run, env_name=env_name)
    return job


REVOKED = "revoke execute on function public.get_queue from authenticated"


def runs_ahead() -> dict:
    return {
        "test_a_role_without_grants_gets_one_finding_per_missing_privilege_and_no_traceback": as_role(
            "ordak_verify_no_grants", run=("tests",)),
        "test_a_member_of_postgres_is_never_told_to_schedule_the_jobs_it_cannot_see": as_role(
            "ordak_verify_member", "grant postgres to ordak_verify_member",
            run=("tests/test_access.py", "tests/test_schema.py", "tests/test_drill.py"), env_name="restore"),
        "test_a_revoked_rpc_leads_with_the_databases_cause_everywhere": broken(
            REVOKED, run=("tests/test_queue.py",)),
    }


def skips_pointing_here(run) -> set[str]:
    return {test for test in run.with_status("skipped") if POINTER in run.outcome(test).message}


def test_a_role_without_grants_gets_one_finding_per_missing_privilege_and_no_traceback(ahead_run):
    run = ahead_run
    message = run.outcome("test_connected_role_privileges").message
    for finding in ("public.orders_bannos: ordak_verify_no_grants cannot read public.orders_bannos (no SELECT)",
                    "public.stage_events: ordak_verify_no_grants cannot read public.stage_events (no SELECT)",
                    "cron.job: ordak_verify_no_grants cannot read cron.job (no SELECT)",
                    "supabase_migrations.schema_migrations: ordak_verify_no_grants cannot read",
                    "auth.users: ordak_verify_no_grants cannot insert into auth.users",
                    "SET ROLE authenticated: ordak_verify_no_grants cannot act as authenticated",
                    "fix: connect as a role that has them: postgres"):
        assert finding in message, message
    # one finding per privilege, each once
    assert message.count("cannot read public.orders_bannos") == 1 and "sees only its own" not in message
    assert run.failed() == {"test_connected_role_privileges"}, run.output
    # the checks that stand on a privilege skip, pointing at that one finding
    assert {"test_store_not_empty[bannos]", "test_cron_job[order-monitor]", "test_migration_files_applied",
            "test_get_queue_lists_the_queue[bannos]", "test_repeat_changes_nothing[bannos-print_barcode]",
            "test_stage_machine_invariants", "test_buckets_private", "test_smoke_flow[bannos]"} <= \
        skips_pointing_here(run), run.output
    # a table that is there is never "missing", and nothing raised
    assert "test_table[orders_bannos]" in run.with_status("passed")
    assert "is missing" not in run.output and "restore the table" not in run.output
    assert "Traceback" not in run.output and "psycopg.errors" not in run.output, run.output


def test_a_member_of_postgres_is_never_told_to_schedule_the_jobs_it_cannot_see(ahead_run):
    run = ahead_run
    blind = ("cron.job: ordak_verify_member sees only its own pg_cron jobs in cron.job",
             "not those of postgres, who owns the app and its jobs")
    cron = {"test_no_http_cron_jobs", *(f"test_cron_job[{job}]" for job in (
        "order-monitor", "priority-escalation", "sync-inventory-to-shopify"))}
    # (test_pages_verify skips on a restored copy without the amcheck extension, saying how to add it)
    assert_outcomes(run, {"test_connected_role_privileges": blind}, cron | {"test_pages_verify"})
    assert skips_pointing_here(run) == cron
    assert "cron.schedule" not in run.output and "job is missing" not in run.output, run.output


def test_a_revoked_rpc_leads_with_the_databases_cause_everywhere(ahead_run):
    run = ahead_run
    cause = "SQLSTATE 42501 (InsufficientPrivilege): permission denied for function get_queue"
    failing = {f"test_get_queue_lists_the_queue[{store}]" for store in ("bannos", "flourlane")}
    assert run.failed() == failing, run.output
    for test in failing:  # JUnit and the terminal: the cause, then the fix, then the traceback
        message = run.outcome(test).message
        assert message.startswith(f"cause: {cause}"), message
        assert message.index("fix: the role the query ran as lacks this privilege") < message.index("traceback:")
    summary = json.loads(run.report.with_suffix(".json").read_text())
    checks = {c["id"]: c for c in summary["checks"]}
    for test in failing:
        check = checks[test]
        assert check["cause"]["line"] == cause and check["cause"]["object"] == "get_queue"
        assert check["message"].startswith(cause) and "target = Target(" not in check["message"]
        assert "Traceback" not in check["message"] and "get_queue" in check["cause"]["traceback"]
    rows = report_rows(run.report.read_text())
    for test in failing:  # pytest-html's row: the cause and fix as its extra, the traceback in its log after
        (row,) = [r for r in rows[f"tests/test_queue.py::{test}"] if r["result"] == "Failed"]
        (extra,) = row["extras"]
        assert f"<code>{cause}</code>" in extra["content"] and "<strong>Fix:</strong> the role the query" in extra["content"]
        assert row["log"].startswith(f"cause: {cause}") and "traceback:" in row["log"]
    postmortem = run.report.with_suffix(".md").read_text()
    did_not = postmortem.split("## What didn't")[1].split("##")[0]
    assert cause in did_not and "target = Target(" not in postmortem
    follow_ups = postmortem.split("## Follow-ups")[1]
    assert "the role the query ran as lacks this privilege" in follow_ups
    assert "investigate the failure" not in follow_ups
