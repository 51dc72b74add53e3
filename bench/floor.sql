-- The floor: every question the read-only weekly run asks (pytest --env=production, no HTTP),
-- answered by the least SQL found for it, written for this file and not taken from the suite:
-- one statement per question (two where a question has two keys), returning only what answers
-- it (ids, counts), with no message text and no cap. One psql session, one read-only
-- transaction. bench/floor.py runs it interleaved with the suite and compares them module by
-- module.
--
--     psql -X -v cutoff="'2026-11-27 12:00+00'" -f bench/floor.sql <url>
--
-- With -v show=FILE, the answers go to FILE (bench/floor.py compares them with the suite's on a
-- broken copy: the same violating rows). Each module starts with \echo module:<name>; the runner sums the \timing of its statements.
-- The per-store questions are in floor_store.sql, included once per store.
--
-- How the integrity statements were chosen (1M orders per store, each timed against the
-- alternatives on the seed, time-ordered and shuffled layouts of stage_events (bench/layouts.py),
-- during development, load 1.6-5 on 2 cores; issue 20 in bench/RESULTS.md):
-- - stage events: the store's 'complete' events folded per order into a bit per stage by an
--   ordered aggregate (never hashed: an index stream or a sort), joined with the orders:
--   2.6 s seed, 4.2-5.2 s time, 6.1-6.6 s shuffled; the same with a plain (hashable) bit_or:
--   3.7 / 4.2-5.2 / 6.8-6.9 s; one NOT EXISTS per (order, stage below its own): 4.3 / 9.4 s.
--   Both stage-trail answers from that one read: 2.3-2.5 s seed, 3.2-3.4 s time, 3.6-3.9 s
--   shuffled; the orders ordered by id for a merge join instead of left to the planner (which
--   hashes them): 2.3 / 3.8 / 4.1-4.3 s, so the join is left to the planner here.
-- - Shopify duplicates, per key: the values held twice from the index alone, then a lateral
--   read of their rows: 0.46-1.09 s; rows whose value is IN those values, grouped: 0.71-1.2 s;
--   a window count over the key: 0.9-1.0 s; one GROUP BY over every row: 2.3-2.7 s; both keys
--   from one read of the rows sharing either: minutes (its IN subplans are not hashed).
-- - assignees: a skip walk of the assignee index (one lookup per assignee): 5 ms; SELECT
--   DISTINCT over the index: 60 ms; an anti-join of every order: 110 ms.
\set ON_ERROR_STOP 1
\timing on
\pset format unaligned
\pset footer off
\if :{?show}
\o :show
\else
\o /dev/null
\endif
begin read only;

\echo module:access
-- what the connected role can read, see and become
select c.oid::regclass from pg_class c
where c.relnamespace in (select oid from pg_namespace where nspname in ('public', 'cron', 'auth', 'storage', 'supabase_migrations'))
  and c.relkind in ('r', 'p', 'v') and not has_table_privilege(c.oid, 'SELECT');
select rolname from pg_roles
where rolname in ('anon', 'authenticated', 'service_role') and not pg_has_role(current_user, oid, 'MEMBER');
select relrowsecurity, (select rolsuper or rolbypassrls from pg_roles where rolname = current_user)
from pg_class where oid = 'cron.job'::regclass;

\echo module:schema
-- columns, keys, enums, functions, extensions, realtime, cron
select attrelid::regclass, attname, atttypid::regtype, attnotnull from pg_attribute
where attrelid in (select oid from pg_class where relnamespace = 'public'::regnamespace and relkind in ('r', 'p'))
  and attnum > 0 and not attisdropped;
select indrelid::regclass, indkey, indisprimary, indisvalid from pg_index
where indisunique and indrelid in (select oid from pg_class where relnamespace = 'public'::regnamespace);
select enumtypid::regtype, enumlabel from pg_enum order by enumtypid, enumsortorder;
select oid::regprocedure, prorettype::regtype, prosecdef, proretset, proconfig, proargnames, proargmodes
from pg_proc where pronamespace = 'public'::regnamespace;
select extname from pg_extension;
select tablename from pg_publication_tables where pubname = 'supabase_realtime';
select jobid, jobname, schedule, active, command ~* '(net\.http_|http_(get|post)|/functions/v1/)' from cron.job;
-- what a restore can leave broken
select indexrelid::regclass from pg_index where not indisvalid or not indisready;
select conname from pg_constraint where not convalidated;
select tgname from pg_trigger where not tgisinternal and tgenabled = 'D';
select (select max(id) from public.audit_log) <= (select last_value from public.audit_log_id_seq),
       (select max(id) from public.messages) <= (select last_value from public.messages_id_seq);

\echo module:security
select relname from pg_class where relnamespace = 'public'::regnamespace and relkind in ('r', 'p') and not relrowsecurity;
select c.relname, r.role, p.privilege
from pg_class c, (values ('anon'), ('authenticated')) r (role), (values ('INSERT'), ('UPDATE'), ('DELETE'), ('TRUNCATE')) p (privilege)
where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p', 'v', 'm', 'f')
  and has_table_privilege(r.role, c.oid, p.privilege);
select tablename, policyname, roles, cmd, qual, with_check from pg_policies where schemaname = 'public';
select oid::regprocedure from pg_proc where pronamespace = 'public'::regnamespace and prosecdef
  and coalesce(array_to_string(proconfig, ','), '') !~ 'search_path=';
select oid::regprocedure from pg_proc where pronamespace = 'public'::regnamespace and prosecdef
  and has_function_privilege('anon', oid, 'EXECUTE');
select relname from pg_class where relnamespace = 'public'::regnamespace and relkind = 'v'
  and coalesce(array_to_string(reloptions, ','), '') !~ 'security_invoker=(on|true)'
  and (has_table_privilege('anon', oid, 'SELECT') or has_table_privilege('authenticated', oid, 'SELECT'));
select id from storage.buckets where public;

\echo module:migrations
select version, name, statements from supabase_migrations.schema_migrations;

\echo module:queue
-- the work queue against the runbook's limits
select status, count(*) from public.work_queue group by status;
select id from public.work_queue where status = 'pending' and created_at < :cutoff::timestamptz - interval '15 minutes';
select id from public.work_queue where status = 'pending' and locked_at < :cutoff::timestamptz - interval '15 minutes'
   or status = 'processing' and locked_at < :cutoff::timestamptz - interval '15 minutes';
select id from public.work_queue where retry_count > 5;
select user_id from public.staff_shared where is_active and approved and role in ('Admin', 'Supervisor')
order by role, user_id limit 1;

\set store bannos
\set other flourlane
\ir floor_store.sql
\set store flourlane
\set other bannos
\ir floor_store.sql

\echo module:end
rollback;
