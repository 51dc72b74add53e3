"""The runbook's post-restore checklist (step 5): a test order ingested the way the webhook
does it, printed, walked through every stage to Complete, leaving the queue. Writes: in
sandbox() by default; --persist-smoke keeps the order on a writable non-production env."""

import pytest

from checks.contract import contract
from checks.plugin import expect_clean
from checks.rules import queue, smoke

pytestmark = pytest.mark.writes


@pytest.mark.parametrize("store", contract()["stores"])
def test_smoke_flow(target, store, persist_smoke):
    expect_clean(smoke.smoke_flow(target, store, queue.staff_user(target), persist=persist_smoke))
