"""The guards every connection keeps, whatever door it comes through.

Every connection has a statement timeout, a lock timeout and an idle-in-transaction timeout,
and a read-only environment's connections refuse writes. On a direct connection these are
session settings sent at startup, after the URL's own `options=` so that they win over it.
Through a transaction-mode pooler (Supabase's Supavisor on port 6543, PgBouncer) session
settings do not persist from one transaction to the next, and some poolers refuse startup
options outright: there every transaction begins by setting them (`set_config(..., true)`,
which is SET LOCAL). Whichever way, the guards are verified on each new connection, in a
plain BEGIN, so that a guard that went missing stops the run instead of going unnoticed.
"""

import psycopg
from psycopg import pq

from checks.connect.environments import Environment

# What a pooler answers when it will not pass startup options on (PgBouncer:
# "unsupported startup parameter: options").
_REFUSED = ("unsupported", "options")


def settings(env: Environment) -> dict[str, str]:
    """The session settings the environment asks for, as PostgreSQL stores them (ms, on)."""
    wanted = {"statement_timeout": _ms(env.statement_timeout), "lock_timeout": _ms(env.lock_timeout),
              "idle_in_transaction_session_timeout": _ms(env.idle_timeout)}
    if env.read_only:
        wanted["default_transaction_read_only"] = "on"
    return wanted


def _ms(seconds: float) -> str:
    return str(round(seconds * 1000))  # environments.py refuses values that round to 0 (no timeout)


def startup_options(url_options: str | None, wanted: dict[str, str]) -> str:
    """The URL's own options, then ours: PostgreSQL applies them in order, so ours win."""
    ours = " ".join(f"-c {name}={value}" for name, value in wanted.items())
    return f"{url_options} {ours}" if url_options else ours


def per_transaction(wanted: dict[str, str]) -> bytes:
    """One statement that sets the guards for the current transaction only."""
    local = {name: value for name, value in wanted.items() if name != "default_transaction_read_only"}
    if "default_transaction_read_only" in wanted:
        local["transaction_read_only"] = "on"  # a second guard, beside psycopg's BEGIN READ ONLY
    return ("select " + ", ".join(f"set_config('{name}', '{value}', true)"
                                  for name, value in local.items())).encode()


def refused_options(exc: psycopg.OperationalError) -> bool:
    low = str(exc).lower()
    return all(word in low for word in _REFUSED)


class GuardedConnection(psycopg.Connection):
    """A connection that begins every transaction with `guard` (when set).

    psycopg opens every transaction the same way, whether a query starts it or
    transaction() does: _exec_command(_get_tx_start_command()). The guard follows that
    BEGIN there, so no code path can open a transaction without it. verify() proves it on
    every new connection: if a psycopg release changed this, connecting would fail loudly."""

    guard: bytes | None = None

    def _exec_command(self, command, result_format=pq.Format.TEXT):
        result = yield from super()._exec_command(command, result_format)
        if self.guard and command == self._get_tx_start_command():
            yield from super()._exec_command(self.guard)
        return result


def in_effect(conn: psycopg.Connection, names) -> dict[str, str]:
    """The current values of settings (timeouts in ms, like settings()), in a transaction
    that rolls back: a plain BEGIN, psycopg's READ ONLY set aside, to see what the server
    does. (current_setting(), not pg_settings: that view costs 5 ms a connection.)"""
    read_only, conn.read_only = conn.read_only, None
    try:
        with conn.transaction(force_rollback=True):
            rows = conn.execute(
                "select name, case when name like '%%timeout' then "
                " (extract(epoch from current_setting(name)::interval) * 1000)::bigint::text "
                " else current_setting(name) end as setting "
                "from unnest(%s::text[]) name", (list(names),)).fetchall()
    finally:
        conn.read_only = read_only
    return {row["name"]: row["setting"] for row in rows}


def missing(conn: psycopg.Connection, wanted: dict[str, str]) -> list[str]:
    """The guards that do not hold in a new transaction: `name=found (wanted value)`."""
    expected = {name: value for name, value in wanted.items() if name != "default_transaction_read_only"}
    if "default_transaction_read_only" in wanted:
        expected["transaction_read_only"] = "on"
    found = in_effect(conn, expected)
    return [f"{name}={found.get(name)} (wanted {value})" for name, value in expected.items()
            if found.get(name) != value]


# -- a guard that stopped a query, said in one line -------------------------------------
_STOPPED = {
    # sqlstate: (words in the message, the setting, what happened)
    "57014": ("statement timeout", "statement_timeout", "a query ran longer than"),
    "55P03": ("lock timeout", "lock_timeout", "a query waited for a lock longer than"),
    "25P03": ("idle-in-transaction", "idle_in_transaction_timeout",
              "the connection sat idle inside a transaction longer than"),
}


def stopped_by_guard(exc: BaseException, env: Environment) -> str | None:
    """The one-line failure for a query a timeout stopped, naming the setting to raise;
    None for any other error."""
    if not isinstance(exc, psycopg.Error) or exc.sqlstate not in _STOPPED:
        return None
    words, setting, what = _STOPPED[exc.sqlstate]
    if words not in str(exc).lower():
        return None  # e.g. a query cancelled by a person (pg_cancel_backend): not a guard
    seconds = {"statement_timeout": env.statement_timeout, "lock_timeout": env.lock_timeout,
               "idle_in_transaction_timeout": env.idle_timeout}[setting]
    return (f"{what} {setting} ({seconds:g} s) on environment '{env.name}' and was stopped by the server; "
            f"if the database is just slow or busy, raise {setting} under [{env.name}] in environments.toml")
