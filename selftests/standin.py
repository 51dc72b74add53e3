"""A Supabase stand-in on real sockets, for running the platform checks as a user would.

Three small HTTP servers on 127.0.0.1: the Management API, one project (PostgREST and
Storage) and a photo host. Healthy answers have exactly the shapes SYSTEM.md documents; a
self-test breaks one answer with `override()`. Every request is recorded, so a self-test can
also assert what the suite sent (and what it never sent).
"""

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

REF = "ordakstandinref00001"
ACCESS_TOKEN = "sbp_standin_token_5f1d2c3b4a"
ANON_KEY = "eyJstandin.anon-key.9c8b7a"
SERVICE_ROLE_KEY = "eyJstandin.service-role-key.1a2b3c"
# Keys rotated out at cut-over: PostgREST, which no longer holds the secret that signed them,
# refuses them as it refuses any JWT with a bad signature (BAD_JWT), unless a self-test says the
# rotation was never done (StandIn.still_accepted).
PREVIOUS_ANON_KEY = "eyJstandin.previous-anon-key.4d5e6f"
PREVIOUS_SERVICE_ROLE_KEY = "eyJstandin.previous-service-role-key.7a8b9c"
READ_RPCS = ("get_queue", "get_unassigned_counts", "get_queue_stats", "get_order_for_scan")
# The smallest JPEG header a browser would sniff: enough for a photo host to serve.
JPEG = bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffd9")


@dataclass
class Reply:
    status: int = 200
    body: object = None  # JSON-able, or bytes sent as they are
    headers: dict = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (a timeout)


@dataclass(frozen=True)
class Seen:
    server: str  # management, project, photos
    method: str
    path: str  # with its query
    headers: dict


def iso(at: datetime) -> str:
    return at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def healthy_backups(now: datetime | None = None) -> dict:
    """PITR on for 7 days and 2 hours, the latest point 2 minutes old, a COMPLETED daily backup
    each of the last 7 days (the newest 5 hours old)."""
    now = now or datetime.now(timezone.utc)
    return {
        "region": "ap-southeast-2", "walg_enabled": True, "pitr_enabled": True,
        "backups": [{"id": 7000 + day, "inserted_at": iso(now - timedelta(days=day, hours=5)),
                     "is_physical_backup": True, "status": "COMPLETED"} for day in range(7)],
        "physical_backup_data": {
            "earliest_physical_backup_date_unix": int((now - timedelta(days=7, hours=2)).timestamp()),
            "latest_physical_backup_date_unix": int((now - timedelta(minutes=2)).timestamp())},
    }


def bad_jwt() -> "Reply":
    """PostgREST's answer to a JWT whose signature it cannot verify (PGRST301)."""
    return Reply(401, {"code": "PGRST301", "details": None, "hint": None, "message": "JWSError JWSInvalidSignature"},
                 {"WWW-Authenticate": 'Bearer error="invalid_token", error_description="JWSError JWSInvalidSignature"'})


def lint(cache_key: str, *, table: str = "notes", level: str = "ERROR") -> dict:
    """A security advisor lint, shaped as splinter (which the advisor runs) reports one."""
    return {"name": "rls_disabled_in_public", "title": "RLS Disabled in Public", "level": level,
            "facing": "EXTERNAL", "categories": ["SECURITY"],
            "description": "Detects cases where row level security (RLS) has not been enabled on tables "
                           "in schemas exposed to PostgREST",
            "detail": f"Table `public.{table}` is public, but RLS has not been enabled.",
            "remediation": "https://supabase.com/docs/guides/database/database-linter?lint=0013_rls_disabled_in_public",
            "metadata": {"schema": "public", "name": table, "type": "table"}, "cache_key": cache_key}


class StandIn:
    def __init__(self, migrations_dir: Path):
        self.migrations = [{"version": p.name.split("_", 1)[0], "name": p.stem.split("_", 1)[1]}
                           for p in sorted(Path(migrations_dir).glob("*.sql"))]
        self.requests: list[Seen] = []
        self.still_accepted: set[str] = set()  # previous keys the project still takes (a rotation not done)
        self._overrides: list[tuple[str, str, re.Pattern, object]] = []
        self._lock = threading.Lock()
        self._servers = {name: _server(self, name) for name in ("management", "project", "photos")}

    def url(self, server: str) -> str:
        host, port = self._servers[server].server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self):
        for server in self._servers.values():
            # shutdown() waits for the loop's next poll: a short one makes each stand-in end at once.
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def __exit__(self, *exc):
        for server in self._servers.values():
            server.shutdown()
            server.server_close()

    def override(self, server: str, method: str, path: str, reply) -> None:
        """Answers requests matching (server, method, path regex over the path and query) with
        reply: a Reply, or a function of the request's JSON body returning one."""
        self._overrides.append((server, method, re.compile(path), reply))

    # -- answering ---------------------------------------------------------------------------
    def answer(self, server: str, method: str, path: str, headers: dict, body: bytes) -> Reply:
        with self._lock:
            self.requests.append(Seen(server, method, path, headers))
        for where, verb, pattern, reply in reversed(self._overrides):
            if where == server and verb == method and pattern.fullmatch(path):
                return reply(body) if callable(reply) else reply
        return getattr(self, f"_{server}")(method, path, headers, body)

    def _management(self, method, path, headers, body) -> Reply:
        if headers.get("authorization") != f"Bearer {ACCESS_TOKEN}":
            return Reply(401, {"message": "Unauthorized"})
        match = re.fullmatch(r"/v1/projects/([^/]+)/(.+)", urlsplit(path).path)
        if method != "GET" or not match:
            return Reply(404, {"message": "Cannot " + method + " " + path})
        if match[1] != REF:
            return Reply(404, {"message": "Project not found"})
        answers = {"database/backups": lambda: healthy_backups(), "database/migrations": lambda: self.migrations,
                   "advisors/security": lambda: {"lints": []}}
        return Reply(200, answers[match[2]]()) if match[2] in answers else Reply(404, {"message": "Not found"})

    def _project(self, method, path, headers, body) -> Reply:
        parts = urlsplit(path)
        if parts.path.startswith("/storage/v1/object/sign/") and method == "GET":
            token = dict(q.split("=", 1) for q in parts.query.split("&") if "=" in q).get("token")
            if token != _token(unquote(parts.path[len("/storage/v1/object/sign/"):])):
                return Reply(400, {"statusCode": "400", "error": "InvalidJWT", "message": "invalid signature"})
            return Reply(200, JPEG, {"Content-Type": "image/jpeg"})
        if parts.path.startswith("/storage/v1/object/sign/") and method == "POST":
            if headers.get("apikey") != SERVICE_ROLE_KEY or headers.get("authorization") != f"Bearer {SERVICE_ROLE_KEY}":
                return Reply(401, {"message": "Invalid API key"})  # the gateway, before Storage
            if json.loads(body or b"{}") != {"expiresIn": 60}:
                return Reply(400, {"statusCode": "400", "error": "InvalidRequest", "message": "expiresIn missing"})
            obj = unquote(parts.path[len("/storage/v1/object/sign/"):])
            return Reply(200, {"signedURL": f"/object/sign/{parts.path[len('/storage/v1/object/sign/'):]}"
                                            f"?token={_token(obj)}"})
        if parts.path.startswith("/rest/v1/"):
            key = headers.get("apikey")
            previous = key in (PREVIOUS_ANON_KEY, PREVIOUS_SERVICE_ROLE_KEY)
            if previous and key not in self.still_accepted and headers.get("authorization") == f"Bearer {key}":
                return bad_jwt()
            if key not in (ANON_KEY, *self.still_accepted) or headers.get("authorization") != f"Bearer {key}":
                return Reply(401, {"message": "Invalid API key",
                                   "hint": "Double check your Supabase `anon` or `service_role` API key."})
            if key == PREVIOUS_SERVICE_ROLE_KEY and method == "GET":  # service_role bypasses RLS
                return Reply(200, [{"id": "bannos-24112"}], {"Content-Range": "0-0/*"})
            rpc = re.fullmatch(r"/rest/v1/rpc/(\w+)", parts.path)
            if rpc and method == "POST":  # Ordak revokes execute from anon: PostgREST answers 401
                return Reply(401, {"code": "42501", "details": None, "hint": None,
                                   "message": f"permission denied for function {rpc[1]}"})
            if method == "GET" and re.fullmatch(r"/rest/v1/orders_\w+", parts.path):
                return Reply(200, [], {"Content-Range": "*/*"})  # RLS: anon sees no row
        return Reply(404, {"message": "no route"})

    def _photos(self, method, path, headers, body) -> Reply:
        if method == "GET" and "missing" not in path:
            return Reply(200, JPEG, {"Content-Type": "image/jpeg"})
        return Reply(404, b"<html><body>Not Found</body></html>", {"Content-Type": "text/html"})


def _token(obj: str) -> str:
    return hashlib.sha256(f"signed:{obj}".encode()).hexdigest()[:32]


def _server(standin: StandIn, name: str) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = standin.answer(name, self.command, self.path, headers, body)
            if reply.delay:
                time.sleep(reply.delay)
            payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
            self.send_response(reply.status)
            sent = {k.lower() for k in reply.headers}
            for key, value in reply.headers.items():
                self.send_header(key, value)
            if "content-type" not in sent and not isinstance(reply.body, bytes):
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # a client that read the headers only, or gave up waiting

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

        def log_message(self, *args):
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            pass  # a client that hung up (a timeout, a keep-alive connection closed) is no error here

    return Server(("127.0.0.1", 0), Handler)
