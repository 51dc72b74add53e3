\echo Use "CREATE EXTENSION pg_cron" to load this file. \quit
-- The parts of pg_cron 1.6 that Ordak and the suite touch, with pg_cron's own names.
create schema cron;
create sequence cron.jobid_seq;
create table cron.job (
  jobid bigint primary key default pg_catalog.nextval('cron.jobid_seq'),
  schedule text not null,
  command text not null,
  nodename text not null default 'localhost',
  nodeport integer not null default 5432,
  database text not null default pg_catalog.current_database(),
  username text not null default current_user,
  active boolean not null default true,
  jobname text,
  constraint jobname_username_uniq unique (jobname, username)
);
alter table cron.job enable row level security;
create policy cron_job_policy on cron.job using (username operator(pg_catalog.=) current_user);

create function cron.schedule(job_name text, schedule text, command text) returns bigint
language sql as $$
  insert into cron.job (jobname, schedule, command) values (job_name, schedule, command)
  on conflict (jobname, username)
    do update set schedule = excluded.schedule, command = excluded.command, active = true
  returning jobid
$$;
create function cron.unschedule(job_name text) returns boolean language sql as $$
  with gone as (delete from cron.job where jobname = job_name and username = current_user returning 1)
  select exists (select from gone)
$$;
create function cron.alter_job(job_id bigint, schedule text default null, command text default null,
                               database text default null, username text default null,
                               active boolean default null) returns void
language sql as $$
  update cron.job set schedule = coalesce(alter_job.schedule, job.schedule),
                      command = coalesce(alter_job.command, job.command),
                      active = coalesce(alter_job.active, job.active)
  where jobid = job_id
$$;
