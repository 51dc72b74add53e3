-- Seed data for the reference Ordak: a healthy, self-consistent shop as of `ordak.seed_anchor`.
-- Parameters (set with set_config before running): ordak.seed_orders (orders per store) and
-- ordak.seed_anchor (the "now" of the data). Bulk SQL only, so 1M orders per store load in
-- minutes; setseed() makes every build identical. Primary keys are uuidv7() (time-ordered)
-- so that bulk inserts append to their B-trees instead of scattering over them.

select setseed(0.20240901);

-- ---------------------------------------------------------------- staff (and their auth users)
create temporary table seed_staff on commit drop as
select md5('ordak-staff-' || n)::uuid as user_id, n, full_name, role, store, is_active, approved
from (values
  (1, 'Maya Chen', 'Admin', 'both', true, true),
  (2, 'Tom Brennan', 'Admin', 'both', true, true),
  (3, 'Priya Nair', 'Supervisor', 'bannos', true, true),
  (4, 'Luca Romano', 'Supervisor', 'flourlane', true, true),
  (5, 'Grace Okafor', 'Supervisor', 'both', true, true),
  (6, 'Sam Whitfield', 'Staff', 'bannos', true, true),
  (7, 'Hana Sato', 'Staff', 'bannos', true, true),
  (8, 'Diego Alvarez', 'Staff', 'flourlane', true, true),
  (9, 'Zoe Martin', 'Staff', 'flourlane', true, true),
  (10, 'Ibrahim Yusuf', 'Staff', 'both', true, true),
  (11, 'Ella Fischer', 'Staff', 'both', true, true),
  (12, 'Noah Kelly', 'Staff', 'bannos', false, true),
  (13, 'Ruby Adams', 'Staff', 'flourlane', true, false)
) as t (n, full_name, role, store, is_active, approved);

insert into auth.users (id, email, email_confirmed_at, created_at, last_sign_in_at, raw_user_meta_data)
select user_id, lower(replace(full_name, ' ', '.')) || '@ordak.example',
       anchor - interval '300 days', anchor - interval '300 days', anchor - n * interval '3 hours',
       jsonb_build_object('full_name', full_name)
from seed_staff, (select current_setting('ordak.seed_anchor')::timestamptz as anchor) a;

insert into public.staff_shared (user_id, full_name, role, store, email, is_active, approved,
                                 hourly_rate, last_login, created_at, updated_at)
select user_id, full_name, role, store, lower(replace(full_name, ' ', '.')) || '@ordak.example',
       is_active, approved, 28 + n, anchor - n * interval '3 hours',
       anchor - interval '300 days', anchor - interval '30 days'
from seed_staff, (select current_setting('ordak.seed_anchor')::timestamptz as anchor) a;

-- ---------------------------------------------------------------- orders, one store at a time
-- Orders span six weeks. Older ones are (nearly all) Complete; recent ones spread over every
-- stage. Stage timestamps follow the stage and never pass the anchor. The shapes of real data
-- are all here (SYSTEM.md, "How orders arrive, split and end"):
--   split orders      a Shopify order with several cakes is rows <store>-<n>-A, -B, ... (letters,
--                     then numbers past J), sharing the Shopify ids; total and accessories on -A
--   point of sale     order_json.source_name = 'pos': born Complete, no timestamps, no events
--   cancelled         Complete with cancelled_at, the trail stopping where it was cancelled
--   Admin-completed   closed by an Admin before Packing: Complete with packing_complete_ts, the trail
--                     stopping where it was closed, no event for what it skipped
--   QC returns        back in Decorating, unassigned, Decorating open again
-- Which orders take which shape is a function of the order number, so that the stage trail
-- below can follow it.
do $seed$
declare
  v_n integer := current_setting('ordak.seed_orders')::integer;
  v_anchor timestamptz := current_setting('ordak.seed_anchor')::timestamptz;
  v_workers uuid[] := array(select user_id from seed_staff where is_active and approved order by n);
  v_store text;
begin
  foreach v_store in array array['bannos', 'flourlane'] loop
    execute format($sql$
      insert into public.orders_%1$s (
        row_id, id, shopify_order_id, shopify_order_gid, shopify_order_number, human_id, customer_name,
        product_title, flavour, notes, currency, total_amount, accessories, order_json, stage, priority,
        assignee_id, storage, due_date, due_date_text, delivery_method, size, item_qty,
        filling_start_ts, filling_complete_ts, covering_start_ts, covering_complete_ts,
        decorating_start_ts, decorating_complete_ts, packing_start_ts, packing_complete_ts,
        created_at, updated_at, cancelled_at)
      select
        uuidv7(), '%1$s-' || num || suffix, shop_id, 'gid://shopify/Order/' || shop_id, num, '%2$s' || num || suffix,
        (array['Olivia','Jack','Charlotte','Noah','Amelia','Leo','Isla','Oliver','Mia','Henry'])[1 + i %% 10]
          || ' ' || (array['Smith','Jones','Williams','Brown','Wilson','Taylor','Nguyen','Lee','Martin','Walker','Harris'])[1 + i %% 11],
        (array['Celebration Cake','Wedding Tier','Cupcake Box (12)','Number Cake','Drip Cake','Sheet Cake'])[1 + (i + cake) %% 6],
        (array['Vanilla','Chocolate','Red Velvet','Lemon','Caramel','Strawberry'])[1 + (i / 6 + cake) %% 6],
        case when i %% 9 = 0 then 'Nut free please' end,
        'AUD', case when cake = 1 then round((45 + r_amount * 300)::numeric, 2) end,
        case when cake = 1 and i %% 7 = 0 then '[{"title": "Candles", "quantity": 1}]'::jsonb end,
        jsonb_build_object('id', shop_id, 'order_number', num, 'currency', 'AUD',
                           'source_name', case when pos then 'pos' else 'web' end),
        (enum_range(null::public.stage_type))[1 + k], prio, assignee,
        (array['Fridge','Freezer','Shelf'])[1 + i %% 3],
        due, to_char(due, 'Dy DD Mon'), case when i %% 4 = 0 then 'delivery' else 'pickup' end,
        (array['6 inch','8 inch','10 inch','12 inch'])[1 + i %% 4], 1 + i %% 3,
        -- trail: the last stage the timestamps reach (-1: none). Entering Packing starts it.
        case when trail > 0 or (trail = 0 and started) then t0 end, case when trail > 0 then t1 end,
        case when trail > 1 or (trail = 1 and started) then t2 end, case when trail > 1 then t3 end,
        case when trail > 2 or (trail = 2 and started) then t4 end, case when trail > 2 then t5 end,
        case when trail > 2 then t5 end, case when trail > 3 or admin_completed then t7 end,
        created_at, coalesce(cancelled_at, created_at + case when trail >= 0 then age * 0.8 else interval '0' end),
        cancelled_at
      from (
        select *,
          case when pos then -1 when cancelled or admin_completed then num %% 3 else k end as trail,
          case when cancelled then created_at + age * 0.55 end as cancelled_at,
          case when r_prio < 0.2 then 'High' when r_prio < 0.8 then 'Medium' else 'Low' end::public.priority_level as prio,
          (created_at + (2 + floor(r_due * 5)) * interval '1 day')::date as due,
          case when pos or qc_returned then null when r_assign < 0.6
               then workers[1 + floor(r_staff * array_length(workers, 1))::int] end as assignee,
          -- t0..t7: filling start, filling complete, covering start, ... packing complete
          created_at + least(interval '90 minutes' * 1, age * 0.1) as t0,
          created_at + least(interval '90 minutes' * 2, age * 0.2) as t1,
          created_at + least(interval '90 minutes' * 3, age * 0.3) as t2,
          created_at + least(interval '90 minutes' * 4, age * 0.4) as t3,
          created_at + least(interval '90 minutes' * 5, age * 0.5) as t4,
          created_at + least(interval '90 minutes' * 6, age * 0.6) as t5,
          created_at + least(interval '90 minutes' * 8, age * 0.8) as t7
        from (
          select *,
            k = 4 and not pos and num %% 97 = 0 as cancelled,
            k = 4 and not pos and num %% 97 <> 0 and num %% 53 = 0 as admin_completed,
            k = 2 and num %% 29 = 0 as qc_returned
          from (
            select *,
              -- stage index: 0 Filling .. 4 Complete; point-of-sale orders are born Complete
              case when pos then 4
                   when i = qc_example then 2  -- at every scale, one recent QC return
                   when age > interval '7 days' then case when r_stage < 0.97 then 4 else 3 end
                   when r_stage < 0.25 then 0 when r_stage < 0.45 then 1 when r_stage < 0.65 then 2
                   when r_stage < 0.80 then 3 else 4 end as k,
              r_start < 0.6 or (num %% 29 = 0) as started
            from (
              select r.*, c.cake,
                     case when r.cakes = 1 then '' when c.cake <= 10 then '-' || chr(64 + c.cake) else '-' || c.cake end as suffix,
                     $2 - r.created_at as age,
                     random() as r_stage, random() as r_prio, random() as r_due, random() as r_start,
                     random() as r_assign, random() as r_staff, $3::uuid[] as workers
              from (
                select i, %3$s + i as num, %4$s + i as shop_id,
                       -- evenly spread over six weeks; the newest order arrived two minutes ago
                       $2 - interval '2 minutes'
                          - ($1 - i + case when i < $1 then random() else 0 end) * (interval '42 days' / $1) as created_at,
                       random() as r_amount,
                       case when i = $1 / 2 then 12 when i %% 41 = 0 then 3 when i %% 17 = 0 then 2 else 1 end as cakes,
                       i %% 23 = 5 and i <> qc_example as pos, qc_example
                from generate_series(1, $1) as i,
                     -- the newest order number divisible by 29, a few orders back
                     lateral (select ($1 - 3) - ((%3$s + $1 - 3) %% 29) as qc_example) q
              ) r
              cross join lateral generate_series(1, r.cakes) as c (cake)
            ) x
          ) y
        ) z
      ) o
      $sql$,
      v_store, case v_store when 'bannos' then '#B' else '#F' end,
      case v_store when 'bannos' then 18000 else 24000 end,
      case v_store when 'bannos' then 5200000000000 else 6100000000000 end)
    using v_n, v_anchor, v_workers;
  end loop;
end
$seed$;

-- ---------------------------------------------------------------- the stage audit trail
-- One event per effective transition, at the order's own stage timestamps; every print and
-- every assignment logs its own (every 11th order was reprinted, every 13th reassigned).
-- Point-of-sale, cancelled and Admin-completed orders have no events for what they skipped.
do $seed$
declare
  v_store text;
  v_spare uuid[] := array(select user_id from seed_staff where n in (10, 11) order by n);
begin
  foreach v_store in array array['bannos', 'flourlane'] loop
    execute format($sql$
      insert into public.stage_events (id, store, order_id, stage, event_type, at_ts, staff_id, meta)
      select uuidv7(), %1$L, o.id, e.stage, e.event_type, e.at_ts, coalesce(e.staff, o.assignee_id), e.meta
      from (
        select o.*,
          o.stage = 'Decorating' and o.shopify_order_number %% 29 = 0 as qc_returned,
          o.stage = 'Complete' and o.cancelled_at is null and o.shopify_order_number %% 53 = 0
            and o.packing_complete_ts is not null as admin_completed,
          o.created_at + least(interval '30 minutes', (coalesce(o.filling_start_ts, $1) - o.created_at) / 2,
                               ($1 - o.created_at) / 2) as assigned_at,
          case when o.assignee_id = $2[1] then $2[2] else $2[1] end as first_assignee
        from public.orders_%1$s o
      ) o
      cross join lateral (values
        (null, 'assign', case when o.assignee_id is not null and o.shopify_order_number %% 13 = 0
                              then o.created_at + (o.assigned_at - o.created_at) / 2 end, o.first_assignee,
         jsonb_build_object('action', 'assign', 'staff_id', o.first_assignee)),
        (null, 'assign', case when o.assignee_id is not null then o.assigned_at end, null,
         jsonb_build_object('action', 'assign', 'staff_id', o.assignee_id)),
        ('Filling', 'print', o.filling_start_ts, null,
         jsonb_build_object('barcode', o.human_id, 'first_filling_print', true)),
        ('Filling', 'print', case when o.shopify_order_number %% 11 = 0
                                  then o.filling_start_ts + (coalesce(o.filling_complete_ts, $1) - o.filling_start_ts) / 2 end,
         null, jsonb_build_object('barcode', o.human_id, 'first_filling_print', false)),
        ('Filling', 'complete', o.filling_complete_ts, null, '{}'::jsonb),
        ('Covering', 'start', o.covering_start_ts, null, '{}'::jsonb),
        ('Covering', 'complete', o.covering_complete_ts, null, '{}'::jsonb),
        ('Decorating', 'start', o.decorating_start_ts, null, '{}'::jsonb),
        ('Decorating', 'complete', case when o.qc_returned then o.decorating_start_ts + ($1 - o.decorating_start_ts) * 0.3
                                        else o.decorating_complete_ts end, null, '{}'::jsonb),
        ('Packing', 'qc_return', case when o.qc_returned then o.decorating_start_ts + ($1 - o.decorating_start_ts) * 0.6 end,
         null, '{"notes": "icing cracked"}'::jsonb),
        ('Packing', 'complete', case when not o.admin_completed then o.packing_complete_ts end, null, '{}'::jsonb)
      ) as e (stage, event_type, at_ts, staff, meta)
      where e.at_ts is not null
      $sql$, v_store)
    using current_setting('ordak.seed_anchor')::timestamptz, v_spare;
  end loop;
end
$seed$;

-- ---------------------------------------------------------------- ingestion
-- The webhook inbox keeps the payloads of the last day, all processed.
insert into public.webhook_inbox_bannos (id, payload, processed, created_at)
select 'bannos-' || shopify_order_number, min(order_json::text)::jsonb, true, min(created_at)
from public.orders_bannos
where created_at > current_setting('ordak.seed_anchor')::timestamptz - interval '1 day'
group by shopify_order_number;
insert into public.webhook_inbox_flourlane (id, payload, processed, created_at)
select 'flourlane-' || shopify_order_number, min(order_json::text)::jsonb, true, min(created_at)
from public.orders_flourlane
where created_at > current_setting('ordak.seed_anchor')::timestamptz - interval '1 day'
group by shopify_order_number;
insert into public.processed_webhooks (webhook_id, store, topic, processed_at)
select id, split_part(id, '-', 1), 'orders/create', created_at
from (select id, created_at from public.webhook_inbox_bannos
      union all select id, created_at from public.webhook_inbox_flourlane) w;

-- ---------------------------------------------------------------- QC photos
-- One photo for every 50th order that reached Packing, kept as a URL (Ordak has no bucket).
insert into public.order_photos (id, order_id, store, stage, url, qc_status, uploaded_by, created_at, updated_at)
select md5('photo-' || o.id)::uuid, o.id, o.store, 'Packing',
       'https://photos.ordak.example/qc/' || o.store || '/' || o.id || '.jpg',
       case when o.n % 500 = 0 then 'needs_review' else 'ok' end, o.assignee_id, o.at_ts, o.at_ts
from (
  select id, 'bannos' as store, assignee_id, packing_start_ts as at_ts, shopify_order_number as n
  from public.orders_bannos where packing_start_ts is not null
  union all
  select id, 'flourlane', assignee_id, packing_start_ts, shopify_order_number
  from public.orders_flourlane where packing_start_ts is not null
) o
where o.n % 50 = 0;

-- ---------------------------------------------------------------- the work queue
-- Mostly done jobs; a few pending (minutes old, one locked by a worker), retrying and dead ones.
insert into public.work_queue (created_at, updated_at, topic, payload, status, dedupe_key,
                               retry_count, next_retry_at, locked_at, locked_by)
select created_at, created_at + interval '40 seconds', 'inventory_push',
       jsonb_build_object('sku_count', 1 + i % 40), 'done',
       'inventory_push:seed-' || i, 0, null, null, null
from (
  select i, anchor - i * (interval '42 days' / greatest(current_setting('ordak.seed_orders')::int / 10, 20)) as created_at
  from generate_series(1, greatest(current_setting('ordak.seed_orders')::int / 10, 20)) i,
       (select current_setting('ordak.seed_anchor')::timestamptz as anchor) a
) d;

insert into public.work_queue (created_at, updated_at, topic, payload, status, dedupe_key,
                               retry_count, next_retry_at, locked_at, locked_by)
select anchor - age, anchor - age, topic, payload, status, key, retries,
       case when status = 'failed' then anchor + interval '10 minutes' end,
       case when locked then anchor - interval '1 minute' end,
       case when locked then 'worker-1' end
from (values
  (interval '1 minute', 'inventory_push', '{"sku_count": 3}'::jsonb, 'pending', 'inventory_push:seed-p1', 0, false),
  (interval '2 minutes', 'inventory_push', '{"sku_count": 5}', 'pending', 'inventory_push:seed-p2', 0, true),
  (interval '4 minutes', 'order_label', '{"order_id": "bannos-18001"}', 'pending', 'order_label:seed-p3', 0, false),
  (interval '3 minutes', 'inventory_push', '{"sku_count": 8}', 'processing', 'inventory_push:seed-r1', 0, true),
  (interval '50 minutes', 'inventory_push', '{"sku_count": 2}', 'failed', 'inventory_push:seed-f1', 2, false),
  (interval '3 hours', 'order_label', '{"order_id": "flourlane-24001"}', 'failed', 'order_label:seed-f2', 1, false),
  (interval '3 days', 'inventory_push', '{"sku_count": 1}', 'dead', 'inventory_push:seed-d1', 5, false)
) as t (age, topic, payload, status, key, retries, locked),
(select current_setting('ordak.seed_anchor')::timestamptz as anchor) a;

-- ---------------------------------------------------------------- settings, audit, chat
insert into public.settings (store, key, value, updated_at)
select store, key, value::jsonb, current_setting('ordak.seed_anchor')::timestamptz - interval '20 days'
from (values
  ('bannos', 'business_hours', '{"open": "07:00", "close": "19:00"}'),
  ('flourlane', 'business_hours', '{"open": "07:00", "close": "19:00"}'),
  ('bannos', 'shopify_shop', '"bannos.myshopify.com"'),
  ('flourlane', 'shopify_shop', '"flourlane.myshopify.com"'),
  ('global', 'ingestion_alert_hours', '2')
) as t (store, key, value);

insert into public.audit_log (action, performed_by, source, meta, created_at)
select action, (select user_id from seed_staff where n = 1), 'admin_ui', meta::jsonb,
       current_setting('ordak.seed_anchor')::timestamptz - age
from (values
  ('staff_approved', '{"user": "Grace Okafor"}', interval '25 days'),
  ('settings_changed', '{"key": "business_hours"}', interval '20 days'),
  ('staff_deactivated', '{"user": "Noah Kelly"}', interval '9 days')
) as t (action, meta, age);

insert into public.conversations (id, name, type, created_by, created_at, updated_at)
select md5('conversation-floor')::uuid, 'Bakery floor', 'group', user_id,
       current_setting('ordak.seed_anchor')::timestamptz - interval '30 days',
       current_setting('ordak.seed_anchor')::timestamptz - interval '1 hour'
from seed_staff where n = 1;

insert into public.conversation_participants (conversation_id, user_id, joined_at)
select md5('conversation-floor')::uuid, user_id,
       current_setting('ordak.seed_anchor')::timestamptz - interval '30 days'
from seed_staff where n <= 6;

insert into public.messages (conversation_id, sender_id, body, created_at)
select md5('conversation-floor')::uuid, (select user_id from seed_staff where n = 1 + m % 6),
       (array['Morning all', 'Fridge 2 is full', 'Wedding tier for Saturday is in Decorating',
              'Who has the #B batch?', 'QC photos please'])[1 + m % 5],
       current_setting('ordak.seed_anchor')::timestamptz - (12 - m) * interval '1 hour'
from generate_series(1, 10) m;

insert into public.message_reads (message_id, user_id, read_at)
select m.id, p.user_id, m.created_at + interval '5 minutes'
from public.messages m
join public.conversation_participants p on p.conversation_id = m.conversation_id
where p.user_id <> m.sender_id;
