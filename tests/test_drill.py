"""The restore itself (runbook: "capture the actual RTO measured"): on a restored copy, no
pg_cron job calls out over HTTP (checked first: act on it before anything else), its pages
read back sound (amcheck), and the Shopify orders to replay at cut-over are listed; in a
drill, the canaries, the data loss per store and the RTO against the runbook's objectives.
Outside a restore these tests are deselected. Read-only (the replay list is a file beside the
report)."""

from datetime import datetime, timezone

import pytest

from checks.connect.environments import Environment
from checks.connect.target import Target
from checks.contract import contract
from checks.drill.rehearsal import Result
from checks.plugin import expect_clean
from checks.rules import amcheck, recovery, replay

STORES = contract()["stores"]


@pytest.mark.restore_target
def test_no_http_cron_jobs(target):
    expect_clean(recovery.http_cron_jobs(target))


@pytest.mark.restore_target
def test_pages_verify(target, drill):
    """A drill ran pg_amcheck on its restored cluster (its "integrity" phase); a restored
    project is checked read-only where the amcheck extension is installed."""
    expect_clean(amcheck.pages_verify(drill["amcheck"]) if drill else amcheck.pages_verify_restored(target))


@pytest.mark.restore_target
def test_replay_list(target, clock, drill, compared_or_none, replay_file):
    """Selected with a production to read (--compare-to; a drill's own, as it is after the
    incident) and a restore point: the list starts there."""
    if drill:
        production = Target(Environment(name="production (drill, after the incident)", read_only=True),
                            drill["production_url"])
    else:
        production = compared_or_none
    try:
        expect_clean(replay.replay_list(target, production, clock.at, replay_file))
    finally:
        if production is not compared_or_none:
            production.close()


@pytest.mark.urgent
@pytest.mark.rehearsal
@pytest.mark.parametrize("store", STORES)
def test_canaries(target, store, drill):
    if drill.get("dump_file"):
        pytest.skip("a restored cold export (--dump-file) holds no canary orders: only a rehearsal writes them")
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
