"""get_order_for_scan resolves every documented form of a barcode (#B18617, bannos-18617,
18617) to the same order, and each cake of a split order by its full id (bannos-24201-B) to
that very row, for orders Hypothesis draws from the target. Read-only."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checks.contract import contract, orders_table
from checks.plugin import expect_clean
from checks.rules import queue, rpc


@pytest.fixture(scope="module")
def scannable(target):
    """Up to 200 whole orders and 100 split cakes per store:
    (store, id, number, whether the other store uses the number too, split)."""
    stores = contract()["stores"]
    blocker = next(filter(None, (queue.as_staff_blocker(target, "get_order_for_scan", s) for s in stores)), None)
    if blocker:
        pytest.skip(blocker)
    rows = []
    for store in stores:
        other = next(s for s in stores if s != store)
        rows += [(store, r["id"], r["n"], r["shared"], r["split"]) for r in target.query(
            f"(select o.id, o.shopify_order_number as n, false as split, exists (select from public.{orders_table(other)} x "
            f"  where x.id = %(other)s || '-' || o.shopify_order_number) as shared "
            f" from public.{orders_table(store)} o where o.id = %(store)s || '-' || o.shopify_order_number "
            f" order by o.id limit 200) "
            f"union all (select o.id, o.shopify_order_number, true, false from public.{orders_table(store)} o "
            f" where o.id like %(store)s || '-' || o.shopify_order_number || '-%%' order by o.id limit 100)",
            {"store": store, "other": other})]
    if not rows:
        pytest.skip("no orders to scan: see test_store_not_empty")
    return rows


def test_scan_forms_resolve_to_the_same_order(target, scannable):
    user = queue.staff_user(target)

    with target.rolled_back() as conn, target.as_staff(conn, user["user_id"], user["email"]):
        @settings(max_examples=40)
        @given(order=st.sampled_from(scannable))
        def scan(order):
            problems = rpc.scan_problems(conn, [order])[order[1]]
            assert not problems, "\n".join(problems)

        scan()


def test_split_cakes_scan_to_their_own_row(target, scannable):
    """Every split cake drawn, not a sample: siblings must never resolve to each other."""
    cakes = [(store, order_id, number) for store, order_id, number, _, split in scannable if split]
    expect_clean(rpc.split_scans(target, queue.staff_user(target), cakes))
