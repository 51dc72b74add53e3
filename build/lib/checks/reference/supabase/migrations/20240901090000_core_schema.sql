-- Ordak core schema: the two store order tables, staff, the stage audit trail, the work
-- queue, QC photos, ingestion, settings, the audit log, shifts and inventory.

create type public.stage_type as enum ('Filling', 'Covering', 'Decorating', 'Packing', 'Complete');
create type public.priority_level as enum ('High', 'Medium', 'Low');

create table public.staff_shared (
  user_id uuid primary key references auth.users (id) on delete cascade,
  full_name text not null,
  role text not null check (role in ('Admin', 'Supervisor', 'Staff')),
  store text not null default 'both' check (store in ('bannos', 'flourlane', 'both')),
  email text,
  phone text,
  is_active boolean not null default true,
  approved boolean not null default false,
  hourly_rate numeric(8, 2),
  last_login timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table public.orders_bannos (
  row_id uuid primary key default gen_random_uuid(),
  id text not null unique,
  -- Not unique: the rows of a split order (<store>-<number>-A, -B, ...) share the Shopify ids.
  shopify_order_id bigint,
  shopify_order_gid text,
  shopify_order_number integer,
  human_id text,
  customer_name text,
  product_title text,
  flavour text,
  notes text,
  currency char(3),
  total_amount numeric(12, 2),
  order_json jsonb,
  stage public.stage_type not null default 'Filling',
  priority public.priority_level not null default 'Medium',
  assignee_id uuid references public.staff_shared (user_id),
  storage text,
  due_date date,
  due_date_text text,
  delivery_method text,
  size text,
  item_qty integer,
  cake_writing text,
  product_image text,
  accessories jsonb,
  metafield_status text,
  filling_start_ts timestamptz,
  filling_complete_ts timestamptz,
  covering_start_ts timestamptz,
  covering_complete_ts timestamptz,
  decorating_start_ts timestamptz,
  decorating_complete_ts timestamptz,
  packing_start_ts timestamptz,
  packing_complete_ts timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  cancelled_at timestamptz
);
create index orders_bannos_stage_idx on public.orders_bannos (stage);
create index orders_bannos_created_at_idx on public.orders_bannos (created_at);
create index orders_bannos_assignee_idx on public.orders_bannos (assignee_id);
create index orders_bannos_due_date_idx on public.orders_bannos (due_date);
create index orders_bannos_shopify_id_idx on public.orders_bannos (shopify_order_id);
create index orders_bannos_gid_idx on public.orders_bannos (shopify_order_gid);

-- Flourlane is structurally identical to Bannos.
create table public.orders_flourlane (like public.orders_bannos including all);
alter table public.orders_flourlane
  add constraint orders_flourlane_assignee_id_fkey
  foreign key (assignee_id) references public.staff_shared (user_id);

create table public.stage_events (
  id uuid primary key default gen_random_uuid(),
  store text not null check (store in ('bannos', 'flourlane')),
  order_id text not null,
  stage text,
  event_type text not null check (event_type in ('assign', 'complete', 'print', 'start', 'qc_return')),
  at_ts timestamptz not null default now(),
  staff_id uuid,
  ok boolean not null default true,
  meta jsonb not null default '{}'::jsonb
);
create index stage_events_order_idx on public.stage_events (store, order_id);
create index stage_events_at_ts_idx on public.stage_events (at_ts);

create table public.work_queue (
  id uuid primary key default gen_random_uuid(),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  topic text not null,
  payload jsonb not null default '{}'::jsonb,
  status text not null default 'pending'
    check (status in ('pending', 'processing', 'done', 'failed', 'dead')),
  dedupe_key text unique,
  retry_count integer not null default 0,
  next_retry_at timestamptz,
  locked_at timestamptz,
  locked_by text
);
create index work_queue_status_created_idx on public.work_queue (status, created_at);

create table public.order_photos (
  id uuid primary key default gen_random_uuid(),
  order_id text not null,
  store text not null check (store in ('bannos', 'flourlane')),
  stage text,
  url text not null,
  qc_status text not null default 'needs_review' check (qc_status in ('ok', 'needs_review', 'rejected')),
  qc_issue text,
  qc_comments text,
  uploaded_by uuid references public.staff_shared (user_id),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index order_photos_order_idx on public.order_photos (store, order_id);

create table public.settings (
  store text not null check (store in ('bannos', 'flourlane', 'global')),
  key text not null,
  value jsonb not null,
  updated_at timestamptz not null default now(),
  primary key (store, key)
);

create table public.audit_log (
  id bigint generated always as identity primary key,
  action text not null,
  performed_by uuid,
  source text,
  meta jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now()
);

-- Ingestion: the webhook Edge Function stores each Shopify payload here (id <store>-<number>);
-- process-inbox (service role) upserts the order rows and marks the payload processed.
create table public.webhook_inbox_bannos (
  id text primary key,
  payload jsonb not null,
  processed boolean not null default false,
  created_at timestamptz not null default now()
);
create table public.webhook_inbox_flourlane (like public.webhook_inbox_bannos including all);

create table public.processed_webhooks (
  webhook_id text primary key,
  store text not null,
  topic text,
  processed_at timestamptz not null default now()
);

create table public.dead_letter (
  id uuid primary key default gen_random_uuid(),
  source text not null,
  payload jsonb not null,
  error text,
  created_at timestamptz not null default now()
);

create table public.users (
  id uuid primary key references auth.users (id) on delete cascade,
  display_name text,
  created_at timestamptz not null default now()
);

-- ---------------------------------------------------------------- shifts
create table public.shifts (
  id uuid primary key default gen_random_uuid(),
  staff_id uuid not null references public.staff_shared (user_id),
  store text not null check (store in ('bannos', 'flourlane')),
  start_ts timestamptz not null,
  end_ts timestamptz
);
create table public.breaks (
  id uuid primary key default gen_random_uuid(),
  shift_id uuid not null references public.shifts (id) on delete cascade,
  start_ts timestamptz not null,
  end_ts timestamptz
);

-- ---------------------------------------------------------------- inventory
create table public.components (
  id uuid primary key default gen_random_uuid(),
  sku text not null unique,
  name text not null,
  on_hand numeric(12, 2) not null default 0,
  updated_at timestamptz not null default now()
);
create table public.accessories (
  id uuid primary key default gen_random_uuid(),
  sku text not null unique,
  name text not null,
  on_hand integer not null default 0
);
create table public.cake_toppers (
  id uuid primary key default gen_random_uuid(),
  name text not null,
  on_hand integer not null default 0
);
create table public.boms (
  id uuid primary key default gen_random_uuid(),
  store text not null check (store in ('bannos', 'flourlane')),
  product_title text not null
);
create table public.bom_items (
  bom_id uuid not null references public.boms (id) on delete cascade,
  component_id uuid not null references public.components (id),
  quantity numeric(12, 2) not null,
  primary key (bom_id, component_id)
);
create table public.stock_transactions (
  id uuid primary key default gen_random_uuid(),
  component_id uuid not null references public.components (id),
  change numeric(12, 2) not null,
  reason text,
  order_id text,
  created_at timestamptz not null default now()
);
create table public.inventory_sync_queue (
  id uuid primary key default gen_random_uuid(),
  sku text not null,
  store text not null,
  status text not null default 'pending',
  created_at timestamptz not null default now()
);

-- ---------------------------------------------------------------- who is calling
-- The caller's staff role, or null for anyone who is not active, approved staff.
-- SECURITY DEFINER so that RLS policies on staff_shared can use it without recursion.
create function public.current_staff_role() returns text
language sql stable security definer set search_path = '' as $$
  select s.role from public.staff_shared s
  where s.user_id = auth.uid() and s.is_active and s.approved
$$;

-- ---------------------------------------------------------------- row level security
-- Reads: staff see orders and their trail; only Admins see operational tables.
-- Writes: none through tables at all; every write goes through a SECURITY DEFINER RPC.
alter table public.staff_shared enable row level security;
alter table public.orders_bannos enable row level security;
alter table public.orders_flourlane enable row level security;
alter table public.stage_events enable row level security;
alter table public.work_queue enable row level security;
alter table public.order_photos enable row level security;
alter table public.settings enable row level security;
alter table public.audit_log enable row level security;
alter table public.webhook_inbox_bannos enable row level security;
alter table public.webhook_inbox_flourlane enable row level security;
alter table public.processed_webhooks enable row level security;
alter table public.dead_letter enable row level security;
alter table public.users enable row level security;
alter table public.shifts enable row level security;
alter table public.breaks enable row level security;
alter table public.components enable row level security;
alter table public.accessories enable row level security;
alter table public.cake_toppers enable row level security;
alter table public.boms enable row level security;
alter table public.bom_items enable row level security;
alter table public.stock_transactions enable row level security;
alter table public.inventory_sync_queue enable row level security;

create policy staff_read on public.staff_shared for select to authenticated
  using (user_id = auth.uid() or public.current_staff_role() is not null);
create policy staff_read on public.orders_bannos for select to authenticated
  using (public.current_staff_role() is not null);
create policy staff_read on public.orders_flourlane for select to authenticated
  using (public.current_staff_role() is not null);
create policy staff_read on public.stage_events for select to authenticated
  using (public.current_staff_role() is not null);
create policy staff_read on public.order_photos for select to authenticated
  using (public.current_staff_role() is not null);
create policy admin_read on public.work_queue for select to authenticated
  using (public.current_staff_role() = 'Admin');
create policy admin_read on public.settings for select to authenticated
  using (public.current_staff_role() = 'Admin');
create policy admin_read on public.audit_log for select to authenticated
  using (public.current_staff_role() = 'Admin');
create policy admin_read on public.webhook_inbox_bannos for select to authenticated
  using (public.current_staff_role() = 'Admin');
create policy admin_read on public.webhook_inbox_flourlane for select to authenticated
  using (public.current_staff_role() = 'Admin');
create policy admin_read on public.processed_webhooks for select to authenticated
  using (public.current_staff_role() = 'Admin');
create policy admin_read on public.dead_letter for select to authenticated
  using (public.current_staff_role() = 'Admin');
create policy own_read on public.users for select to authenticated
  using (id = auth.uid());
create policy staff_read on public.shifts for select to authenticated
  using (staff_id = auth.uid() or public.current_staff_role() in ('Admin', 'Supervisor'));
create policy staff_read on public.breaks for select to authenticated
  using (public.current_staff_role() is not null);
create policy staff_read on public.components for select to authenticated
  using (public.current_staff_role() is not null);
create policy staff_read on public.accessories for select to authenticated
  using (public.current_staff_role() is not null);
create policy staff_read on public.cake_toppers for select to authenticated
  using (public.current_staff_role() is not null);
create policy staff_read on public.boms for select to authenticated
  using (public.current_staff_role() is not null);
create policy staff_read on public.bom_items for select to authenticated
  using (public.current_staff_role() is not null);
create policy admin_read on public.stock_transactions for select to authenticated
  using (public.current_staff_role() = 'Admin');
create policy admin_read on public.inventory_sync_queue for select to authenticated
  using (public.current_staff_role() = 'Admin');

-- Undo Supabase's default grants: the API roles read (under RLS) and never write.
revoke all on all tables in schema public from anon, authenticated;
revoke all on all sequences in schema public from anon, authenticated;
grant select on all tables in schema public to authenticated;
revoke all on all functions in schema public from public, anon, authenticated;
grant execute on function public.current_staff_role() to authenticated;
