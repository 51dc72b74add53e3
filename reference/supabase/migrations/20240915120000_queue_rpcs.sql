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

create function public.get_queue_stats(p_store text) returns table (
  total_orders bigint, filling_count bigint, covering_count bigint, decorating_count bigint,
  packing_count bigint, complete_count bigint, unassigned_count bigint
)
language plpgsql stable security definer set search_path = '' as $$
begin
  perform public._require_staff('Staff');
  return query execute format($sql$
    select count(*),
           count(*) filter (where stage = 'Filling'),
           count(*) filter (where stage = 'Covering'),
           count(*) filter (where stage = 'Decorating'),
           count(*) filter (where stage = 'Packing'),
           count(*) filter (where stage = 'Complete'),
           count(*) filter (where stage <> 'Complete' and assignee_id is null)
    from %s$sql$, public._orders_table(p_store));
end
$$;

-- Resolves what the scanner read: '#B18617', 'bannos-18617' or a bare '18617' (Bannos first).
create function public.get_order_for_scan(p_scan text) returns table (
  id text, store text, stage public.stage_type, priority public.priority_level, assignee_id uuid,
  customer_name text, product_title text, due_date date, shopify_order_number integer
)
language plpgsql stable security definer set search_path = '' as $$
#variable_conflict use_column
declare
  v_scan text := upper(btrim(p_scan));
  v_store text;
  v_number text;
begin
  perform public._require_staff('Staff');
  if v_scan ~ '^#[BF][0-9]+$' then
    v_store := case substr(v_scan, 2, 1) when 'B' then 'bannos' else 'flourlane' end;
    v_number := substr(v_scan, 3);
  elsif v_scan ~ '^(BANNOS|FLOURLANE)-[0-9]+$' then
    v_store := lower(split_part(v_scan, '-', 1));
    v_number := split_part(v_scan, '-', 2);
  elsif v_scan ~ '^[0-9]+$' then
    v_number := v_scan;
  else
    raise exception 'unrecognised scan: %', p_scan using errcode = '22023';
  end if;
  return query
    select t.id, t.store, t.stage, t.priority, t.assignee_id, t.customer_name, t.product_title,
           t.due_date, t.shopify_order_number
    from (
      select o.*, 'bannos'::text as store, 1 as pick from public.orders_bannos o
      where coalesce(v_store, 'bannos') = 'bannos' and o.id = 'bannos-' || v_number
      union all
      select o.*, 'flourlane'::text, 2 from public.orders_flourlane o
      where coalesce(v_store, 'flourlane') = 'flourlane' and o.id = 'flourlane-' || v_number
    ) t
    order by t.pick
    limit 1;
end
$$;

revoke all on function
  public.get_queue(text, text, uuid, text, text, text, integer, integer, text, text),
  public.get_unassigned_counts(text),
  public.get_queue_stats(text),
  public.get_order_for_scan(text)
  from public, anon;
