"""Store data after a restore (runbook step 3): counts per store, the last order ingested
measured against the reference time (the RPO), and the integrity a restore can break.
Optionally compared day by day with another environment (--compare-to). Read-only."""

import pytest

from checks.contract import contract
from checks.plugin import expect_clean
from checks.rules import compare, data

STORES = contract()["stores"]


@pytest.mark.parametrize("store", STORES)
def test_store_not_empty(target, store):
    expect_clean(data.store_not_empty(target, store))


@pytest.mark.parametrize("store", STORES)
def test_orders_not_dropped(target, store, previous_run, thresholds):
    env = target.env
    if env.embedded or env.rehearsal is not None:
        pytest.skip(f"environment '{env.name}' builds its data anew for each run: no count to keep")
    expect_clean(data.orders_not_dropped(target, store, previous_run, env.name, thresholds["max_orders_dropped"]))


@pytest.mark.parametrize("store", STORES)
def test_last_order_fresh(target, store, clock, thresholds):
    expect_clean(data.last_order_fresh(target, store, clock, thresholds))


@pytest.mark.parametrize("store", STORES)
def test_no_orders_after_reference_time(target, store, clock, thresholds):
    expect_clean(data.nothing_after(target, store, clock, thresholds))


@pytest.mark.parametrize("store", STORES)
def test_stage_timestamps_consistent(target, store, clock, thresholds):
    expect_clean(data.stage_timestamps(target, store, clock, thresholds))


@pytest.mark.parametrize("store", STORES)
def test_assignees_exist(target, store):
    expect_clean(data.assignees_exist(target, store))


@pytest.mark.parametrize("store", STORES)
def test_stage_events_present(target, store):
    expect_clean(data.stage_events_present(target, store))


@pytest.mark.parametrize("store", STORES)
def test_no_shopify_duplicates(target, store):
    expect_clean(data.shopify_duplicates(target, store))


@pytest.mark.urgent
@pytest.mark.parametrize("store", STORES)
def test_store_count_vs_compared(target, compare_target, store, clock, thresholds):
    expect_clean(compare.count_vs_compared(target, compare_target, store, clock.at,
                                           thresholds["min_share_of_compared_orders"]))


@pytest.mark.urgent
@pytest.mark.parametrize("store", STORES)
def test_matches_compared_env(target, compare_target, store, clock):
    expect_clean(compare.matches(target, compare_target, store, clock.at))
