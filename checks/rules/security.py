"""Security posture: RLS, grants, SECURITY DEFINER hygiene, views, buckets.

Like Supabase's splinter lints, each rule is one question with violating rows and a
one-line remediation. Unlike splinter, the rules also cover write grants (RLS does not stop
TRUNCATE, and a grant is the first thing a hand-fix adds) and every app schema the API roles
can reach, not only the ones PostgREST exposes today. They judge every object found, known
to the contract or not.
"""

import psycopg

from checks.connect.target import Target
from checks.contract import contract, tables
from checks.core import Check
from checks.rules import catalog, privileges

WRITE_PRIVILEGES = ("INSERT", "UPDATE", "DELETE", "TRUNCATE")

RLS_ENABLED = Check("rls_enabled", "every table the API roles can reach has row level security on",
                    "alter table <table> enable row level security; then add the policies it needs")
NO_WRITE_GRANTS = Check("no_write_grants", "anon and authenticated hold no INSERT, UPDATE, DELETE or TRUNCATE "
                        "on any table or view (writes go through SECURITY DEFINER RPCs; RLS does not stop TRUNCATE)",
                        "revoke insert, update, delete, truncate on <table> from anon, authenticated")
RLS_HAS_POLICIES = Check("rls_has_policies", "every table with RLS on has at least one policy "
                         "(none means nobody reads it through the API: policies lost in a restore)",
                         "re-apply the migration that creates the table's policies")
NO_OPEN_WRITE_POLICIES = Check("no_open_write_policies", "no policy lets anon or authenticated write "
                               "with an always-true condition",
                               "drop policy <name> on <table>; writes belong in SECURITY DEFINER RPCs")
DEFINER_SEARCH_PATH = Check("definer_search_path", "every SECURITY DEFINER function pins its search_path",
                            "alter function <function> set search_path = ''; and schema-qualify its references")
ANON_EXECUTE = Check("anon_execute", "anon cannot execute any SECURITY DEFINER function (directly or via PUBLIC)",
                     "revoke execute on function <function> from public, anon")
ANON_READ_PROBE = Check("anon_read_probe", "called as anon, the read RPC refuses or returns nothing",
                        "revoke execute from anon and keep the staff role check inside the function")
OWNER_RIGHTS_VIEWS = Check("owner_rights_views", "no view the API roles can read runs with its owner's rights "
                           "(it would bypass the RLS of the tables below it)",
                           "alter view <view> set (security_invoker = true), or revoke select from anon, authenticated")
BUCKETS_PRIVATE = Check("buckets_private", "every storage bucket that exists is private (files are read through "
                        "signed URLs; Ordak keeps none today)",
                        "update storage.buckets set public = false where id = '<bucket>'")


def _api_roles(target: Target) -> list[str]:
    return catalog.existing_roles(target, contract()["security"]["api_roles"])


def rls_enabled(target: Target):
    return RLS_ENABLED.verdict("all", contract_tables_first([
        {"object": f"{t['schema']}.{t['name']}", "problem": "row level security is off"}
        for t in catalog.relations(target, catalog.api_schemas(target)) if not t["rls"]]))


def no_write_grants(target: Target):
    rows = target.query(
        "select n.nspname as schema, c.relname as name, r.rolname as role, "
        " array(select p from unnest(%s::text[]) p where case when p in ('INSERT', 'UPDATE') "
        "   then has_any_column_privilege(r.rolname, c.oid, p) else has_table_privilege(r.rolname, c.oid, p) end"
        " ) as privileges "
        "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "cross join (select rolname from pg_roles where rolname = any(%s)) r "
        "where n.nspname = any(%s) and c.relkind in ('r', 'p', 'v', 'm', 'f') order by 1, 2, 3",
        (list(WRITE_PRIVILEGES), _api_roles(target), catalog.api_schemas(target)))
    grants: dict[str, list[str]] = {}
    for r in rows:
        if r["privileges"]:
            grants.setdefault(f"{r['schema']}.{r['name']}", []).append(f"{r['role']} may {', '.join(r['privileges'])}")
    return NO_WRITE_GRANTS.verdict("all", contract_tables_first(
        [{"object": table, "problem": "; ".join(found)} for table, found in grants.items()]))


def contract_tables_first(violations: list[dict]) -> list[dict]:
    """The tables Ordak's contract names first (the order tables at the top), then the rest:
    a long finding shows what matters most where a reader looks."""
    known = [f"public.{name}" for name in tables()]
    return sorted(violations, key=lambda v: (known.index(v["object"]) if v["object"] in known else len(known),
                                             v["object"]))


def rls_has_policies(target: Target):
    schemas = catalog.api_schemas(target)
    with_policies = {(p["schema"], p["table"]) for p in catalog.policies(target, schemas)}
    return RLS_HAS_POLICIES.verdict("all", [
        {"object": f"{t['schema']}.{t['name']}", "problem": "RLS is on but the table has no policy"}
        for t in catalog.relations(target, schemas) if t["rls"] and (t["schema"], t["name"]) not in with_policies])


def no_open_write_policies(target: Target):
    api = set(_api_roles(target)) | {"public"}
    violations = []
    for p in catalog.policies(target, catalog.api_schemas(target)):
        condition = p["with_check"] if p["cmd"] == "INSERT" else p["qual"]
        if (p["permissive"] == "PERMISSIVE" and p["cmd"] in ("INSERT", "UPDATE", "DELETE", "ALL")
                and api & set(p["roles"]) and (condition or "").strip().lower() in ("true", "(true)")):
            violations.append({"object": f"{p['schema']}.{p['table']}: policy {p['name']}",
                               "problem": f"lets {', '.join(sorted(api & set(p['roles'])))} {p['cmd']} any row "
                                          f"(condition: {condition})"})
    return NO_OPEN_WRITE_POLICIES.verdict("all", violations)


def definer_search_path(target: Target):
    return DEFINER_SEARCH_PATH.verdict("all", [
        {"object": f"{f['schema']}.{f['name']}({f['args']})", "problem": "SECURITY DEFINER with a mutable search_path"}
        for f in catalog.functions(target, catalog.app_schemas(target))
        if f["definer"] and not any(c.startswith("search_path=") for c in f["config"])])


def anon_execute(target: Target):
    if "anon" not in _api_roles(target):
        return ANON_EXECUTE.verdict("all", [])
    rows = target.query(
        "select n.nspname as schema, p.proname as name, pg_get_function_identity_arguments(p.oid) as args, "
        " has_function_privilege('anon', p.oid, 'EXECUTE') as direct "
        "from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
        "where p.prosecdef and n.nspname = any(%s) and has_schema_privilege('anon', n.oid, 'USAGE') "
        " and has_function_privilege('anon', p.oid, 'EXECUTE') order by 1, 2",
        (catalog.app_schemas(target),))
    return ANON_EXECUTE.verdict("all", [
        {"object": f"{r['schema']}.{r['name']}({r['args']})", "problem": "anon may execute this SECURITY DEFINER function"}
        for r in rows])


def anon_read_probe(target: Target, rpc: str, probe: dict):
    """Calls the read RPC as anon, the way PostgREST would, in a transaction that rolls back;
    only when anon may execute it: a role without EXECUTE is refused already (the healthy
    answer), and calling anyway would leave a `permission denied` error in the server's log."""
    found = catalog.functions(target, ["public"], [rpc])
    if not found:
        return ANON_READ_PROBE.blocked(rpc, f"public.{rpc} is missing: see test_rpc[{rpc}]")
    if "anon" not in _api_roles(target):
        return ANON_READ_PROBE.verdict(rpc, [], anon="no such role")
    if not target.scalar("select has_schema_privilege('anon', 'public', 'USAGE') and "
                         "bool_or(has_function_privilege('anon', oid, 'EXECUTE')) from unnest(%s::oid[]) oid",
                         ([f["oid"] for f in found],)):
        return ANON_READ_PROBE.verdict(rpc, [], anon="no EXECUTE: refused without a call")
    blocker = privileges.blocker(target, "SET ROLE anon")
    if blocker:
        return ANON_READ_PROBE.blocked(rpc, blocker)
    args = _probe_arguments(target, probe)
    named = ", ".join(f"{name} => %({name})s" for name in args)
    with target.rolled_back() as conn:
        try:
            with target.as_anon(conn), conn.transaction():
                rows = conn.execute(f"select * from public.{rpc}({named}) limit 5", args).fetchall()
        except psycopg.OperationalError:
            raise  # a timeout or a lost connection is not a refusal
        except psycopg.Error:
            return ANON_READ_PROBE.verdict(rpc, [], anon="may execute; the function refused")
    leaked = [r for r in rows if any(v not in (None, 0, False, "") for v in r.values())]
    return ANON_READ_PROBE.verdict(rpc, [
        {"object": f"public.{rpc}", "problem": "returned data to anon", "row": _shorten(r)} for r in leaked])


def _probe_arguments(target: Target, probe: dict) -> dict:
    store = contract()["stores"][0]
    order_id = target.scalar(f"select id from public.orders_{store} order by created_at desc limit 1") \
        if target.scalar("select to_regclass(%s) is not null", (f"public.orders_{store}",)) else f"{store}-1"
    fill = {"{store}": store, "{order_id}": order_id or f"{store}-1"}
    return {k: fill.get(v, v) if isinstance(v, str) else v for k, v in probe.items()}


def _shorten(row: dict) -> str:
    text = ", ".join(f"{k}={v}" for k, v in list(row.items())[:4])
    return text[:120]


def owner_rights_views(target: Target):
    roles = _api_roles(target)
    violations = []
    for view in catalog.relations(target, catalog.api_schemas(target), kinds="v"):
        invoker = any(o.lower() in ("security_invoker=true", "security_invoker=on", "security_invoker=1")
                      for o in view["options"] or [])
        readers = [r for r in roles if target.scalar("select has_table_privilege(%s, %s::oid, 'SELECT')",
                                                     (r, view["oid"]))]
        if not invoker and readers:
            violations.append({"object": f"{view['schema']}.{view['name']}",
                               "problem": f"runs with its owner's rights and {', '.join(readers)} may read it"})
    return OWNER_RIGHTS_VIEWS.verdict("all", violations)


def buckets_private(target: Target):
    blocker = privileges.blocker(target, "storage.buckets")
    if blocker:
        return BUCKETS_PRIVATE.blocked("all", blocker)
    found = catalog.buckets(target)
    allowed = contract()["storage"]["public_buckets_allowed"]
    return BUCKETS_PRIVATE.verdict("all", [
        {"object": f"bucket {b['id']}", "problem": "bucket is public: anyone with a file's path can read it"}
        for b in found or [] if b["public"] and b["id"] not in allowed])
