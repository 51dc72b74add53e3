"""What the connected role may read and do, asked of the catalog once, before the checks
that stand on it: SELECT on every table the checks read, every pg_cron job visible, the API
roles it can act as (SET ROLE), and, where the environment is writable, the rows the write
probes create.

A role that lacks one is told so once, per missing privilege, by
test_connected_role_privileges; the checks that stand on it skip and point there. So a
table that is there is never reported missing ("restore the table"), and a pg_cron job the
role cannot see is never reported missing ("schedule it again", which would schedule it twice).

The connected role needs no EXECUTE of its own: the suite calls every RPC as the role
PostgREST would switch to (anon, authenticated, service_role); whether those may EXECUTE
is what the security and queue checks judge, about the app.
"""

from functools import cache

from checks.connect.target import Target
from checks.contract import contract, orders_table
from checks.core import Check

PRIVILEGES = Check("connected_role_privileges", "the connected role can read every table the checks read, see "
                   "every pg_cron job, and act as the API roles the probes call as",
                   "connect as a role that has them: postgres, the app's owner (on a read-only environment the "
                   "suite makes the connection read-only itself); or grant the one privilege named to this role")
POINTER = "see test_connected_role_privileges"
# The API roles a probe switches to, the way PostgREST does (SYSTEM.md).
ACTS_AS = ("anon", "authenticated", "service_role")
# Platform tables some checks read, beside the contract's own.
PLATFORM_TABLES = ("supabase_migrations.schema_migrations", "storage.buckets", "storage.objects", "cron.job")
# What the write probes insert as the connected role (rpc.create_actors): a staff user per role.
WRITTEN = ("auth.users", "public.staff_shared")


@cache  # once per target: privileges do not change under a run
def missing(target: Target) -> tuple[dict, ...]:
    """One row per missing privilege: {object, privilege, problem}. Objects that do not
    exist are not here: test_table and friends report those."""
    # The tables whose rows the checks read: the orders and every table the contract specifies.
    tables = [f"public.{orders_table(s)}" for s in contract()["stores"]] + \
        [f"public.{t}" for t in contract()["tables"]] + list(PLATFORM_TABLES)
    written = list(WRITTEN) if not target.env.read_only else []
    found = [{"object": name, "privilege": "SELECT", "problem": f"cannot read {name} (no SELECT)"}
             for name in _lacking(target, tables, "SELECT")]
    found += [{"object": name, "privilege": "INSERT",
               "problem": f"cannot insert into {name} the staff users the write probes act as (no INSERT)"}
              for name in _lacking(target, written, "INSERT")]
    cron = _cron_blind_spot(target) if "cron.job" not in {f["object"] for f in found} else None
    if cron:
        found.append({"object": "cron.job", "privilege": "see every job", "problem": cron})
    # SET ROLE needs the SET option from PostgreSQL 16 on; before, membership is enough.
    option = "SET" if int(target.scalar("show server_version_num")) >= 160000 else "MEMBER"
    rows = target.query("select rolname, pg_has_role(current_user, oid, %s) as granted from pg_roles "
                        "where rolname = any(%s) order by rolname", (option, list(ACTS_AS)))
    found += [{"object": f"SET ROLE {r['rolname']}", "privilege": "SET ROLE",
               "problem": f"cannot act as {r['rolname']}: the probes that call RPCs as {r['rolname']} skip"}
              for r in rows if not r["granted"]]
    return tuple(found)


def _lacking(target: Target, names: list[str], privilege: str) -> list[str]:
    """Which of the existing relations `names` (schema.table) the role lacks `privilege` on,
    schema USAGE included. From pg_class, not to_regclass(): naming a relation in a schema the
    role may not use is itself refused."""
    return [r["name"] for r in target.query(
        "select n.nspname || '.' || c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname || '.' || c.relname = any(%s) "
        "and not (has_schema_privilege(n.oid, 'USAGE') and has_table_privilege(c.oid, %s)) order by 1",
        (names, privilege))]


def _cron_blind_spot(target: Target) -> str | None:
    """pg_cron shows each user only its own jobs (cron.job is row-level secured by username).
    Decided from the role and the table, never from which jobs happen to be visible: the jobs
    belong to the app's owner (postgres on Supabase), so any other role without BYPASSRLS sees
    none of them, and an empty list would read as "every job is missing"."""
    row = next(iter(target.query(
        "select c.relrowsecurity as secured, r.rolsuper or r.rolbypassrls as bypasses, current_user as me, "
        " coalesce((select pg_get_userbyid(o.relowner) from pg_class o where o.relname = %s "
        "           and o.relnamespace = (select oid from pg_namespace where nspname = 'public')), 'postgres') as owner "
        "from pg_class c, pg_roles r where c.relname = 'job' "
        " and c.relnamespace = (select oid from pg_namespace where nspname = 'cron') and r.rolname = current_user",
        (orders_table(contract()["stores"][0]),))), None)
    if row is None or not row["secured"] or row["bypasses"] or row["me"] == row["owner"]:
        return None
    return (f"sees only its own pg_cron jobs in cron.job (row-level secured by username), not those of "
            f"{row['owner']}, who owns the app and its jobs")


def connected_role(target: Target):
    role = target.scalar("select current_user")
    violations = [{"object": m["object"], "problem": f"{role} {m['problem']}"}
                  for m in missing(target)]
    return PRIVILEGES.verdict(role, violations, connected_as=role)


def blocker(target: Target, *objects: str) -> str | None:
    """Why a check cannot run as this role: the first of `objects` ("public.staff_shared",
    "cron.job", "SET ROLE authenticated") the role lacks a privilege on, pointing at the one test
    that reports it."""
    lacking = {m["object"]: m for m in missing(target)}
    for name in objects:
        if name in lacking:
            role = target.scalar("select current_user")
            return f"the connected role ({role}) {lacking[name]['problem']}: {POINTER}"
    return None
