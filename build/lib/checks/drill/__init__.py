"""The restore, rehearsed on this machine: production, base backup, workload (canaries),
incident, PITR or dump restore, integrity (pg_amcheck), then the suite; and how a run becomes a
drill (restore_run: the timeline, the checks it selects).

May import: checks.rules, checks.connect, checks.reference, the core; never the report or the plugin."""
