"""Rotated keys stay rotated (checks.platform.rotated_key_refused), against an httpx
MockTransport shaped as the project answers: PostgREST refusing a JWT it cannot verify
(401 PGRST301, with its WWW-Authenticate header), the API gateway refusing an unknown key
(401 "Invalid API key"), or a key still accepted. The suite's own client, guard and code: only
the transport is a stand-in. No database is needed.

The end-to-end runs (pytest as a user runs it, on real sockets) are in test_platform_faults.py.
"""

from types import MappingProxyType

import httpx
import pytest

from checks.connect.environments import Environment, load_environments
from checks.connect.http import HttpError
from checks.errors import SetupError
from checks.rules import platform

URL = "https://abcdefghijklmnopqrst.supabase.co"
ANON = "eyJcurrent.anon.key-0001"
PREVIOUS_ANON = "eyJprevious.anon.key-0002"
PREVIOUS_SERVICE = "eyJprevious.service-role.key-0003"
KEYS = (ANON, PREVIOUS_ANON, PREVIOUS_SERVICE)
ENV = Environment(name="restore", restore_target=True, secrets=MappingProxyType({
    "db_url": "ORDAK_T_DB_URL", "supabase_url": "ORDAK_T_SUPABASE_URL", "anon_key": "ORDAK_T_ANON_KEY",
    "previous_anon_key": "ORDAK_T_PREVIOUS_ANON_KEY", "previous_service_role_key": "ORDAK_T_PREVIOUS_SERVICE_ROLE_KEY"}))

# How the project answers a key: PostgREST's own shapes (SYSTEM.md: {"code", "message", "details", "hint"}).
BAD_JWT = httpx.Response(401, json={"code": "PGRST301", "details": None, "hint": None,
                                    "message": "JWSError JWSInvalidSignature"},
                         headers={"WWW-Authenticate": 'Bearer error="invalid_token", '
                                                      'error_description="JWSError JWSInvalidSignature"'})
EXPIRED = httpx.Response(401, json={"code": "PGRST303", "details": None, "hint": None, "message": "JWT expired"})
GATEWAY = httpx.Response(401, json={"message": "Invalid API key",
                                    "hint": "Double check your Supabase `anon` or `service_role` API key."})
NO_GRANT = httpx.Response(401, json={"code": "42501", "details": None, "hint": None,
                                     "message": "permission denied for table orders_bannos"})
ROWS = httpx.Response(200, json=[])


def answering(previous: httpx.Response, current: httpx.Response = ROWS, seen: list | None = None):
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        answer = current if request.headers.get("apikey") == ANON else previous
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)
    return handle


@pytest.fixture
def keys(monkeypatch):
    """The environment's variables: the project, its current anon key and both previous keys."""
    for name, value in {"ORDAK_T_SUPABASE_URL": URL, "ORDAK_T_ANON_KEY": ANON,
                        "ORDAK_T_PREVIOUS_ANON_KEY": PREVIOUS_ANON,
                        "ORDAK_T_PREVIOUS_SERVICE_ROLE_KEY": PREVIOUS_SERVICE}.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def judge(handler, previous: str = "previous_anon_key"):
    stand_in = platform.Platform(ENV, transport=httpx.MockTransport(handler))
    try:
        return platform.rotated_key_refused(stand_in, previous)
    finally:
        stand_in.close()


def no_key_in(verdict) -> None:
    text = verdict.message() + repr(verdict.facts) + repr(verdict.record())
    for key in KEYS:
        assert key not in text, "a key was printed"


# -- refused: healthy -------------------------------------------------------------------------
@pytest.mark.parametrize("previous", ["previous_anon_key", "previous_service_role_key"])
@pytest.mark.parametrize("refusal, said", [(BAD_JWT, "401 PGRST301"), (EXPIRED, "401 PGRST303"), (GATEWAY, "401")])
def test_a_refused_previous_key_passes(keys, previous, refusal, said):
    seen = []
    verdict = judge(answering(refusal, seen=seen), previous)
    assert verdict.ok and not verdict.blocked, verdict.message()
    assert verdict.facts == {"previous_key_answer": said, "current_anon_key_answer": "200"}
    # one read-only GET per key, the key in the headers only
    assert [(r.method, r.url.path, r.url.query) for r in seen] == [("GET", "/rest/v1/orders_bannos", b"select=id&limit=1")] * 2
    sent = {PREVIOUS_ANON if previous == "previous_anon_key" else PREVIOUS_SERVICE, ANON}
    assert {r.headers["apikey"] for r in seen} == sent and all(r.headers["authorization"] == f"Bearer {r.headers['apikey']}"
                                                                for r in seen)
    assert all(k not in str(r.url) for r in seen for k in KEYS)
    no_key_in(verdict)


# -- faults: each named, never the key itself --------------------------------------------------
def test_a_previous_key_still_accepted_is_named(keys):
    verdict = judge(answering(ROWS))
    assert [v["object"] for v in verdict.violations] == ["ORDAK_T_PREVIOUS_ANON_KEY"]
    assert "still accepted: GET /rest/v1/orders_bannos?select=id&limit=1 with it answered 200, not 401" in \
        verdict.message()
    assert "fix: rotate it out: roll the JWT secret" in verdict.message()
    no_key_in(verdict)


def test_a_previous_service_role_key_still_accepted_says_rotate_at_once(keys):
    verdict = judge(answering(httpx.Response(200, json=[{"id": "bannos-24112"}])), "previous_service_role_key")
    assert [v["object"] for v in verdict.violations] == ["ORDAK_T_PREVIOUS_SERVICE_ROLE_KEY"]
    assert "fix: rotate it out: at once, since it bypasses row level security" in verdict.message()
    assert "bannos-24112" not in verdict.message(), "what the key could read is not shown"
    no_key_in(verdict)


def test_a_401_for_a_missing_grant_is_no_refusal_of_the_key(keys):
    """PostgREST answers 401 42501 to a valid anon key whose role lacks the grant: the key
    still works, so it was not rotated out."""
    verdict = judge(answering(NO_GRANT))
    assert not verdict.ok and "answered 401 42501, not 401" in verdict.message(), verdict.message()


def test_a_current_anon_key_refused_too_proves_nothing(keys):
    verdict = judge(answering(BAD_JWT, current=BAD_JWT))
    assert [v["object"] for v in verdict.violations] == ["ORDAK_T_ANON_KEY"]
    assert ("the current anon key is refused too (401 PGRST301): a 401 for ORDAK_T_PREVIOUS_ANON_KEY proves nothing"
            in verdict.message())
    assert "check that ORDAK_T_ANON_KEY holds the project's current anon key" in verdict.message()


def test_a_previous_key_that_is_the_current_one_was_never_rotated(keys):
    keys.setenv("ORDAK_T_PREVIOUS_ANON_KEY", ANON)
    verdict = judge(answering(BAD_JWT))
    assert "ORDAK_T_PREVIOUS_ANON_KEY: holds the same key as ORDAK_T_ANON_KEY: the key was never rotated" in \
        verdict.message()
    no_key_in(verdict)


def test_a_previous_key_named_but_unset_is_a_skip_naming_its_variable(keys):
    keys.delenv("ORDAK_T_PREVIOUS_SERVICE_ROLE_KEY")
    seen = []
    verdict = judge(answering(BAD_JWT, seen=seen), "previous_service_role_key")
    assert verdict.blocked.startswith("ORDAK_T_PREVIOUS_SERVICE_ROLE_KEY is not set: export the key rotated out")
    assert seen == [], "nothing is sent"


def test_a_project_that_does_not_answer_is_one_line_without_the_key(keys):
    with pytest.raises(HttpError) as failure:
        judge(answering(httpx.Response(503, text="upstream", headers={"Retry-After": "0"})))
    text = str(failure.value)
    assert text.startswith(f"GET {URL}/rest/v1/orders_bannos: 503 from the server after 3 attempts"), text
    assert "(checking that ORDAK_T_PREVIOUS_ANON_KEY is refused)" in text and "\n" not in text
    assert all(key not in text for key in KEYS)


# -- the environments file ---------------------------------------------------------------------
def test_previous_keys_are_secrets_of_an_environment(tmp_path):
    path = tmp_path / "environments.toml"
    path.write_text('[restore]\nrestore_target = true\n[restore.secrets]\ndb_url = "X"\n'
                    'previous_anon_key = "ORDAK_RESTORE_PREVIOUS_ANON_KEY"\n'
                    'previous_service_role_key = "ORDAK_RESTORE_PREVIOUS_SERVICE_ROLE_KEY"\n')
    secrets = load_environments(path)["restore"].secrets
    assert secrets["previous_anon_key"] == "ORDAK_RESTORE_PREVIOUS_ANON_KEY"
    path.write_text('[restore]\n[restore.secrets]\ndb_url = "X"\nprevious_key = "Y"\n')
    with pytest.raises(SetupError) as refused:
        load_environments(path)
    assert ":4: [restore] unknown secret 'previous_key'; known: access_token, anon_key, db_url, " \
           "previous_anon_key, previous_service_role_key" in str(refused.value)
