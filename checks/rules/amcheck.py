"""Physical integrity of a restored copy, with PostgreSQL's amcheck: do its pages read back sound?

Counts and comparisons say whether the rows are there; they cannot see a page that no query
happened to read. amcheck reads every page: `verify_heapam` each table's heap (and TOAST),
`bt_index_check` each B-tree index, and with `heapallindexed` it also proves that every row of
the table is found in the index. Every Ordak table and index is checked (schema public, with
their TOAST); heapallindexed for the order tables and stage_events, the tables a cut-over
stands on.

Two ways, one verdict (pages_verify):
- a rehearsed drill (--env=drill): `pg_amcheck`, bundled with the embedded PostgreSQL, runs on
  the restored cluster as its superuser, right after the restore (checks.drill.rehearsal's "integrity"
  phase). The extension is created in a schema of its own for the run and dropped after, so
  the suite sees the copy as it was restored. Its findings travel as plain data (record());
- a restored project (--env=restore): the same functions, called read-only over the suite's
  own connection, where the `amcheck` extension is installed. Where it is not, the check
  skips naming the one statement that enables it: the suite never creates it on a target.

Each corruption is a finding naming the relation, the block and amcheck's own message. Where
the block belongs to another relation (an index whose heapallindexed check read a broken heap
page), the finding names that relation too.
"""

import re
import subprocess
import tempfile
import time

import psycopg
from psycopg import sql

from checks.connect.target import Target
from checks.contract import contract, orders_table
from checks.core import Check, Verdict
from checks.errors import SetupError
from checks.reference.embedded import SUPERUSER, EmbeddedServer, binary

SCHEMA = "public"  # Ordak's tables
RUN_SCHEMA = "ordak_amcheck"  # where a drill creates the extension for its run (dropped after)
JOBS = 2  # pg_amcheck's connections: the machine's two cores
PROGRESS_EVERY = 5.0  # seconds between two progress lines of a long pg_amcheck

PAGES_VERIFY = Check(
    "pages_verify", "every page of every Ordak table and B-tree index reads back sound (amcheck: verify_heapam, "
    "bt_index_check; heapallindexed for the order tables and stage_events)",
    "do not cut over to this copy: restore again into a new project; if the same pages fail again the damage is "
    "in the backup itself: restore from an earlier point or an older backup, and tell Supabase support")
INDEX_ONLY_FIX = ("only indexes are damaged, every table reads back sound: on this copy, before cut-over, "
                  "reindex index concurrently <index>; for each index named, then run the suite again")


def heapallindexed_tables() -> list[str]:
    """The tables whose every row must be found in each of their indexes: the orders and their trail."""
    return [orders_table(store) for store in contract()["stores"]] + ["stage_events"]


# -- a rehearsed drill: pg_amcheck on the restored cluster ------------------------------------
def pg_amcheck(server: EmbeddedServer, dbname: str, progress=lambda line: None) -> dict:
    """Runs pg_amcheck on every table of schema public (and its TOAST and B-tree indexes) of
    `dbname`, as the cluster's superuser: heapallindexed for heapallindexed_tables(). Returns
    the result as plain data: {tool, relations, pages, heapallindexed, corruptions, seconds}.
    A pg_amcheck that cannot run at all (exit status 1) is a SetupError."""
    started = time.perf_counter()
    admin = server.admin_url(dbname)
    with psycopg.connect(admin, autocommit=True) as conn:
        existing = conn.execute("select extnamespace::regnamespace::text from pg_extension "
                                 "where extname = 'amcheck'").fetchone()
        if existing is None:
            conn.execute(sql.SQL("create schema {}").format(sql.Identifier(RUN_SCHEMA)))
            conn.execute(sql.SQL("create extension amcheck schema {}").format(sql.Identifier(RUN_SCHEMA)))
        tables = [r[0] for r in conn.execute(
            "select c.relname from pg_class c where c.relnamespace = %s::regnamespace and c.relkind in ('r', 'm') "
            "order by 1", (SCHEMA,))]
        files = _relation_files(conn)
    try:
        heavy = [t for t in heapallindexed_tables() if t in tables]
        light = [t for t in tables if t not in heavy]
        result = {"tool": f"pg_amcheck {_version()}", "relations": 0, "pages": 0, "heapallindexed": heavy,
                  "corruptions": []}
        for chosen, extra in ((light, []), (heavy, ["--heapallindexed"])):
            if not chosen:
                continue
            done = _run(server, dbname, [*(f'--table={SCHEMA}."{t}"' for t in chosen), *extra], progress)
            result["relations"] += done["relations"]
            result["pages"] += done["pages"]
            result["corruptions"] += [_named(c, files) for c in done["corruptions"]]
    finally:
        if existing is None:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute("drop extension amcheck")
                conn.execute(sql.SQL("drop schema {}").format(sql.Identifier(RUN_SCHEMA)))
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


def _version() -> str:
    done = subprocess.run([str(binary("pg_amcheck")), "--version"], capture_output=True, text=True)
    return done.stdout.strip().rsplit(" ", 1)[-1]


def _relation_files(conn) -> dict[str, str]:
    """base/<db>/<filenode> -> the relation's name, for schema public and its TOAST: amcheck's
    "invalid page" messages name the file, a person needs the relation."""
    return dict(conn.execute(_FILES, {"schema": SCHEMA}).fetchall())


_PROGRESS = re.compile(r"(\d+)/(\d+) relations \((\d+)%\),\s+(\d+)/(\d+) pages \((\d+)%\)")


def _run(server: EmbeddedServer, dbname: str, selection: list[str], progress) -> dict:
    """One pg_amcheck, its progress relayed every PROGRESS_EVERY seconds; its report parsed.
    The report (stdout) goes to a file, so that a long one never blocks the progress (stderr)."""
    command = [str(binary("pg_amcheck")), "-h", str(server.datadir), "-U", SUPERUSER, "-d", dbname,
               f"--jobs={JOBS}", "--progress", *selection]
    errors: list[str] = []
    last = {"relations": 0, "pages": 0}
    said = time.monotonic()
    with tempfile.TemporaryFile() as report:
        with subprocess.Popen(command, stdout=report, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                              user=server.run_as) as process:
            buffer = b""
            while True:  # progress lines end with \r, pg_amcheck's own errors with \n
                chunk = process.stderr.read1(4096)
                if not chunk:
                    break
                *lines, buffer = re.split(rb"[\r\n]", buffer + chunk)
                for line in (part.decode(errors="replace").strip() for part in lines):
                    match = _PROGRESS.search(line)
                    if match:
                        last = {"relations": int(match[2]), "pages": int(match[5])}
                        if time.monotonic() - said >= PROGRESS_EVERY and match[1] != match[2]:
                            progress(f"amcheck: {match[1]}/{match[2]} relations, {match[4]}/{match[5]} pages "
                                     f"({match[6]}%)")
                            said = time.monotonic()
                    elif line:
                        errors.append(line)
        code = process.returncode
        report.seek(0)
        text = report.read().decode(errors="replace")
    if code not in (0, 2):  # 2: corruption found; 1: pg_amcheck could not do its work
        why = next((e.split("error:", 1)[1].strip() for e in errors if "error:" in e), None)
        raise SetupError(f"pg_amcheck failed (exit status {code}): {why or (errors or ['?'])[-1]}")
    return {**last, "corruptions": parse(text)}


_HEADER = re.compile(r'^(heap table|btree index) "([^"]+)"(?:, block (\d+))?(?:, offset (\d+))?'
                     r'(?:, attribute (\d+))?:$')
_BLOCK_OF_FILE = re.compile(r'block (\d+) of relation "?([^"\s]+)"?')


def parse(report: str) -> list[dict]:
    """pg_amcheck's report (stdout) -> one row per corruption: {kind, relation, block, offset,
    attribute, message}. A header line names the relation (`heap table "db.schema.rel", block
    3, offset 2:`), the indented lines under it are amcheck's message."""
    found: list[dict] = []
    current = None
    for line in report.splitlines():
        header = _HEADER.match(line)
        if header:
            kind, name, block, offset, attribute = header.groups()
            current = {"kind": kind, "relation": name.split(".", 1)[1],
                       "block": int(block) if block is not None else None,
                       "offset": int(offset) if offset is not None else None,
                       "attribute": int(attribute) if attribute is not None else None, "message": ""}
            found.append(current)
        elif current is not None and line.startswith("    ") and not line.strip().startswith(("query was:", "LOCATION:")):
            text = re.sub(r"^(ERROR|DETAIL|HINT):\s+", "", line.strip())
            text = re.sub(r"^[0-9A-Z]{5}:\s+", "", text)  # a SQLSTATE, in verbose mode
            current["message"] = f"{current['message']} {text}".strip()
        elif not line.startswith("    "):
            current = None
    return found


def _named(corruption: dict, files: dict[str, str]) -> dict:
    """The block and its relation, from the message where the header gave no block (an
    "invalid page" error names the file it read, which may be another relation's)."""
    found = dict(corruption)
    match = _BLOCK_OF_FILE.search(found["message"])
    if match:
        if found["block"] is None:
            found["block"] = int(match[1])
        owner = files.get(match[2])
        if owner and owner != found["relation"]:
            found["in_relation"] = owner
            found["block"] = int(match[1])
    return found


# -- a restored project: the same functions over the suite's connection, read-only ------------
def installed(target: Target) -> dict | None:
    """{schema, version, executable} of the amcheck extension, None when it is not installed."""
    row = target.query(
        "select n.nspname as schema, e.extversion as version, "
        " coalesce((select bool_and(has_function_privilege(p.oid, 'EXECUTE')) from pg_proc p "
        "   where p.pronamespace = e.extnamespace and p.proname in ('verify_heapam', 'bt_index_check')), false) "
        "   as executable "
        "from pg_extension e join pg_namespace n on n.oid = e.extnamespace where e.extname = 'amcheck'")
    return row[0] if row else None


def enabling_statement(target: Target) -> str:
    """The one statement that enables amcheck on this database (Supabase keeps extensions in
    schema `extensions`)."""
    if target.scalar("select to_regnamespace('extensions') is not null"):
        return "create extension amcheck with schema extensions;"
    return "create extension amcheck;"


# Every table of schema public and its TOAST table: the heaps verify_heapam reads.
_HEAPS = ("select c.oid, n.nspname || '.' || c.relname as name, c.relname, "
          " pg_relation_size(c.oid) / current_setting('block_size')::int as pages "
          "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
          "where (n.nspname = %(schema)s and c.relkind in ('r', 'm')) "
          "   or c.oid in (select reltoastrelid from pg_class where relnamespace = %(schema)s::regnamespace) "
          "order by 2")
# Their valid B-tree indexes, with the table each one indexes.
_INDEXES = ("select i.indexrelid as oid, n.nspname || '.' || ic.relname as name, t.relname as table_name, "
            " pg_relation_size(i.indexrelid) / current_setting('block_size')::int as pages "
            "from pg_index i join pg_class t on t.oid = i.indrelid join pg_class ic on ic.oid = i.indexrelid "
            "join pg_namespace n on n.oid = ic.relnamespace join pg_am am on am.oid = ic.relam "
            "where am.amname = 'btree' and i.indisvalid and i.indisready and i.indislive "
            "and (t.relnamespace = %(schema)s::regnamespace "
            "     or t.oid in (select reltoastrelid from pg_class where relnamespace = %(schema)s::regnamespace)) "
            "order by 2")
_FILES = ("select pg_relation_filepath(c.oid) as path, n.nspname || '.' || c.relname as name "
          "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
          "where n.nspname in (%(schema)s, 'pg_toast') and pg_relation_filepath(c.oid) is not null")


def check_over_sql(target: Target) -> dict:
    """verify_heapam on every table of schema public and its TOAST, bt_index_check on each of
    their valid B-tree indexes (heapallindexed for heapallindexed_tables()), each in a
    savepoint of one read-only transaction, so that a broken page is a finding and the rest is
    still checked. The same plain data as pg_amcheck()."""
    started = time.perf_counter()
    ext = installed(target)
    schema = sql.Identifier(ext["schema"])
    heavy = set(heapallindexed_tables())
    conn = target.conn
    corruptions: list[dict] = []
    try:
        heaps = conn.execute(_HEAPS, {"schema": SCHEMA}).fetchall()
        indexes = conn.execute(_INDEXES, {"schema": SCHEMA}).fetchall()
        files = {r["path"]: r["name"] for r in conn.execute(_FILES, {"schema": SCHEMA}).fetchall()}
        for heap in heaps:
            try:
                with conn.transaction():
                    rows = conn.execute(sql.SQL("select blkno, offnum, attnum, msg from {}.verify_heapam("
                                                "relation => %s::oid::regclass, on_error_stop => false, "
                                                "check_toast => true)").format(schema), (heap["oid"],)).fetchall()
                corruptions += [{"kind": "heap table", "relation": heap["name"], "block": r["blkno"],
                                 "offset": r["offnum"], "attribute": r["attnum"], "message": r["msg"]} for r in rows]
            except _CORRUPT as exc:
                corruptions.append(_named(_failed("heap table", heap["name"], exc), files))
        for index in indexes:
            try:
                with conn.transaction():
                    conn.execute(sql.SQL("select {}.bt_index_check(index => %s::oid::regclass, heapallindexed => %s)")
                                 .format(schema), (index["oid"], index["table_name"] in heavy))
            except _CORRUPT as exc:
                corruptions.append(_named(_failed("btree index", index["name"], exc), files))
    finally:
        conn.rollback()
    return {"tool": f"amcheck {ext['version']} (verify_heapam, bt_index_check) in schema {ext['schema']}",
            "relations": len(heaps) + len(indexes), "pages": sum(r["pages"] for r in [*heaps, *indexes]),
            "heapallindexed": [h["relname"] for h in heaps if h["relname"] in heavy], "corruptions": corruptions,
            "seconds": round(time.perf_counter() - started, 2)}


def _failed(kind: str, relation: str, exc: psycopg.Error) -> dict:
    diag = exc.diag
    text = diag.message_primary or str(exc).strip().splitlines()[0]
    if diag.message_detail:
        text += f" ({diag.message_detail})"
    return {"kind": kind, "relation": relation, "block": None, "offset": None, "attribute": None, "message": text}


# What a broken page raises: XX001 data_corrupted, XX002 index_corrupted (class XX), and an I/O
# error reading the file. A timeout or a lost connection is no finding: those propagate.
_CORRUPT = (psycopg.errors.DataCorrupted, psycopg.errors.IndexCorrupted, psycopg.errors.InternalError_,
            psycopg.errors.IoError)


# -- the verdict --------------------------------------------------------------------------
def pages_verify(result: dict) -> Verdict:
    """amcheck's result (pg_amcheck() or check_over_sql()) as the verdict: one finding per
    corruption, naming the relation, the block and amcheck's message."""
    violations = []
    for c in sorted(result["corruptions"], key=lambda c: (c["relation"], c.get("block") or 0, c.get("offset") or 0)):
        where = ", ".join(f"{k} {c[k]}" for k in ("block", "offset", "attribute") if c.get(k) is not None)
        if c.get("in_relation"):
            where = f"reading block {c['block']} of {c['in_relation']}"
        violations.append({"object": c["relation"],
                           "problem": f"{c['kind']}{', ' + where if where else ''}: {c['message'] or 'corrupt'}"})
    heaps = [c for c in result["corruptions"] if c["kind"] == "heap table" or c.get("in_relation")]
    fix = INDEX_ONLY_FIX if violations and not heaps else None
    return PAGES_VERIFY.verdict(
        SCHEMA, violations, fix=fix, amcheck=result["tool"], relations_checked=result["relations"],
        **({"pages_checked": result["pages"]} if result.get("pages") else {}),
        heapallindexed=", ".join(result["heapallindexed"]), corruptions=len(result["corruptions"]),
        amcheck_seconds=result["seconds"])


def pages_verify_restored(target: Target) -> Verdict:
    """A restored project: read-only amcheck where the extension is installed; a skip naming the
    statement that enables it where it is not (the suite never creates it on a target)."""
    ext = installed(target)
    if ext is None:
        return PAGES_VERIFY.blocked(SCHEMA, f"the amcheck extension is not installed on {target.location}, so its "
                                            f"pages cannot be verified; the suite never creates it on a target: to "
                                            f"verify them, run once as postgres: {enabling_statement(target)}")
    if not ext["executable"]:
        role = target.scalar("select current_user")
        lacking = target.scalar(
            "select string_agg(p.oid::regprocedure::text, ', ' order by 1) from pg_proc p "
            "where p.pronamespace = %s::regnamespace and p.proname in ('verify_heapam', 'bt_index_check') "
            "and not has_function_privilege(p.oid, 'EXECUTE')", (ext["schema"],))
        return PAGES_VERIFY.blocked(SCHEMA, f"the connected role ({role}) may not execute amcheck's functions: as "
                                            f"the extension's owner, grant execute on function {lacking} to {role}")
    return pages_verify(check_over_sql(target))

