-- The store data questions for one store (:store), included twice by floor.sql.
\echo module:store_data
select stage, count(*) from public.orders_:store group by stage;
select max(created_at) from public.orders_:store;
select id from public.orders_:store where created_at > :cutoff::timestamptz + interval '5 minutes';
\echo module:integrity
-- the stage trail of orders in production and of orders packed through complete_packing
select o.id from public.orders_:store o
left join (select order_id, bool_or(stage = 'Filling') as f, bool_or(stage = 'Covering') as cv,
                  bool_or(stage = 'Decorating') as d, bool_or(stage = 'Packing') as p from public.stage_events
           where store = :'store' and event_type = 'complete' group by order_id) c on c.order_id = o.id
where (o.stage <> 'Complete' or coalesce(c.p, false))
  and (o.stage > 'Filling' and o.filling_complete_ts is null or o.stage > 'Covering' and o.covering_complete_ts is null
       or o.stage > 'Decorating' and o.decorating_complete_ts is null
       or o.stage > 'Packing' and o.packing_complete_ts is null)
   or o.filling_complete_ts < o.filling_start_ts or o.covering_complete_ts < o.covering_start_ts
   or o.decorating_complete_ts < o.decorating_start_ts or o.packing_complete_ts < o.packing_start_ts
   or greatest(o.filling_start_ts, o.filling_complete_ts, o.covering_start_ts, o.covering_complete_ts,
               o.decorating_start_ts, o.decorating_complete_ts, o.packing_start_ts, o.packing_complete_ts)
      > :cutoff::timestamptz + interval '5 minutes';
select o.id from public.orders_:store o
where o.assignee_id is not null and not exists (select from public.staff_shared s where s.user_id = o.assignee_id);
select id from public.orders_:store o
left join (select order_id, bool_or(stage = 'Filling') as f, bool_or(stage = 'Covering') as cv,
                  bool_or(stage = 'Decorating') as d, bool_or(stage = 'Packing') as p from public.stage_events
           where store = :'store' and event_type = 'complete' group by order_id) c on c.order_id = o.id
where (o.stage <> 'Complete' or coalesce(c.p, false))
  and (o.stage > 'Filling' and not coalesce(c.f, false)
       or o.stage > 'Covering' and not coalesce(c.cv, false)
       or o.stage > 'Decorating' and not coalesce(c.d, false)
       or o.stage > 'Packing' and not coalesce(c.p, false));
select g.ids from (select coalesce(shopify_order_id::text, shopify_order_gid) as value, array_agg(id) as ids
                   from public.orders_:store group by grouping sets ((shopify_order_id), (shopify_order_gid))
                   having count(*) > 1) g
where g.value is not null and not (select bool_and(i ~ '^[a-z]+-[0-9]+-[A-Z0-9]+$')
                                          and count(distinct substring(i from '^([a-z]+-[0-9]+)-')) = 1
                                          and count(distinct upper(substring(i from '-([A-Za-z0-9]+)$'))) = count(*)
                                   from unnest(g.ids) i);
