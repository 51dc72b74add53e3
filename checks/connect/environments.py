"""environments.toml + environment variables -> Environment.

The file says which environments exist and where each one's secrets live; the values come
from environment variables only. Mistakes in the file are reported as `file:line: what`.
"""

import io
import math
import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from types import MappingProxyType

from dotenv import load_dotenv

from checks.contract import thresholds as known_thresholds
from checks.core import Acceptance
from checks.errors import SetupError

ALWAYS_READ_ONLY = {"production"}
SECRET_KEYS = {"db_url", "supabase_url", "anon_key", "service_role_key", "project_ref", "access_token",
               # keys rotated out at cut-over: PostgREST must refuse them (checks.platform.rotated_key_refused)
               "previous_anon_key", "previous_service_role_key"}
# key -> (accepted types, description for the error message)
_SCALARS = {
    "description": ((str,), "a string"),
    "read_only": ((bool,), "true or false"),
    "embedded": ((bool,), "true or false"),
    "scale": ((int,), "a whole number of orders per store"),
    "connect_timeout": ((int, float), "a number of seconds"),
    "statement_timeout": ((int, float), "a number of seconds"),
    "lock_timeout": ((int, float), "a number of seconds"),
    "idle_in_transaction_timeout": ((int, float), "a number of seconds"),
    "staff_user": ((str,), "a staff user id (uuid) or email"),
    "management_api_url": ((str,), "an http(s) URL, like \"https://api.supabase.com\""),
    "http_timeout": ((int, float), "a number of seconds"),
    "restore_target": ((bool,), "true or false"),
}
_TABLES = {"secrets", "thresholds", "rehearsal"}
_LISTS = {"accepted"}  # [[<env>.accepted]]: findings the team accepted, by key
# Timeouts PostgreSQL keeps in milliseconds, where 0 means "no timeout at all"; at most INT_MAX ms.
_SERVER_TIMEOUTS = {"statement_timeout", "lock_timeout", "idle_in_transaction_timeout"}
_MAX_SERVER_TIMEOUT = 2_147_483.647
# Timeouts the client keeps (PostgreSQL's connect_timeout, one HTTP request), in seconds. A host
# that accepts connections and never answers holds the run for the whole timeout, so none may
# be so large that the run looks hung: two minutes is more than any reachable server needs,
# and short enough that a stuck run still ends with its report. Target caps a URL's own
# connect_timeout with the same limit.
MAX_CLIENT_TIMEOUT = 120
_CLIENT_TIMEOUTS = {"connect_timeout", "http_timeout"}
# [<env>.rehearsal]: a simulated drill on an embedded production (checks/drill/rehearsal.py's Plan).
REHEARSAL = {
    "mode": ((str,), "pitr or dump"),
    "workload_seconds": ((int, float), "a number of seconds"),
    "workload_rate": ((int, float), "a number of orders per second"),
    "after_incident_seconds": ((int, float), "a number of seconds"),
    "restore_point": ((str,), "seconds relative to the incident (\"-2s\") or an ISO-8601 time"),
    "incident": ((str,), "KIND[:STORE], e.g. \"mass-delete:bannos\""),
    "pause_http_cron": ((bool,), "true or false"),
}


@dataclass(frozen=True)
class Environment:
    name: str
    description: str = ""
    read_only: bool = False
    embedded: bool = False
    scale: int | None = None
    connect_timeout: float = 10
    statement_timeout: float = 120
    lock_timeout: float = 5
    idle_in_transaction_timeout: float | None = None  # default: idle_timeout
    staff_user: str | None = None
    management_api_url: str = "https://api.supabase.com"  # a proxy or a stand-in may serve it
    http_timeout: float = 15  # seconds for one HTTP request to Supabase or a photo host
    # A restored copy (a drill's or an incident's): checks for what a copy must not do run.
    restore_target: bool = False
    rehearsal: MappingProxyType | None = None  # a simulated drill (embedded production, then a real restore)
    secrets: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    thresholds: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    accepted: tuple[Acceptance, ...] = ()

    @property
    def idle_timeout(self) -> float:
        """Seconds a connection may sit idle inside a transaction before the server ends it
        (releasing its locks): the setting, else twice the statement timeout, at least 2 min."""
        return self.idle_in_transaction_timeout or max(2 * self.statement_timeout, 120)

    def secret(self, key: str) -> str:
        """The secret's value, or a SetupError naming the variable to set."""
        variable = self.secrets.get(key)
        if variable is None:
            raise SetupError(f"environment '{self.name}' defines no secrets.{key} in environments.toml; "
                             f"add the name of the environment variable that holds it")
        value = os.environ.get(variable, "").strip()
        if not value:
            raise SetupError(f"environment '{self.name}' needs {variable} ({key}): "
                             f"export it, or put it in a .env file at the project root")
        return value

    def has_secret(self, key: str) -> bool:
        return bool(os.environ.get(self.secrets.get(key, ""), "").strip())

    def secret_values(self) -> tuple[str, ...]:
        """Every secret value that is set, for redaction."""
        return tuple(v for v in (os.environ.get(var, "").strip() for var in self.secrets.values()) if v)


def read_only(env: Environment) -> Environment:
    """The same environment, read-only (what --compare-to connects with, whatever the file says)."""
    return replace(env, read_only=True)


def load_environments(path: Path) -> dict[str, Environment]:
    path = Path(path)
    text = read_utf8(path, "pass --environments=PATH or restore environments.toml")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        line = match.group(1) if match else "?"
        reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise SetupError(f"{path}:{line}: not valid TOML: {reason}") from None
    return {name: _environment(name, table, path, text) for name, table in raw.items()}


def read_utf8(path: Path, hint: str) -> str:
    """A text file's content, or one line saying why it cannot be read."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SetupError(f"{path}: file not found; {hint}") from None
    except IsADirectoryError:
        raise SetupError(f"{path}: is a folder, not a file; {hint}") from None
    except OSError as exc:
        raise SetupError(f"{path}: cannot be read ({exc.strerror}); {hint}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise SetupError(f"{path}:{line}: not UTF-8 (byte 0x{data[exc.start]:02x}); save the file as UTF-8") from None


def load_dotenv_file(path: Path) -> None:
    """Reads a .env file (if there is one) into the environment; set variables win."""
    if path.is_file():
        load_dotenv(stream=io.StringIO(read_utf8(path, "fix or remove the .env file")), override=False)


def _environment(name: str, table, path: Path, text: str) -> Environment:
    def fail(key: str | None, what: str):
        raise SetupError(f"{path}:{_line_of(text, name, key)}: [{name}] {what}")

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name):  # it names report files: never a path
        fail(None, "an environment's name is letters, digits, - and _, like [staging]")
    if not isinstance(table, dict):
        fail(None, "must be a table of settings, like [staging]")
    values: dict = {}
    for key, value in table.items():
        if key in _TABLES:
            if not isinstance(value, dict):
                fail(key, f"{key} must be a table ([{name}.{key}])")
            for sub, subvalue in value.items():
                if key == "secrets" and sub not in SECRET_KEYS:
                    fail(sub, f"unknown secret '{sub}'; known: {', '.join(sorted(SECRET_KEYS))}")
                if key == "secrets" and not (isinstance(subvalue, str) and subvalue.strip()):
                    fail(sub, f"secrets.{sub} must name an environment variable, like \"ORDAK_STAGING_DB_URL\"")
                if key == "thresholds" and sub not in known_thresholds():
                    fail(sub, f"unknown threshold '{sub}'; known: {', '.join(known_thresholds())}")
                if key == "thresholds" and (isinstance(subvalue, bool) or not isinstance(subvalue, (int, float))):
                    fail(sub, f"thresholds.{sub} must be a number")
                if key == "rehearsal" and sub not in REHEARSAL:
                    fail(sub, f"unknown rehearsal setting '{sub}'; known: {', '.join(REHEARSAL)}")
                if key == "rehearsal" and (isinstance(subvalue, bool) != (bool in REHEARSAL[sub][0])
                                           or not isinstance(subvalue, REHEARSAL[sub][0])):
                    fail(sub, f"rehearsal.{sub} must be {REHEARSAL[sub][1]}")
            values[key] = MappingProxyType(dict(value))
        elif key in _LISTS:
            values[key] = _acceptances(value, lambda what: fail(key, what))
        elif key in _SCALARS:
            types, expected = _SCALARS[key]
            if isinstance(value, bool) and bool not in types or not isinstance(value, types):
                fail(key, f"{key} must be {expected}, not {value!r}")
            problem = _out_of_range(key, value)
            if problem:
                fail(key, problem)
            if key == "management_api_url" and not re.match(r"https?://[^/\s]+", value):
                fail(key, f"{key} must be {expected}, not {value!r}")
            if key == "management_api_url":
                problem = _management_path(value)
                if problem:
                    fail(key, problem)
            values[key] = value
        else:
            known = ", ".join(sorted([*_SCALARS, *_TABLES, *_LISTS]))
            fail(key, f"unknown setting '{key}'; known: {known}")
    if name in ALWAYS_READ_ONLY:
        if values.get("read_only") is False:
            fail("read_only", "production is always read-only; remove read_only = false")
        values["read_only"] = True
    if "rehearsal" in values:
        if values.get("embedded") is False or values.get("read_only"):
            fail("rehearsal", "a rehearsal drills on an embedded production it writes to: embedded = true, not read-only")
        values["embedded"] = values["restore_target"] = True
    if not values.get("embedded") and "db_url" not in values.get("secrets", {}):
        fail(None, "needs secrets.db_url naming the variable with its database URL (or embedded = true)")
    return Environment(name=name, **values)


def _acceptances(value, fail) -> tuple[Acceptance, ...]:
    """[[<env>.accepted]] tables: key = "check:object", reason = "...", until = 2027-01-31."""
    example = 'key = "rls_enabled:public.settings", reason = "...", until = 2027-01-31'
    if not isinstance(value, list) or not all(isinstance(entry, dict) for entry in value):
        fail(f"accepted must be a list of tables ([[<env>.accepted]] with {example})")
    found = []
    for entry in value:
        unknown = set(entry) - {"key", "reason", "until"}
        if unknown:
            fail(f"accepted: unknown setting(s) {', '.join(sorted(unknown))}; each entry has {example}")
        if not (isinstance(entry.get("key"), str) and ":" in entry["key"]):
            fail("accepted: key must be a finding's key, check:object, like \"rls_enabled:public.settings\"")
        if not (isinstance(entry.get("reason"), str) and entry["reason"].strip()):
            fail(f"accepted {entry['key']}: give a reason, so the next reader knows why it is accepted")
        if type(entry.get("until")) is not date:
            fail(f"accepted {entry['key']}: until must be a date, like until = 2027-01-31 (no quotes)")
        found.append(Acceptance(entry["key"], entry["reason"].strip(), entry["until"]))
    return tuple(found)


def _out_of_range(key: str, value) -> str | None:
    """What is wrong with a number that has the right type but cannot be right."""
    if key == "scale" and value < 1:
        return f"scale must be at least 1 order per store, not {value}"
    if not key.endswith("_timeout"):
        return None
    if not math.isfinite(value) or value <= 0:
        return f"{key} must be a positive number of seconds, not {value!r}"
    if key in _SERVER_TIMEOUTS and round(value * 1000) < 1:
        return (f"{key} = {value!r} rounds to 0 ms, which PostgreSQL reads as no timeout at all; "
                f"use at least 0.001 (seconds)")
    if key in _SERVER_TIMEOUTS and value > _MAX_SERVER_TIMEOUT:
        return f"{key} = {value!r} is more than PostgreSQL allows ({int(_MAX_SERVER_TIMEOUT)} s, about 24 days)"
    if key in _CLIENT_TIMEOUTS and value > MAX_CLIENT_TIMEOUT:
        return (f"{key} = {value!r} is more than {MAX_CLIENT_TIMEOUT} s, the longest the suite waits for one "
                f"answer (a host that never answers would hold the run that long); use at most {MAX_CLIENT_TIMEOUT}")
    return None


def _management_path(url: str) -> str | None:
    """Why a management_api_url cannot be the API's base: the suite adds /v1/projects/<ref>/...
    itself, so a base ending in /v1 (as the API's reference writes it) would ask for /v1/v1/...
    and be answered 404, which reads as a wrong project ref. Refused, not corrected: the file
    then says what the suite really calls. A proxy's own path (/supabase, /api/v1/supabase)
    is kept: only a trailing /v1 or /v1/projects[/...] is the API's."""
    base = url.split("?")[0].split("#")[0]
    match = re.search(r"/v1(/projects(/.*)?)?/*$", base)
    if not match or match.start() < len(re.match(r"https?://[^/]*", base)[0]):
        return None
    return (f"management_api_url = {url!r} ends in {match[0].rstrip('/')}, the start of the API's paths, which the "
            f"suite adds itself (it calls <base>/v1/projects/<ref>/...); use {base[:match.start()]!r}")


def _line_of(text: str, table: str, key: str | None) -> int:
    """Best-effort line number of `key` inside [table] (or of the table header)."""
    lines = text.splitlines()
    header = re.compile(rf"^\s*\[\[?\s*[\"']?{re.escape(table)}[\"']?(\.[\w-]+)?\s*\]\]?")
    start = next((i for i, line in enumerate(lines) if header.match(line)), None)
    if start is None:
        return 1
    if key:
        assignment = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for i in range(start, len(lines)):
            if i > start and lines[i].lstrip().startswith("[") and not header.match(lines[i]):
                break
            if assignment.match(lines[i]):
                return i + 1
    return start + 1
