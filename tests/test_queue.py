"""Work-queue health (the runbook's thresholds, measured against the reference time) and the
production-queue RPCs called as a real staff user in a transaction that rolls back."""

import pytest

from checks.contract import contract
from checks.plugin import expect_clean
from checks.rules import queue

STORES = contract()["stores"]


def test_queue_pending_below_limit(target, thresholds):
    expect_clean(queue.pending(target, thresholds))


def test_queue_oldest_pending_recent(target, clock, thresholds):
    expect_clean(queue.oldest_pending(target, clock, thresholds))


def test_queue_no_stale_locks(target, clock, thresholds):
    expect_clean(queue.stale_locks(target, clock, thresholds))


def test_queue_retries_noted(target, thresholds):
    expect_clean(queue.retries(target, thresholds))


def test_staff_user_available(target):
    expect_clean(queue.staff_user_available(target))


@pytest.mark.parametrize("store", STORES)
def test_get_queue_lists_the_queue(target, store, thresholds, deep_queue):
    expect_clean(queue.get_queue(target, store, thresholds, deep_queue))


@pytest.mark.parametrize("store", STORES)
def test_unassigned_counts_match(target, store):
    expect_clean(queue.unassigned_counts(target, store))


@pytest.mark.parametrize("store", STORES)
def test_queue_stats_match(target, store):
    expect_clean(queue.queue_stats(target, store))
