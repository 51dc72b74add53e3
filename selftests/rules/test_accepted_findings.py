"""Accepting a known finding: by its key, with a reason, until a date. Accepted findings pass
and are listed; expired ones fail again, saying so; a key that matches nothing is reported;
a malformed entry is one clear line."""

from datetime import date, timedelta

from selftests.harness import ROOT

FAULT = "grant insert on public.orders_bannos to anon"
KEY = "no_write_grants:public.orders_bannos"


def environments(tmp_path, *accepted: tuple[str, str, str]) -> str:
    entries = "".join(f'\n[[staging.accepted]]\nkey = "{key}"\nreason = "{reason}"\nuntil = {until}\n'
                      for key, reason, until in accepted)
    path = tmp_path / "environments.toml"
    path.write_text((ROOT / "environments.toml").read_text() + entries)
    return f"--environments={path}"


def later(days: int) -> str:
    return (date.today() + timedelta(days=days)).isoformat()


def accepting(*sql: str, accepted: tuple):
    """A job for RunsAhead: sql applied, then tests/test_security.py with these acceptances."""
    def job(clone):
        for statement in sql:
            clone.execute(statement)
        clone.workdir.mkdir(parents=True, exist_ok=True)
        return clone.run_suite("tests/test_security.py", environments(clone.workdir, *accepted))
    return job


def runs_ahead() -> dict:
    """This module's runs, started when the session starts (selftests/conftest.py)."""
    return {
        "test_accepted_finding_passes_and_is_listed": accepting(
            FAULT, accepted=[(KEY, "revoke tracked in ORD-412", later(30))]),
        "test_other_findings_of_the_same_check_still_fail": accepting(
            FAULT, "grant insert on public.stage_events to anon", accepted=[(KEY, "known", later(30))]),
        "test_expired_acceptance_fails_again_and_says_so": accepting(FAULT, accepted=[(KEY, "known", later(-1))]),
        "test_key_matching_nothing_is_reported": accepting(accepted=[(KEY, "fixed since", later(30))]),
        "test_malformed_acceptance_is_one_line": accepting(accepted=[(KEY, "no date", '"soon"')]),
    }


def test_accepted_finding_passes_and_is_listed(ahead_run):
    run = ahead_run
    assert run.exit_code == 0, run.output
    assert f"accepted until {later(30)}: {KEY}: anon may INSERT (revoke tracked in ORD-412)" in run.output


def test_other_findings_of_the_same_check_still_fail(ahead_run):
    run = ahead_run
    assert run.failed() == {"test_no_write_grants_to_api_roles"}, run.output
    message = run.outcome("test_no_write_grants_to_api_roles").message
    assert "public.stage_events: anon may INSERT" in message and "orders_bannos" not in message


def test_expired_acceptance_fails_again_and_says_so(ahead_run):
    run = ahead_run
    assert run.failed() == {"test_no_write_grants_to_api_roles"}, run.output
    assert f"acceptance=expired on {later(-1)} (known)" in run.outcome("test_no_write_grants_to_api_roles").message


def test_key_matching_nothing_is_reported(ahead_run):
    run = ahead_run
    assert run.exit_code == 0, run.output
    assert f"accepted key matched nothing (fixed? remove it): {KEY}" in run.output


def test_malformed_acceptance_is_one_line(ahead_run):
    run = ahead_run
    errors = [line for line in run.output.splitlines() if line.startswith("ERROR:")]
    assert run.exit_code == 4 and len(errors) == 1, run.output
    assert "environments.toml:" in errors[0] and "until must be a date, like until = 2027-01-31" in errors[0]
