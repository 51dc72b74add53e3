-- Read RPCs behind the production queue screens and the barcode scanner.

-- The production queue of one store: every open order except point-of-sale ones, paged.
create function public.get_queue(
  p_store text,
  p_stage text default null,
  p_assignee_id uuid default null,
  p_search text default null,
  p_priority text default null,
  p_storage text default null,
  p_offset integer default 0,
  p_limit integer default 50,
  p_sort_by text default 'priority',
  p_sort_order text default 'asc'
) returns table (
  id text, store text, human_id text, shopify_order_number integer, customer_name text,
  product_title text, flavour text, size text, item_qty integer, stage public.stage_type,
  priority public.priority_level, assignee_id uuid, assignee_name text, storage text,
  due_date date, delivery_method text, notes text, created_at timestamptz, total_count bigint
)
language plpgsql stable security definer set search_path = '' as $$
declare
  v_sort text := case p_sort_by
    when 'priority' then 'o.priority'
    when 'due_date' then 'o.due_date'
    when 'created_at' then 'o.created_at'
    when 'customer_name' then 'o.customer_name'
  end;
begin
  perform public._require_staff('Staff');
  if v_sort is null then
    raise exception 'unknown sort column: %', p_sort_by using errcode = '22023';
  end if;
  if lower(p_sort_order) not in ('asc', 'desc') then
    raise exception 'unknown sort order: %', p_sort_order using errcode = '22023';
  end if;
  return query execute format($sql$
    select o.id, %L::text, o.human_id, o.shopify_order_number, o.customer_name, o.product_title,
           o.flavour, o.size, o.item_qty, o.stage, o.priority, o.assignee_id, s.full_name,
           o.storage, o.due_date, o.delivery_method, o.notes, o.created_at, count(*) over ()
    from %s o
    left join public.staff_shared s on s.user_id = o.assignee_id
    where o.stage <> 'Complete'
      and coalesce(o.order_json ->> 'source_name', '') <> 'pos'
      and ($1 is null or o.stage = $1::public.stage_type)
      and ($2 is null or o.assignee_id = $2)
      and ($3 is null or o.id ilike '%%' || $3 || '%%' or o.customer_name ilike '%%' || $3 || '%%'
           or o.product_title ilike '%%' || $3 || '%%')
      and ($4 is null or o.priority = $4::public.priority_level)
      and ($5 is null or o.storage = $5)
    order by %s %s nulls last, o.created_at, o.id
    offset $6 limit $7$sql$,
    p_store, public._orders_table(p_store), v_sort, lower(p_sort_order))
  using p_stage, p_assignee_id, p_search, p_priority, p_storage,
        greatest(p_offset, 0), least(greatest(p_limit, 1), 500);
end
$$;

-- Orders nobody is assigned to, per open stage (zeros included).
create function public.get_unassigned_counts(p_store text) returns table (stage text, count bigint)
language plpgsql stable security definer set search_path = '' as $$
begin
  perform public._require_staff('Staff');
  return query execute format($sql$
    select s.label::text, count(o.id)
    from unnest(enum_range(null::public.stage_type)) as s (label)
    left join %s o on o.stage = s.label and o.assignee_id is null
    where s.label <> 'Complete'
    group by s.label
    order by s.label$sql$, public._orders_table(p_store));
end
$$;

-- The queue screen's counters. Per stage: orders in it that someone works on ("active work").
create function public.get_queue_stats(p_store text) returns table (
  total_orders bigint, completed_orders bigint, in_production bigint, unassigned_orders bigint,
  filling_count bigint, covering_count bigint, decorating_count bigint, packing_count bigint
)
language plpgsql stable security definer set search_path = '' as $$
begin
  perform public._require_staff('Staff');
  return query execute format($sql$
    select count(*),
           count(*) filter (where stage = 'Complete'),
           count(*) filter (where stage <> 'Complete'),
           count(*) filter (where stage <> 'Complete' and assignee_id is null),
           count(*) filter (where stage = 'Filling' and assignee_id is not null),
           count(*) filter (where stage = 'Covering' and assignee_id is not null),
           count(*) filter (where stage = 'Decorating' and assignee_id is not null),
           count(*) filter (where stage = 'Packing' and assignee_id is not null)
    from %s$sql$, public._orders_table(p_store));
end
$$;

-- What the scanner shows for one cake.
create type public.scanner_order_result as (
  id text, store text, stage public.stage_type, priority public.priority_level, assignee_id uuid,
  customer_name text, product_title text, flavour text, size text, due_date date,
  shopify_order_number integer,
  filling_start_ts timestamptz, filling_complete_ts timestamptz,
  covering_start_ts timestamptz, covering_complete_ts timestamptz,
  decorating_start_ts timestamptz, decorating_complete_ts timestamptz,
  packing_start_ts timestamptz, packing_complete_ts timestamptz
);

-- Resolves what the scanner read to one cake: '#B18617', 'bannos-18617', a bare '18617'
-- (Bannos first), or a split order's cake by its full id ('bannos-24201-B') or its printed
-- barcode ('#B24201-B'). Null when nothing matches or the scan cannot be read.
create function public.get_order_for_scan(p_scan text) returns public.scanner_order_result
language plpgsql stable security definer set search_path = '' as $$
declare
  v_scan text := upper(btrim(p_scan));
  v_parts text[];
  v_ids text[];
  v_result public.scanner_order_result;
begin
  perform public._require_staff('Staff');
  if v_scan ~ '^#[BF][0-9]+(-[A-Z0-9]+)?$' then
    v_parts := regexp_match(v_scan, '^#([BF])([0-9]+)(-[A-Z0-9]+)?$');
    v_ids := array[case v_parts[1] when 'B' then 'bannos' else 'flourlane' end || '-' || v_parts[2]
                   || coalesce(v_parts[3], '')];
  elsif v_scan ~ '^(BANNOS|FLOURLANE)-[0-9]+(-[A-Z0-9]+)?$' then
    v_ids := array[lower(split_part(v_scan, '-', 1)) || substr(v_scan, position('-' in v_scan))];
  elsif v_scan ~ '^[0-9]+$' then
    v_ids := array['bannos-' || v_scan, 'flourlane-' || v_scan];
  else
    return null;
  end if;
  select t.id, t.store, t.stage, t.priority, t.assignee_id, t.customer_name, t.product_title, t.flavour,
         t.size, t.due_date, t.shopify_order_number, t.filling_start_ts, t.filling_complete_ts,
         t.covering_start_ts, t.covering_complete_ts, t.decorating_start_ts, t.decorating_complete_ts,
         t.packing_start_ts, t.packing_complete_ts
  into v_result
  from (
    select o.*, 'bannos'::text as store, 1 as pick from public.orders_bannos o where o.id = any(v_ids)
    union all
    select o.*, 'flourlane'::text, 2 from public.orders_flourlane o where o.id = any(v_ids)
  ) t
  order by t.pick
  limit 1;
  return v_result;
end
$$;

revoke all on function
  public.get_queue(text, text, uuid, text, text, text, integer, integer, text, text),
  public.get_unassigned_counts(text),
  public.get_queue_stats(text),
  public.get_order_for_scan(text)
  from public, anon;
