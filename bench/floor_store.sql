-- The store data questions for one store (:store), included twice by floor.sql.
select stage, count(*) from public.orders_:store group by stage;
select max(created_at) from public.orders_:store;
select id from public.orders_:store where created_at > :cutoff::timestamptz + interval '5 minutes';
-- the stage trail of orders in production and of orders packed through complete_packing
select o.id from public.orders_:store o
left join (select order_id, array_agg(stage) as stages from public.stage_events
           where store = :'store' and event_type = 'complete' group by order_id) c on c.order_id = o.id
where (o.stage <> 'Complete' or 'Packing' = any(c.stages))
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
select o.id, s.label from public.orders_:store o
left join (select order_id, array_agg(stage) as stages from public.stage_events
           where store = :'store' and event_type = 'complete' group by order_id) c on c.order_id = o.id,
     unnest(enum_range(null::public.stage_type)) s (label)
where s.label < o.stage and (o.stage <> 'Complete' or 'Packing' = any(c.stages))
  and not s.label::text = any(coalesce(c.stages, '{}'));
select shopify_order_id, shopify_order_gid, array_agg(id) from public.orders_:store
group by grouping sets ((shopify_order_id), (shopify_order_gid))
having count(*) > 1 and not bool_and(id ~ '^[a-z]+-[0-9]+-[A-Z0-9]+$');
