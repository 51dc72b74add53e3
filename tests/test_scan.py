"""get_order_for_scan resolves every documented form of a barcode (#B18617, bannos-18617,
18617) to the same order, for orders Hypothesis draws from the target. Read-only."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checks import queue, rpc
from checks.contract import contract, orders_table


@pytest.fixture(scope="module")
def scannable(target):
    """Up to 200 orders per store (id, number, whether the other store uses the number too)."""
    stores = contract()["stores"]
    present = [s for s in stores if target.scalar("select to_regclass(%s) is not null", (f"public.{orders_table(s)}",))]
    if len(present) < len(stores) or rpc.missing_rpc(target, "get_order_for_scan") or queue.staff_user(target) is None:
        pytest.skip("needs both order tables, get_order_for_scan and a staff user: see test_table, test_rpc "
                    "and test_staff_user_available")
    rows = []
    for store in stores:
        other = next(s for s in stores if s != store)
        rows += [(store, r["id"], r["n"], r["shared"]) for r in target.query(
            f"select o.id, o.shopify_order_number as n, exists (select from public.{orders_table(other)} x "
            f" where x.id = %s || '-' || o.shopify_order_number) as shared "
            f"from public.{orders_table(store)} o where o.id = %s || '-' || o.shopify_order_number "
            f"order by o.id limit 200", (other, store))]
    if not rows:
        pytest.skip("no orders to scan: see test_store_not_empty")
    return rows


def test_scan_forms_resolve_to_the_same_order(target, scannable):
    user = queue.staff_user(target)

    @settings(max_examples=40)
    @given(order=st.sampled_from(scannable))
    def scan(order):
        store, order_id, number, shared = order
        with target.rolled_back() as conn, target.as_staff(conn, user["user_id"], user["email"]):
            problems = rpc.scan_problems(conn, store, order_id, number, shared)
        assert not problems, "\n".join(problems)

    scan()
