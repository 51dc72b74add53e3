"""HTTP to Supabase (Management API, PostgREST, Storage) and to photo hosts: read-only by
construction.

Every request, redirects included, passes through ReadOnlyGuard, a transport that lets out
only the reads the checks make and refuses anything else before it leaves the machine. The
Management API is only ever read (GET backups, migrations, security advisors), so no code
path can reach `POST .../database/backups/restore-pitr`, which restores a project in place.
PostgREST gets the contract's read RPCs and a one-row select as anon; Storage gets sign
requests and reads of signed objects (never an image transformation, which is billed per
image); any other host gets plain GETs that carry no key: photos, and web_answer()'s `GET /`
to a database URL's port that did not answer as PostgreSQL.

A bad answer becomes an HttpError: one line naming the endpoint (never its query, which may
hold a signed URL's token) and what to check, with every key redacted.
"""

import json
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Callable
from urllib.parse import quote

import httpx

from checks.errors import redact

ATTEMPTS = 3  # a 429 or 5xx is tried again, at most this many times in all
BACKOFF = 0.5  # seconds before the second attempt, doubled after each
RETRY_AFTER_CAP = 10.0  # seconds: a longer Retry-After is waited only this long
MAX_REDIRECTS = 5  # photo hosts only; API calls never follow redirects

# What may be read from the Management API, under /v1/projects/<ref>/.
MANAGEMENT_READS = ("database/backups", "database/migrations", "advisors/security")
_REF = re.compile(r"[a-z0-9]+")


def _suite_version() -> str:
    try:
        return version("ordak-verify")
    except PackageNotFoundError:
        return "unknown"


USER_AGENT = f"ordak-verify/{_suite_version()} (Ordak backup-and-restore verification; read-only)"


class HttpError(Exception):
    """One line for a person: the endpoint, what went wrong, what to check. Never a key."""


class RefusedRequest(HttpError):
    """A request the guard did not let out (it was never sent)."""


class NoAnswer(HttpError):
    """Nothing came back within the timeout."""


def endpoint(method: str, url: httpx.URL | str) -> str:
    """`METHOD scheme://host/path`, without the query (a signed URL's token lives there) and
    without a user or password."""
    url = httpx.URL(url)
    return f"{method} {url.copy_with(query=None, fragment=None, userinfo=b'')}"


@dataclass(frozen=True)
class Hints:
    """What a person should check when an API answers 401, 403 or 404 (without the API's own
    error shape), cannot be reached, or answers something that is not its documented JSON."""
    unauthorized: str
    forbidden: str
    not_found: str
    unreachable: str
    malformed: str


@dataclass(frozen=True)
class Answer:
    endpoint: str
    status: int
    content_type: str = ""
    body: object = None  # parsed JSON
    is_json: bool = False

    @property
    def postgrest_error(self) -> bool:
        """PostgREST's own error JSON ({"code", "message", "details", "hint"}), as opposed to a
        gateway refusing the key ({"message"} alone) or an HTML error page."""
        return isinstance(self.body, dict) and "code" in self.body and "message" in self.body


class ReadOnlyGuard(httpx.BaseTransport):
    """The transport under the suite's only HTTP client: what it does not allow is refused
    before it is sent, whatever the code above it asks for."""

    def __init__(self, inner: httpx.BaseTransport, *, management_url: str | None, project_url: str | None,
                 read_rpcs=(), tables=()):
        self._inner = inner
        self._management = httpx.URL(management_url) if management_url else None
        self._project = httpx.URL(project_url) if project_url else None
        self._read_rpcs, self._tables = frozenset(read_rpcs), frozenset(tables)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        problem = self.refusal(request.method, request.url, request.headers)
        if problem:
            raise RefusedRequest(f"{endpoint(request.method, request.url)}: refused before sending: {problem}")
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()

    def refusal(self, method: str, url: httpx.URL, headers) -> str | None:
        """None when the request is one of the reads the suite makes, else why it is refused."""
        raw = url.raw_path.decode("ascii")
        path, _, query = raw.partition("?")
        if any(seg in (".", "..") or re.search(r"%(2e|2f|5c)", seg, re.I) for seg in path.split("/")):
            return "dot segments or encoded slashes in the path"
        refusals = []
        management = _below(url, path, self._management)
        if management is not None:
            reads = "|".join(re.escape(r) for r in MANAGEMENT_READS)
            if method == "GET" and re.fullmatch(rf"/v1/projects/[a-z0-9]+/({reads})", management) and not query:
                return None
            refusals.append("the Management API is only read (GET backups, migrations, security advisors)")
        project = _below(url, path, self._project)
        if project is not None:
            rpc = re.fullmatch(r"/rest/v1/rpc/(\w+)", project)
            table = re.fullmatch(r"/rest/v1/(\w+)", project)
            if method == "POST" and rpc and rpc[1] in self._read_rpcs and not query:
                return None
            if method == "GET" and table and table[1] in self._tables and query == "select=id&limit=1":
                return None
            if method == "POST" and re.fullmatch(r"/storage/v1/object/sign/[^/]+/.+", project) and not query:
                return None
            if method == "GET" and re.fullmatch(r"/storage/v1/object/sign/[^/]+/.+", project) \
                    and not _has_key(headers):
                return None
            refusals.append("the project is only read (read RPCs and a one-row select as anon, "
                            "signing and reading Storage objects)")
        if refusals:
            return "; ".join(refusals)
        if method != "GET":
            return "other hosts only get GET"
        if _has_key(headers):
            return "no key is sent to another host"
        return None


def _below(url: httpx.URL, path: str, base: httpx.URL | None) -> str | None:
    """The path under base (same origin and path prefix), or None when url is elsewhere."""
    if base is None or (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
        return None
    prefix = base.raw_path.decode("ascii").split("?")[0].rstrip("/")
    if path == prefix or path.startswith(prefix + "/"):
        return path[len(prefix):]
    return None


def _has_key(headers) -> bool:
    return "authorization" in headers or "apikey" in headers


class Client:
    """The suite's only HTTP client. Its methods are the reads the checks make; nothing else
    is exposed, and ReadOnlyGuard refuses anything else underneath."""

    def __init__(self, *, timeout: float, management_url: str | None = None, project_url: str | None = None,
                 read_rpcs=(), tables=(), secrets: tuple[str, ...] = (),
                 transport: httpx.BaseTransport | None = None):
        """transport: where requests go after the guard (default: the network)."""
        self.timeout = timeout
        self._management = management_url.rstrip("/") if management_url else None
        self._project = project_url.rstrip("/") if project_url else None
        self._secrets = tuple(secrets)
        guard = ReadOnlyGuard(transport or httpx.HTTPTransport(), management_url=self._management,
                              project_url=self._project, read_rpcs=read_rpcs, tables=tables)
        self._http = httpx.Client(transport=guard, timeout=timeout, follow_redirects=False,
                                  max_redirects=MAX_REDIRECTS, headers={"User-Agent": USER_AGENT})

    def close(self) -> None:
        self._http.close()

    # -- Management API (GET only) ---------------------------------------------------
    def management_read(self, ref: str, what: str, token: str, hints: Hints) -> Answer:
        """GET /v1/projects/{ref}/{what}, what one of MANAGEMENT_READS; 200 with JSON or an error."""
        if what not in MANAGEMENT_READS or not _REF.fullmatch(ref):
            raise ValueError(f"not a Management API read: {what!r} of project {ref!r}")
        return self._send("GET", f"{self._management}/v1/projects/{ref}/{what}", hints,
                          headers={"Authorization": f"Bearer {token}"})

    # -- PostgREST as anon -----------------------------------------------------------
    def rest_rpc(self, name: str, args: dict, key: str, hints: Hints) -> Answer:
        """POST /rest/v1/rpc/{name} with named arguments: 200, or PostgREST refusing."""
        return self._send("POST", f"{self._project}/rest/v1/rpc/{quote(name, safe='')}", hints,
                          headers=_rest_headers(key), json=args, accept=_postgrest)

    def rest_select_one(self, table: str, key: str, hints: Hints, *, refusal_answers: bool = False) -> Answer:
        """GET /rest/v1/{table}?select=id&limit=1: 200, or PostgREST refusing. refusal_answers:
        any 401 or 403 comes back as an answer too, the gateway's included (a key rotated out
        is expected to be refused: checks.platform.rotated_key_refused)."""
        accept = (lambda a: a.status in (200, 206, 401, 403) or _postgrest(a)) if refusal_answers else _postgrest
        return self._send("GET", f"{self._project}/rest/v1/{quote(table, safe='')}?select=id&limit=1", hints,
                          headers=_rest_headers(key), accept=accept)

    # -- Storage ---------------------------------------------------------------------
    def storage_sign(self, bucket: str, path: str, key: str, hints: Hints) -> Answer:
        """POST /storage/v1/object/sign/{bucket}/{path} {"expiresIn": 60}: 200 with
        {"signedURL"}, or Storage's 400/404 for an object it cannot sign."""
        url = f"{self._project}/storage/v1/object/sign/{quote(bucket, safe='')}/{quote(path, safe='/')}"
        return self._send("POST", url, hints, headers=_rest_headers(key), json={"expiresIn": 60},
                          accept=lambda a: a.status in (200, 400, 404))

    # -- photos ----------------------------------------------------------------------
    def peek(self, url: str) -> Answer:
        """GET a file without a key, following redirects, reading its headers only (the body
        is never downloaded): any status comes back; no answer at all is an HttpError."""
        return self._send("GET", url, _PHOTO_HINTS, accept=lambda a: True, headers_only=True)

    # -- one request, retried on 429 and 5xx -----------------------------------------
    def _send(self, method: str, url: str, hints: Hints, *, headers=None, json=None,
              accept: Callable[[Answer], bool] = lambda a: a.status == 200, headers_only: bool = False,
              attempts: int = ATTEMPTS, follow: bool | None = None) -> Answer:
        """follow: whether redirects are followed (default: for headers_only reads, the photos)."""
        try:
            where = endpoint(method, url)
        except httpx.InvalidURL as exc:
            shown = re.sub(r"//[^/@]*@", "//", re.split(r"[?#]", url)[0])
            raise HttpError(self._redact(f"{method} {shown}: not a valid URL ({exc})")) from None
        follow = headers_only if follow is None else follow
        for attempt in range(1, attempts + 1):
            answer, retry_after = self._once(method, url, where, hints, headers, json, headers_only, follow)
            if answer.status != 429 and answer.status < 500 or attempt == attempts:
                break
            time.sleep(min(retry_after, RETRY_AFTER_CAP) if retry_after is not None
                       else BACKOFF * 2 ** (attempt - 1))
        if not accept(answer):
            raise self._error(answer, hints)
        if not headers_only and not answer.is_json:
            kind = answer.content_type.split(";")[0] or "no content type"
            raise HttpError(self._redact(f"{where}: answered {answer.status} with {kind} that is not JSON: "
                                         f"{hints.malformed}"))
        return answer

    def _once(self, method, url, where, hints, headers, json_body, headers_only, follow) -> tuple[Answer, float | None]:
        try:
            # API calls never follow a redirect; a photo host may send one (the guard sees each hop).
            with self._http.stream(method, url, headers=headers, json=json_body,
                                   follow_redirects=follow) as response:
                content_type = response.headers.get("content-type", "")
                retry_after = _retry_after(response.headers.get("retry-after"))
                raw = b"" if headers_only else response.read()
        except RefusedRequest:
            raise
        except httpx.TimeoutException:
            raise NoAnswer(self._redact(f"{where}: no answer within {self.timeout:g} s: {hints.unreachable}, "
                                        f"or raise http_timeout in environments.toml")) from None
        except httpx.TooManyRedirects:
            raise HttpError(self._redact(f"{where}: more than {MAX_REDIRECTS} redirects: "
                                         f"{hints.unreachable}")) from None
        except httpx.HTTPError as exc:
            reason = str(exc).splitlines()[-1] if str(exc) else type(exc).__name__
            what = "cannot connect" if isinstance(exc, httpx.ConnectError) else "no usable answer"
            raise HttpError(self._redact(f"{where}: {what} ({reason}): {hints.unreachable}")) from None
        try:
            body, is_json = json.loads(raw), True
        except ValueError:
            body, is_json = None, False
        return Answer(where, response.status_code, content_type, body, is_json), retry_after

    def _error(self, answer: Answer, hints: Hints) -> HttpError:
        where, status = answer.endpoint, answer.status
        said = _server_message(answer.body)
        if said.strip(" ()").lower() in ("unauthorized", "forbidden", "not found", "too many requests"):
            said = ""  # the status line says it already
        if status == 429:
            text = f"429 Too Many Requests after {ATTEMPTS} attempts: the API is rate-limiting; run again later"
        elif status >= 500:
            text = (f"{status} from the server after {ATTEMPTS} attempts{said}: the service is failing; "
                    f"see https://status.supabase.com and run again")
        elif status == 401:
            text = f"401 Unauthorized{said}: {hints.unauthorized}"
        elif status == 403:
            text = f"403 Forbidden{said}: {hints.forbidden}"
        elif status == 404:
            text = f"404 Not Found{said}: {hints.not_found}"
        else:
            text = f"unexpected {status}{said}: {hints.malformed}"
        return HttpError(self._redact(f"{where}: {text}"))

    def malformed(self, answer: Answer, why: str, hints: Hints) -> HttpError:
        """The answer is JSON but not the documented shape."""
        return HttpError(self._redact(f"{answer.endpoint}: the answer is not the documented shape ({why}): "
                                      f"{hints.malformed}"))

    def _redact(self, text: str) -> str:
        return redact(" ".join(text.split()), self._secrets)


_PHOTO_HINTS = Hints(unauthorized="", forbidden="", not_found="", malformed="",
                     unreachable="check the URL and that its host is reachable from here")


# -- what a database URL's port speaks ------------------------------------------------------
PROBE_TIMEOUT = 2.0  # seconds per probe request: what a silent host costs on top of its connect_timeout


def web_answer(host: str, port: int) -> str | None:
    """How host:port answers a web request, e.g. "HTTP (GET / answered 404)"; None when it
    answers none (a PostgreSQL server, a silent host, nothing listening).

    For a database URL that failed to connect. Neither PostgreSQL nor HTTP speaks first, so
    libpq against a web port often learns nothing: Python's http.server, for one, waits for
    the end of a request line libpq never sends, and the connection only times out (servers
    that answer garbage at once make libpq report a stray 'H'). One plain `GET /` afterwards
    tells the two apart: read-only, carrying no key, sent through the same ReadOnlyGuard as
    every request. A PostgreSQL server takes "GET " for a startup packet of absurd length and
    hangs up (one line in its log). Plain HTTP first; TLS only if that was refused or cut off
    fast (nginx and Go answer plain HTTP on their TLS ports anyway), never after a timeout: a
    silent host costs one PROBE_TIMEOUT, not two. TLS is not verified: only a GET / with no
    key is sent, and a self-signed web port is still a web port."""
    client = Client(timeout=PROBE_TIMEOUT, transport=httpx.HTTPTransport(verify=False))
    try:
        for scheme in ("http", "https"):
            try:
                url = str(httpx.URL(scheme=scheme, host=host, port=port, path="/"))
                answer = client._send("GET", url, _PHOTO_HINTS, accept=lambda a: True, headers_only=True,
                                      attempts=1, follow=False)
            except NoAnswer:
                return None
            except (HttpError, httpx.InvalidURL, ValueError):
                continue
            return f"{scheme.upper()} (GET / answered {answer.status})"
        return None
    finally:
        client.close()


def _rest_headers(key: str) -> dict:
    return {"apikey": key, "Authorization": f"Bearer {key}"}


def _postgrest(answer: Answer) -> bool:
    return answer.status == 200 or answer.status in (401, 403, 404) and answer.postgrest_error


def _server_message(body) -> str:
    """The API's own one-line reason, when it gave one (short, for the error line)."""
    if isinstance(body, dict):
        for key in ("message", "error", "msg"):
            if isinstance(body.get(key), str) and body[key].strip():
                return f" ({body[key].strip().splitlines()[0][:160]})"
    return ""


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (a number or an HTTP date), None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds())
    except (TypeError, ValueError):
        return None
