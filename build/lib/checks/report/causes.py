"""A check that raised, told the way a person acts on it: the cause first (the database's
SQLSTATE and message, the object it names), then a fix line, and only then the traceback.

A check that finds violations fails with its verdict; this is for the rest: a query refused,
an object that vanished mid-run, a defect of the suite. The cause travels as plain data to
every output (terminal, JUnit, HTML, JSON summary, postmortem draft)."""

import re

import psycopg

# What a person does about an error, by SQLSTATE class (the first two characters) or code.
_FIXES = {
    "42501": ("the role the query ran as lacks this privilege. If the check calls the app as an API role "
              "(anon, authenticated), the app's own grants changed: restore them with the migration that made "
              "them; if it ran as the connected role, connect as a role that has it "
              "(see test_connected_role_privileges)"),
    "42P01": "the object is gone or renamed: see the schema checks (test_table, test_rpc), which name what is missing",
    "42883": "the function is gone or has another signature: see test_rpc, which names what differs",
    "42703": "the column is gone or renamed: see test_table, which names what differs",
    "25006": "the check tried to write on a read-only connection: a defect of the suite; report it with the traceback",
    "40001": "the query met a concurrent change (serialization failure): run again",
    "40P01": "the query met a concurrent change (deadlock): run again",
    "53": "the server ran out of a resource (disk, memory, connections): free it, then run again",
    "08": "the connection broke mid-run: check the server and the network, then run again",
    "57": "the server stopped the query (shutdown, crash, admin): check the server, then run again",
    "XX": "the server reports internal corruption or a bug: stop, take a copy, and investigate before trusting this database",
}
DEFAULT_DB_FIX = "read the database's message above; it names what it refused"
DEFAULT_FIX = "an error of the suite itself, or an answer it did not expect: report it with the traceback below"
# "permission denied for function get_queue", "relation "x" does not exist", ...
_OBJECT = re.compile(r"(?:for (?:table|function|schema|sequence|view|relation|column) |"
                     r"(?:relation|function|column|schema) )\"?([\w.]+(?:\([^)]*\))?)\"?")


def cause(error: BaseException) -> dict | None:
    """{sqlstate, message, object, fix, line} for an error a check raised; None for a failed
    assertion (pytest's own report says more). pytest's outcomes (skip, fail) are no Exception
    and never come here."""
    if isinstance(error, AssertionError) or not isinstance(error, Exception):
        return None
    if isinstance(error, psycopg.Error):
        diag, text = error.diag, str(error).strip()
        message = diag.message_primary or (text.splitlines()[0] if text else type(error).__name__)
        sqlstate = error.sqlstate or ""
        found = _OBJECT.search(message)
        named = ".".join(filter(None, [diag.schema_name, diag.table_name, diag.column_name])) or \
            (found.group(1) if found else None)
        fix = _FIXES.get(sqlstate) or _FIXES.get(sqlstate[:2]) or DEFAULT_DB_FIX
        head = f"SQLSTATE {sqlstate} ({type(error).__name__}): {message}" if sqlstate else \
            f"{type(error).__name__}: {message}"
        extra = [part for part in (diag.message_detail, diag.message_hint) if part]
        return {"sqlstate": sqlstate, "message": message, "object": named, "fix": fix,
                "line": head + (f" [{'; '.join(extra)}]" if extra else "")}
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return {"sqlstate": None, "message": text, "object": None, "fix": DEFAULT_FIX,
            "line": f"{type(error).__name__}: {text}" if text else type(error).__name__}


def lead(found: dict) -> str:
    """The cause's lines, as they open a failure's text."""
    lines = [f"cause: {found['line']}"]
    if found["object"]:
        lines.append(f"  object: {found['object']}")
    lines.append(f"  fix: {found['fix']}")
    return "\n".join(lines)
