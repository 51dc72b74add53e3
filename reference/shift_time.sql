-- Moves every timestamp and date of the reference data forward by `ordak.shift` (an interval),
-- so that a template seeded days ago looks live: its newest order minutes old, its pending
-- jobs fresh. Run as the superuser, with triggers off, right after cloning the template.
set session_replication_role = replica;
do $shift$
declare
  v_shift interval := current_setting('ordak.shift')::interval;
  v_days integer := floor(extract(epoch from current_setting('ordak.shift')::interval) / 86400);
  r record;
begin
  for r in
    select c.table_schema, c.table_name,
           string_agg(format('%1$I = %1$I + %2$s', c.column_name,
                             case c.data_type when 'date' then '$2' else '$1' end), ', ') as sets
    from information_schema.columns c
    join information_schema.tables t using (table_schema, table_name)
    where c.table_schema in ('public', 'auth', 'storage')
      and t.table_type = 'BASE TABLE'
      and c.data_type in ('timestamp with time zone', 'date')
      and c.is_generated = 'NEVER'
    group by c.table_schema, c.table_name
  loop
    execute format('update %I.%I set %s', r.table_schema, r.table_name, r.sets) using v_shift, v_days;
  end loop;
end
$shift$;
reset session_replication_role;
