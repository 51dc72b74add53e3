"""Security posture (RLS, grants, SECURITY DEFINER hygiene): every rule judges every object
found in the app's schemas, known to the contract or not. Read-only."""

import pytest

from checks.contract import contract, read_rpcs
from checks.plugin import expect_clean
from checks.rules import security


def test_rls_enabled(target):
    expect_clean(security.rls_enabled(target))


def test_no_write_grants_to_api_roles(target):
    expect_clean(security.no_write_grants(target))


def test_rls_tables_have_policies(target):
    expect_clean(security.rls_has_policies(target))


def test_no_always_true_write_policies(target):
    expect_clean(security.no_open_write_policies(target))


def test_definer_functions_pin_search_path(target):
    expect_clean(security.definer_search_path(target))


def test_anon_cannot_execute_definer_functions(target):
    expect_clean(security.anon_execute(target))


@pytest.mark.parametrize("rpc", read_rpcs())
def test_read_rpc_gives_anon_nothing(target, rpc):
    expect_clean(security.anon_read_probe(target, rpc, contract()["rpcs"][rpc]["probe"]))


def test_no_owner_rights_views(target):
    expect_clean(security.owner_rights_views(target))


def test_buckets_private(target):
    expect_clean(security.buckets_private(target))
