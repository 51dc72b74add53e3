-- Cluster-wide roles, shaped like a Supabase project's. Run once per cluster as the
-- bootstrap superuser (supabase_admin), on the `postgres` database. Idempotent.
--
-- As on Supabase, `postgres` owns the application's objects but is NOT a superuser:
-- a check that only passes for a superuser would lie about production.
do $$
declare
  r record;
begin
  for r in
    select * from (values
      ('postgres',                'login createrole createdb replication bypassrls'),
      ('anon',                    'nologin noinherit'),
      ('authenticated',           'nologin noinherit'),
      ('service_role',            'nologin noinherit bypassrls'),
      ('authenticator',           'login noinherit'),
      ('supabase_read_only_user', 'login bypassrls')
    ) as t(name, options)
  loop
    if not exists (select from pg_roles where rolname = r.name) then
      execute format('create role %I %s', r.name, r.options);
    end if;
  end loop;
end
$$;

-- PostgREST logs in as authenticator and switches to anon/authenticated/service_role per
-- request; postgres may do the same (the suite's as_staff()/as_anon() rely on it).
grant anon, authenticated, service_role to authenticator;
grant anon, authenticated, service_role to postgres;
grant pg_read_all_data to supabase_read_only_user;
