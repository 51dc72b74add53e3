"""Supabase platform checks over HTTP: PITR and backups, the API's migration list and
security advisor (Management API), what the anon key can do through PostgREST, and whether
QC photos can be read. All requests go through checks.http, which only reads.

The Management API is read once per run (by the controller, handed to xdist workers as
plain data), so that every test and every worker judges the same answers, and each
endpoint that does not answer is reported by one test while the checks that stand on it
are blocked.
"""

import re
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from urllib.parse import unquote, urlsplit

from checks.connect.environments import Environment
from checks.connect.http import Answer, Client, Hints, HttpError, RefusedRequest, endpoint
from checks.connect.target import Target
from checks.contract import contract, orders_table, read_rpcs
from checks.core import Check, Verdict
from checks.errors import redact
from checks.migration_files import migration_files

# The secrets each part needs; without them its tests skip, naming what to set.
PARTS = {
    "management": (("project_ref", "access_token"),
                   "the Management API checks (PITR, backups, migrations, security advisor)"),
    "rest": (("supabase_url", "anon_key"), "the PostgREST checks (what the anon key can do)"),
    "photos": (("supabase_url",), "the photo checks (Storage objects are signed with secrets.service_role_key)"),
}
# Values never shown. The project URL and ref are names, not credentials: messages keep them.
CREDENTIALS = ("db_url", "anon_key", "service_role_key", "access_token", "previous_anon_key",
               "previous_service_role_key")
# Keys rotated out at cut-over (secrets.<name>): PostgREST must refuse each one. A test per key
# the environment names; none where it names none (checks.drill.restore_run.GIVEN).
PREVIOUS_KEYS = ("previous_anon_key", "previous_service_role_key")
# A Storage object's URL, or an image transformation of one (/render/image/...): either way the
# object is signed and read through /storage/v1/object/sign/, never rendered (see photos_readable).
_STORAGE_PATH = re.compile(r"/storage/v1/(?:object|render/image)/(?:(?:public|sign|authenticated)/)?([^/]+)/(.+)")

PITR_ENABLED = Check("pitr_enabled", "point-in-time recovery is on and has restore points (Management API)",
                     "enable PITR in the project's Database > Backups settings, then wait for its first restore point")
PITR_WINDOW = Check("pitr_window", "the PITR window (latest minus earliest restore point) is at least "
                    "pitr_window_days (the runbook's 7 days)",
                    "raise the PITR retention to 7 days in the project's Database > Backups settings")
PITR_LATEST = Check("pitr_latest_recent", "the latest PITR restore point is at most pitr_latest_max_hours old "
                    "(it lags while the database is idle)",
                    "check the project's Database > Backups page; a restore point that stopped moving while "
                    "orders arrive means WAL is not shipped: contact Supabase support")
BACKUP_RECENT = Check("backup_recent", "the backups list has a COMPLETED backup at most backup_max_age_hours old",
                      "check the project's Database > Backups page; if backups stopped, contact Supabase support")
NO_FAILED_BACKUP = Check("no_failed_backup", "no backup FAILED after the last COMPLETED one",
                         "check the project's Database > Backups page and contact Supabase support about the failure")
API_MIGRATIONS = Check("api_migrations", "the Management API's migration list equals the migrations folder in Git",
                       "apply the missing migrations (supabase db push), or commit the files the project applied")
SECURITY_ADVISOR = Check("security_advisor", "Supabase's security advisor reports nothing",
                         "fix what the lint's remediation link says, or accept it in environments.toml: "
                         "[[<env>.accepted]] key = \"security_advisor:<cache_key>\", reason = \"...\", until = <date>")
REST_ANSWERS = Check("rest_answers", "PostgREST answers a request made with the anon key, as documented",
                     "check the project's URL and anon key")
ANON_REST_RPC = Check("anon_rest_rpc", "over REST with the anon key, the read RPC is refused or returns nothing",
                      "revoke execute on function public.<rpc> from public, anon; keep the staff check inside it")
ANON_REST_TABLE = Check("anon_rest_table", "over REST with the anon key, the order table gives nothing",
                        "alter table <table> enable row level security; revoke select on <table> from anon")
ROTATED_KEY = Check("rotated_key_refused", "a key rotated out at cut-over (secrets.previous_*) no longer opens the "
                    "project: PostgREST refuses it with 401, while the current anon key is still accepted",
                    "rotate the key out: in the project's Settings > API, roll the JWT secret (legacy keys) or revoke "
                    "the key, then give the app and the Edge Functions the new keys and redeploy them")
PHOTOS_READABLE = Check("photos_readable", "the newest QC photos answer 200 with an image (a Storage object is "
                        "signed first with the service role key)",
                        "restore the missing files (a restore to a new project copies no Storage objects) "
                        "or fix the URLs in order_photos")
NOT_FETCHED = "not fetched because"  # how a photo the suite would not fetch is reported
# The fix for photos the suite would not fetch: nothing is missing, a setting or a URL is wrong.
NOT_FETCHED_FIX = ("for photos not fetched: keep each one in order_photos.url as a Storage path or object URL "
                   "(/storage/v1/object/...), or as a URL of another host; if {variable} does not name the "
                   "project (the photo host instead), set it to https://<project-ref>.supabase.co")


class Blocked(Exception):
    """The check stands on an answer another test already reports as missing."""


class Platform:
    """The HTTP side of one environment: its settings, one read-only client, the answers."""

    def __init__(self, env: Environment, transport=None):
        """transport: where the client's requests go after its guard (default: the network; a
        self-test gives an httpx.MockTransport)."""
        self.env = env
        self._transport = transport
        self._rest_health: Answer | HttpError | None = None

    # -- settings ------------------------------------------------------------------
    def missing(self, part: str) -> str | None:
        """Why the tests of a part cannot run here, naming what to set; None when they can.
        An environment with no HTTP setting at all gets one reason for every part."""
        if all(self._missing(p) for p in PARTS):
            part = None
        return self._missing(part)

    def _missing(self, part: str | None) -> str | None:
        env = self.env
        keys = PARTS[part][0] if part else tuple(dict.fromkeys(k for p in PARTS.values() for k in p[0]))
        what = PARTS[part][1] if part else "the platform checks (Management API, PostgREST, photos)"
        undefined = [k for k in keys if k not in env.secrets]
        if undefined:
            names = ", ".join(f"secrets.{k}" for k in undefined)
            return (f"environment '{env.name}' has no HTTP settings for {what}: add {names} to "
                    f"[{env.name}.secrets] in environments.toml, naming the variables that hold them")
        unset = [env.secrets[k] for k in keys if not env.has_secret(k)]
        if unset:
            return (f"{what} need {', '.join(unset)}: export them (or put them in .env) "
                    f"to run these checks on '{env.name}'")
        return None

    def _value(self, key: str) -> str:
        return self.env.secret(key)

    def _variable(self, key: str) -> str:
        return self.env.secrets.get(key, f"secrets.{key}")

    @cached_property
    def project_url(self) -> str | None:
        """The project's URL (secrets.supabase_url) when set and well-formed."""
        if not self.env.has_secret("supabase_url"):
            return None
        url = self._value("supabase_url").rstrip("/")
        return url if re.fullmatch(r"https?://[^/\s]+(/\S*)?", url) else None

    def require_project_url(self) -> str:
        if self.project_url is None:
            raise HttpError(f"{self._variable('supabase_url')} is not a URL: set it to the project's URL, "
                            f"like https://<project-ref>.supabase.co")
        return self.project_url

    @cached_property
    def credentials(self) -> tuple[str, ...]:
        return tuple(self._value(k) for k in CREDENTIALS if self.env.has_secret(k))

    @cached_property
    def client(self) -> Client:
        return Client(timeout=self.env.http_timeout, management_url=self.env.management_api_url,
                      project_url=self.project_url, read_rpcs=read_rpcs(),
                      tables=[orders_table(s) for s in contract()["stores"]], secrets=self.credentials,
                      transport=self._transport)

    def close(self) -> None:
        if "client" in self.__dict__:
            self.client.close()

    # -- Management API: read once, as plain data ----------------------------------
    def management_answers(self) -> dict:
        """{"project": ref, "backups"|"migrations"|"lints": {"answer": json} or {"error": line}}."""
        ref, token = self._value("project_ref"), self._value("access_token")
        answers = {"project": ref}
        if not re.fullmatch(r"[a-z0-9]+", ref):
            error = {"error": f"{self._variable('project_ref')} is not a project ref: set it to the project's "
                              f"ref (lowercase letters and digits, the <ref> of https://<ref>.supabase.co)"}
            return {**answers, "backups": error, "migrations": error, "lints": error}
        base = self.env.management_api_url
        hints = Hints(
            unauthorized=f"the access token was refused: check {self._variable('access_token')} "
                         f"(a personal access token from https://supabase.com/dashboard/account/tokens)",
            forbidden=f"this access token may not read project {ref}: use a token of a member of its organization",
            not_found=f"no project '{ref}' for this token: check {self._variable('project_ref')}",
            unreachable=f"check management_api_url ({base}) in environments.toml and that it is reachable from here",
            malformed=f"check that management_api_url ({base}) is the Supabase Management API")
        for name, what, shape in (("backups", "database/backups", _backups_shape),
                                  ("migrations", "database/migrations", _migrations_shape),
                                  ("lints", "advisors/security", _lints_shape)):
            try:
                answer = self.client.management_read(ref, what, token, hints)
                why = shape(answer.body)
                if why:
                    raise self.client.malformed(answer, why, hints)
                answers[name] = {"answer": answer.body, "endpoint": answer.endpoint}
            except HttpError as exc:
                answers[name] = {"error": str(exc)}
        return answers

    # -- PostgREST as anon ---------------------------------------------------------
    def _rest_hints(self) -> Hints:
        url, key = self._variable("supabase_url"), self._variable("anon_key")
        return Hints(unauthorized=f"the anon key was refused: check {key} (Project Settings > API)",
                     forbidden=f"the anon key was refused: check {key} (Project Settings > API)",
                     not_found=f"no PostgREST there: check {url} (https://<project-ref>.supabase.co)",
                     unreachable=f"check {url} and that the project is reachable from here",
                     malformed=f"check that {url} is the project's URL (https://<project-ref>.supabase.co)")

    def rest_select_one(self, table: str) -> Answer:
        self.require_project_url()
        return self.client.rest_select_one(table, self._value("anon_key"), self._rest_hints())

    def rest_rpc(self, rpc: str, args: dict) -> Answer:
        self.require_project_url()
        return self.client.rest_rpc(rpc, args, self._value("anon_key"), self._rest_hints())

    def rest_with(self, key: str) -> Answer:
        """The one-row select with secrets.<key> (the current anon key or a previous one), its
        refusal an answer too: read-only, the key in the headers only, never in a message."""
        self.require_project_url()
        return self.client.rest_select_one(orders_table(contract()["stores"][0]), self._value(key), self._rest_hints(),
                                           refusal_answers=True)

    def rest_health(self) -> Answer:
        """One request that needs nothing but a working PostgREST and anon key (a one-row
        select of the first order table), made once per process."""
        if self._rest_health is None:
            try:
                self._rest_health = self.rest_select_one(orders_table(contract()["stores"][0]))
            except HttpError as exc:
                self._rest_health = exc
        if isinstance(self._rest_health, HttpError):
            raise self._rest_health
        return self._rest_health

    def rest(self, call):
        """call(), unless PostgREST itself does not answer (test_rest_api_answers says why):
        then Blocked, without waiting for another answer that will not come."""
        try:
            self.rest_health()
        except HttpError as down:
            raise Blocked(f"PostgREST did not answer: see test_rest_api_answers ({down})") from None
        return call()

    # -- Storage and photo hosts -----------------------------------------------------
    def sign(self, bucket: str, path: str) -> Answer:
        key = self._variable("service_role_key")
        if not self.env.has_secret("service_role_key"):
            where = (f"export {key}" if "service_role_key" in self.env.secrets else
                     f"add secrets.service_role_key to [{self.env.name}.secrets] in environments.toml")
            raise HttpError(f"photos are Storage objects (bucket {bucket}) and signing them needs the service "
                            f"role key: {where}")
        hints = Hints(unauthorized=f"the service role key was refused: check {key}",
                      forbidden=f"the service role key was refused: check {key}",
                      not_found="", unreachable=f"check {self._variable('supabase_url')} and that the project is "
                                                f"reachable from here",
                      malformed=f"check that {self._variable('supabase_url')} is the project's URL")
        answer = self.client.storage_sign(bucket, path, self._value("service_role_key"), hints)
        if isinstance(answer.body, dict) and str(answer.body.get("statusCode")) in ("401", "403"):
            # Storage may answer 400 and put the real status in the body
            raise HttpError(redact(f"{answer.endpoint}: {answer.status} (statusCode {answer.body['statusCode']}"
                                   f"{_storage_reason(answer.body)}): {hints.unauthorized}", self.credentials))
        if answer.status == 200 and not (isinstance(answer.body, dict) and isinstance(answer.body.get("signedURL"), str)
                                         and answer.body["signedURL"].startswith("/")):
            raise self.client.malformed(answer, 'expected {"signedURL": "/object/sign/..."}', hints)
        return answer

    def storage_location(self, url: str, target: Target) -> tuple[str, str] | None:
        """(bucket, path) when url is an object of this project's Storage: its URL, or a bare
        path that storage.objects knows (or that starts with a bucket's name)."""
        if "://" in url:
            if not self.project_url or not url.startswith(self.project_url + "/storage/v1/"):
                return None
            match = _STORAGE_PATH.fullmatch(urlsplit(url).path[len(urlsplit(self.project_url).path):])
            return (unquote(match[1]), unquote(match[2])) if match else None
        path = url.lstrip("/")
        if target.scalar("select to_regclass('storage.objects') is null"):
            return None
        bucket = target.scalar("select bucket_id from storage.objects where name = %s limit 1", (path,))
        if bucket:
            return bucket, path
        first, _, rest = path.partition("/")
        if rest and target.scalar("select exists (select from storage.buckets where id = %s)", (first,)):
            return first, rest
        return None


# -- answer shapes (SYSTEM.md) ----------------------------------------------------------
def _backups_shape(body) -> str | None:
    if not isinstance(body, dict) or not isinstance(body.get("pitr_enabled"), bool):
        return 'expected an object with "pitr_enabled": true|false'
    if not isinstance(body.get("backups"), list) or not all(
            isinstance(b, dict) and isinstance(b.get("status"), str) and isinstance(b.get("inserted_at"), str)
            and _time(b["inserted_at"]) for b in body["backups"]):
        return 'expected "backups": [{"id", "inserted_at", "status", ...}]'
    data = body.get("physical_backup_data")
    if not isinstance(data, dict):
        return 'expected "physical_backup_data": {...}'
    if data and not all(isinstance(data.get(k), (int, float)) for k in
                        ("earliest_physical_backup_date_unix", "latest_physical_backup_date_unix")):
        return "expected physical_backup_data's earliest and latest_physical_backup_date_unix as numbers"
    return None


def _migrations_shape(body) -> str | None:
    if not isinstance(body, list) or not all(isinstance(m, dict) and m.get("version") for m in body):
        return 'expected [{"version", "name"}]'
    return None


def _lints_shape(body) -> str | None:
    if not isinstance(body, dict) or not isinstance(body.get("lints"), list):
        return 'expected {"lints": [...]}'
    if not all(isinstance(lint, dict) and isinstance(lint.get("cache_key"), str) and lint["cache_key"]
               for lint in body["lints"]):
        return "expected every lint to carry its cache_key"
    return None


def _time(text: str) -> datetime | None:
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def _unix(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


def _shown(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")


def _answer(answers: dict, name: str):
    """The endpoint's answer; its error line as an HttpError when it gave none."""
    if "error" in answers[name]:
        raise HttpError(answers[name]["error"])
    return answers[name]["answer"]


# -- Management API checks --------------------------------------------------------------
def pitr_enabled(answers: dict) -> Verdict:
    backups = _answer(answers, "backups")
    project = f"project {answers['project']}"
    violations = []
    if not backups["pitr_enabled"]:
        violations.append({"object": project, "problem": "PITR is off (pitr_enabled is false)"})
    if not backups["physical_backup_data"]:
        violations.append({"object": project, "problem": "no restore point: physical_backup_data is empty"})
    return PITR_ENABLED.verdict("backups", violations, pitr_enabled=backups["pitr_enabled"])


def _restore_points(check: Check, answers: dict) -> tuple[datetime, datetime] | Verdict:
    if "error" in answers["backups"]:
        return check.blocked("backups", f"see test_pitr_enabled: {answers['backups']['error']}")
    backups = answers["backups"]["answer"]
    data = backups["physical_backup_data"]
    if not backups["pitr_enabled"] or not data:
        return check.blocked("backups", "PITR is off or has no restore point: see test_pitr_enabled")
    return _unix(data["earliest_physical_backup_date_unix"]), _unix(data["latest_physical_backup_date_unix"])


def pitr_window(answers: dict, thresholds: dict) -> Verdict:
    points = _restore_points(PITR_WINDOW, answers)
    if isinstance(points, Verdict):
        return points
    earliest, latest = points
    days = (latest - earliest).total_seconds() / 86400
    limit = thresholds["pitr_window_days"]
    return PITR_WINDOW.verdict("backups", [] if days >= limit else [
        {"object": f"project {answers['project']}",
         "problem": f"the PITR window is {days:.1f} days ({_shown(earliest)} to {_shown(latest)}), "
                    f"less than {limit:g}"}], pitr_window_days=round(days, 2))


def pitr_latest_recent(answers: dict, thresholds: dict) -> Verdict:
    points = _restore_points(PITR_LATEST, answers)
    if isinstance(points, Verdict):
        return points
    latest = points[1]
    hours = (datetime.now(timezone.utc) - latest).total_seconds() / 3600
    limit = thresholds["pitr_latest_max_hours"]
    return PITR_LATEST.verdict("backups", [] if hours <= limit else [
        {"object": f"project {answers['project']}",
         "problem": f"the latest restore point is {hours:.1f} hours old ({_shown(latest)}), more than {limit:g}"}],
        latest_restore_point=latest.isoformat(), hours_since_latest_restore_point=round(hours, 2))


def _backups(check: Check, answers: dict) -> list[dict] | Verdict:
    if "error" in answers["backups"]:
        return check.blocked("backups", f"see test_pitr_enabled: {answers['backups']['error']}")
    return sorted(answers["backups"]["answer"]["backups"], key=lambda b: _time(b["inserted_at"]))


def backup_recent(answers: dict, thresholds: dict) -> Verdict:
    backups = _backups(BACKUP_RECENT, answers)
    if isinstance(backups, Verdict):
        return backups
    completed = [b for b in backups if b["status"] == "COMPLETED"]
    project, limit = f"project {answers['project']}", thresholds["backup_max_age_hours"]
    if not completed:
        return BACKUP_RECENT.verdict("backups", [{"object": project, "problem": "no COMPLETED backup in the list"}],
                                     backups_listed=len(backups))
    newest = _time(completed[-1]["inserted_at"])
    hours = (datetime.now(timezone.utc) - newest).total_seconds() / 3600
    return BACKUP_RECENT.verdict("backups", [] if hours <= limit else [
        {"object": project, "problem": f"the newest COMPLETED backup is {hours:.1f} hours old "
                                       f"({_shown(newest)}), more than {limit:g}"}],
        newest_completed_backup=newest.isoformat(), backups_listed=len(backups))


def no_failed_backup(answers: dict) -> Verdict:
    backups = _backups(NO_FAILED_BACKUP, answers)
    if isinstance(backups, Verdict):
        return backups
    completed = [_time(b["inserted_at"]) for b in backups if b["status"] == "COMPLETED"]
    last = completed[-1] if completed else None
    since = f"after the last COMPLETED one ({_shown(last)})" if last else "and no backup COMPLETED"
    return NO_FAILED_BACKUP.verdict("backups", [
        {"object": f"backup {b.get('id', '?')}", "problem": f"FAILED at {_shown(_time(b['inserted_at']))}, {since}"}
        for b in backups if b["status"] == "FAILED" and (last is None or _time(b["inserted_at"]) > last)])


def api_migrations(answers: dict, folder: Path) -> Verdict:
    listed = {str(m["version"]): m.get("name") or "" for m in _answer(answers, "migrations")}
    files = migration_files(folder)
    in_git = {m.version for m in files}
    violations = [{"object": m.path.name, "problem": "in Git but missing from the Management API's migration list"}
                  for m in files if m.version not in listed]
    violations += [{"object": f"version {version}" + (f" ({name})" if name else ""),
                    "problem": f"in the Management API's migration list but has no file in {folder}"}
                   for version, name in sorted(listed.items()) if version not in in_git]
    return API_MIGRATIONS.verdict("all", violations, head_in_api=max(listed) if listed else None)


def lint_params(answers: dict | None) -> tuple[list, list[str]]:
    """Values and test ids for test_security_advisor: one per lint, by cache_key; one
    placeholder when there is none ("none") or no answer ("unavailable", reported once)."""
    if answers is None or "error" in answers["lints"]:
        return [None], ["unavailable"]
    keys = list(dict.fromkeys(lint["cache_key"] for lint in answers["lints"]["answer"]["lints"]))
    return (keys, keys) if keys else ([None], ["none"])


def advisor_lint(answers: dict, cache_key: str | None) -> Verdict:
    lints = _answer(answers, "lints")["lints"]
    if cache_key is None:
        return SECURITY_ADVISOR.verdict("none", [], lints=0)
    lint = next(lint for lint in lints if lint["cache_key"] == cache_key)
    metadata = lint.get("metadata") if isinstance(lint.get("metadata"), dict) else {}
    where = ".".join(str(metadata[k]) for k in ("schema", "name") if metadata.get(k)) or cache_key
    title = lint.get("title") or lint.get("name") or "lint"
    detail = " ".join(str(lint.get("detail") or "").split())
    violation = {"key": f"security_advisor:{cache_key}", "object": where,
                 "problem": f"{lint.get('level', '?')} {title}" + (f": {detail}" if detail else "")}
    if lint.get("remediation"):
        violation["remediation"] = lint["remediation"]
    return SECURITY_ADVISOR.verdict(cache_key, [violation], lints=len(lints))


# -- PostgREST checks -------------------------------------------------------------------
def rest_answers(platform: Platform) -> Verdict:
    answer = platform.rest_health()
    return REST_ANSWERS.verdict("anon", [], answered=f"{answer.status} for {answer.endpoint}")


def anon_rest_rpc(platform: Platform, target: Target, rpc: str) -> Verdict:
    args = _probe_arguments(target, contract()["rpcs"][rpc]["probe"])
    try:
        answer = platform.rest(lambda: platform.rest_rpc(rpc, args))
    except Blocked as exc:
        return ANON_REST_RPC.blocked(rpc, str(exc))
    return ANON_REST_RPC.verdict(rpc, _leaks(answer, f"POST /rest/v1/rpc/{rpc}"), answer=_said(answer))


def anon_rest_table(platform: Platform, store: str) -> Verdict:
    table = orders_table(store)
    try:
        answer = platform.rest(lambda: platform.rest_select_one(table))
    except Blocked as exc:
        return ANON_REST_TABLE.blocked(table, str(exc))
    return ANON_REST_TABLE.verdict(table, _leaks(answer, f"GET /rest/v1/{table}"), answer=_said(answer))


def _leaks(answer: Answer, request: str) -> list[dict]:
    """Rows the anon key got back with anything in them (a refusal or zeros leak nothing)."""
    if answer.status != 200:
        return []
    body = answer.body
    rows = body if isinstance(body, list) else [] if body is None else [body]
    leaked = [r for r in rows if _filled(r)]
    return [{"object": request, "problem": f"returned data to anon ({len(leaked)} row(s))", "row": _shorten(leaked[0])}] \
        if leaked else []


def _filled(value) -> bool:
    if isinstance(value, dict):
        return any(_filled(v) for v in value.values())
    if isinstance(value, list):
        return any(_filled(v) for v in value)
    return value not in (None, 0, False, "")


def _shorten(row) -> str:
    text = ", ".join(f"{k}={v}" for k, v in list(row.items())[:4]) if isinstance(row, dict) else str(row)
    return text[:120]


def _said(answer: Answer) -> str:
    code = answer.body.get("code") if isinstance(answer.body, dict) else None
    return f"{answer.status}" + (f" {code}" if code else "")


def _probe_arguments(target: Target, probe: dict) -> dict:
    """The contract's probe arguments, {store} and {order_id} filled from the database."""
    store = contract()["stores"][0]
    order_id = None
    if target.scalar("select to_regclass(%s) is not null", (f"public.{orders_table(store)}",)):
        order_id = target.scalar(f"select id from public.{orders_table(store)} order by created_at desc limit 1")
    fill = {"{store}": store, "{order_id}": order_id or f"{store}-1"}
    return {k: fill.get(v, v) if isinstance(v, str) else v for k, v in probe.items()}


# -- keys rotated out at cut-over --------------------------------------------------------
_ROTATE = {
    "previous_anon_key": "roll the JWT secret (legacy keys) or disable the legacy anon key in the project's "
                         "Settings > API, then redeploy the app with the new key (VITE_SUPABASE_ANON_KEY)",
    "previous_service_role_key": "at once, since it bypasses row level security: roll the JWT secret (legacy keys) "
                                 "or revoke the secret key in the project's Settings > API, then set the new one as "
                                 "the Edge Functions' SUPABASE_SERVICE_ROLE_KEY and redeploy them",
}


def key_accepted(answer: Answer) -> bool:
    """Whether the project ran the request as the key's role. A refusal of the key is a 401
    from the gateway (no PostgREST code: "Invalid API key") or from PostgREST refusing the JWT
    (PGRST3xx: bad signature, expired, wrong key). Any other answer got past the key: a 200,
    or PostgREST's 401 42501 (a valid anon key whose role lacks the grant)."""
    if answer.status != 401:
        return True
    code = str(answer.body.get("code") or "") if isinstance(answer.body, dict) else ""
    return bool(code) and not code.startswith("PGRST3")


def rotated_key_refused(platform: Platform, previous: str) -> Verdict:
    """secrets.<previous> (a key rotated out at cut-over) is refused with 401, and the current
    anon key is not: otherwise the 401 would prove nothing (a wrong URL refuses every key)."""
    variable = platform._variable(previous)
    if not platform.env.has_secret(previous):
        return ROTATED_KEY.blocked(previous, f"{variable} is not set: export the key rotated out at cut-over (or "
                                             f"put it in .env) to check that it stays refused")
    try:
        old = platform.rest_with(previous)
        current = platform.rest_with("anon_key")
    except HttpError as exc:
        raise HttpError(f"{exc} (checking that {variable} is refused)") from None
    table = orders_table(contract()["stores"][0])
    violations, fixes = [], []
    if platform._value(previous) == platform._value("anon_key"):
        violations.append({"object": variable, "problem": f"holds the same key as {platform._variable('anon_key')}: "
                                                           f"the key was never rotated"})
        fixes.append(f"rotate it out: {_ROTATE[previous]}")
    elif key_accepted(old):
        violations.append({"object": variable, "problem": (
            f"still accepted: GET /rest/v1/{table}?select=id&limit=1 with it answered {_said(old)}, not 401: the key "
            f"rotated out at cut-over still opens the project")})
        fixes.append(f"rotate it out: {_ROTATE[previous]}")
    if not key_accepted(current):
        violations.append({"object": platform._variable("anon_key"), "problem": (
            f"the current anon key is refused too ({_said(current)}): a 401 for {variable} proves nothing while the "
            f"project refuses every key")})
        fixes.append(f"check that {platform._variable('anon_key')} holds the project's current anon key and "
                     f"{platform._variable('supabase_url')} its URL (Settings > API)")
    return ROTATED_KEY.verdict(previous, violations, fix="; ".join(fixes) or None, previous_key_answer=_said(old),
                               current_anon_key_answer=_said(current))


# -- photos -----------------------------------------------------------------------------
def photos_readable(platform: Platform, target: Target, sample_size: int) -> Verdict:
    if target.scalar("select to_regclass('public.order_photos') is null"):
        return PHOTOS_READABLE.blocked("newest", "public.order_photos is missing: see test_table[order_photos]")
    rows = target.query("select id::text as id, order_id, url from public.order_photos "
                        "where coalesce(url, '') <> '' order by created_at desc nulls last, id limit %s",
                        (int(sample_size),))
    violations, not_fetched = [], 0
    platform.require_project_url()
    for row in rows:
        problem = _photo_problem(platform, target, row["url"].strip())
        if problem:
            not_fetched += problem.startswith(NOT_FETCHED)
            violations.append({"object": f"photo {row['id']} (order {row['order_id']})", "problem": problem})
    # A photo the suite would not fetch is not a missing file: its fix is a URL or a setting.
    fixes = ([NOT_FETCHED_FIX.format(variable=platform._variable("supabase_url"))] if not_fetched else []) + \
        ([f"for the others: {PHOTOS_READABLE.remediation}" if not_fetched else PHOTOS_READABLE.remediation]
         if len(violations) > not_fetched else [])
    return PHOTOS_READABLE.verdict("newest", violations, fix="; ".join(fixes) or None, photos_sampled=len(rows),
                                   photos_readable=len(rows) - len(violations))


def _photo_problem(platform: Platform, target: Target, url: str) -> str | None:
    location = platform.storage_location(url, target)
    if location:
        bucket, path = location
        signed = platform.sign(bucket, path)
        if signed.status != 200:
            return (f"Storage could not sign {bucket}/{path}: {signed.status}"
                    f"{_storage_reason(signed.body)}")
        url = f"{platform.project_url}/storage/v1{signed.body['signedURL']}"
    elif not re.match(r"https?://", url, re.I):
        return f"{url!r} is neither an http(s) URL nor a Storage object of this project"
    elif _under_project(url, platform.project_url):
        # The guard would refuse it anyway (the project gets only its documented reads): said
        # here, before anything is sent, with the rule and the setting instead of a refusal.
        return (f"{NOT_FETCHED} {_without_query(url)} is on the project's own origin ({platform._variable('supabase_url')}) "
                f"but is not a Storage object (/storage/v1/object/... or /storage/v1/render/image/...): the suite "
                f"sends the project only its documented reads (read RPCs, a one-row select, Storage signing), "
                f"never another of its endpoints")
    try:
        answer = platform.client.peek(url)
    except RefusedRequest as exc:
        # e.g. a photo host redirecting into the project's API: nothing was sent there.
        return f"{NOT_FETCHED} the suite's read-only HTTP guard refused it ({exc})"
    except HttpError as exc:
        return str(exc)
    kind = answer.content_type.split(";")[0].strip().lower()
    if answer.status != 200:
        return f"{answer.endpoint} answered {answer.status}"
    if not kind.startswith("image/"):
        return f"{answer.endpoint} answered 200 with {kind or 'no content type'}, not an image"
    return None


def _under_project(url: str, base: str | None) -> bool:
    """url is on the project's origin, under its path: where the guard allows only the
    project's documented reads (checks.http.ReadOnlyGuard, the same test)."""
    if not base:
        return False
    try:
        one, other = urlsplit(url), urlsplit(base)
        origin = [(u.scheme.lower(), u.hostname, u.port or _PORTS.get(u.scheme.lower())) for u in (one, other)]
    except ValueError:
        return False
    prefix = other.path.rstrip("/")
    return origin[0] == origin[1] and (one.path == prefix or one.path.startswith(prefix + "/"))


_PORTS = {"http": 80, "https": 443}


def _without_query(url: str) -> str:
    """The URL without its query (a signed URL's token lives there) and without userinfo."""
    try:
        return endpoint("GET", url).removeprefix("GET ")
    except Exception:  # httpx.InvalidURL (httpx is checks.http's alone): the same, by hand
        return re.sub(r"//[^/@]*@", "//", re.split(r"[?#]", url)[0])


def _storage_reason(body) -> str:
    if isinstance(body, dict):
        said = body.get("message") or body.get("error")
        if isinstance(said, str) and said.strip():
            return f" ({said.strip()[:120]})"
    return ""
