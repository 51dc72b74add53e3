-- Staff messaging, then the platform wiring Ordak depends on: realtime and the scheduled
-- jobs. (QC photos are kept as URLs in order_photos: Ordak has no Storage bucket.)

create table public.conversations (
  id uuid primary key default gen_random_uuid(),
  name text,
  type text not null default 'direct' check (type in ('direct', 'group', 'broadcast')),
  created_by uuid references public.staff_shared (user_id),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create table public.conversation_participants (
  conversation_id uuid not null references public.conversations (id) on delete cascade,
  user_id uuid not null references public.staff_shared (user_id) on delete cascade,
  joined_at timestamptz not null default now(),
  primary key (conversation_id, user_id)
);
create table public.messages (
  id bigint generated always as identity primary key,
  conversation_id uuid not null references public.conversations (id) on delete cascade,
  sender_id uuid references public.staff_shared (user_id),
  body text not null,
  created_at timestamptz not null default now()
);
create index messages_conversation_idx on public.messages (conversation_id, created_at);
create table public.message_reads (
  message_id bigint not null references public.messages (id) on delete cascade,
  user_id uuid not null references public.staff_shared (user_id) on delete cascade,
  read_at timestamptz not null default now(),
  primary key (message_id, user_id)
);

alter table public.conversations enable row level security;
alter table public.conversation_participants enable row level security;
alter table public.messages enable row level security;
alter table public.message_reads enable row level security;

-- A participant reads their conversations; SECURITY DEFINER avoids RLS recursion.
create function public.is_participant(p_conversation_id uuid) returns boolean
language sql stable security definer set search_path = '' as $$
  select exists (
    select from public.conversation_participants
    where conversation_id = p_conversation_id and user_id = auth.uid()
  )
$$;

create policy participant_read on public.conversations for select to authenticated
  using (public.is_participant(id));
create policy participant_read on public.conversation_participants for select to authenticated
  using (public.is_participant(conversation_id));
create policy participant_read on public.messages for select to authenticated
  using (public.is_participant(conversation_id));
create policy own_read on public.message_reads for select to authenticated
  using (user_id = auth.uid());

revoke all on public.conversations, public.conversation_participants, public.messages,
  public.message_reads from anon, authenticated;
grant select on public.conversations, public.conversation_participants, public.messages,
  public.message_reads to authenticated;
revoke all on all sequences in schema public from anon, authenticated;
revoke all on function public.is_participant(uuid) from public, anon;

-- ---------------------------------------------------------------- realtime
-- The live production queue and chat subscribe to these (read receipts are not live).
alter publication supabase_realtime add table
  public.orders_bannos, public.orders_flourlane, public.staff_shared,
  public.conversations, public.conversation_participants, public.messages;

-- ---------------------------------------------------------------- scheduled jobs
-- Alerts when a store ingested no order for 2 hours during business hours (07:00-19:00).
create function public.order_monitor() returns integer
language plpgsql set search_path = '' as $$
declare
  v_alerts integer := 0;
  v_store text;
  v_last timestamptz;
begin
  if extract(hour from now()) not between 7 and 18 then
    return 0;
  end if;
  foreach v_store in array array['bannos', 'flourlane'] loop
    execute format('select max(created_at) from %s', public._orders_table(v_store)) into v_last;
    if v_last is null or v_last < now() - interval '2 hours' then
      insert into public.work_queue (topic, payload, dedupe_key)
      values ('ingestion_alert', jsonb_build_object('store', v_store, 'last_order_at', v_last),
              'ingestion_alert:' || v_store || ':' || to_char(now(), 'YYYY-MM-DD"T"HH24'))
      on conflict (dedupe_key) do nothing;
      v_alerts := v_alerts + 1;
    end if;
  end loop;
  return v_alerts;
end
$$;

-- Orders due tomorrow or earlier that are still open become High priority.
create function public.escalate_priorities() returns integer
language plpgsql set search_path = '' as $$
declare
  v_total integer := 0;
  v_count integer;
  v_store text;
begin
  foreach v_store in array array['bannos', 'flourlane'] loop
    execute format($sql$update %s set priority = 'High'
                        where stage <> 'Complete' and priority <> 'High'
                          and due_date <= current_date + 1$sql$, public._orders_table(v_store));
    get diagnostics v_count = row_count;
    v_total := v_total + v_count;
  end loop;
  return v_total;
end
$$;

revoke all on function public.order_monitor(), public.escalate_priorities() from public, anon, authenticated;

select cron.schedule('order-monitor', '*/30 * * * *', 'select public.order_monitor()');
select cron.schedule('priority-escalation', '0 6 * * *', 'select public.escalate_priorities()');
-- The Edge Function sync-inventory-to-shopify pushes stock levels to both stores (it drains
-- the inventory_push jobs of work_queue), called over HTTP by pg_net. The service role key
-- is a setting of the live database, never in Git.
select cron.schedule('sync-inventory-to-shopify', '*/5 * * * *', $$
  select net.http_post(
    url := 'https://ordak-reference.supabase.co/functions/v1/sync-inventory-to-shopify',
    headers := jsonb_build_object('Content-Type', 'application/json',
                                  'Authorization', 'Bearer ' || current_setting('app.settings.service_role_key', true)),
    body := jsonb_build_object('source', 'pg_cron')
  )
$$);
