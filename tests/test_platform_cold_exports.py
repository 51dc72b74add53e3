"""The runbook's optional cold exports (Routine Backups: "weekly cold export"; Data Retention:
"weekly for 4 weeks, monthly for 6 months"), in the folder --cold-exports names: the newest is
recent, the retention holds, and every export reads and holds what a restore needs. Selected
only with --cold-exports. Read-only: pg_restore reads each file into /dev/null."""

from datetime import datetime, timezone

from checks.plugin import expect_clean
from checks.rules import cold_exports as exports


def _today():
    return datetime.now(timezone.utc).date()


def test_cold_export_recent(cold_exports):
    expect_clean(exports.recent(cold_exports, _today()))


def test_cold_export_retention(cold_exports):
    expect_clean(exports.retention(cold_exports, _today()))


def test_cold_exports_restore(cold_exports):
    expect_clean(exports.restores(cold_exports))
