"""Ordak backup-and-restore verification: the library the pytest suite stands on.

The house, by concern; imports only point down (selftests/test_layers.py keeps it so):

    plugin.py, run.py   the pytest plugin (the only module that knows pytest) and what a run
                        resolves before the checks: the environment, the target, the clock
    report/             the run's summary and what it writes: pytest-html's fragments, the
                        JSON summary, the postmortem draft, the history
    drill/              the restore rehearsed: backup, workload, incident, PITR or dump
    rules/              what Ordak must be: one module per area, each check a query that
                        returns violations
    connect/            where the suite looks: environments, targets and their guards, HTTP
    reference/          the embedded reference Ordak, with its SQL as package data
    core.py, contract.py (+ contract.toml), errors.py, migration_files.py
                        what everything stands on: checks and verdicts, what Ordak must
                        have, one-line errors, migration files as the Supabase CLI reads them
"""
