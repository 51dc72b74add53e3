"""The HTTP client (checks/connect/http.py) in-process, over httpx.MockTransport placed where the
network would be (under the guard): read-only by construction, retries, one-line errors.

That no code path can reach a restore endpoint rests on three facts proven here: only
checks/connect/http.py speaks HTTP, its one httpx.Client sends everything through ReadOnlyGuard, and
the guard lets out nothing but the documented reads, for any input and any redirect.
"""

import ast
import re
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import checks
from checks.connect import http
from checks.connect.http import Client, Hints, HttpError, RefusedRequest
from checks.contract import read_rpcs

MANAGEMENT = "https://api.supabase.test"
PROJECT = "https://abcdefghijklmnopqrst.supabase.test"
REF = "abcdefghijklmnopqrst"
TOKEN = "sbp_0123456789abcdef-access-token"
KEY = "eyJanon.key.for-tests"
HINTS = Hints(unauthorized="check the token", forbidden="check access", not_found="check the ref",
              unreachable="check the host", malformed="check the base URL")
TABLES = ("orders_bannos", "orders_flourlane")


class Recorder:
    """The network stand-in: records every request that got past the guard."""

    def __init__(self, *replies):
        self.requests: list[httpx.Request] = []
        self.replies = list(replies)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies.pop(0) if len(self.replies) > 1 else (self.replies[0] if self.replies else None)
        if isinstance(reply, Exception):
            raise reply
        return reply or httpx.Response(200, json={"lints": []})


def client(recorder: Recorder, **kwargs) -> Client:
    return Client(timeout=5, management_url=MANAGEMENT, project_url=PROJECT, read_rpcs=read_rpcs(),
                  tables=TABLES, secrets=(TOKEN, KEY), transport=httpx.MockTransport(recorder), **kwargs)


# -- only checks/connect/http.py speaks HTTP, through the guard -------------------------------------
NETWORK_MODULES = {"httpx", "requests", "urllib.request", "http.client", "socket", "aiohttp", "urllib3"}


def test_only_the_http_module_speaks_http():
    for path in Path(checks.__file__).parent.rglob("*.py"):  # every part of the house
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
        network = {m for m in imported if m in NETWORK_MODULES or m.split(".")[0] in ("httpx", "requests", "aiohttp")}
        assert not network or path.name == "http.py", f"{path.name} imports {network}: HTTP goes through checks.http"


def test_the_one_client_sends_through_the_guard():
    tree = ast.parse(Path(http.__file__).read_text())
    clients = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
               and ast.unparse(node.func) in ("httpx.Client", "httpx.AsyncClient")]
    assert len(clients) == 1
    transport = {k.arg: ast.unparse(k.value) for k in clients[0].keywords}["transport"]
    assert transport == "guard"
    assert "guard = ReadOnlyGuard(" in Path(http.__file__).read_text()


def test_public_surface_is_the_reads():
    """A new method on the client is a new kind of request: this list makes it a decision."""
    public = {name for name in vars(Client) if not name.startswith("_")}
    assert public == {"management_read", "rest_rpc", "rest_select_one", "storage_sign", "peek", "malformed", "close"}


# -- the guard ------------------------------------------------------------------------------
REFUSED = [
    ("POST", f"{MANAGEMENT}/v1/projects/{REF}/database/backups/restore-pitr", {}),
    ("GET", f"{MANAGEMENT}/v1/projects/{REF}/database/backups/restore-pitr", {}),
    ("POST", f"{MANAGEMENT}/v1/projects/{REF}/database/backups", {}),
    ("POST", f"{MANAGEMENT}/v1/projects/{REF}/database/query", {}),
    ("GET", f"{MANAGEMENT}/v1/projects/{REF}/api-keys", {}),
    ("DELETE", f"{MANAGEMENT}/v1/projects/{REF}", {}),
    ("PATCH", f"{MANAGEMENT}/v1/projects/{REF}/config/database/postgres", {}),
    ("PUT", f"{MANAGEMENT}/v1/projects/{REF}/database/backups", {}),
    ("GET", f"{MANAGEMENT}/v1/projects/{REF}/database/backups?restore=1", {}),
    ("GET", f"{MANAGEMENT}/v1/projects/{REF}/%2e%2e/restore-pitr", {}),
    ("POST", f"{PROJECT}/rest/v1/rpc/print_barcode", {}),
    ("POST", f"{PROJECT}/rest/v1/rpc/complete_packing", {}),
    ("POST", f"{PROJECT}/rest/v1/orders_bannos", {}),
    ("PATCH", f"{PROJECT}/rest/v1/orders_bannos?id=eq.bannos-1", {}),
    ("DELETE", f"{PROJECT}/rest/v1/orders_bannos?id=eq.bannos-1", {}),
    ("GET", f"{PROJECT}/rest/v1/orders_bannos?select=*", {}),
    ("GET", f"{PROJECT}/rest/v1/staff_shared?select=id&limit=1", {}),
    ("POST", f"{PROJECT}/storage/v1/object/order_photos/a.jpg", {}),
    ("PUT", f"{PROJECT}/storage/v1/object/order_photos/a.jpg", {}),
    ("DELETE", f"{PROJECT}/storage/v1/object/order_photos/a.jpg", {}),
    ("POST", f"{PROJECT}/storage/v1/object/sign/order_photos/%2e%2e/x", {}),
    ("POST", f"{PROJECT}/storage/v1/bucket", {}),
    ("GET", f"{PROJECT}/functions/v1/process-inbox", {}),
    ("GET", f"{PROJECT}/storage/v1/object/sign/order_photos/a.jpg?token=t", {"apikey": KEY}),
    # Image transformations are never requested (billed per image): a render URL's object is read instead.
    ("GET", f"{PROJECT}/storage/v1/render/image/public/order_photos/a.jpg?width=200", {}),
    ("GET", f"{PROJECT}/storage/v1/render/image/sign/order_photos/a.jpg?token=t", {}),
    ("POST", "https://photos.example/upload", {}),
    ("HEAD", "https://photos.example/a.jpg", {}),
    ("GET", "https://photos.example/a.jpg", {"apikey": KEY}),
    ("GET", "https://photos.example/a.jpg", {"Authorization": f"Bearer {KEY}"}),
]


@pytest.mark.parametrize("method, url, headers", REFUSED, ids=[f"{m} {u.split('//')[1]}" for m, u, _ in REFUSED])
def test_guard_refuses_everything_but_the_reads(method, url, headers):
    recorder = Recorder()
    guard = http.ReadOnlyGuard(httpx.MockTransport(recorder), management_url=MANAGEMENT, project_url=PROJECT,
                               read_rpcs=read_rpcs(), tables=TABLES)
    with httpx.Client(transport=guard) as raw, pytest.raises(RefusedRequest, match="refused before sending"):
        raw.request(method, url, headers=headers)
    assert recorder.requests == [], "a refused request never reaches the network"


def test_the_reads_pass():
    recorder = Recorder(httpx.Response(200, json={}))
    c = client(recorder)
    for what in http.MANAGEMENT_READS:
        c.management_read(REF, what, TOKEN, HINTS)
    for rpc in read_rpcs():
        c.rest_rpc(rpc, {"p_store": "bannos"}, KEY, HINTS)
    for table in TABLES:
        c.rest_select_one(table, KEY, HINTS)
    c.storage_sign("order_photos", "bannos/a b.jpg", KEY, HINTS)
    c.peek(f"{PROJECT}/storage/v1/object/sign/order_photos/a.jpg?token=t")
    c.peek("https://cdn.example/a.jpg")
    assert len(recorder.requests) == 3 + len(read_rpcs()) + len(TABLES) + 3
    sign = recorder.requests[-3]
    assert sign.method == "POST" and sign.url.raw_path == b"/storage/v1/object/sign/order_photos/bannos/a%20b.jpg"
    assert sign.content == b'{"expiresIn":60}'


def test_management_reads_take_no_other_path():
    c = client(Recorder())
    with pytest.raises(ValueError):
        c.management_read(REF, "database/backups/restore-pitr", TOKEN, HINTS)
    with pytest.raises(ValueError):
        c.management_read(f"{REF}/database/backups/restore-pitr#", "database/backups", TOKEN, HINTS)


def _allowed(request: httpx.Request) -> bool:
    """The documented reads, stated apart from the guard's own code."""
    url, method = request.url, request.method
    raw = url.raw_path.decode()
    if str(url).startswith(MANAGEMENT + "/"):
        return method == "GET" and re.fullmatch(
            r"/v1/projects/[a-z0-9]+/(database/backups|database/migrations|advisors/security)", raw) is not None
    if str(url).startswith(PROJECT + "/"):
        return (method == "POST" and raw in {f"/rest/v1/rpc/{r}" for r in read_rpcs()}
                or method == "GET" and raw in {f"/rest/v1/{t}?select=id&limit=1" for t in TABLES}
                or raw.startswith("/storage/v1/object/sign/") and "/../" not in url.path
                and (method == "POST" or "apikey" not in request.headers))
    return method == "GET" and "apikey" not in request.headers and "authorization" not in request.headers


# Arguments the suite really passes, mixed with anything at all.
ARGUMENT = st.one_of(st.sampled_from([REF, "database/backups", "advisors/security", "get_queue", "print_barcode",
                                      "orders_bannos", "order_photos", "bannos/a.jpg", "../rest/v1/orders_bannos",
                                      "v1/projects/abc/database/backups/restore-pitr", "..", "."]), st.text())


@settings(max_examples=300, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["management", "rpc", "select", "sign", "peek"]), ARGUMENT, ARGUMENT),
                min_size=1, max_size=4),
       st.sampled_from([None, 301, 302, 303, 307, 308]), st.text())
def test_no_input_and_no_redirect_gets_a_write_out(calls, redirect, location):
    """Whatever the arguments (from a database, an answer, a config) and wherever a server
    redirects, only the documented reads reach the network."""
    targets = [f"{MANAGEMENT}/v1/projects/{REF}/database/backups/restore-pitr", f"{PROJECT}/rest/v1/orders_bannos",
               f"{MANAGEMENT}/{location}", f"{PROJECT}/{location}", location]
    recorder = Recorder()

    def network(request):
        recorder.requests.append(request)
        if redirect and len(recorder.requests) < 4:
            target = targets[len(recorder.requests) % len(targets)]
            return httpx.Response(redirect, headers={"Location": target.replace("\n", "")})
        return httpx.Response(200, json={}, headers={"Content-Type": "image/jpeg"})

    c = Client(timeout=5, management_url=MANAGEMENT, project_url=PROJECT, read_rpcs=read_rpcs(), tables=TABLES,
               transport=httpx.MockTransport(network))
    for kind, a, b in calls:
        try:
            if kind == "management":
                c.management_read(a, b, TOKEN, HINTS)
            elif kind == "rpc":
                c.rest_rpc(a, {"p": b}, KEY, HINTS)
            elif kind == "select":
                c.rest_select_one(a, KEY, HINTS)
            elif kind == "sign":
                c.storage_sign(a, b, KEY, HINTS)
            else:
                c.peek(f"{PROJECT if a[:1] < 'm' else MANAGEMENT}/{b}")
        except (ValueError, HttpError, httpx.InvalidURL, UnicodeError):
            pass
    for request in recorder.requests:
        assert _allowed(request), f"{request.method} {request.url} reached the network"
        assert b"restore" not in request.url.raw_path or not str(request.url).startswith(MANAGEMENT)


def test_api_calls_never_follow_a_redirect():
    recorder = Recorder(httpx.Response(307, headers={"Location": f"{MANAGEMENT}/v1/projects/{REF}/database/"
                                                                 f"backups/restore-pitr"}))
    with pytest.raises(HttpError, match="unexpected 307"):
        client(recorder).rest_rpc("get_queue", {"p_store": "bannos"}, KEY, HINTS)
    assert len(recorder.requests) == 1


def test_a_photo_redirect_to_a_write_is_refused():
    recorder = Recorder(httpx.Response(307, headers={"Location": f"{PROJECT}/rest/v1/orders_bannos?select=*"}))
    with pytest.raises(RefusedRequest):
        client(recorder).peek("https://cdn.example/a.jpg")
    assert len(recorder.requests) == 1


# -- what every request carries ---------------------------------------------------------------
def test_user_agent_names_the_suite_and_its_version():
    from importlib.metadata import version
    recorder = Recorder(httpx.Response(200, json={"lints": []}))
    client(recorder).management_read(REF, "advisors/security", TOKEN, HINTS)
    agent = recorder.requests[0].headers["user-agent"]
    assert agent.startswith(f"ordak-verify/{version('ordak-verify')} ") and agent == http.USER_AGENT
    assert recorder.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


# -- retries ---------------------------------------------------------------------------------------
@pytest.fixture
def slept(monkeypatch):
    waits = []
    monkeypatch.setattr(http.time, "sleep", waits.append)
    return waits


def test_5xx_is_retried_with_backoff(slept):
    recorder = Recorder(httpx.Response(503), httpx.Response(502), httpx.Response(200, json={"lints": []}))
    answer = client(recorder).management_read(REF, "advisors/security", TOKEN, HINTS)
    assert answer.body == {"lints": []} and len(recorder.requests) == 3
    assert slept == [http.BACKOFF, http.BACKOFF * 2]


@pytest.mark.parametrize("retry_after, waited", [("2", 2.0), ("3600", http.RETRY_AFTER_CAP), ("0", 0.0)])
def test_429_honours_retry_after_within_the_cap(slept, retry_after, waited):
    recorder = Recorder(httpx.Response(429, headers={"Retry-After": retry_after}, json={"message": "slow down"}))
    with pytest.raises(HttpError) as error:
        client(recorder).management_read(REF, "database/backups", TOKEN, HINTS)
    assert len(recorder.requests) == http.ATTEMPTS
    assert slept == [waited] * (http.ATTEMPTS - 1)
    assert str(error.value) == (f"GET {MANAGEMENT}/v1/projects/{REF}/database/backups: 429 Too Many Requests after "
                                f"3 attempts: the API is rate-limiting; run again later")


def test_retry_after_as_a_date(slept):
    from datetime import datetime, timedelta, timezone
    from email.utils import format_datetime
    at = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=5), usegmt=True)
    recorder = Recorder(httpx.Response(429, headers={"Retry-After": at}), httpx.Response(200, json={}))
    client(recorder).management_read(REF, "database/backups", TOKEN, HINTS)
    assert len(slept) == 1 and 3 <= slept[0] <= 5


@pytest.mark.parametrize("status, said", [(401, ": 401 Unauthorized: check the token"),
                                          (403, ": 403 Forbidden (token lacks scope): check access"),
                                          (404, ": 404 Not Found (token lacks scope): check the ref")])
def test_client_errors_are_not_retried(slept, status, said):
    message = "Unauthorized" if status == 401 else "token lacks scope"
    recorder = Recorder(httpx.Response(status, json={"message": message}))
    with pytest.raises(HttpError, match=re.escape(said)):
        client(recorder).management_read(REF, "database/backups", TOKEN, HINTS)
    assert len(recorder.requests) == 1 and slept == []


# -- one line, no key, no token ------------------------------------------------------------------
def test_errors_are_one_line_without_keys_or_query(slept):
    recorder = Recorder(httpx.Response(401, json={"message": f"token {TOKEN} refused\nat line 3"}))
    with pytest.raises(HttpError) as error:
        client(recorder).management_read(REF, "database/backups", TOKEN, HINTS)
    text = str(error.value)
    assert "\n" not in text and TOKEN not in text and "***" in text


def test_peek_names_the_file_without_its_token():
    recorder = Recorder(httpx.Response(404))
    answer = client(recorder).peek(f"{PROJECT}/storage/v1/object/sign/order_photos/a.jpg?token=signed-secret")
    assert answer.status == 404 and "signed-secret" not in answer.endpoint
    assert answer.endpoint == f"GET {PROJECT}/storage/v1/object/sign/order_photos/a.jpg"


@pytest.mark.parametrize("failure, said", [
    (httpx.ReadTimeout("timed out"), "no answer within 5 s: check the host, or raise http_timeout in environments.toml"),
    (httpx.ConnectTimeout("timed out"), "no answer within 5 s"),
    (httpx.ConnectError("[Errno 111] Connection refused"), "cannot connect ([Errno 111] Connection refused): check the host"),
])
def test_no_answer_is_one_line(failure, said):
    with pytest.raises(HttpError, match=re.escape(said)):
        client(Recorder(failure)).management_read(REF, "database/migrations", TOKEN, HINTS)


def test_malformed_json_is_one_line():
    recorder = Recorder(httpx.Response(200, content=b"<html>proxy login</html>", headers={"Content-Type": "text/html"}))
    with pytest.raises(HttpError) as error:
        client(recorder).management_read(REF, "database/migrations", TOKEN, HINTS)
    assert str(error.value) == (f"GET {MANAGEMENT}/v1/projects/{REF}/database/migrations: answered 200 with "
                                f"text/html that is not JSON: check the base URL")


def test_gateway_refusal_is_not_a_postgrest_refusal():
    """401 {"message": "Invalid API key"} is the gateway refusing the key (an error); 401 with
    PostgREST's {"code", "message"} is PostgREST refusing anon (an answer to judge)."""
    refused = Recorder(httpx.Response(401, json={"code": "42501", "details": None, "hint": None,
                                                 "message": "permission denied for function get_queue"}))
    assert client(refused).rest_rpc("get_queue", {}, KEY, HINTS).postgrest_error
    gateway = Recorder(httpx.Response(401, json={"message": "Invalid API key"}))
    with pytest.raises(HttpError, match=r"401 Unauthorized \(Invalid API key\): check the token"):
        client(gateway).rest_rpc("get_queue", {}, KEY, HINTS)


# -- what a database URL's port speaks (checks.http.web_answer, over real sockets) -----------------
class _Web(BaseHTTPRequestHandler):
    seen: list

    def _answer(self):
        self.seen.append((self.command, self.path, {k.lower() for k in self.headers}))
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args):
        pass


@contextmanager
def _web_server(tls: bool = False):
    """Python's http.server on 127.0.0.1 (behind a self-signed certificate with tls); yields
    (port, the requests it read)."""
    seen: list = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (_Web,), {"seen": seen}))
    if tls:
        with tempfile.TemporaryDirectory() as folder:
            try:
                subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                                "/CN=localhost", "-keyout", f"{folder}/key.pem", "-out", f"{folder}/cert.pem"],
                               check=True, capture_output=True)
            except (FileNotFoundError, subprocess.CalledProcessError):
                server.server_close()
                pytest.skip("openssl is needed to make a self-signed certificate")
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(f"{folder}/cert.pem", f"{folder}/key.pem")
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_a_web_port_is_named_by_one_get(tls):
    """Plain HTTP first; a TLS port that hangs up on it is asked again over TLS (unverified:
    the probe carries nothing to protect). Only ever one GET /, without a key."""
    with _web_server(tls) as (port, seen):
        said = http.web_answer("127.0.0.1", port)
    assert said == f"{'HTTPS' if tls else 'HTTP'} (GET / answered 404)"
    assert [(method, path) for method, path, _ in seen] == [("GET", "/")]
    assert not {"apikey", "authorization"} & seen[0][2]


def test_a_silent_port_costs_one_probe_timeout():
    """A host that accepts and never answers: no answer, after one PROBE_TIMEOUT (not one per scheme)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        started = time.monotonic()
        assert http.web_answer("127.0.0.1", silent.getsockname()[1]) is None
        elapsed = time.monotonic() - started
    assert http.PROBE_TIMEOUT - 0.1 <= elapsed < http.PROBE_TIMEOUT + 1.5, elapsed


def test_a_closed_port_is_no_web_port():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    assert http.web_answer("127.0.0.1", port) is None


def test_a_postgresql_port_is_no_web_port(reference):
    """PgBouncer speaks PostgreSQL's protocol on TCP: it hangs up on a GET, which is no answer."""
    from selftests.pgbouncer import pgbouncer
    cluster, _ = reference
    with pgbouncer(cluster.server.datadir) as port:
        assert http.web_answer("127.0.0.1", port) is None
