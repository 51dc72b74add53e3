"""The restore itself (runbook: "capture the actual RTO measured"): on a restored copy, no
pg_cron job calls out over HTTP (checked first: act on it before anything else); in a drill,
the canaries, the data loss per store and the RTO against the runbook's objectives. Outside a
restore these tests are deselected. Read-only."""

from datetime import datetime, timezone

import pytest

from checks import recovery
from checks.contract import contract
from checks.drill import Result
from checks.plugin import expect_clean

STORES = contract()["stores"]


@pytest.mark.restore_target
def test_no_http_cron_jobs(target):
    expect_clean(recovery.http_cron_jobs(target))


@pytest.mark.urgent
@pytest.mark.rehearsal
@pytest.mark.parametrize("store", STORES)
def test_canaries(target, store, drill):
    expect_clean(recovery.canaries(target, store, Result.canaries_of(drill),
                                   datetime.fromisoformat(drill["restore_point"])))


@pytest.mark.rehearsal
def test_restore_source_untouched(drill):
    expect_clean(recovery.source_untouched(drill["source"]))


@pytest.mark.urgent
@pytest.mark.drill_timeline
@pytest.mark.parametrize("store", STORES)
def test_data_loss_within_objective(target, store, timeline, thresholds, drill, compared_or_none):
    incident = next(e["at"] for e in timeline if e["event"] == "incident")
    # A rehearsal's incident time is measured; a person's is noted, to the minute at best.
    slack = 0 if drill else thresholds["clock_skew_minutes"]
    expect_clean(recovery.data_loss(target, store, incident, thresholds["rpo_hours"],
                                    Result.canaries_of(drill) if drill else None, compared_or_none, slack))


@pytest.mark.drill_timeline
@pytest.mark.closes_timeline
def test_rto_within_objective(timeline, thresholds):
    expect_clean(recovery.rto(timeline, datetime.now(timezone.utc), thresholds["rto_hours"]))
