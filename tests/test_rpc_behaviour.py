"""Every stage RPC is idempotent, guarded and role-checked (SYSTEM.md), judged by effect:
the order's stage, timestamps, assignee and stage events before and after each call. The
documented answer of a repeat is judged apart. These tests write inside sandbox()."""

import pytest

from checks import rpc
from checks.contract import contract
from checks.plugin import expect_clean

pytestmark = pytest.mark.writes

STORES = contract()["stores"]
RPCS = list(rpc.behaviour())
PAIRS = [pytest.param(store, name, id=f"{store}-{name}") for store in STORES for name in RPCS]
GUARDED = [pytest.param(store, name, id=f"{store}-{name}") for store in STORES for name in RPCS
           if "from" in rpc.behaviour()[name] and name != "print_barcode"]
ABOVE_STAFF = [name for name in RPCS if rpc.behaviour()[name]["min_role"] != "Staff"]


@pytest.fixture(scope="module")
def repeat(target):
    """Calls each (store, RPC) pair twice once, for both the effect and the answer tests."""
    done = {}

    def result(store, name):
        if (store, name) not in done:
            done[store, name] = rpc.idempotence(target, store, name)
        return done[store, name]
    return result


@pytest.mark.parametrize("store, name", PAIRS)
def test_repeat_changes_nothing(repeat, store, name):
    expect_clean(repeat(store, name)[0])


@pytest.mark.parametrize("store, name", PAIRS)
def test_repeat_answers_as_documented(repeat, store, name):
    expect_clean(repeat(store, name)[1])


@pytest.mark.parametrize("store, name", GUARDED)
def test_invalid_transition_rejected(target, store, name):
    expect_clean(rpc.invalid_transition(target, store, name))


@pytest.mark.parametrize("name", ABOVE_STAFF)
def test_role_below_required_refused(target, name):
    expect_clean(rpc.refused(target, STORES[0], name, "below"))


@pytest.mark.parametrize("name", RPCS)
def test_anon_refused(target, name):
    expect_clean(rpc.refused(target, STORES[0], name, "anon"))


@pytest.mark.parametrize("name", RPCS)
def test_unknown_user_refused(target, name):
    expect_clean(rpc.refused(target, STORES[0], name, "unknown"))
