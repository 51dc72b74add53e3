-- The floor: every question the read-only suite asks (pytest --env=production, no HTTP),
-- answered by the least SQL, one statement each, in one psql session. bench/floor.py runs it
-- interleaved with the suite and compares them module by module.
--
--     psql -X -v cutoff="'2026-11-27 12:00+00'" -f bench/floor.sql <url>
--
-- Each module starts with \echo module:<name>; the runner sums the \timing of its statements.
\set ON_ERROR_STOP 1
\timing on
\pset format unaligned
\o /dev/null
begin read only;

\echo module:schema
-- tables: every column and key of the public tables, then whether each contract table can be read
select c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
from pg_attribute a join pg_class c on c.oid = a.attrelid
where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p') and a.attnum > 0 and not a.attisdropped;
select i.indrelid::regclass, i.indkey, i.indisprimary, i.indisunique, i.indisvalid
from pg_index i join pg_class c on c.oid = i.indrelid where c.relnamespace = 'public'::regnamespace;
select (select 1 from public.orders_bannos limit 1), (select 1 from public.orders_flourlane limit 1),
       (select 1 from public.staff_shared limit 1), (select 1 from public.stage_events limit 1),
       (select 1 from public.work_queue limit 1), (select 1 from public.order_photos limit 1),
       (select 1 from public.webhook_inbox_bannos limit 1), (select 1 from public.webhook_inbox_flourlane limit 1),
       (select 1 from public.settings limit 1), (select 1 from public.audit_log limit 1),
       (select 1 from public.processed_webhooks limit 1), (select 1 from public.dead_letter limit 1),
       (select 1 from public.shifts limit 1), (select 1 from public.breaks limit 1),
       (select 1 from public.components limit 1), (select 1 from public.accessories limit 1),
       (select 1 from public.cake_toppers limit 1), (select 1 from public.boms limit 1),
       (select 1 from public.bom_items limit 1), (select 1 from public.stock_transactions limit 1),
       (select 1 from public.inventory_sync_queue limit 1), (select 1 from public.conversations limit 1),
       (select 1 from public.conversation_participants limit 1), (select 1 from public.messages limit 1),
       (select 1 from public.message_reads limit 1), (select 1 from public.users limit 1);
-- enums, RPCs, extensions, realtime, cron
select t.typname, array_agg(e.enumlabel order by e.enumsortorder)
from pg_enum e join pg_type t on t.oid = e.enumtypid where t.typnamespace = 'public'::regnamespace group by 1;
select proname, pg_get_function_identity_arguments(oid), pg_get_function_result(oid), prosecdef, proretset,
       proargnames, proargmodes, prorettype
from pg_proc where pronamespace = 'public'::regnamespace;
select extname from pg_extension;
select schemaname, tablename from pg_publication_tables where pubname = 'supabase_realtime';
select jobname, schedule, active from cron.job;
-- what a restore can break, for every object
select indexrelid::regclass from pg_index where not (indisvalid and indisready);
select conrelid::regclass, conname from pg_constraint where not convalidated;
select tgrelid::regclass, tgname from pg_trigger where not tgisinternal and tgenabled = 'D';
select (select max(id) from public.audit_log), (select last_value from public.audit_log_id_seq),
       (select max(id) from public.messages), (select last_value from public.messages_id_seq);

\echo module:security
select relname, relrowsecurity from pg_class where relnamespace = 'public'::regnamespace and relkind in ('r', 'p');
select c.relname, r.rolname, p
from pg_class c cross join (values ('anon'), ('authenticated')) r (rolname)
cross join unnest(array['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) p
where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p', 'v', 'm', 'f')
  and has_table_privilege(r.rolname, c.oid, p);
select schemaname, tablename, policyname, permissive, roles, cmd, qual, with_check
from pg_policies where schemaname = 'public';
select proname from pg_proc
where pronamespace = 'public'::regnamespace and prosecdef
  and not exists (select from unnest(proconfig) c where c like 'search_path=%');
select proname from pg_proc
where pronamespace = 'public'::regnamespace and prosecdef and has_function_privilege('anon', oid, 'EXECUTE');
select relname, reloptions from pg_class
where relnamespace = 'public'::regnamespace and relkind = 'v' and has_table_privilege('anon', oid, 'SELECT');
select id from storage.buckets where public;

\echo module:migrations
select version, name, statements from supabase_migrations.schema_migrations order by version;

\set store bannos
\ir floor_store.sql
\set store flourlane
\ir floor_store.sql

\echo module:queue
select status, count(*) from public.work_queue group by 1;
select id from public.work_queue where status = 'pending' and created_at < :cutoff::timestamptz - interval '15 minutes';
select id from public.work_queue
where status in ('pending', 'processing') and locked_at < :cutoff::timestamptz - interval '15 minutes';
select id from public.work_queue where retry_count > 5;
-- as a staff user, the way PostgREST calls the RPCs
select set_config('request.jwt.claims', json_build_object('role', 'authenticated', 'sub',
         (select user_id from public.staff_shared where role = 'Admin' and is_active and approved
          order by user_id limit 1))::text, true);
set local role authenticated;
select count(*), max(total_count) from public.get_queue('bannos', p_limit => 50);
select count(*), max(total_count) from public.get_queue('bannos', p_stage => 'Complete', p_limit => 50);
select * from public.get_unassigned_counts('bannos');
select * from public.get_queue_stats('bannos');
select count(*), max(total_count) from public.get_queue('flourlane', p_limit => 50);
select count(*), max(total_count) from public.get_queue('flourlane', p_stage => 'Complete', p_limit => 50);
select * from public.get_unassigned_counts('flourlane');
select * from public.get_queue_stats('flourlane');
reset role;
-- the tables' own answers
select count(*) filter (where stage <> 'Complete' and coalesce(order_json ->> 'source_name', '') <> 'pos'),
       count(*) filter (where stage <> 'Complete' and assignee_id is null),
       count(*) filter (where stage = 'Complete'), count(*)
from public.orders_bannos;
select count(*) filter (where stage <> 'Complete' and coalesce(order_json ->> 'source_name', '') <> 'pos'),
       count(*) filter (where stage <> 'Complete' and assignee_id is null),
       count(*) filter (where stage = 'Complete'), count(*)
from public.orders_flourlane;

\echo module:scan
set local role authenticated;
-- 40 orders in their three forms, then every split cake drawn (the suite's sample sizes)
select count(*) from (select id, shopify_order_number as n from public.orders_bannos
                      where id = 'bannos-' || shopify_order_number order by id limit 40) o,
     lateral (values ('#B' || o.n), (o.id), (o.n::text)) f (scan)
where (public.get_order_for_scan(f.scan)).id is distinct from o.id;
select count(*) from (select id from public.orders_bannos where id like 'bannos-%-%' order by id limit 100) o
where (public.get_order_for_scan(o.id)).id is distinct from o.id;
select count(*) from (select id from public.orders_flourlane where id like 'flourlane-%-%' order by id limit 100) o
where (public.get_order_for_scan(o.id)).id is distinct from o.id;
reset role;

\echo module:end
rollback;
