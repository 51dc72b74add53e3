"""Schema sanity: the objects the contract names exist and look as it says, and the general
rules a restore can break (invalid indexes, unvalidated constraints, disabled triggers,
sequences behind their data) hold for every object, known to the contract or not."""

import re

from psycopg import sql

from checks.connect.target import Target
from checks.contract import advisory, contract, runbook_says
from checks.core import Check
from checks.rules import catalog, privileges

TABLE = Check("table", "the table exists and has the contract's columns, types and keys",
              "restore the table from the migrations in Git (or the backup) before trusting this database")
ENUM = Check("enum", "the enum has exactly the contract's labels, in order",
             "recreate the enum with the contract's labels: stages are compared by this order")
RPC = Check("rpc", "the RPC exists, is SECURITY DEFINER, and has the contract's arguments and result",
            "re-apply the migration that defines it: callers pass named arguments of exactly this shape")
EXTENSION = Check("extension", "the extension is installed",
                  "create extension ...; from the dashboard (Database > Extensions) or a migration")
REALTIME_PUBLICATION = Check("realtime_publication", "the realtime publication exists",
                             "create publication supabase_realtime; then add Ordak's tables to it")
REALTIME_TABLE = Check("realtime_table", "the table is in the realtime publication (the live queue needs it)",
                       "alter publication supabase_realtime add table <table>")
CRON_JOB = Check("cron_job", "the pg_cron job exists and is active (on a restored copy, a job that makes HTTP calls "
                 "may be paused until cut-over)",
                 "cron.schedule(...) it again, or cron.alter_job(<jobid>, active := true)")
INDEXES_VALID = Check("indexes_valid", "no index is invalid (a failed CREATE INDEX CONCURRENTLY or a broken restore)",
                      "reindex index concurrently <index> (or drop and recreate it)")
CONSTRAINTS_VALIDATED = Check("constraints_validated", "no constraint is NOT VALID: old rows were never checked",
                              "alter table <table> validate constraint <name>, after fixing the rows it rejects")
TRIGGERS_ENABLED = Check("triggers_enabled", "no user trigger is disabled (restores with --disable-triggers leave them off)",
                         "alter table <table> enable trigger <name>")
SEQUENCES_AHEAD = Check("sequences_ahead", "every serial/identity sequence is ahead of its column's maximum "
                        "(else the next insert collides: the classic post-restore primary-key error)",
                        "select setval('<sequence>', (select max(<column>) from <table>))")


def _table_exists(target: Target, table: str) -> bool:
    return bool(target.scalar("select to_regclass(%s) is not null", (f"public.{table}",)))


def table(target: Target, name: str, spec: dict):
    qualified = f"public.{name}"
    if not _table_exists(target, name):
        return TABLE.verdict(name, [{"object": qualified, "problem": "table is missing"}])
    # Whether the connected role can read it is test_connected_role_privileges' question: a
    # table that is there is never "missing" because this role cannot read it.
    violations = []
    found = catalog.columns(target, "public", name)
    for column, expected in spec.get("columns", {}).items():
        want_type, want_not_null = _parse_column(expected)
        have = found.get(column)
        if have is None:
            violations.append({"object": f"{qualified}.{column}", "problem": "column is missing"})
        elif want_type and not _same_type(have["type"], want_type):
            violations.append({"object": f"{qualified}.{column}", "problem": "column has the wrong type",
                               "expected": want_type, "found": have["type"]})
        elif want_not_null and not have["not_null"]:
            violations.append({"object": f"{qualified}.{column}", "problem": "column allows nulls"})
    keys = catalog.keys(target, "public", name)
    violations += _key_problems(qualified, keys, spec.get("primary_key"), spec.get("unique", []))
    notes = [{**n, "note": "the reference's key; SYSTEM.md does not document it"}
             for n in _key_problems(qualified, keys, advisory()["primary_keys"].get(name), [])]
    return TABLE.verdict(name, violations, notes=notes)


def _key_problems(qualified: str, keys: list[dict], primary: list[str] | None, uniques: list[list[str]]) -> list[dict]:
    problems = []
    if primary and not any(k["primary"] and k["columns"] == primary for k in keys):
        problems.append({"object": qualified, "problem": f"no primary key on ({', '.join(primary)})"})
    for unique in uniques:
        if not any(k["columns"] == unique and k["valid"] for k in keys):
            problems.append({"object": qualified, "problem": f"no unique key on ({', '.join(unique)})"})
    return problems


def _parse_column(expected: str) -> tuple[str, bool]:
    """"uuid not null" -> ("uuid", True); "" (any type) -> ("", False)."""
    not_null = expected.endswith("not null")
    return expected.removesuffix("not null").strip(), not_null


def _same_type(found: str, expected: str) -> bool:
    # "numeric" in the contract accepts any precision; "numeric(12,2)" only that one.
    return found == expected or ("(" not in expected and found.startswith(expected + "("))


def enum(target: Target, name: str, expected: list[str]):
    found = catalog.enum_labels(target, "public", name)
    qualified = f"public.{name}"
    if not found:
        return ENUM.verdict(name, [{"object": qualified, "problem": "type is missing"}])
    violations = [{"object": f"{qualified}.{label}", "problem": "label is missing"}
                  for label in expected if label not in found]
    violations += [{"object": f"{qualified}.{label}", "problem": "label is not in the contract"}
                   for label in found if label not in expected]
    common_found = [label for label in found if label in expected]
    common_expected = [label for label in expected if label in found]
    if common_found != common_expected:
        violations.append({"object": qualified, "problem": "labels are out of order",
                           "expected": ", ".join(common_expected), "found": ", ".join(common_found)})
    return ENUM.verdict(name, violations)


def rpc(target: Target, name: str, spec: dict):
    qualified = f"public.{name}"
    found = catalog.functions(target, ["public"], [name])
    if not found:
        problem = f"function is missing; {runbook_says(spec['runbook'])}" if "runbook" in spec else "function is missing"
        return RPC.verdict(name, [{"object": qualified, "problem": problem}])
    want_args = _squeeze(spec["args"])
    match = next((f for f in found if _squeeze(f["args"]) == want_args), None)
    if match is None:
        return RPC.verdict(name, [{"object": f"{qualified}({f['args']})", "problem": "signature differs from the contract",
                                   "expected": f"({spec['args']})"} for f in found])
    violations = []
    where = f"{qualified}({match['args']})"
    if "returns" in spec and _squeeze(match["returns"]) != _squeeze(spec["returns"]):
        violations.append({"object": where, "problem": "returns the wrong type",
                           "expected": spec["returns"], "found": match["returns"]})
    columns = match["out_columns"] or match["composite_columns"]
    missing = [c for c in spec.get("returns_columns", []) if c not in columns]
    if "returns_columns" in spec and not columns:
        violations.append({"object": where, "problem": "does not return rows with columns", "found": match["returns"]})
    elif missing:
        violations.append({"object": where, "problem": f"result lacks column(s) {', '.join(missing)}"})
    if spec.get("returns_set") is False and match["set_returning"]:
        violations.append({"object": where, "problem": "returns a set; documented: one row (a composite), not a set",
                           "found": match["returns"]})
    if not match["definer"]:
        violations.append({"object": where, "problem": "is SECURITY INVOKER; Ordak's RPCs are SECURITY DEFINER"})
    return RPC.verdict(name, violations)


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip()).replace("( ", "(").replace(" )", ")").lower()


def extension(target: Target, name: str):
    present = name in catalog.extensions(target)
    return EXTENSION.verdict(name, [] if present else [{"object": name, "problem": "extension is not installed"}])


def realtime_publication(target: Target):
    publication = contract()["realtime"]["publication"]
    exists = catalog.publication_tables(target, publication) is not None
    return REALTIME_PUBLICATION.verdict(publication, [] if exists else [
        {"object": publication, "problem": "publication is missing"}])


def realtime_table(target: Target, table: str):
    publication = contract()["realtime"]["publication"]
    members = catalog.publication_tables(target, publication)
    if members is None:
        return REALTIME_TABLE.blocked(table, f"{publication} is missing: see test_realtime_publication")
    missing = catalog.missing_table(target, table)
    if missing:
        return REALTIME_TABLE.blocked(table, missing)
    problem = [] if f"public.{table}" in members else [
        {"object": f"public.{table}", "problem": f"table is not in publication {publication}"}]
    return REALTIME_TABLE.verdict(table, problem)


def cron_job(target: Target, name: str):
    blind = privileges.blocker(target, "cron.job")
    if blind:  # never "schedule it again" for a job this role cannot see: it would run twice
        return CRON_JOB.blocked(name, blind)
    jobs = catalog.cron_jobs(target)
    if jobs is None:
        return CRON_JOB.blocked(name, "pg_cron is not installed: see test_extension[pg_cron]")
    found = [j for j in jobs if j["name"] == name]
    if not found:
        return CRON_JOB.verdict(name, [{"object": f"cron job {name}", "problem": "job is missing"}])
    schedule = advisory()["cron_schedules"].get(name)
    # A restored copy must not call Shopify: its HTTP jobs are paused first, until it becomes
    # production (see checks/rules/recovery.py, no_http_cron_jobs). Anywhere else a paused job is a finding.
    paused = [job for job in found if not job["active"] and job["http"] and target.env.restore_target]
    violations = [{"object": f"cron job {name}", "problem": "job is inactive"}
                  for job in found if not job["active"] and job not in paused]
    notes = [{"object": f"cron job {name}", "problem": f"runs on '{job['schedule']}', the reference on '{schedule}'",
              "note": "the schedule is the reference's; SYSTEM.md gives only its period"}
             for job in found if schedule and job["schedule"] != schedule]
    facts = {"paused_until_cut_over": f"{paused[0]['http']} (a restored copy)"} if paused else {}
    return CRON_JOB.verdict(name, violations, notes=notes, **facts)


def indexes_valid(target: Target):
    return INDEXES_VALID.verdict("all", [
        {"object": f"{r['schema']}.{r['index']}", "problem": f"index on {r['table']} is invalid"}
        for r in catalog.invalid_indexes(target)])


def constraints_validated(target: Target):
    kinds = {"c": "check", "f": "foreign key", "n": "not null", "u": "unique", "p": "primary key"}
    return CONSTRAINTS_VALIDATED.verdict("all", [
        {"object": f"{r['schema']}.{r['table']}.{r['name']}",
         "problem": f"{kinds.get(r['type'], r['type'])} constraint is NOT VALID"}
        for r in catalog.unvalidated_constraints(target)])


def triggers_enabled(target: Target):
    return TRIGGERS_ENABLED.verdict("all", [
        {"object": f"{t['schema']}.{t['table']}.{t['name']}", "problem": "trigger is disabled"}
        for t in catalog.triggers(target, catalog.app_schemas(target)) if t["enabled"] == "D"])


def sequences_ahead(target: Target):
    violations, unreadable = [], []
    for s in catalog.owned_sequences(target):
        where = f"{s['schema']}.{s['table']}.{s['column']}"
        if not s["readable"]:
            unreadable.append(where)
            continue
        top = target.scalar(sql.SQL("select max({}) from {}.{}").format(
            sql.Identifier(s["column"]), sql.Identifier(s["schema"]), sql.Identifier(s["table"])))
        state = target.query(f"select last_value, is_called from {s['sequence']}")[0]
        next_value = state["last_value"] + s["increment"] if state["is_called"] else state["last_value"]
        if top is not None and s["increment"] > 0 and next_value <= top:
            violations.append({"object": s["sequence"], "problem": f"next value {next_value} is not above max({where}) = {top}"})
    return SEQUENCES_AHEAD.verdict("all", violations, unreadable=unreadable)
