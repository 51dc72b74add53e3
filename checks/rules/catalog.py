"""Catalog introspection: one query per kind of object, reading only pg_catalog.

Nothing here scans a user table, so these stay fast on a database of any size. Functions
take the schemas to look in; `app_schemas()` and `api_schemas()` say which those are.
"""

import re

from checks.connect.target import Target
from checks.contract import contract

# Schemas that belong to PostgreSQL itself.
_SYSTEM = "n.nspname not like 'pg\\_%%' and n.nspname <> 'information_schema'"
# Members of an extension (pg_depend deptype 'e') are the extension's business, not the app's.
_NOT_EXTENSION_MEMBER = ("not exists (select from pg_depend d where d.objid = {oid} "
                         "and d.deptype = 'e')")


def app_schemas(target: Target) -> list[str]:
    """Schemas the app owns: everything but PostgreSQL's and Supabase's own."""
    platform = contract()["security"]["platform_schemas"]
    return [r["nspname"] for r in target.query(
        f"select n.nspname from pg_namespace n where {_SYSTEM} and n.nspname <> all(%s) order by 1",
        (platform,))]


def api_schemas(target: Target) -> list[str]:
    """App schemas the API roles can reach (USAGE), whatever PostgREST currently exposes;
    `public` always."""
    roles = existing_roles(target, contract()["security"]["api_roles"])
    return [r["nspname"] for r in target.query(
        "select n.nspname from pg_namespace n where n.nspname = any(%s) and (n.nspname = 'public' or "
        "exists (select from unnest(%s::text[]) r where has_schema_privilege(r, n.oid, 'USAGE'))) order by 1",
        (app_schemas(target), roles))]


def missing_table(target: Target, *names: str) -> str | None:
    """Why a check cannot run, when a public table it stands on is missing (test_table reports
    the absence once) or the connected role cannot read it (test_connected_role_privileges
    reports that once); the checks standing on it skip, pointing there."""
    # From pg_class, not to_regclass(): without USAGE on public, naming a table there is refused.
    rows = target.query("select t.name, c.oid is not null as present, "
                        " has_schema_privilege(c.relnamespace, 'USAGE') and has_table_privilege(c.oid, 'SELECT') "
                        "   as readable "
                        "from unnest(%s::text[]) with ordinality as t(name, n) "
                        "left join pg_class c on c.relname = t.name and c.relkind in ('r', 'p', 'v', 'm', 'f') "
                        " and c.relnamespace = (select oid from pg_namespace where nspname = 'public') order by n",
                        (list(names),))
    for row in rows:
        if not row["present"]:
            return f"public.{row['name']} is missing: see test_table[{row['name']}]"
    for row in rows:
        if not row["readable"]:
            return (f"the connected role ({target.scalar('select current_user')}) cannot read public.{row['name']} "
                    f"(no SELECT): see test_connected_role_privileges")
    return None


def existing_roles(target: Target, names: list[str]) -> list[str]:
    return [r["rolname"] for r in target.query(
        "select rolname from pg_roles where rolname = any(%s) order by 1", (names,))]


def relations(target: Target, schemas: list[str], kinds: str = "rp") -> list[dict]:
    """Tables (r: plain, p: partitioned; v: views, m: materialized views) with their RLS flags."""
    return target.query(
        "select n.nspname as schema, c.relname as name, c.relkind as kind, c.relrowsecurity as rls, "
        " c.reloptions as options, c.oid::bigint as oid "
        "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = any(%s) and c.relkind = any(%s) and not c.relispartition "
        f"and {_NOT_EXTENSION_MEMBER.format(oid='c.oid')} order by 1, 2",
        (schemas, list(kinds)))


def columns(target: Target, schema: str, table: str) -> dict[str, dict]:
    """name -> {type, not_null}; types as format_type() gives them, user types schema-qualified."""
    rows = target.query(
        "select a.attname as name, a.attnotnull as not_null, "
        " case when t.typnamespace = 'pg_catalog'::regnamespace then format_type(a.atttypid, a.atttypmod) "
        "      else tn.nspname || '.' || t.typname end as type "
        "from pg_attribute a join pg_class c on c.oid = a.attrelid "
        "join pg_namespace n on n.oid = c.relnamespace "
        "join pg_type t on t.oid = a.atttypid join pg_namespace tn on tn.oid = t.typnamespace "
        "where n.nspname = %s and c.relname = %s and a.attnum > 0 and not a.attisdropped",
        (schema, table))
    return {r["name"]: r for r in rows}


def keys(target: Target, schema: str, table: str) -> list[dict]:
    """Primary keys and unique indexes: {columns: [...], primary: bool, valid: bool}."""
    return target.query(
        "select i.indisprimary as primary, i.indisvalid as valid, "
        " array(select a.attname from unnest(i.indkey) with ordinality k(attnum, n) "
        "       join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum order by k.n) as columns "
        "from pg_index i join pg_class c on c.oid = i.indrelid join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relname = %s and i.indisunique and i.indpred is null",
        (schema, table))


def enum_labels(target: Target, schema: str, enum: str) -> list[str]:
    return [r["enumlabel"] for r in target.query(
        "select e.enumlabel from pg_enum e join pg_type t on t.oid = e.enumtypid "
        "join pg_namespace n on n.oid = t.typnamespace where n.nspname = %s and t.typname = %s "
        "order by e.enumsortorder", (schema, enum))]


def functions(target: Target, schemas: list[str], names: list[str] | None = None) -> list[dict]:
    """Functions with signature, result, definer flag, pinned settings and output columns
    (OUT/TABLE parameters, or the attributes of a composite result type)."""
    return target.query(
        "select n.nspname as schema, p.proname as name, p.oid::bigint as oid, "
        " pg_get_function_identity_arguments(p.oid) as args, pg_get_function_result(p.oid) as returns, "
        " p.prosecdef as definer, p.proretset as set_returning, coalesce(p.proconfig, '{}') as config, "
        " array(select u.name from unnest(p.proargnames, p.proargmodes) with ordinality u(name, mode, n) "
        "       where u.mode in ('t', 'o') order by u.n) as out_columns, "
        " array(select a.attname from pg_type t join pg_attribute a on a.attrelid = t.typrelid "
        "       where t.oid = p.prorettype and a.attnum > 0 and not a.attisdropped order by a.attnum) "
        "   as composite_columns "
        "from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
        "where n.nspname = any(%s) and p.prokind = 'f' and (%s::text[] is null or p.proname = any(%s)) "
        f"and {_NOT_EXTENSION_MEMBER.format(oid='p.oid')} order by 1, 2, 4",
        (schemas, names, names))


def triggers(target: Target, schemas: list[str]) -> list[dict]:
    """User triggers (not the internal ones behind foreign keys); enabled 'D' means disabled."""
    return target.query(
        "select n.nspname as schema, c.relname as table, t.tgname as name, t.tgenabled as enabled "
        "from pg_trigger t join pg_class c on c.oid = t.tgrelid join pg_namespace n on n.oid = c.relnamespace "
        "where not t.tgisinternal and n.nspname = any(%s) order by 1, 2, 3", (schemas,))


def invalid_indexes(target: Target) -> list[dict]:
    return target.query(
        "select n.nspname as schema, ic.relname as index, c.relname as table "
        "from pg_index i join pg_class ic on ic.oid = i.indexrelid join pg_class c on c.oid = i.indrelid "
        f"join pg_namespace n on n.oid = c.relnamespace where {_SYSTEM} and not (i.indisvalid and i.indisready) "
        "order by 1, 3, 2")


def unvalidated_constraints(target: Target) -> list[dict]:
    return target.query(
        "select n.nspname as schema, c.relname as table, k.conname as name, k.contype as type "
        "from pg_constraint k join pg_class c on c.oid = k.conrelid join pg_namespace n on n.oid = c.relnamespace "
        f"where {_SYSTEM} and not k.convalidated order by 1, 2, 3")


def owned_sequences(target: Target) -> list[dict]:
    """Sequences behind serial and identity columns, with whether we may read both sides."""
    return target.query(
        "select n.nspname as schema, c.relname as table, a.attname as column, "
        " quote_ident(sn.nspname) || '.' || quote_ident(sc.relname) as sequence, "
        " s.seqincrement as increment, s.seqstart as start, "
        " has_sequence_privilege(s.seqrelid, 'SELECT') and has_column_privilege(c.oid, a.attnum, 'SELECT') "
        "   as readable "
        "from pg_sequence s join pg_class sc on sc.oid = s.seqrelid join pg_namespace sn on sn.oid = sc.relnamespace "
        "join pg_depend d on d.objid = s.seqrelid and d.classid = 'pg_class'::regclass "
        " and d.refclassid = 'pg_class'::regclass and d.deptype in ('a', 'i') "
        "join pg_class c on c.oid = d.refobjid join pg_namespace n on n.oid = c.relnamespace "
        "join pg_attribute a on a.attrelid = c.oid and a.attnum = d.refobjsubid "
        f"where {_SYSTEM} order by 1, 2, 3")


def extensions(target: Target) -> list[str]:
    return [r["extname"] for r in target.query("select extname from pg_extension order by 1")]


def publication_tables(target: Target, publication: str) -> list[str] | None:
    """Tables in the publication (schema.table), or None if it does not exist."""
    if not target.scalar("select count(*) from pg_publication where pubname = %s", (publication,)):
        return None
    return [r["t"] for r in target.query(
        "select schemaname || '.' || tablename as t from pg_publication_tables where pubname = %s",
        (publication,))]


# What makes a cron job call out: pg_net (net.http_get/post/delete), the http extension
# (http_get(...), http((...)::http_request)), or an Edge Function / Supabase URL.
HTTP_PATTERN = r"(\mnet\.http_\w+|\mhttp_(get|post|put|patch|delete|head|request)\s*\(|\mhttp\s*\(\s*\(|/functions/v1/)"


def cron_jobs(target: Target) -> list[dict] | None:
    """pg_cron's jobs, or None when pg_cron is not installed. `http` says how a job calls out
    over HTTP (in its command, or in a function its command calls: one level), else None."""
    if target.scalar("select to_regclass('cron.job') is null"):
        return None
    # The functions that call out are found first, once, among the few outside the system and
    # extension schemas (materialized: the planner would run the pattern over all 3,000).
    # Matching every job against every function's name compiles a regex per pair: 40 ms a job.
    jobs = target.query(
        "with own as materialized (select p.pronamespace::regnamespace || '.' || p.proname as name, p.proname, "
        "  p.prosrc from pg_proc p where p.pronamespace::regnamespace::text not in ('pg_catalog', 'net', 'extensions')), "
        " calling_out as (select name, proname from own where prosrc ~* %(pattern)s) "
        "select j.jobid, j.jobname as name, j.schedule, j.active, j.command, "
        " (select string_agg(distinct f.name, ', ') from calling_out f "
        "  where j.command ~ ('\\m' || f.proname || '\\s*\\(')) as via "
        "from cron.job j order by j.jobid", {"pattern": HTTP_PATTERN})
    for job in jobs:
        direct = re.search(HTTP_PATTERN.replace("\\m", "\\b"), job["command"], re.IGNORECASE)
        via = job.pop("via")
        job["http"] = (f"calls {direct.group(0).rstrip('( ')}" if direct
                       else f"calls {via}, which makes HTTP calls" if via else None)
    return jobs


def buckets(target: Target) -> list[dict] | None:
    """Storage buckets, or None when the database has no Supabase Storage schema."""
    if target.scalar("select to_regclass('storage.buckets') is null"):
        return None
    return target.query("select id, name, public from storage.buckets order by id")


def policies(target: Target, schemas: list[str]) -> list[dict]:
    return target.query(
        "select schemaname as schema, tablename as table, policyname as name, permissive, roles::text[] as roles, "
        " cmd, qual, with_check from pg_policies where schemaname = any(%s) order by 1, 2, 3", (schemas,))
