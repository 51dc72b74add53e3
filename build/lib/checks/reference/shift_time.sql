-- Moves every timestamp and date of the reference data forward by `ordak.shift` (an interval),
-- so that a template seeded days ago looks live: its newest order minutes old, its pending
-- jobs fresh. Run as the superuser right after cloning the template.
--
-- A big table is rewritten once (ALTER COLUMN ... TYPE with USING: a fresh heap and its indexes
-- built in bulk, no dead rows left for autovacuum), about 5x faster than updating every row in
-- place through every index (bench/RESULTS.md); then its shifted columns are analyzed again (the
-- rewrite drops their statistics). A small table, or one whose shifted column a view, rule,
-- policy, trigger, publication filter or generated column depends on (which forbid the
-- rewrite), is updated in place, triggers off.
set session_replication_role = replica;
do $shift$
declare
  v_shift interval := current_setting('ordak.shift')::interval;
  v_days integer := floor(extract(epoch from current_setting('ordak.shift')::interval) / 86400);
  -- tables of at least this many rows are rewritten (a self-test sets 0 to prove the rewrite)
  v_rewrite_rows real := coalesce(nullif(current_setting('ordak.shift_rewrite_rows', true), ''), '10000');
  r record;
begin
  for r in
    select c.oid::regclass as tbl, c.reltuples >= v_rewrite_rows and not bool_or(d.pinned) as rewrite,
           string_agg(format('alter column %1$I type %2$s using %1$I + %3$s', a.attname,
                             format_type(a.atttypid, a.atttypmod), a.shift), ', ') as alters,
           string_agg(format('%1$I = %1$I + %2$s', a.attname, a.shift), ', ') as sets,
           string_agg(quote_ident(a.attname), ', ') as columns
    from pg_class c
    join (select *, case atttypid when 'date'::regtype then v_days::text
                                  else quote_literal(v_shift) || '::interval' end as shift
          from pg_attribute where attnum > 0 and not attisdropped and attgenerated = ''
            and atttypid in ('timestamptz'::regtype, 'date'::regtype)) a on a.attrelid = c.oid
    cross join lateral (select exists (
      select from pg_depend d where d.refobjid = c.oid and d.refobjsubid = a.attnum
        and (d.classid in ('pg_rewrite'::regclass, 'pg_policy'::regclass, 'pg_trigger'::regclass,
                           'pg_publication_rel'::regclass)
             or (d.classid = 'pg_class'::regclass and d.objid = c.oid))) as pinned) d
    where c.relnamespace in ('public'::regnamespace, 'auth'::regnamespace, 'storage'::regnamespace)
      and c.relkind = 'r'
    group by c.oid
  loop
    if r.rewrite then
      execute format('alter table %s %s', r.tbl, r.alters);
      execute format('analyze %s (%s)', r.tbl, r.columns);
    else
      execute format('update %s set %s', r.tbl, r.sets);
    end if;
  end loop;
end
$shift$;
reset session_replication_role;
