"""Connections to the database under test.

Read-only environments are read-only at the connection level: every transaction starts
READ ONLY (psycopg's `read_only`), and the server is told so as well: for the session on a
direct connection, in every transaction through a pooler (checks.guards, which also keeps
the timeouts on both doors). Writes happen only in sandbox(), which always rolls back.
"""

import json
import math
import os
import re
from contextlib import contextmanager
from functools import cached_property
from typing import Any, Iterator
from urllib.parse import unquote

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

from checks.connect import guards, http
from checks.connect.environments import MAX_CLIENT_TIMEOUT, Environment
from checks.contract import contract
from checks.errors import SetupError, redact

APPLICATION_NAME = "ordak-verify"
POOLER_PORT = "6543"  # Supavisor in transaction mode: no session state, no prepared statements
# Characters a URL's password must carry percent-encoded. libpq ends the userinfo at the first
# '@' (or '/'), so an unescaped '@' or '/' moves the host and database into the password and
# the password into the host; '%' starts an escape; '#' and '?' pass libpq but break every
# other tool that reads the same URL (the Supabase CLI, Python's urllib).
URL_ENCODED = {"@": "%40", "#": "%23", "/": "%2F", "?": "%3F", "%": "%25"}
_ENCODE_HOW = ", ".join(f"{c} -> {e}" for c, e in URL_ENCODED.items())


class Target:
    """The database one run verifies. Its repr and description never carry a secret."""

    def __init__(self, env: Environment, url: str):
        self.env = env
        self._url = url
        try:
            self._params = conninfo_to_dict(url)
        except psycopg.ProgrammingError:
            raise SetupError(self._unparsable()) from None
        if not str(self._params.get("port", "5432")).replace(",", "").isdigit():
            raise SetupError(self._unparsable())
        self._connect_timeout = self._bounded_connect_timeout()
        self._shared: psycopg.Connection | None = None
        self._spare: psycopg.Connection | None = None  # rolled_back()'s, between two probes
        self._pooled: bool | None = None  # decided on the first connection
        self._options_refused = False

    def __repr__(self) -> str:
        return f"Target(env={self.env.name!r}, {self.location})"

    @property
    def url(self) -> str:
        """The full URL, password included: for handing to another process, never to print."""
        return self._url

    # -- what the report may show ------------------------------------------------
    @property
    def host(self) -> str:
        return str(self._shown.get("host") or "localhost")

    @property
    def dbname(self) -> str:
        return str(self._shown.get("dbname") or self.user or "postgres")

    @property
    def user(self) -> str | None:
        user = self._params.get("user")
        if self._misread and self._userinfo is not None:
            user = unquote(self._userinfo.split(":", 1)[0]) or None
        return user

    @property
    def location(self) -> str:
        port = self._shown.get("port")
        return f"{self.host}{':' + str(port) if port else ''}/{self.dbname}"

    @cached_property
    def _userinfo(self) -> str | None:
        """The URL's user:password as written: everything between :// and the LAST '@' (where
        the person meant the host to start), None for a key=value conninfo or no '@'."""
        match = re.match(r"postgres(?:ql)?://(.*)@", self._url, re.I | re.S)
        return match[1] if match else None

    @cached_property
    def _misread(self) -> bool:
        """libpq split the URL elsewhere than the person meant: an unescaped '@' or '/' in the
        password put part of it into the host or the database (which hold no '@' otherwise)."""
        return self._userinfo is not None and any("@" in str(self._params.get(k) or "") for k in ("host", "dbname"))

    @cached_property
    def _shown(self) -> dict:
        """Host, port and database as they may be shown: libpq's reading, unless it misread the
        URL, whose host part would then be a piece of the password: then what follows the
        URL's last '@', which is what the person meant."""
        if not self._misread:
            return self._params
        try:
            return conninfo_to_dict("postgresql://" + self._url[self._url.rindex("@") + 1:])
        except psycopg.ProgrammingError:
            return {}

    def _password_may_need_encoding(self) -> bool:
        """Decided from the URL as written: its userinfo holds a character a URL must encode."""
        return self._userinfo is not None and any(c in self._userinfo for c in URL_ENCODED)

    @property
    def connect_timeout(self) -> int:
        """Seconds to wait for the server: the URL's own connect_timeout, else the env's; at
        least 2 (libpq's minimum), at most MAX_CLIENT_TIMEOUT (checked when the Target is made)."""
        return self._connect_timeout

    def _bounded_connect_timeout(self) -> int:
        """The URL's connect_timeout, refused when it would let a silent host hold the run for
        ever (0 or less is libpq's "wait indefinitely"; psycopg takes 1e12 at its word);
        environments.toml's is bounded when the file is read."""
        given = self._params.get("connect_timeout")
        if given is None:
            return max(2, round(self.env.connect_timeout))
        variable = self.env.secrets.get("db_url", "the database URL")
        try:
            seconds = float(given)
        except ValueError:
            seconds = math.nan
        if not math.isfinite(seconds):
            raise SetupError(f"[{self.env.name}] connect_timeout in {variable} is not a number of seconds: "
                             f"give one between 2 and {MAX_CLIENT_TIMEOUT}, or remove it")
        if seconds < 1 or seconds > MAX_CLIENT_TIMEOUT:
            why = ("0 or less means wait for ever" if seconds < 1 else
                   f"more than {MAX_CLIENT_TIMEOUT} s, the longest the suite waits for a server")
            raise SetupError(f"[{self.env.name}] connect_timeout={seconds:g} in {variable}: {why}; give between 2 "
                             f"and {MAX_CLIENT_TIMEOUT} seconds, or remove it (environments.toml's connect_timeout "
                             f"applies then)")
        return max(2, round(seconds))

    @property
    def through_pooler(self) -> bool:
        """The URL's port is Supabase's transaction pooler: no session settings are sent."""
        return str(self._params.get("port", "")) == POOLER_PORT

    @property
    def door(self) -> str:
        """How the guards are kept, once a connection was made: for the report."""
        if self._pooled is None:
            return "not connected yet"
        guarded = "read-only and timeouts" if self.env.read_only else "timeouts"
        return (f"pooler: {guarded} set in every transaction" if self._pooled
                else f"direct: {guarded} set for the session")

    # -- connections -------------------------------------------------------------
    def connect(self) -> psycopg.Connection:
        """A new connection (not autocommit) that keeps every guard (see checks.guards):
        the timeouts always, read-only if the environment is."""
        env, wanted = self.env, guards.settings(self.env)
        conn = self._open(wanted)
        if self._pooled is None:
            # A pooler is known by the port, by refusing startup options, or by having
            # dropped them: what the server answers, not the port alone.
            self._pooled = self._options_refused or self.through_pooler or any(
                value != wanted[name] for name, value in guards.in_effect(conn, wanted).items()
                if name in wanted)
        if self._pooled:
            conn.guard = guards.per_transaction(wanted)
        # Read-only environments ask for it; the others take the server's default rather than
        # BEGIN READ WRITE, which a server in recovery (a replica) refuses outright.
        conn.read_only = True if env.read_only else None
        failing = guards.missing(conn, wanted)
        if failing:
            conn.close()
            what = "is not read-only" if any(f.startswith("transaction_read_only=") for f in failing) \
                else "does not keep its timeouts"
            raise SetupError(f"[{env.name}] {self.location}: the connection {what} "
                             f"({', '.join(failing)}); refusing to go on")
        return conn

    def _open(self, wanted: dict[str, str]) -> guards.GuardedConnection:
        extras = {"application_name": APPLICATION_NAME}
        extras = {k: v for k, v in extras.items() if k not in self._params}  # the URL's own values win
        extras["connect_timeout"] = self.connect_timeout  # the URL's own, bounded (see _bounded_connect_timeout)
        send_options = not (self.through_pooler or self._options_refused)
        if send_options:
            extras["options"] = guards.startup_options(self._params.get("options"), wanted)
        try:
            return guards.GuardedConnection.connect(make_conninfo(self._url, **extras), prepare_threshold=None,
                                                    row_factory=dict_row)
        except psycopg.OperationalError as exc:
            if not (send_options and guards.refused_options(exc)):
                raise SetupError(self._describe(exc)) from None
        # A pooler that passes no startup options on: the guards go in every transaction.
        self._options_refused = True
        if self._params.get("options"):
            variable = self.env.secrets.get("db_url", "the database URL")
            raise SetupError(f"[{self.env.name}] {self.location} refuses startup options (a connection pooler): "
                             f"remove options= from {variable}")
        return self._open(wanted)

    @property
    def conn(self) -> psycopg.Connection:
        """The shared connection for reads (one per process)."""
        if self._shared is None or self._shared.closed:
            self._shared = self.connect()
        return self._shared

    def query(self, sql: str, params: Any = None) -> list[dict]:
        """Runs one read query in its own transaction on the shared connection."""
        conn = self.conn
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.rollback()

    def scalar(self, sql: str, params: Any = None) -> Any:
        rows = self.query(sql, params)
        return next(iter(rows[0].values())) if rows else None

    @contextmanager
    def rolled_back(self) -> Iterator[psycopg.Connection]:
        """A connection of its own in a transaction that always rolls back (read-only if the env
        is): for probes that switch roles but must leave nothing behind.

        The next probe gets the same connection: the rollback has undone every role, claim and
        setting this one made, and a target is spared a new backend per probe (a run makes
        hundreds)."""
        conn, self._spare = self._spare or self.connect(), None
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ  # one snapshot for the whole probe
        try:
            with conn.transaction(force_rollback=True):
                yield conn
        finally:
            if self._spare is None and not conn.closed and conn.info.transaction_status == TransactionStatus.IDLE:
                self._spare = conn
            else:
                conn.close()

    @contextmanager
    def sandbox(self) -> Iterator[psycopg.Connection]:
        """Where writes happen: a transaction that always rolls back, whatever happens inside.
        Refused on read-only environments (tests that write are skipped there anyway)."""
        if self.env.read_only:
            raise PermissionError(f"environment '{self.env.name}' is read-only: sandbox() refused")
        with self.rolled_back() as conn:
            yield conn

    def close(self) -> None:
        for conn in (self._shared, self._spare):
            if conn is not None:
                conn.close()

    # -- acting as an API caller, the way PostgREST does --------------------------
    @contextmanager
    def as_staff(self, conn: psycopg.Connection, user_id, email: str | None = None) -> Iterator[None]:
        """Inside the current transaction, become a signed-in user: claims, then role."""
        claims = {"sub": str(user_id), "role": "authenticated", "aud": "authenticated"}
        if email:
            claims["email"] = email
        with _as_role(conn, "authenticated", claims):
            yield

    @contextmanager
    def as_anon(self, conn: psycopg.Connection) -> Iterator[None]:
        with _as_role(conn, "anon", {"role": "anon"}):
            yield

    @contextmanager
    def as_service_role(self, conn: psycopg.Connection) -> Iterator[None]:
        with _as_role(conn, "service_role", {"role": "service_role"}):
            yield

    # -- what a person must know about the server ----------------------------------
    def server_facts(self) -> dict:
        """Plain facts about the server, read once connected, for the terminal and the report:

        - in_recovery (bool): pg_is_in_recovery(): a hot-standby replica, or a restore that was
          never promoted; it is read-only and its data is the primary's as of its last replay;
        - replay_paused (bool | None): on a server in recovery, whether replay is paused (a
          recovery target reached with recovery_target_action = pause); None otherwise;
        - last_replayed_at (ISO-8601 str | None): the commit time of the last transaction
          replayed from WAL: on a replica, how far it has got; on a restored and promoted copy,
          the last one its recovery applied; None when the server never replayed any;
        - replay_lag_seconds (float | None): in recovery, the server's now() minus that time
          (it also grows while the primary is idle); None otherwise;
        - note (str | None): one line for a person when the server is not a plain primary.
        """
        row = self.query(
            "select pg_is_in_recovery() as in_recovery, pg_last_xact_replay_timestamp() as replayed, "
            "case when pg_is_in_recovery() then pg_is_wal_replay_paused() end as paused, "
            "extract(epoch from now() - pg_last_xact_replay_timestamp())::float8 as lag")[0]
        recovering = bool(row["in_recovery"])
        replayed = row["replayed"].isoformat() if row["replayed"] else None
        lag = round(row["lag"], 1) if recovering and row["lag"] is not None else None
        note = None
        if recovering:
            state = "replay paused" if row["paused"] else "replaying WAL"
            since = f"; last replayed transaction {replayed} ({lag:g} s before the server's now)" if replayed else ""
            note = (f"the server is in recovery ({state}): a hot-standby replica or a restore not yet promoted; "
                    f"read-only, its data trails the primary{since}")
        return {"in_recovery": recovering, "replay_paused": bool(row["paused"]) if recovering else None,
                "last_replayed_at": replayed, "replay_lag_seconds": lag, "note": note}

    # -- errors --------------------------------------------------------------------
    def _unparsable(self) -> str:
        variable = self.env.secrets.get("db_url", "the database URL")
        text = (f"[{self.env.name}] {variable} is not a valid PostgreSQL URL; expected "
                f"postgresql://USER:PASSWORD@HOST:5432/postgres")
        if self._password_may_need_encoding():
            text += f"; {self._encoding_hint(variable)}"
        return text

    @staticmethod
    def _encoding_hint(variable: str) -> str:
        return (f"if the password in {variable} holds @ # / ? or %, write them percent-encoded "
                f"({_ENCODE_HOW})")

    def _describe(self, exc: Exception) -> str:
        """One line for a failed connection: what happened and what to check."""
        text = str(exc).strip()
        low = text.lower()
        variable = self.env.secrets.get("db_url", "the database URL")
        where = f"[{self.env.name}] cannot connect to {self.location}"
        if self._misread:
            # libpq's own message names the host or database it read, pieces of the password:
            # never shown; the cause is the encoding.
            return redact(f"{where}: {variable} was misread: its password holds a character a URL must "
                          f"percent-encode, so part of it was read as the host or database; write it encoded "
                          f"({_ENCODE_HOW})", self.secrets())
        port = str(self._params.get("port") or "5432")
        if "password authentication failed" in low or "no password supplied" in low:
            hint = f"wrong password for user '{self.user or '?'}': check the password in {variable}"
            if self._password_may_need_encoding():
                # libpq decodes %XX in a password ("%41" reads "A"); '#' and '?' it takes as
                # written, but a URL must encode them too. Only a hint: the person knows the password.
                hint += f"; {self._encoding_hint(variable)}"
        elif "server does not support ssl" in low:
            mode = self._params.get("sslmode")
            asked = f"sslmode={mode} in {variable}" if mode else f"PGSSLMODE={os.environ.get('PGSSLMODE', '?')}"
            hint = (f"the server does not offer SSL, but the connection requires it ({asked}): check the host and "
                    f"port (Supabase's database ports 5432 and 6543 offer SSL); for a server of your own without "
                    f"SSL, use sslmode=prefer")
        elif any(sign in low for sign in _NOT_POSTGRES):
            hint = self._not_postgres(low, port, variable)
        elif "could not translate host name" in low or "name or service not known" in low:
            hint = f"unknown host '{self.host}': check the host in {variable}"
        elif "connection refused" in low:
            hint = f"nothing listens there: check the host and port in {variable}"
        elif "does not exist" in low and "database" in low:
            hint = f"database '{self.dbname}' does not exist there: check the database name in {variable}"
        elif "role" in low and "does not exist" in low:
            hint = f"user '{self.user or '?'}' does not exist there: check {variable}"
        elif "no such file or directory" in low:
            hint = f"no server on that socket: check {variable}"
        else:
            hint = text.splitlines()[-1].strip() if text else type(exc).__name__
        return redact(f"{where}: {hint}", self.secrets())

    def _not_postgres(self, low: str, port: str, variable: str) -> str:
        """A timeout, a connection closed during the handshake, or an answer that is not
        PostgreSQL's. libpq cannot tell a web port from a silent host (neither speaks first, and
        an HTTP server may wait for a request line for ever), so the port is asked afterwards,
        once, with a plain GET / (checks.http.web_answer: read-only, no key, bounded by its own
        short timeout)."""
        web = None
        if port.isdigit() and re.fullmatch(r"[\w.\-]+|\[?[0-9a-fA-F:]+\]?", self.host):  # one TCP host, not a socket
            web = http.web_answer(self.host.strip("[]"), int(port))
        if web:
            return (f"port {port} speaks {web}, not PostgreSQL: a web server (the project's API, a dashboard "
                    f"or a proxy), not the database; in {variable} use the database's host and port, 5432 (direct) "
                    f"or 6543 (pooler), as Project Settings > Database shows them")
        if "timeout expired" in low or "timed out" in low:
            return (f"no answer within {self.connect_timeout} s: is the host reachable "
                    f"from here (VPN, firewall, IP allow-list)?")
        if "closed the connection unexpectedly" in low:
            return (f"the server closed the connection during PostgreSQL's handshake: check that port {port} in "
                    f"{variable} is the database's (5432 direct, 6543 pooler), or see the server's log")
        return (f"port {port} answers, but not as PostgreSQL does: check the host and port in {variable} "
                f"(the database's: 5432 direct, 6543 pooler)")

    def secrets(self) -> tuple[str, ...]:
        """Values that must never be shown: the environment's secrets, this URL, its password as
        libpq read it and as it is written (they differ when an unescaped character moved the split)."""
        written = self._userinfo.split(":", 1)[1] if self._userinfo and ":" in self._userinfo else ""
        return (*self.env.secret_values(), self._url, str(self._params.get("password") or ""), written,
                unquote(written))


# What libpq says when the port answered, or hung up, or never answered, unlike PostgreSQL.
_NOT_POSTGRES = ("timeout expired", "timed out", "closed the connection unexpectedly",
                 "invalid response to ssl negotiation", "expected authentication request from server")


@contextmanager
def _as_role(conn: psycopg.Connection, role: str, claims: dict) -> Iterator[None]:
    if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        raise RuntimeError("as_staff()/as_anon() act inside a transaction: use them within sandbox()"
                           " or conn.transaction()")
    # One statement each way, as PostgREST does it: set_config('role', ..., true) is SET LOCAL ROLE.
    conn.execute("select set_config('request.jwt.claims', %s, true), set_config('role', %s, true)",
                 (json.dumps(claims), role))
    try:
        yield
    finally:
        if conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS:
            conn.execute("select set_config('role', 'none', true), set_config('request.jwt.claims', '', true)")


def call(conn: psycopg.Connection, function: str, **args: Any) -> list[dict]:
    """Calls public.<function> with named arguments, as PostgREST's /rpc/<function> does."""
    named = ", ".join(f"{name} => %({name})s" for name in args)
    return conn.execute(f"select * from public.{_ident(function)}({named})", args).fetchall()


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a plain identifier: {name!r}")
    return name


def require_ordak(target: Target) -> None:
    """A step of connecting: stops the run once, clearly, when the database is not an Ordak at
    all (no schema public, or none of its core tables), before any check reads it."""
    tables = contract()["core_tables"]
    if target.scalar("select to_regnamespace('public') is null"):
        raise SetupError(f"[{target.env.name}] {target.location} is not an Ordak database: it has no schema "
                         f"public (Ordak's tables live there); check the database URL, or restore the schema")
    present = target.scalar(
        "select count(*) from pg_class where relnamespace = 'public'::regnamespace and relname = any(%s)",
        (tables,))
    if not present:
        raise SetupError(f"[{target.env.name}] {target.location} is not an Ordak database: none of "
                         f"{', '.join(tables)} exists in schema public; check the database URL")
