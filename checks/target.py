"""Connections to the database under test.

Read-only environments are read-only at the connection level: every transaction starts
READ ONLY (psycopg's `read_only`, which works through Supabase's transaction pooler too), a
direct connection also gets `default_transaction_read_only=on`, and both are verified after
connecting. Writes happen only in sandbox(), which always rolls back.
"""

import json
from contextlib import contextmanager
from typing import Any, Iterator

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

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
        return str(self._params.get("port", "")) == POOLER_PORT

    # -- connections -------------------------------------------------------------
    def connect(self) -> psycopg.Connection:
        """A new connection (not autocommit), read-only if the environment is."""
        env = self.env
        options = {
            "application_name": APPLICATION_NAME,
            "connect_timeout": self.connect_timeout,
        }
        if not self.through_pooler:
            settings = {
                "statement_timeout": f"{int(env.statement_timeout * 1000)}",
                "lock_timeout": f"{int(env.lock_timeout * 1000)}",
                "idle_in_transaction_session_timeout": f"{int(max(env.statement_timeout, 60) * 2000)}",
            }
            if env.read_only:
                settings["default_transaction_read_only"] = "on"
            options["options"] = " ".join(f"-c {k}={v}" for k, v in settings.items())
        # Values already in the URL (say ?connect_timeout=3) win over our defaults.
        conninfo = make_conninfo(self._url, **{k: v for k, v in options.items() if k not in self._params})
        try:
            conn = psycopg.connect(conninfo, prepare_threshold=None, row_factory=dict_row)
        except psycopg.OperationalError as exc:
            raise SetupError(self._describe(exc)) from None
        conn.read_only = env.read_only
        if env.read_only:
            with conn.transaction():
                on = conn.execute("select current_setting('transaction_read_only') as on").fetchone()["on"]
            if on != "on":
                conn.close()
                raise SetupError(f"[{env.name}] {self.location}: the connection is not read-only "
                                 f"(transaction_read_only={on}); refusing to go on")
        return conn

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
        """A fresh connection in a transaction that always rolls back (read-only if the env is):
        for probes that switch roles but must leave nothing behind."""
        conn = self.connect()
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ  # one snapshot for the whole probe
        try:
            with conn.transaction(force_rollback=True):
                yield conn
        finally:
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
        if self._shared is not None:
            self._shared.close()

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
    conn.execute("select set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))
    conn.execute(f"set local role {role}")
    try:
        yield
    finally:
        if conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS:
            conn.execute("reset role")
            conn.execute("select set_config('request.jwt.claims', '', true)")


def call(conn: psycopg.Connection, function: str, **args: Any) -> list[dict]:
    """Calls public.<function> with named arguments, as PostgREST's /rpc/<function> does."""
    named = ", ".join(f"{name} => %({name})s" for name in args)
    return conn.execute(f"select * from public.{_ident(function)}({named})", args).fetchall()


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a plain identifier: {name!r}")
    return name
