"""A new order, arriving the way SYSTEM.md says orders arrive.

There is no SQL ingestion RPC: the Shopify webhook's Edge Function stores the raw payload in
webhook_inbox_<store> (id <store>-<number>, processed false), then `process-inbox`, running as
service_role, upserts one row per cake into orders_<store> (on id) and marks the payload
processed. ingest() does the same, inside the caller's transaction.
"""

import itertools
import uuid
from functools import cache

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from checks.connect.target import Target
from checks.contract import contract, orders_table
from checks.rules import catalog

# The suite's own test orders (the write probes, the smoke flow) take numbers from a range of
# their own, above the reference's and the drill's canaries (9,000,000 on), so that a probe on a
# restored copy never meets a canary's inbox row or order; integer-safe (shopify_order_number).
PROBE_NUMBERS = 1_900_000_000
_probes = itertools.count(1)


def probe_number() -> int:
    """A test order's number: a counter (distinct within a run) and a random part (across runs)."""
    return PROBE_NUMBERS + next(_probes) * 1000 % 200_000_000 + uuid.uuid4().int % 1000


def shopify_payload(store: str, number: int, *, note: str, cakes: int = 1) -> dict:
    """A minimal Shopify order, as the webhook receives it."""
    shopify_id = 8_000_000_000_000 + number
    return {"id": shopify_id, "admin_graphql_api_id": f"gid://shopify/Order/{shopify_id}", "order_number": number,
            "currency": "AUD", "total_price": "1.00", "source_name": "web", "note": note,
            "customer": {"first_name": "ordak-verify", "last_name": "test order"},
            "line_items": [{"title": f"Test Cake {n + 1}", "quantity": 1} for n in range(cakes)]}


def order_ids(store: str, payload: dict) -> list[str]:
    """One id per cake: <store>-<number>, or -A, -B, ... for a split order."""
    base = f"{store}-{payload['order_number']}"
    cakes = len(payload["line_items"])
    return [base] if cakes == 1 else [f"{base}-{_suffix(n)}" for n in range(1, cakes + 1)]


def _suffix(n: int) -> str:
    return chr(64 + n) if n <= 10 else str(n)  # letters, then numbers past J


def ingest(target: Target, conn: psycopg.Connection, store: str, payload: dict) -> list[str]:
    """Stores the payload in the inbox and upserts its cakes as service_role; returns their ids.
    Must run inside a transaction (sandbox() or the caller's own)."""
    inbox = f"webhook_inbox_{store}"
    inbox_id = f"{store}-{payload['order_number']}"
    raw = _payload_column(target, inbox)
    ids = order_ids(store, payload)
    prefix = contract()["barcode_prefixes"][store]
    with target.as_service_role(conn):
        columns = ["id", "processed"] + ([raw] if raw else [])
        conn.execute(sql.SQL("insert into {} ({}) values ({})").format(
            sql.Identifier("public", inbox), sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.SQL(", ").join([sql.Placeholder()] * len(columns))), [inbox_id, False, Jsonb(payload)][:len(columns)])
        for n, (order_id, item) in enumerate(zip(ids, payload["line_items"])):
            conn.execute(sql.SQL(
                "insert into {} (id, shopify_order_id, shopify_order_gid, shopify_order_number, human_id, customer_name, "
                " product_title, currency, total_amount, order_json, item_qty) "
                "values (%(id)s, %(sid)s, %(gid)s, %(number)s, %(human)s, %(customer)s, %(title)s, %(currency)s, "
                " %(total)s, %(json)s, %(qty)s) "
                "on conflict (id) do update set order_json = excluded.order_json, updated_at = now()").format(
                sql.Identifier("public", orders_table(store))),
                {"id": order_id, "sid": payload["id"], "gid": payload["admin_graphql_api_id"],
                 "number": payload["order_number"], "human": prefix + order_id.split("-", 1)[1],
                 "customer": " ".join(payload["customer"].values()), "title": item["title"],
                 "currency": payload["currency"], "total": payload["total_price"] if n == 0 else None,
                 "json": Jsonb(payload), "qty": item["quantity"]})
        conn.execute(sql.SQL("update {} set processed = true where id = %s").format(sql.Identifier("public", inbox)),
                     (inbox_id,))
    return ids


@cache  # once per target and store: a test run creates thousands of orders
def _payload_column(target: Target, inbox: str) -> str | None:
    """SYSTEM.md names the inbox's id and processed columns, not where the payload goes: the
    inbox's jsonb column, whatever its name."""
    columns = catalog.columns(target, "public", inbox)
    return next((name for name, c in sorted(columns.items()) if c["type"] == "jsonb"), None)
