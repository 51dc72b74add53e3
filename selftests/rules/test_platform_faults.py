"""Fault catalogue for the platform checks over HTTP.

The suite runs as a user runs it (`pytest --env=staging tests/test_platform.py` in a
subprocess) against a clone of the reference and a Supabase stand-in on real sockets
(selftests/standin.py): the same client, transport and code that talk to the real service.
Each fault breaks one answer (or one row) and exactly the intended test ids must fail, each
with a message naming the fault; a bad answer is one line naming the endpoint and what to
check, never a traceback or a key.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest

from checks.reference.cluster import MIGRATIONS_DIR
from selftests.harness import assert_outcomes
from selftests.standin import (ACCESS_TOKEN, ANON_KEY, PREVIOUS_ANON_KEY, PREVIOUS_SERVICE_ROLE_KEY, REF,
                               SERVICE_ROLE_KEY, Reply, StandIn, healthy_backups, iso, lint)

PART = "tests/test_platform.py"
SECRETS = (ACCESS_TOKEN, ANON_KEY, SERVICE_ROLE_KEY, PREVIOUS_ANON_KEY, PREVIOUS_SERVICE_ROLE_KEY)
PLATFORM_TESTS = {
    "test_pitr_enabled", "test_pitr_window", "test_pitr_latest_restore_point_recent", "test_backup_recent",
    "test_no_failed_backup_after_last_completed", "test_api_migrations_match_git", "test_security_advisor[none]",
    "test_rest_api_answers", "test_anon_rest_read_rpc[get_queue]", "test_anon_rest_read_rpc[get_unassigned_counts]",
    "test_anon_rest_read_rpc[get_queue_stats]", "test_anon_rest_read_rpc[get_order_for_scan]",
    "test_anon_rest_cannot_read_orders[bannos]", "test_anon_rest_cannot_read_orders[flourlane]",
    "test_photos_readable"}
BACKUPS = r"/v1/projects/\w+/database/backups"
MIGRATIONS = r"/v1/projects/\w+/database/migrations"
ADVISORS = r"/v1/projects/\w+/advisors/security"
# Checks that stand on the backups answer: blocked when test_pitr_enabled reports it missing.
ON_BACKUPS = frozenset({"test_pitr_window", "test_pitr_latest_restore_point_recent", "test_backup_recent",
                        "test_no_failed_backup_after_last_completed"})
ON_REST = frozenset({"test_anon_rest_read_rpc[get_queue]", "test_anon_rest_read_rpc[get_unassigned_counts]",
                     "test_anon_rest_read_rpc[get_queue_stats]", "test_anon_rest_read_rpc[get_order_for_scan]",
                     "test_anon_rest_cannot_read_orders[bannos]", "test_anon_rest_cannot_read_orders[flourlane]"})


NEWEST_PHOTOS = "select id from public.order_photos order by created_at desc nulls last, id limit {n}"


def photo_setup(standin: StandIn, storage: bool = False) -> list[str]:
    """SQL that points a clone's photo URLs at the stand-in's photo host (the reference's are
    https://photos.ordak.example/...); with storage, a team that keeps photos in Storage: a
    private bucket holding the newest six, five as bare paths, one as a URL."""
    setup = [f"update public.order_photos set url = replace(url, 'https://photos.ordak.example', "
             f"'{standin.url('photos')}')"]
    if storage:
        setup += [
            "insert into storage.buckets (id, name, public) values ('order_photos', 'order_photos', false)",
            "insert into storage.objects (bucket_id, name, metadata) select 'order_photos', "
            "store || '/' || order_id || '.jpg', '{\"mimetype\": \"image/jpeg\"}' from public.order_photos "
            f"where id in ({NEWEST_PHOTOS.format(n=6)})",
            "update public.order_photos set url = store || '/' || order_id || '.jpg' "
            f"where id in ({NEWEST_PHOTOS.format(n=5)})",
            f"update public.order_photos set url = '{standin.url('project')}/storage/v1/object/public/"
            f"order_photos/' || store || '/' || order_id || '.jpg' "
            f"where id in ({NEWEST_PHOTOS.format(n=6)}) and url like 'http%'"]
    return setup


def platform_run(*sql: str, storage: bool = False, overrides=(), args=(), still_accepted=(), **options):
    """A job for RunsAhead: a stand-in of its own with overrides (server, method, path, reply),
    its clone's photos served by it, sql applied (formatted with the stand-in's {photos} and {project} URLs),
    then run_platform(*args, **options). Returns the run and the stand-in (closed, its log kept).
    still_accepted: previous keys the stand-in's project still takes (a rotation not done)."""
    def job(clone):
        with StandIn(MIGRATIONS_DIR) as standin:
            standin.still_accepted.update(still_accepted)
            for override in overrides:
                standin.override(*override)
            for statement in [*photo_setup(standin, storage),
                              *(q.format(photos=standin.url("photos"), project=standin.url("project")) for q in sql)]:
                clone.execute(statement, as_admin=True)
            return run_platform(clone, standin, *args, **options), standin
    return job


def runs_ahead() -> dict:
    """This module's runs, started when the session starts (selftests/conftest.py)."""
    now = datetime.now(timezone.utc)
    two_lints = [lint("rls_disabled_in_public_public_notes"), lint("rls_disabled_in_public_public_drafts", table="drafts")]
    buckets_only = (PART, "tests/test_security.py::test_buckets_private")
    return {
        "test_healthy_answers_pass_and_only_reads_are_sent": platform_run(storage=True),
        "test_thresholds_are_overridden_per_environment": platform_run(
            overrides=[("management", "GET", BACKUPS, Reply(200, _window(now - timedelta(days=3), now)))],
            extra_toml="[staging.thresholds]\npitr_window_days = 3\n"),
        "test_xdist_workers_collect_the_same_lints": platform_run(
            overrides=[("management", "GET", ADVISORS, Reply(200, {"lints": two_lints}))], args=(PART, "-n", "2")),
        "test_public_bucket_is_reported_once": platform_run(
            "update storage.buckets set public = true where id = 'order_photos'", storage=True, args=buckets_only),
        "test_no_bucket_is_not_a_finding": platform_run(args=buckets_only),
        "test_wrong_service_role_key": platform_run(storage=True, ORDAK_STAGING_SERVICE_ROLE_KEY="eyJwrong.service.key"),
        "test_unset_variables_skip_naming_them": platform_run(SUPABASE_ACCESS_TOKEN="", ORDAK_STAGING_ANON_KEY=""),
        "test_an_accepted_lint_passes_and_an_unlisted_one_fails": platform_run(
            overrides=[("management", "GET", ADVISORS, Reply(200, {"lints": two_lints}))],
            extra_toml=ACCEPTED.format(until="2099-01-31")),
        "test_an_expired_acceptance_fails_again": platform_run(
            overrides=[("management", "GET", ADVISORS, Reply(200, {"lints": [lint("rls_disabled_in_public_public_notes")]}))],
            extra_toml=ACCEPTED.format(until="2020-01-31")),
        **{f"test_fault[{name}]": platform_run(*filter(None, [f.sql]), storage=f.storage,
                                                overrides=[(f.server, f.method, f.path, f.reply)])
           for name, f in FAULTS.items()},
        **{f"test_bad_management_answer[{name}]": platform_run(
            overrides=overrides, http_timeout=SHORT if name == "timeout" else 2, **variables)
           for name, (variables, overrides, _) in BAD_ANSWERS.items()},
        **{f"test_bad_rest_answer[{name}]": platform_run(
            overrides=[("project", method, r"/rest/v1/.*", reply) for method in ("GET", "POST") if reply],
            http_timeout=SHORT if name == "timeout" else 2, **variables)
           for name, (variables, reply, _) in REST_BAD_ANSWERS.items()},
        **{f"test_a_photo_on_the_projects_origin_is_not_fetched[{name}]": platform_run(*sql)
           for name, sql in NOT_FETCHED.items()},
        "test_a_storage_render_url_is_read_as_its_object": platform_run(RENDER_URL, storage=True),
        "test_a_management_api_url_ending_in_v1_is_refused": platform_run(management_path="/v1"),
        "test_rotated_keys_are_refused_while_the_current_one_is_accepted": platform_run(
            args=ROTATED_ONLY, secrets_extra=ROTATED_SECRETS, **PREVIOUS_VARIABLES),
        **{f"test_a_rotated_key_still_accepted_is_named[{key}]": platform_run(
            args=ROTATED_ONLY, secrets_extra=ROTATED_SECRETS, still_accepted=(value,), **PREVIOUS_VARIABLES)
           for key, value in PREVIOUS.items()},
        "test_a_previous_key_named_but_unset_skips_naming_its_variable": platform_run(
            args=ROTATED_ONLY, secrets_extra=ROTATED_SECRETS,
            ORDAK_STAGING_PREVIOUS_ANON_KEY=PREVIOUS_ANON_KEY)}


def environments_file(path, standin: StandIn, extra: str = "", http_timeout: float = 2, management_path: str = "",
                      secrets_extra: str = "") -> str:
    path.write_text(f"""
[staging]
description = "staging, served by the Supabase stand-in"
management_api_url = "{standin.url('management')}{management_path}"
http_timeout = {http_timeout}
[staging.secrets]
db_url = "ORDAK_STAGING_DB_URL"
supabase_url = "ORDAK_STAGING_SUPABASE_URL"
anon_key = "ORDAK_STAGING_ANON_KEY"
service_role_key = "ORDAK_STAGING_SERVICE_ROLE_KEY"
project_ref = "ORDAK_STAGING_PROJECT_REF"
access_token = "SUPABASE_ACCESS_TOKEN"
{secrets_extra}{extra}""")
    return str(path)


def run_platform(clone, standin, *args, extra_toml: str = "", http_timeout: float = 2, management_path: str = "",
                 secrets_extra: str = "", **variables):
    """Runs tests/test_platform.py against clone and the stand-in; variables override the
    healthy secrets (e.g. SUPABASE_ACCESS_TOKEN="wrong"); management_path is appended to the
    stand-in's management_api_url."""
    envs = environments_file(clone.workdir.parent / f"{clone.name}-envs{clone.runs}.toml", standin, extra_toml,
                             http_timeout, management_path, secrets_extra)
    secrets = {"ORDAK_STAGING_SUPABASE_URL": standin.url("project"), "ORDAK_STAGING_ANON_KEY": ANON_KEY,
               "ORDAK_STAGING_SERVICE_ROLE_KEY": SERVICE_ROLE_KEY, "ORDAK_STAGING_PROJECT_REF": REF,
               "SUPABASE_ACCESS_TOKEN": ACCESS_TOKEN, **variables}
    run = clone.run_suite(*(args or (PART,)), f"--environments={envs}", extra_env=secrets)
    assert "Traceback" not in run.output, run.output
    for secret in SECRETS:
        assert secret not in run.output, f"a key was printed:\n{run.output}"
        assert secret not in run.report.read_text(), "a key reached the report"
    return run


def one_line(message: str) -> str:
    assert len(message.strip().splitlines()) == 1, f"not one line:\n{message}"
    return message


# -- healthy answers ------------------------------------------------------------------------
def test_healthy_answers_pass_and_only_reads_are_sent(ahead_run):
    run, standin = ahead_run
    assert_outcomes(run, {})
    assert run.with_status("passed") == PLATFORM_TESTS, run.output
    assert "photos_sampled=10, photos_readable=10" in run.output and "pitr_window_days=7.08" in run.output

    seen = {(r.server, r.method, r.path) for r in standin.requests}
    assert {("management", "GET", f"/v1/projects/{REF}/{what}")
            for what in ("database/backups", "database/migrations", "advisors/security")} <= seen
    signed = [r for r in standin.requests if r.server == "project" and "/storage/v1/object/sign/" in r.path]
    assert [r.method for r in signed].count("POST") == 6, "the six Storage photos are signed, then read"
    assert [r.method for r in signed].count("GET") == 6
    assert len([r for r in standin.requests if r.server == "photos"]) == 4, "the other four are fetched as they are"
    for request in standin.requests:
        assert request.headers["user-agent"].startswith("ordak-verify/0."), request
        assert "restore" not in request.path.lower(), request
        if request.server == "management":
            assert request.method == "GET" and request.headers["authorization"] == f"Bearer {ACCESS_TOKEN}"
        if request.server == "photos" or request.method == "GET" and "/storage/" in request.path:
            assert request.method == "GET" and not {"apikey", "authorization"} & set(request.headers), request
        if request.server == "project" and request.path.startswith("/rest/v1/"):
            assert request.headers["apikey"] == ANON_KEY, "PostgREST is only called with the anon key"
            assert request.method == "GET" and request.path.endswith("?select=id&limit=1") or \
                request.method == "POST" and request.path.split("/")[-1] in (
                    "get_queue", "get_unassigned_counts", "get_queue_stats", "get_order_for_scan"), request


def test_thresholds_are_overridden_per_environment(ahead_run):
    """The backups answer a 3-day window, which the environment's own threshold accepts."""
    run, _ = ahead_run
    assert run.outcome("test_pitr_window").status == "passed", run.output


def test_xdist_workers_collect_the_same_lints(ahead_run):
    run, standin = ahead_run
    assert_outcomes(run, {"test_security_advisor[rls_disabled_in_public_public_notes]": ("public.notes",),
                          "test_security_advisor[rls_disabled_in_public_public_drafts]": ("public.drafts",)})
    advisor_reads = [r for r in standin.requests if r.path.endswith("/advisors/security")]
    assert len(advisor_reads) == 1, "the controller reads the advisor once and hands the lints to the workers"


# -- faults -------------------------------------------------------------------------------------
def _window(earliest: datetime, latest: datetime) -> dict:
    body = healthy_backups()
    body["physical_backup_data"] = {"earliest_physical_backup_date_unix": int(earliest.timestamp()),
                                    "latest_physical_backup_date_unix": int(latest.timestamp())}
    return body


def _pitr_off() -> dict:
    return {**healthy_backups(), "pitr_enabled": False, "physical_backup_data": {}}


def _failed_after_completed() -> dict:
    body = healthy_backups()
    body["backups"].append({"id": 9911, "inserted_at": iso(datetime.now(timezone.utc) - timedelta(hours=1)),
                            "is_physical_backup": True, "status": "FAILED"})
    return body


def _migrations_without_last() -> list:
    versions = sorted(p.name for p in MIGRATIONS_DIR.glob("*.sql"))
    return [{"version": v.split("_", 1)[0], "name": v[:-4].split("_", 1)[1]} for v in versions[:-1]]


LAST_MIGRATION = sorted(p.name for p in MIGRATIONS_DIR.glob("*.sql"))[-1]
NOW = datetime.now(timezone.utc)


@dataclass(frozen=True)
class Fault:
    server: str
    method: str
    path: str
    reply: Reply
    fails: dict[str, tuple[str, ...]]
    skips: frozenset[str] = field(default_factory=frozenset)
    sql: str = ""
    storage: bool = False  # photos kept in Storage (signed before they are read)


FAULTS = {
    "pitr_off": Fault(
        "management", "GET", BACKUPS, Reply(200, _pitr_off()),
        {"test_pitr_enabled": (f"project {REF}: PITR is off (pitr_enabled is false)",
                               "no restore point: physical_backup_data is empty")},
        skips=frozenset({"test_pitr_window", "test_pitr_latest_restore_point_recent"})),
    "window_of_3_days": Fault(
        "management", "GET", BACKUPS, Reply(200, _window(NOW - timedelta(days=3), NOW - timedelta(minutes=2))),
        {"test_pitr_window": ("the PITR window is 3.0 days", "less than 7")}),
    "latest_point_2_days_old": Fault(
        "management", "GET", BACKUPS, Reply(200, _window(NOW - timedelta(days=9), NOW - timedelta(days=2))),
        {"test_pitr_latest_restore_point_recent": ("the latest restore point is 48.", "hours old", "more than 24")}),
    "failed_backup_after_last_completed": Fault(
        "management", "GET", BACKUPS, Reply(200, _failed_after_completed()),
        {"test_no_failed_backup_after_last_completed": ("backup 9911: FAILED at", "after the last COMPLETED one")}),
    "migration_missing_from_api": Fault(
        "management", "GET", MIGRATIONS, Reply(200, _migrations_without_last()),
        {"test_api_migrations_match_git": (f"{LAST_MIGRATION}: in Git but missing from the Management API's "
                                           f"migration list",)}),
    "advisor_lint_not_accepted": Fault(
        "management", "GET", ADVISORS, Reply(200, {"lints": [lint("rls_disabled_in_public_public_notes")]}),
        {"test_security_advisor[rls_disabled_in_public_public_notes]": (
            "public.notes: ERROR RLS Disabled in Public: Table `public.notes` is public, but RLS has not been enabled",
            "lint=0013_rls_disabled_in_public")}),
    "anon_get_queue_returns_rows": Fault(
        "project", "POST", r"/rest/v1/rpc/get_queue",
        Reply(200, [{"id": "bannos-18617", "stage": "Filling", "priority": "High", "total_count": 44}]),
        {"test_anon_rest_read_rpc[get_queue]": ("POST /rest/v1/rpc/get_queue: returned data to anon",
                                                "id=bannos-18617")}),
    "anon_reads_order_table": Fault(
        "project", "GET", r"/rest/v1/orders_flourlane\?select=id&limit=1", Reply(200, [{"id": "flourlane-24007"}]),
        {"test_anon_rest_cannot_read_orders[flourlane]": ("GET /rest/v1/orders_flourlane: returned data to anon",
                                                          "id=flourlane-24007")}),
    "photo_url_404": Fault(
        "photos", "GET", r"/cdn/.*", Reply(404, b"Not Found", {"Content-Type": "text/plain"}),
        {"test_photos_readable": ("/cdn/qc-missing.jpg answered 404",)},
        sql="update public.order_photos set url = '{photos}/cdn/qc-missing.jpg?size=large' "
            "where id = (select id from public.order_photos order by created_at desc limit 1)"),
    "photo_not_an_image": Fault(
        "photos", "GET", r"/cdn/.*", Reply(200, b"<html>login</html>", {"Content-Type": "text/html"}),
        {"test_photos_readable": ("/cdn/qc.jpg answered 200 with text/html, not an image",)},
        sql="update public.order_photos set url = '{photos}/cdn/qc.jpg' "
            "where id = (select id from public.order_photos order by created_at desc limit 1)"),
    "signed_url_400": Fault(
        "project", "GET", r"/storage/v1/object/sign/.*",
        Reply(400, {"statusCode": "400", "error": "InvalidJWT", "message": "invalid signature"}),
        {"test_photos_readable": ("GET {project}/storage/v1/object/sign/order_photos/", "answered 400")},
        storage=True),
    "storage_object_missing": Fault(
        "project", "POST", r"/storage/v1/object/sign/.*",
        Reply(400, {"statusCode": "404", "error": "not_found", "message": "Object not found"}),
        {"test_photos_readable": ("Storage could not sign order_photos/", "400 (Object not found)")},
        storage=True),
}


@pytest.mark.parametrize("name", FAULTS)
def test_fault(ahead_run, name):
    fault = FAULTS[name]
    run, standin = ahead_run
    fails = {test: tuple(f.format(project=standin.url("project")) for f in fragments)
             for test, fragments in fault.fails.items()}
    assert_outcomes(run, fails, fault.skips)


def test_public_bucket_is_reported_once(ahead_run):
    """test_security judges storage.buckets already (a bucket, where one exists, must be
    private); the photo check reads through signed URLs and does not report it twice."""
    run, _ = ahead_run
    assert_outcomes(run, {"test_buckets_private": ("bucket order_photos: bucket is public",)})


def test_no_bucket_is_not_a_finding(ahead_run):
    """Ordak keeps URLs today and has no bucket (SYSTEM.md): photos are fetched as they are."""
    run, standin = ahead_run
    assert_outcomes(run, {})
    assert not [r for r in standin.requests if "/storage/" in r.path], "nothing to sign"
    assert len([r for r in standin.requests if r.server == "photos"]) == 10


# -- bad answers: one line naming the endpoint and what to check ------------------------------------
MANAGEMENT_FAILS = ("test_pitr_enabled", "test_api_migrations_match_git", "test_security_advisor[unavailable]")
ENDPOINT = {"test_pitr_enabled": "database/backups", "test_api_migrations_match_git": "database/migrations",
            "test_security_advisor[unavailable]": "advisors/security"}


def _management_everywhere(reply: Reply):
    return [("management", "GET", r"/v1/projects/.*", reply)]


# Seconds: the timeout cases' http_timeout, and their stand-in's delay. A client stalled on a
# busy machine past the delay would find the answer waiting and not time out (a timeout is
# time spent blocked): the delay leaves a wide margin, and costs nothing, as the stand-in's
# handler threads are never waited for.
SHORT, SLOW = 0.5, 5.0
BAD_ANSWERS = {
    "401": ({"SUPABASE_ACCESS_TOKEN": "sbp_wrong_token_0000"}, [],
            (": 401 Unauthorized: the access token was refused: check SUPABASE_ACCESS_TOKEN",)),
    "403": ({}, _management_everywhere(Reply(403, {"message": "Forbidden resource"})),
            ("403 Forbidden (Forbidden resource)", f"this access token may not read project {REF}")),
    "404_wrong_ref": ({"ORDAK_STAGING_PROJECT_REF": "wrongrefwrongref0000"}, [],
                      ("404 Not Found (Project not found)",
                       "no project 'wrongrefwrongref0000' for this token: check ORDAK_STAGING_PROJECT_REF")),
    "429": ({}, _management_everywhere(Reply(429, {"message": "Too many requests"}, {"Retry-After": "0"})),
            ("429 Too Many Requests after 3 attempts", "the API is rate-limiting; run again later")),
    # Retry-After: 0 spares the waits between attempts (selftests/connect/test_http.py proves the backoff).
    "5xx": ({}, _management_everywhere(Reply(503, b"<html>upstream unavailable</html>",
                                             {"Content-Type": "text/html", "Retry-After": "0"})),
            ("503 from the server after 3 attempts", "see https://status.supabase.com")),
    "timeout": ({}, _management_everywhere(Reply(200, {}, delay=SLOW)),
                (f"no answer within {SHORT} s", "check management_api_url (http://127.0.0.1:",
                 "or raise http_timeout in environments.toml")),
    "malformed_json": ({}, _management_everywhere(Reply(200, b"{\"backups\": [", {"Content-Type": "application/json"})),
                       ("answered 200 with application/json that is not JSON",
                        "check that management_api_url (http://127.0.0.1:")),
    "wrong_shape": ({}, _management_everywhere(Reply(200, {"data": []})),
                    ("the answer is not the documented shape", "check that management_api_url")),
}


@pytest.mark.parametrize("name", BAD_ANSWERS)
def test_bad_management_answer(ahead_run, name):
    fragments = BAD_ANSWERS[name][2]
    run, standin = ahead_run
    assert_outcomes(run, {test: (f"GET {standin.url('management')}/v1/projects/", ENDPOINT[test], *fragments)
                          for test in MANAGEMENT_FAILS}, ON_BACKUPS)
    for test in MANAGEMENT_FAILS:
        one_line(run.outcome(test).message)
    assert "see test_pitr_enabled" in run.outcome("test_pitr_window").message


REST_BAD_ANSWERS = {
    "401_wrong_anon_key": ({"ORDAK_STAGING_ANON_KEY": "eyJwrong.anon.key"}, None,
                           ("401 Unauthorized (Invalid API key)", "the anon key was refused: check ORDAK_STAGING_ANON_KEY")),
    "5xx": ({}, Reply(502, b"bad gateway", {"Content-Type": "text/plain", "Retry-After": "0"}),
            ("502 from the server after 3 attempts",)),
    "timeout": ({}, Reply(200, [], delay=SLOW), (f"no answer within {SHORT} s", "check ORDAK_STAGING_SUPABASE_URL")),
    "not_postgrest": ({}, Reply(200, b"<!doctype html><title>Vercel</title>", {"Content-Type": "text/html"}),
                      ("answered 200 with text/html that is not JSON", "check that ORDAK_STAGING_SUPABASE_URL is the "
                                                                         "project's URL")),
}


@pytest.mark.parametrize("name", REST_BAD_ANSWERS)
def test_bad_rest_answer(ahead_run, name):
    fragments = REST_BAD_ANSWERS[name][2]
    run, standin = ahead_run
    assert_outcomes(run, {"test_rest_api_answers": (f"GET {standin.url('project')}/rest/v1/orders_bannos:",
                                                    *fragments)}, ON_REST)
    one_line(run.outcome("test_rest_api_answers").message)
    assert "PostgREST did not answer: see test_rest_api_answers" in \
        run.outcome("test_anon_rest_read_rpc[get_queue]").message


def test_wrong_service_role_key(ahead_run):
    run, standin = ahead_run
    assert_outcomes(run, {"test_photos_readable": (
        f"POST {standin.url('project')}/storage/v1/object/sign/order_photos/", "401 Unauthorized (Invalid API key)",
        "the service role key was refused: check ORDAK_STAGING_SERVICE_ROLE_KEY")})
    one_line(run.outcome("test_photos_readable").message)


def test_unset_variables_skip_naming_them(ahead_run):
    run, _ = ahead_run
    unavailable = PLATFORM_TESTS - {"test_photos_readable", "test_security_advisor[none]"}
    assert run.with_status("skipped") == unavailable | {"test_security_advisor[unavailable]"}, run.output
    assert "SUPABASE_ACCESS_TOKEN: export them" in run.outcome("test_pitr_enabled").message
    assert "ORDAK_STAGING_ANON_KEY: export them" in run.outcome("test_rest_api_answers").message
    assert run.outcome("test_photos_readable").status == "passed"


# -- accepting known lints: the general [[<env>.accepted]] mechanism, keys security_advisor:<cache_key>
ACCEPTED = """
[[staging.accepted]]
key = "security_advisor:rls_disabled_in_public_public_notes"
reason = "public.notes is the public changelog"
until = {until}

[[staging.accepted]]
key = "security_advisor:auth_otp_long_expiry"
reason = "fixed last month"
until = 2099-01-31
"""


def test_an_accepted_lint_passes_and_an_unlisted_one_fails(ahead_run):
    run, _ = ahead_run
    assert_outcomes(run, {"test_security_advisor[rls_disabled_in_public_public_drafts]": (
        "public.drafts: ERROR RLS Disabled in Public",)})
    assert run.outcome("test_security_advisor[rls_disabled_in_public_public_notes]").status == "passed"
    assert ("accepted until 2099-01-31: security_advisor:rls_disabled_in_public_public_notes: ERROR RLS Disabled "
            "in Public") in run.output
    assert "accepted key matched nothing (fixed? remove it): security_advisor:auth_otp_long_expiry" in run.output


def test_an_expired_acceptance_fails_again(ahead_run):
    run, _ = ahead_run
    assert_outcomes(run, {"test_security_advisor[rls_disabled_in_public_public_notes]": (
        "public.notes: ERROR RLS Disabled in Public", "expired on 2020-01-31 (public.notes is the public changelog)")})


# -- platform settings say what is wrong with them (issue 19, point 12) ---------------------------
def _newest(n: int, url: str) -> str:
    """SQL giving the n-th newest photo this URL."""
    return (f"update public.order_photos set url = '{url}' where id = "
            f"(select id from public.order_photos order by created_at desc nulls last, id offset {n - 1} limit 1)")


# Photo URLs on the project's own origin that are not Storage objects: the guard would refuse
# them (the project gets only its documented reads), so they are reported as not fetched,
# with the rule and the setting, never as missing files; beside a missing file, each keeps its fix.
NOT_FETCHED = {
    "only": [_newest(1, "{project}/rest/v1/orders_bannos?select=*"), _newest(2, "{project}/functions/v1/photo?id=7")],
    "beside_a_missing_file": [_newest(1, "{project}/rest/v1/orders_bannos?select=*"),
                              _newest(2, "{photos}/cdn/qc-missing.jpg")],
}


@pytest.mark.parametrize("name", NOT_FETCHED)
def test_a_photo_on_the_projects_origin_is_not_fetched(ahead_run, name):
    run, standin = ahead_run
    project = standin.url("project")
    fragments = [f"not fetched because {project}/rest/v1/orders_bannos is on the project's own origin "
                 f"(ORDAK_STAGING_SUPABASE_URL) but is not a Storage object",
                 "the suite sends the project only its documented reads",
                 "fix: for photos not fetched: keep each one in order_photos.url as a Storage path or object URL",
                 "if ORDAK_STAGING_SUPABASE_URL does not name the project (the photo host instead), set it to "
                 "https://<project-ref>.supabase.co"]
    if name == "only":
        fragments.append(f"not fetched because {project}/functions/v1/photo is on the project's own origin")
    else:
        fragments += ["/cdn/qc-missing.jpg answered 404",
                      "; for the others: restore the missing files (a restore to a new project copies no Storage"]
    assert_outcomes(run, {"test_photos_readable": tuple(fragments)})
    message = run.outcome("test_photos_readable").message
    assert name != "only" or "restore the missing files" not in message, message
    assert "refused before sending" not in message, "said before anything is tried, not as a refusal"
    sent = [r for r in standin.requests if r.path.startswith(("/rest/v1/orders_bannos?select=*", "/functions/"))]
    assert sent == [], f"never sent: {sent}"


# A Storage image transformation (its public render URL), as a team that shows thumbnails keeps.
RENDER_URL = ("update public.order_photos set url = replace(url, '/storage/v1/object/public/', "
              "'/storage/v1/render/image/public/') || '?width=200&height=200' "
              "where url like '%/storage/v1/object/public/%'")


def test_a_storage_render_url_is_read_as_its_object(ahead_run):
    """Not rendered (each transformation is billed, and a project may have them switched off),
    not refused either: the object it renders is signed and read like any other."""
    run, standin = ahead_run
    assert_outcomes(run, {})
    assert run.outcome("test_photos_readable").status == "passed", run.output
    assert not [r for r in standin.requests if "/render/" in r.path], "a transformation is never requested"
    signed = [r for r in standin.requests if r.server == "project" and "/storage/v1/object/sign/" in r.path]
    assert [r.method for r in signed].count("POST") == 6, "the render URL's object is signed with the other five"
    assert [r.method for r in signed].count("GET") == 6


def test_a_management_api_url_ending_in_v1_is_refused(ahead_run):
    """The API's reference writes its base with /v1; the suite adds /v1/projects/<ref>/ itself,
    so that base would ask for /v1/v1/... and read 404 as a wrong project ref."""
    run, standin = ahead_run
    management = standin.url("management")
    errors = [line for line in run.output.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and run.exit_code == 4, run.output
    assert (f"-envs0.toml:4: [staging] management_api_url = '{management}/v1' ends in /v1, the start of the "
            f"API's paths, which the suite adds itself (it calls <base>/v1/projects/<ref>/...); "
            f"use '{management}'") in errors[0], errors[0]
    assert "check ORDAK_STAGING_PROJECT_REF" not in run.output
    assert run.report.exists()
    assert standin.requests == [], "nothing is asked of an API the file names wrongly"


# -- keys rotated out at cut-over (runbook, Cut Over Production: "Rotate keys") ----------------------
ROTATED_SECRETS = ('previous_anon_key = "ORDAK_STAGING_PREVIOUS_ANON_KEY"\n'
                   'previous_service_role_key = "ORDAK_STAGING_PREVIOUS_SERVICE_ROLE_KEY"\n')
PREVIOUS = {"previous_anon_key": PREVIOUS_ANON_KEY, "previous_service_role_key": PREVIOUS_SERVICE_ROLE_KEY}
PREVIOUS_VARIABLES = {"ORDAK_STAGING_PREVIOUS_ANON_KEY": PREVIOUS_ANON_KEY,
                      "ORDAK_STAGING_PREVIOUS_SERVICE_ROLE_KEY": PREVIOUS_SERVICE_ROLE_KEY}
ROTATED_ONLY = (PART, "-k", "rotated_key or rest_api_answers")
ROTATED_TESTS = {f"test_rotated_key_refused[{key}]" for key in PREVIOUS}


def test_rotated_keys_are_refused_while_the_current_one_is_accepted(ahead_run):
    """Each previous key gets PostgREST's 401 for a bad JWT; the current anon key still its 200.
    Only the one-row GET is sent with a previous key, and no key is printed (run_platform)."""
    run, standin = ahead_run
    assert_outcomes(run, {})
    assert run.with_status("passed") == ROTATED_TESTS | {"test_rest_api_answers"}, run.output
    for key in PREVIOUS:
        assert f"test_rotated_key_refused[{key}]: previous_key_answer=401 PGRST301, current_anon_key_answer=200" \
            in run.output
    with_previous = [r for r in standin.requests if r.headers.get("apikey") in PREVIOUS.values()]
    assert len(with_previous) == 2 and all(
        r.method == "GET" and r.path == "/rest/v1/orders_bannos?select=id&limit=1" for r in with_previous), with_previous


@pytest.mark.parametrize("key", PREVIOUS)
def test_a_rotated_key_still_accepted_is_named(ahead_run, key):
    run, _ = ahead_run
    variable = f"ORDAK_STAGING_{key.upper()}"
    assert_outcomes(run, {f"test_rotated_key_refused[{key}]": (
        f"{variable}: still accepted: GET /rest/v1/orders_bannos?select=id&limit=1 with it answered 200, not 401",
        "fix: rotate it out: " + ("at once, since it bypasses row level security" if "service" in key
                                  else "roll the JWT secret (legacy keys) or disable the legacy anon key"))})
    other = next(k for k in PREVIOUS if k != key)
    assert run.outcome(f"test_rotated_key_refused[{other}]").status == "passed"


def test_a_previous_key_named_but_unset_skips_naming_its_variable(ahead_run):
    run, _ = ahead_run
    assert_outcomes(run, {}, {"test_rotated_key_refused[previous_service_role_key]"})
    assert "ORDAK_STAGING_PREVIOUS_SERVICE_ROLE_KEY is not set: export the key rotated out at cut-over" in \
        run.outcome("test_rotated_key_refused[previous_service_role_key]").message
