-- The per-store questions of the floor (bench/floor.sql includes it with :store and :other set).

\echo module:store_data
-- the newest order (freshness, RPO) and any created after the reference time
select max(created_at) from public.orders_:store;
select id from public.orders_:store where created_at > :cutoff::timestamptz + interval '5 minutes';

\echo module:queue
-- every count of the run, from one grouped pass: orders per stage and in all, and the truths
-- the queue RPCs answer for (open and Complete orders outside point of sale, unassigned per
-- stage, the stats' counts), each a sum over these few groups
select stage, assignee_id is null, coalesce(order_json ->> 'source_name', '') = 'pos', count(*)
from public.orders_:store group by 1, 2, 3;
-- the RPCs, as a staff user, the way PostgREST calls them
select user_id as staff from public.staff_shared
where is_active and approved and role in ('Admin', 'Supervisor') order by role, user_id limit 1 \gset
select set_config('request.jwt.claims', json_build_object('sub', :'staff', 'role', 'authenticated')::text, true),
       set_config('role', 'authenticated', true);
select coalesce(array_agg(id), '{}') as listed, max(total_count) filter (where tab = 1) as queued,
       max(total_count) filter (where tab = 2) as completed
from (select 1 as tab, id, total_count from public.get_queue(:'store', p_limit => 50)
      union all
      select 2, id, total_count from public.get_queue(:'store', p_stage => 'Complete', p_limit => 50)) q \gset
select * from public.get_unassigned_counts(:'store');
select * from public.get_queue_stats(:'store');
select set_config('role', 'none', true);
-- the rows get_queue listed, as the table has them
select id, stage, coalesce(order_json ->> 'source_name', '') = 'pos' from public.orders_:store where id = any(:'listed'::text[]);

\echo module:scan
-- a sample of whole orders in their three barcode forms, and every split cake by its full id
select array_agg(id) as whole, array_agg(n) as numbers from (
  select id, shopify_order_number as n from public.orders_:store o where id = :'store' || '-' || shopify_order_number
    and not exists (select from public.orders_:other x where x.id = :'other' || '-' || o.shopify_order_number)
  order by id limit 20) o \gset
select array_agg(id) as cakes from (select id from public.orders_:store where id like :'store' || '-%-%' order by id limit 100) o \gset
select set_config('role', 'authenticated', true);
select o.id from unnest(:'whole'::text[], :'numbers'::int[]) o (id, n),
     lateral (values (case :'store' when 'bannos' then '#B' else '#F' end || o.n), (o.id), (o.n::text)) f (code)
where (public.get_order_for_scan(f.code)).id is distinct from o.id;
select o.id from unnest(:'cakes'::text[]) o (id) where (public.get_order_for_scan(o.id)).id is distinct from o.id;
select set_config('role', 'none', true);

\echo module:integrity
\qecho question:stage_trail :store
-- the stage trail, both questions from one read of the orders and of the store's 'complete'
-- events (folded per order into a bit per stage): which orders have a timestamp problem (past a
-- stage without its completion, of the orders that need the trail: in production, or Complete,
-- not cancelled, not point of sale, having reached Packing; a completion before its start; a
-- time after the reference time), and which lack a 'complete' event of a stage below theirs
select o.id,
       (o.filling_complete_ts is null and o.stage > 'Filling' or o.covering_complete_ts is null and o.stage > 'Covering'
        or o.decorating_complete_ts is null and o.stage > 'Decorating' or o.packing_complete_ts is null and o.stage > 'Packing')
       and t.required
       or o.filling_complete_ts < o.filling_start_ts or o.covering_complete_ts < o.covering_start_ts
       or o.decorating_complete_ts < o.decorating_start_ts or o.packing_complete_ts < o.packing_start_ts
       or greatest(o.filling_start_ts, o.filling_complete_ts, o.covering_start_ts, o.covering_complete_ts,
                   o.decorating_start_ts, o.decorating_complete_ts, o.packing_start_ts, o.packing_complete_ts)
          > :cutoff::timestamptz + interval '5 minutes' as timestamps_wrong,
       t.required and t.below & ~coalesce(e.done, 0) <> 0 as events_missing
from public.orders_:store o
left join (select order_id, bit_or(case stage when 'Filling' then 1 when 'Covering' then 2 when 'Decorating' then 4
                                              when 'Packing' then 8 end order by order_id) as done
           from public.stage_events where store = :'store' and event_type = 'complete' group by order_id) e
  on e.order_id = o.id,
lateral (select o.stage <> 'Complete' or o.cancelled_at is null and coalesce(o.order_json ->> 'source_name', '') <> 'pos'
                and (o.decorating_complete_ts is not null or o.packing_start_ts is not null or coalesce(e.done, 0) & 4 <> 0)
                as required,
                case o.stage when 'Covering' then 1 when 'Decorating' then 3 when 'Packing' then 7 when 'Complete' then 15
                             else 0 end as below) t
where (o.filling_complete_ts is null and o.stage > 'Filling' or o.covering_complete_ts is null and o.stage > 'Covering'
       or o.decorating_complete_ts is null and o.stage > 'Decorating' or o.packing_complete_ts is null and o.stage > 'Packing')
      and t.required
   or o.filling_complete_ts < o.filling_start_ts or o.covering_complete_ts < o.covering_start_ts
   or o.decorating_complete_ts < o.decorating_start_ts or o.packing_complete_ts < o.packing_start_ts
   or greatest(o.filling_start_ts, o.filling_complete_ts, o.covering_start_ts, o.covering_complete_ts,
               o.decorating_start_ts, o.decorating_complete_ts, o.packing_start_ts, o.packing_complete_ts)
      > :cutoff::timestamptz + interval '5 minutes'
   or t.required and t.below & ~coalesce(e.done, 0) <> 0;
\qecho question:assignees :store
-- orders assigned to someone missing from staff_shared: the few assignees, walked through the
-- assignee index one lookup each, then the orders of those missing (none: no read at all)
with recursive a (v) as (
  (select assignee_id from public.orders_:store where assignee_id is not null order by assignee_id limit 1)
  union all
  select (select assignee_id from public.orders_:store where assignee_id > a.v order by assignee_id limit 1)
  from a where a.v is not null)
select id, assignee_id from public.orders_:store
where assignee_id = any (array(select v from a where v is not null
                                and not exists (select from public.staff_shared where user_id = a.v)));
\qecho question:shopify :store
-- Shopify ids shared by rows that are not distinct siblings of one split (ids are unique: a
-- valid unique index holds them)
select d.k, r.ids from (select shopify_order_id as k from public.orders_:store where shopify_order_id is not null
                        group by 1 having count(*) > 1) d,
     lateral (select array_agg(id) as ids from public.orders_:store where shopify_order_id = d.k
              having not (bool_and(id ~ '^[a-z]+-[0-9]+-[A-Z0-9]+$')
                          and min(rtrim(id, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'))
                            = max(rtrim(id, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789')))) r;
\qecho question:shopify :store
select d.k, r.ids from (select shopify_order_gid as k from public.orders_:store where shopify_order_gid is not null
                        group by 1 having count(*) > 1) d,
     lateral (select array_agg(id) as ids from public.orders_:store where shopify_order_gid = d.k
              having not (bool_and(id ~ '^[a-z]+-[0-9]+-[A-Z0-9]+$')
                          and min(rtrim(id, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'))
                            = max(rtrim(id, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789')))) r;
\qecho end
