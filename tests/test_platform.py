"""Supabase platform over HTTP (runbook: weekly check 1 "PITR window is 7 days", migrations
vs Git, the anon key's reach, the keys rotated at cut-over, post-restore "photos readable").
Read-only: the HTTP client only reads. Each part skips, naming what to set, on an environment
without its settings; a rotated key is checked only where the environment names it."""

import pytest

from checks.contract import contract, read_rpcs
from checks.plugin import expect_clean
from checks.rules import platform


# -- Management API -------------------------------------------------------------------
def test_pitr_enabled(management_answers):
    expect_clean(platform.pitr_enabled(management_answers))


def test_pitr_window(management_answers, thresholds):
    expect_clean(platform.pitr_window(management_answers, thresholds))


def test_pitr_latest_restore_point_recent(management_answers, thresholds):
    expect_clean(platform.pitr_latest_recent(management_answers, thresholds))


def test_backup_recent(management_answers, thresholds):
    expect_clean(platform.backup_recent(management_answers, thresholds))


def test_no_failed_backup_after_last_completed(management_answers):
    expect_clean(platform.no_failed_backup(management_answers))


def test_api_migrations_match_git(management_answers, migrations_dir):
    expect_clean(platform.api_migrations(management_answers, migrations_dir))


def test_security_advisor(management_answers, advisor_lint):
    """One test id per lint (its cache_key), parametrized by the plugin from the API's answer."""
    expect_clean(platform.advisor_lint(management_answers, advisor_lint))


# -- PostgREST with the anon key ----------------------------------------------------------
def test_rest_api_answers(rest_platform):
    expect_clean(platform.rest_answers(rest_platform))


@pytest.mark.parametrize("rpc", read_rpcs())
def test_anon_rest_read_rpc(rest_platform, target, rpc):
    expect_clean(platform.anon_rest_rpc(rest_platform, target, rpc))


@pytest.mark.parametrize("store", contract()["stores"])
def test_anon_rest_cannot_read_orders(rest_platform, store):
    expect_clean(platform.anon_rest_table(rest_platform, store))


# -- keys rotated out at cut-over (runbook, Cut Over Production: "Rotate keys") --------------
@pytest.mark.parametrize("previous_key", platform.PREVIOUS_KEYS)
def test_rotated_key_refused(rest_platform, previous_key):
    """Deselected unless the environment names that key (secrets.previous_anon_key, ...)."""
    expect_clean(platform.rotated_key_refused(rest_platform, previous_key))


# -- photos ---------------------------------------------------------------------------------
def test_photos_readable(photo_platform, target, thresholds):
    expect_clean(platform.photos_readable(photo_platform, target, thresholds["photo_sample_size"]))
