-- Stage RPCs. Every write in Ordak goes through one of these SECURITY DEFINER functions;
-- each checks the caller's staff role itself, guards the stage it acts on, and sets
-- updated_at itself (Ordak has no updated_at triggers). A repeated stage change changes
-- nothing and says so; prints and assignments record actions, so each call logs its event.

-- ---------------------------------------------------------------- internal helpers
-- Not part of the API: EXECUTE is revoked from every API role at the end of this file. They
-- run with the rights of the SECURITY DEFINER RPC that calls them, so none is a definer itself.

-- The caller's role, or an error if the caller is not active staff with at least p_min_role.
create function public._require_staff(p_min_role text default 'Staff') returns text
language plpgsql stable set search_path = '' as $$
declare
  v_role text := public.current_staff_role();
  v_rank constant jsonb := '{"Staff": 1, "Supervisor": 2, "Admin": 3}';
begin
  if v_role is null then
    raise exception 'permission denied: caller is not active staff' using errcode = '42501';
  end if;
  if (v_rank ->> v_role)::int < (v_rank ->> p_min_role)::int then
    raise exception 'permission denied: % role required', p_min_role using errcode = '42501';
  end if;
  return v_role;
end
$$;

create function public._orders_table(p_store text) returns regclass
language plpgsql immutable set search_path = '' as $$
begin
  if p_store not in ('bannos', 'flourlane') then
    raise exception 'unknown store: %', p_store using errcode = '22023';
  end if;
  return format('public.orders_%s', p_store)::regclass;
end
$$;

-- Locks the order and returns its stage; an unknown order is an error.
create function public._lock_order(p_store text, p_order_id text) returns public.stage_type
language plpgsql set search_path = '' as $$
declare
  v_stage public.stage_type;
begin
  execute format('select stage from %s where id = $1 for update', public._orders_table(p_store))
    into v_stage using p_order_id;
  if v_stage is null then
    raise exception 'order % not found in %', p_order_id, p_store using errcode = 'P0002';
  end if;
  return v_stage;
end
$$;

create function public._log_event(
  p_store text, p_order_id text, p_stage text, p_event_type text, p_meta jsonb default '{}'::jsonb
) returns void
language sql set search_path = '' as $$
  insert into public.stage_events (store, order_id, stage, event_type, staff_id, meta)
  values (p_store, p_order_id, p_stage, p_event_type, auth.uid(), coalesce(p_meta, '{}'::jsonb))
$$;

-- Sets <stage>_start_ts once. A repeat is a no-op answered with "skipped".
create function public._start_stage(p_store text, p_order_id text, p_stage public.stage_type)
returns jsonb
language plpgsql set search_path = '' as $$
declare
  v_stage public.stage_type;
  v_started timestamptz;
  v_col text := lower(p_stage::text) || '_start_ts';
begin
  perform public._require_staff('Staff');
  v_stage := public._lock_order(p_store, p_order_id);
  if v_stage <> p_stage then
    raise exception 'order % is in %, not %', p_order_id, v_stage, p_stage using errcode = 'P0001';
  end if;
  execute format('select %I from %s where id = $1', v_col, public._orders_table(p_store))
    into v_started using p_order_id;
  if v_started is not null then
    return jsonb_build_object('success', true, 'skipped', true, 'reason', 'already started',
                              'order_id', p_order_id, 'stage', p_stage, 'started_at', v_started);
  end if;
  execute format('update %s set %I = now(), updated_at = now() where id = $1',
                 public._orders_table(p_store), v_col)
    using p_order_id;
  perform public._log_event(p_store, p_order_id, p_stage::text, 'start');
  return jsonb_build_object('success', true, 'skipped', false, 'order_id', p_order_id, 'stage', p_stage);
end
$$;

-- Moves an order from p_stage to the next stage and stamps the stage complete; entering
-- Packing starts it. Timestamps already set are kept: a stamp, once written, never changes.
create function public._complete_stage(p_store text, p_order_id text, p_stage public.stage_type, p_notes text)
returns boolean
language plpgsql set search_path = '' as $$
declare
  v_stage public.stage_type;
  v_next public.stage_type := (enum_range(p_stage, null))[2];
  v_start text := lower(p_stage::text) || '_start_ts';
  v_done text := lower(p_stage::text) || '_complete_ts';
begin
  perform public._require_staff('Staff');
  v_stage := public._lock_order(p_store, p_order_id);
  if v_stage <> p_stage then
    raise exception 'order % is in %, not %', p_order_id, v_stage, p_stage using errcode = 'P0001';
  end if;
  execute format('update %s set stage = $2, %I = coalesce(%I, now()), %I = coalesce(%I, now())%s, '
                 'updated_at = now() where id = $1',
                 public._orders_table(p_store), v_start, v_start, v_done, v_done,
                 case when v_next = 'Packing' then ', packing_start_ts = coalesce(packing_start_ts, now())' else '' end)
    using p_order_id, v_next;
  perform public._log_event(p_store, p_order_id, p_stage::text, 'complete',
                            jsonb_strip_nulls(jsonb_build_object('notes', p_notes)));
  return true;
end
$$;

-- ---------------------------------------------------------------- the API

-- Prints the docket. The first print starts Filling; every print, repeats included, is a
-- real print and logs one 'print' event; a repeat changes no order column and answers
-- "already_done" (the runbook's answer).
create function public.print_barcode(p_store text, p_order_id text) returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  v_stage public.stage_type;
  v_printed timestamptz;
  v_number integer;
  v_barcode text;
begin
  perform public._require_staff('Staff');
  v_stage := public._lock_order(p_store, p_order_id);
  execute format('select filling_start_ts, shopify_order_number from %s where id = $1',
                 public._orders_table(p_store))
    into v_printed, v_number using p_order_id;
  -- A split order's cake carries its suffix, so that the scanner can tell the siblings apart.
  v_barcode := case p_store when 'bannos' then '#B' else '#F' end || v_number
               || coalesce(substring(p_order_id from '^[a-z]+-[0-9]+(-[A-Z0-9]+)$'), '');
  if v_printed is null and v_stage <> 'Filling' then
    raise exception 'order % is in %, not Filling', p_order_id, v_stage using errcode = 'P0001';
  end if;
  if v_printed is null then
    execute format('update %s set filling_start_ts = now(), updated_at = now() where id = $1',
                   public._orders_table(p_store))
      using p_order_id;
  end if;
  perform public._log_event(p_store, p_order_id, 'Filling', 'print',
                            jsonb_build_object('barcode', v_barcode, 'first_filling_print', v_printed is null));
  return jsonb_build_object('success', true, 'already_done', v_printed is not null, 'order_id', p_order_id,
                            'barcode', v_barcode);
end
$$;

create function public.complete_filling(p_order_id text, p_store text, p_notes text default null)
returns boolean language sql security definer set search_path = '' as $$
  select public._complete_stage(p_store, p_order_id, 'Filling', p_notes)
$$;

create function public.start_covering(p_store text, p_order_id text)
returns jsonb language sql security definer set search_path = '' as $$
  select public._start_stage(p_store, p_order_id, 'Covering')
$$;

create function public.complete_covering(p_order_id text, p_store text, p_notes text default null)
returns boolean language sql security definer set search_path = '' as $$
  select public._complete_stage(p_store, p_order_id, 'Covering', p_notes)
$$;

create function public.start_decorating(p_store text, p_order_id text)
returns jsonb language sql security definer set search_path = '' as $$
  select public._start_stage(p_store, p_order_id, 'Decorating')
$$;

create function public.complete_decorating(p_order_id text, p_store text, p_notes text default null)
returns boolean language sql security definer set search_path = '' as $$
  select public._complete_stage(p_store, p_order_id, 'Decorating', p_notes)
$$;

create function public.complete_packing(p_order_id text, p_store text, p_notes text default null)
returns boolean language sql security definer set search_path = '' as $$
  select public._complete_stage(p_store, p_order_id, 'Packing', p_notes)
$$;

-- QC failure, worked by the packer (Staff): Packing goes back to Decorating, unassigned, and
-- Decorating is open again (its completion and the Packing start are set again when it completes).
create function public.qc_return_to_decorating(p_order_id text, p_store text, p_notes text)
returns boolean
language plpgsql security definer set search_path = '' as $$
declare
  v_stage public.stage_type;
begin
  perform public._require_staff('Staff');
  v_stage := public._lock_order(p_store, p_order_id);
  if v_stage <> 'Packing' then
    raise exception 'order % is in %, not Packing', p_order_id, v_stage using errcode = 'P0001';
  end if;
  execute format('update %s set stage = ''Decorating'', assignee_id = null, decorating_complete_ts = null, '
                 'packing_start_ts = null, updated_at = now() where id = $1', public._orders_table(p_store))
    using p_order_id;
  perform public._log_event(p_store, p_order_id, 'Packing', 'qc_return',
                            jsonb_strip_nulls(jsonb_build_object('notes', p_notes)));
  return true;
end
$$;

-- Assignment never touches the stage. p_staff_id null unassigns. Every call logs one event.
create function public.assign_staff(p_order_id text, p_store text, p_staff_id uuid) returns boolean
language plpgsql security definer set search_path = '' as $$
declare
  v_current uuid;
begin
  perform public._require_staff('Supervisor');
  if p_staff_id is not null
     and not exists (select from public.staff_shared where user_id = p_staff_id and is_active) then
    raise exception 'staff % not found or inactive', p_staff_id using errcode = 'P0002';
  end if;
  perform public._lock_order(p_store, p_order_id);
  execute format('select assignee_id from %s where id = $1', public._orders_table(p_store))
    into v_current using p_order_id;
  if v_current is distinct from p_staff_id then
    execute format('update %s set assignee_id = $2, updated_at = now() where id = $1',
                   public._orders_table(p_store))
      using p_order_id, p_staff_id;
  end if;
  perform public._log_event(p_store, p_order_id, null, 'assign',
                            jsonb_build_object('action', case when p_staff_id is null then 'unassign' else 'assign' end,
                                               'staff_id', p_staff_id, 'previous', v_current));
  return true;
end
$$;

-- What the app's assignment dialog calls (the runbook's version; see contract [runbook]).
create function public.unassign_staff(p_order_id text, p_store text) returns boolean
language sql security definer set search_path = '' as $$
  select public.assign_staff(p_order_id, p_store, null)
$$;

-- Cancelling moves an order to Complete, stamping only cancelled_at; no stage event.
create function public.cancel_order(p_order_id text, p_store text) returns boolean
language plpgsql security definer set search_path = '' as $$
begin
  perform public._require_staff('Supervisor');
  perform public._lock_order(p_store, p_order_id);
  execute format('update %s set stage = ''Complete'', cancelled_at = coalesce(cancelled_at, now()), '
                 'updated_at = now() where id = $1', public._orders_table(p_store))
    using p_order_id;
  return true;
end
$$;

-- An Admin closes an order by hand: Complete, stamping only packing_complete_ts; no stage event.
create function public.mark_order_complete(p_order_id text, p_store text) returns boolean
language plpgsql security definer set search_path = '' as $$
begin
  perform public._require_staff('Admin');
  perform public._lock_order(p_store, p_order_id);
  execute format('update %s set stage = ''Complete'', packing_complete_ts = coalesce(packing_complete_ts, now()), '
                 'updated_at = now() where id = $1', public._orders_table(p_store))
    using p_order_id;
  return true;
end
$$;

-- ---------------------------------------------------------------- privileges
revoke all on all functions in schema public from public, anon, authenticated;
grant execute on function public.current_staff_role() to authenticated;
grant execute on function
  public.print_barcode(text, text),
  public.complete_filling(text, text, text),
  public.start_covering(text, text),
  public.complete_covering(text, text, text),
  public.start_decorating(text, text),
  public.complete_decorating(text, text, text),
  public.complete_packing(text, text, text),
  public.qc_return_to_decorating(text, text, text),
  public.assign_staff(text, text, uuid),
  public.unassign_staff(text, text),
  public.cancel_order(text, text),
  public.mark_order_complete(text, text)
  to authenticated;
