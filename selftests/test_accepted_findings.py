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


def test_accepted_finding_passes_and_is_listed(ordak_clone, tmp_path):
    run = ordak_clone(FAULT).run_suite("tests/test_security.py",
                                       environments(tmp_path, (KEY, "revoke tracked in ORD-412", later(30))))
    assert run.exit_code == 0, run.output
    assert f"accepted until {later(30)}: {KEY}: anon may INSERT (revoke tracked in ORD-412)" in run.output


def test_other_findings_of_the_same_check_still_fail(ordak_clone, tmp_path):
    run = ordak_clone(FAULT, "grant insert on public.stage_events to anon").run_suite(
        "tests/test_security.py", environments(tmp_path, (KEY, "known", later(30))))
    assert run.failed() == {"test_no_write_grants_to_api_roles"}, run.output
    message = run.outcome("test_no_write_grants_to_api_roles").message
    assert "public.stage_events: anon may INSERT" in message and "orders_bannos" not in message


def test_expired_acceptance_fails_again_and_says_so(ordak_clone, tmp_path):
    run = ordak_clone(FAULT).run_suite("tests/test_security.py", environments(tmp_path, (KEY, "known", later(-1))))
    assert run.failed() == {"test_no_write_grants_to_api_roles"}, run.output
    assert f"acceptance=expired on {later(-1)} (known)" in run.outcome("test_no_write_grants_to_api_roles").message


def test_key_matching_nothing_is_reported(ordak_clone, tmp_path):
    run = ordak_clone().run_suite("tests/test_security.py", environments(tmp_path, (KEY, "fixed since", later(30))))
    assert run.exit_code == 0, run.output
    assert f"accepted key matched nothing (fixed? remove it): {KEY}" in run.output


def test_malformed_acceptance_is_one_line(ordak_clone, tmp_path):
    run = ordak_clone().run_suite("tests/test_security.py", environments(tmp_path, (KEY, "no date", '"soon"')))
    errors = [line for line in run.output.splitlines() if line.startswith("ERROR:")]
    assert run.exit_code == 4 and len(errors) == 1, run.output
    assert "environments.toml:" in errors[0] and "until must be a date, like until = 2027-01-31" in errors[0]
