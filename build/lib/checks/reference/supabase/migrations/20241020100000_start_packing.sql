-- The runbook's post-restore checklist starts Packing explicitly: sets packing_start_ts once.
create function public.start_packing(p_store text, p_order_id text)
returns jsonb language sql security definer set search_path = '' as $$
  select public._start_stage(p_store, p_order_id, 'Packing')
$$;

revoke all on function public.start_packing(text, text) from public, anon;
