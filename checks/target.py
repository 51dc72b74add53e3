"""Connections to the database under test.

Read-only environments are read-only at the connection level: every transaction starts
READ ONLY (psycopg's `read_only`), and the server is told so as well: for the session on a
direct connection, in every transaction through a pooler (checks.guards, which also keeps
the timeouts on both doors). Writes happen only in sandbox(), which always rolls back.
"""

import json
from contextlib import contextmanager
from typing import Any, Iterator

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

from checks import guards
from checks.environments import Environment
from checks.errors import SetupError, redact

APPLICATION_NAME = "ordak-verify"
POOLER_PORT = "6543"  # Supavisor in transaction mode: no session state, no prepared statements


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
        return str(self._params.get("host") or "localhost")

    @property
    def dbname(self) -> str:
        return str(self._params.get("dbname") or self._params.get("user") or "postgres")

    @property
    def location(self) -> str:
        port = self._params.get("port")
        return f"{self.host}{':' + str(port) if port else ''}/{self.dbname}"

    @property
    def connect_timeout(self) -> int:
        """Seconds to wait for the server: the URL's own connect_timeout, else the env's."""
        return max(1, round(float(self._params.get("connect_timeout") or self.env.connect_timeout)))

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
        conn.read_only = env.read_only
        failing = guards.missing(conn, wanted)
        if failing:
            conn.close()
            what = "is not read-only" if any(f.startswith("transaction_read_only=") for f in failing) \
                else "does not keep its timeouts"
            raise SetupError(f"[{env.name}] {self.location}: the connection {what} "
                             f"({', '.join(failing)}); refusing to go on")
        return conn

    def _open(self, wanted: dict[str, str]) -> guards.GuardedConnection:
        extras = {"application_name": APPLICATION_NAME, "connect_timeout": self.connect_timeout}
        extras = {k: v for k, v in extras.items() if k not in self._params}  # the URL's own values win
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

    # -- errors --------------------------------------------------------------------
    def _unparsable(self) -> str:
        variable = self.env.secrets.get("db_url", "the database URL")
        return (f"[{self.env.name}] {variable} is not a valid PostgreSQL URL; expected "
                f"postgresql://USER:PASSWORD@HOST:5432/postgres")

    def _describe(self, exc: Exception) -> str:
        """One line for a failed connection: what happened and what to check."""
        text = str(exc).strip()
        low = text.lower()
        variable = self.env.secrets.get("db_url", "the database URL")
        where = f"[{self.env.name}] cannot connect to {self.location}"
        if "password authentication failed" in low or "no password supplied" in low:
            user = self._params.get("user", "?")
            hint = f"wrong password for user '{user}': check the password in {variable}"
        elif "timeout expired" in low or "timed out" in low:
            hint = (f"no answer within {self.connect_timeout} s: is the host reachable "
                    f"from here (VPN, firewall, IP allow-list)?")
        elif "could not translate host name" in low or "name or service not known" in low:
            hint = f"unknown host '{self.host}': check the host in {variable}"
        elif "connection refused" in low:
            hint = f"nothing listens there: check the host and port in {variable}"
        elif "does not exist" in low and "database" in low:
            hint = f"database '{self.dbname}' does not exist there: check the database name in {variable}"
        elif "role" in low and "does not exist" in low:
            hint = f"user '{self._params.get('user', '?')}' does not exist there: check {variable}"
        elif "no such file or directory" in low:
            hint = f"no server on that socket: check {variable}"
        else:
            hint = text.splitlines()[-1] if text else type(exc).__name__
        return redact(f"{where}: {hint}", self.secrets())

    def secrets(self) -> tuple[str, ...]:
        """Values that must never be shown: the environment's secrets and this URL's password."""
        return (*self.env.secret_values(), self._url, str(self._params.get("password") or ""))


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
