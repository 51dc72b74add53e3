"""Every write RPC is idempotent, guarded and role-checked (SYSTEM.md), judged by effect:
every column of the order and its stage events, before and after each call. The documented
answer of a repeat is judged apart. One scenario per [behaviour] entry of the contract.
These tests write inside sandbox()."""

import pytest

from checks.contract import contract
from checks.plugin import expect_clean
from checks.rules import rpc

pytestmark = pytest.mark.writes

STORES = contract()["stores"]
SCENARIOS = rpc.scenarios()
PAIRS = [pytest.param(store, name, id=f"{store}-{name}") for store in STORES for name in SCENARIOS]
ANSWERED = [pytest.param(store, name, id=f"{store}-{name}") for store in STORES for name in SCENARIOS
            if "repeat" in SCENARIOS[name]]
GUARDED = [pytest.param(store, name, id=f"{store}-{name}") for store in STORES for name in SCENARIOS
           if rpc.guarded(SCENARIOS[name])]
ABOVE_STAFF = [name for name, spec in SCENARIOS.items() if spec.get("min_role", "Staff") != "Staff"]


@pytest.fixture(scope="module")
def repeat(target):
    """Calls each (store, scenario) pair twice once, for both the effect and the answer tests."""
    done = {}

    def result(store, name):
        if (store, name) not in done:
            done[store, name] = rpc.idempotence(target, store, name)
        return done[store, name]
    return result


@pytest.mark.parametrize("store, name", PAIRS)
def test_repeat_changes_nothing(repeat, store, name):
    expect_clean(repeat(store, name)[0])


@pytest.mark.parametrize("store, name", ANSWERED)
def test_repeat_answers_as_documented(repeat, store, name):
    expect_clean(repeat(store, name)[1])


@pytest.mark.parametrize("store, name", GUARDED)
def test_invalid_transition_rejected(target, store, name):
    expect_clean(rpc.invalid_transition(target, store, name))


@pytest.mark.parametrize("name", ABOVE_STAFF)
def test_role_below_required_refused(target, name):
    expect_clean(rpc.refused(target, STORES[0], name, "below"))


@pytest.mark.parametrize("name", SCENARIOS)
def test_anon_refused(target, name):
    expect_clean(rpc.refused(target, STORES[0], name, "anon"))


@pytest.mark.parametrize("caller", ["unknown", "inactive"])
@pytest.mark.parametrize("name", SCENARIOS)
def test_not_staff_refused(target, name, caller):
    expect_clean(rpc.refused(target, STORES[0], name, caller))
