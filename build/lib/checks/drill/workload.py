"""The drill's production traffic, its canaries, and its incident.

Orders arrive the way SYSTEM.md says: a row in webhook_inbox_<store>, then (as the edge
function process-inbox does, as service_role) an upsert into orders_<store> and the inbox row
marked processed, in one transaction. Staff move open orders through the stage RPCs, one
transaction per call, the way PostgREST runs them.

Every order the workload ingests is a canary: its commit time is read back from the server
(track_commit_timestamp), the very clock recovery_target_time compares with. So a restore to
time T must hold exactly the canaries committed at or before T. No transaction straddles the
restore point (the workload pauses across it), so there, `created_at <= T` and "committed at
or before T" mean the same thing, and a comparison by created_at is exact.
"""

import json
import random
import time
from datetime import datetime

import psycopg

from checks.connect.environments import Environment
from checks.connect.target import Target, call
from checks.contract import orders_table
from checks.errors import SetupError
from checks.rules.recovery import Canary

ORDER_NUMBER_BASE = 9_000_000  # far above the reference's order numbers
SHOPIFY_ID_BASE = {"bannos": 7_100_000_000_000, "flourlane": 7_200_000_000_000}
# Each stage's RPCs in the order a shift calls them (Packing starts in complete_decorating).
STEPS = {"Filling": ["print_barcode", "complete_filling"], "Covering": ["start_covering", "complete_covering"],
         "Decorating": ["start_decorating", "complete_decorating"], "Packing": ["complete_packing"]}
NEXT_STAGE = {"Filling": "Covering", "Covering": "Decorating", "Decorating": "Packing", "Packing": "Complete"}
QUIET = 0.25  # seconds around the restore point in which no transaction runs


class Workload:
    """Ingests and moves orders on one connection: `rate` orders a second (each ingested, then
    moved a step), or as fast as the server takes them."""

    def __init__(self, url: str, stores: list[str], seed: int = 1, rate: float | None = None):
        self.rate = rate
        self.target = Target(Environment(name="production (drill)"), url)
        self.conn = self.target.connect()
        self.stores = stores
        self.random = random.Random(seed)
        self.canaries: list[Canary] = []
        self.moves = 0
        self.failures: dict[str, str] = {}  # store -> why its traffic stopped (after an incident)
        self.staff = self.conn.execute(
            "select user_id, email from public.staff_shared where is_active and approved and role = 'Staff' "
            "and store = 'both' order by user_id limit 1").fetchone()
        self.conn.rollback()
        self.open = {store: self._open_orders(store) for store in stores}
        self._number = {store: 0 for store in stores}

    def _open_orders(self, store: str) -> list[list]:
        rows = self.conn.execute(
            f"select id, stage::text as stage from public.{orders_table(store)} where stage <> 'Complete' "
            "and coalesce(order_json ->> 'source_name', '') <> 'pos' order by created_at desc limit 5000").fetchall()
        self.conn.rollback()
        return [[r["id"], r["stage"], 0] for r in rows]  # id, stage, next step within the stage

    def run_until(self, until: float, quiet_at: float | None = None, on_quiet=None) -> None:
        """Traffic until the wall-clock time `until` (time.time()). Around `quiet_at` nothing
        commits for QUIET seconds; `on_quiet()` runs in that gap (e.g. a dump's snapshot)."""
        next_at = time.time()
        while time.time() < until:
            if self.rate:
                next_at += 1 / self.rate
                time.sleep(max(0.0, min(next_at, until) - time.time()))
                if time.time() >= until:
                    break
            if quiet_at is not None and quiet_at - QUIET <= time.time():
                time.sleep(max(0.0, quiet_at - time.time()) + 0.01)
                quiet_at = None
                if on_quiet:
                    on_quiet()
                continue
            store = self.stores[len(self.canaries) % len(self.stores)]
            if store in self.failures:
                store = next((s for s in self.stores if s not in self.failures), None)
                if store is None:
                    time.sleep(0.05)
                    continue
            self.ingest(store)
            self.move(store)

    def ingest(self, store: str) -> None:
        self._number[store] += 1
        number = ORDER_NUMBER_BASE + self._number[store]
        order_id, shopify_id = f"{store}-{number}", SHOPIFY_ID_BASE[store] + number
        payload = {"id": shopify_id, "admin_graphql_api_id": f"gid://shopify/Order/{shopify_id}",
                   "order_number": number, "currency": "AUD", "total_price": "64.00", "source_name": "web",
                   "customer": {"first_name": "Drill", "last_name": f"Customer {number}"},
                   "line_items": [{"title": "Celebration Cake", "quantity": 1}]}
        inbox, orders = f"public.webhook_inbox_{store}", f"public.{orders_table(store)}"
        try:
            with self.conn.transaction(), self.target.as_service_role(self.conn):
                self.conn.execute(f"insert into {inbox} (id, payload) values (%s, %s)", (order_id, json.dumps(payload)))
                self.conn.execute(
                    f"insert into {orders} (id, shopify_order_id, shopify_order_gid, shopify_order_number, human_id, "
                    " customer_name, product_title, currency, total_amount, order_json, due_date, item_qty) "
                    "values (%s, %s, %s, %s, %s, %s, 'Celebration Cake', 'AUD', 64.00, %s, current_date + 3, 1) "
                    "on conflict (id) do update set order_json = excluded.order_json, updated_at = now()",
                    (order_id, shopify_id, payload["admin_graphql_api_id"], number, f"{order_id}",
                     f"Drill Customer {number}", json.dumps(payload)))
                self.conn.execute(f"update {inbox} set processed = true where id = %s", (order_id,))
            committed = self.conn.execute(f"select pg_xact_commit_timestamp(xmin) as at from {orders} where id = %s",
                                          (order_id,)).fetchone()["at"]
            self.conn.rollback()
        except psycopg.Error as exc:
            self._broken(store, exc)
            return
        self.canaries.append(Canary(order_id, store, committed))
        self.open[store].append([order_id, "Filling", 0])

    def move(self, store: str) -> None:
        """One stage RPC on a random open order, as a staff user, in its own transaction."""
        if not self.open[store] or store in self.failures:
            return
        order = self.random.choice(self.open[store])
        order_id, stage, step = order
        function = STEPS[stage][step]
        args = {"p_store": store, "p_order_id": order_id}
        try:
            with self.conn.transaction(), self.target.as_staff(self.conn, self.staff["user_id"], self.staff["email"]):
                call(self.conn, function, **args)
        except psycopg.Error as exc:
            self._broken(store, exc)
            return
        self.moves += 1
        if step + 1 < len(STEPS[stage]):
            order[2] = step + 1
        elif NEXT_STAGE[stage] == "Complete":
            self.open[store].remove(order)
        else:
            order[1], order[2] = NEXT_STAGE[stage], 0

    def _broken(self, store: str, exc: psycopg.Error) -> None:
        """After an incident a store's traffic may fail (its table dropped): it stops, as the
        webhooks would, and the rest goes on."""
        if self.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            self.conn.rollback()
        self.failures[store] = str(exc).splitlines()[0]

    def close(self) -> None:
        self.conn.close()


# -- the incident -------------------------------------------------------------------------
INCIDENTS = {
    "mass-delete": ("every order of the store deleted", "delete from public.{table}"),
    "drop-table": ("the store's orders table dropped", "drop table public.{table} cascade"),
    "bad-migration": ("a migration dropped a column of the store's orders",
                      "alter table public.{table} drop column customer_name"),
}


def parse_incident(text: str, stores: list[str]) -> tuple[str, str]:
    """`kind[:store]` -> (kind, store); the store defaults to the first one."""
    kind, _, store = text.partition(":")
    store = store or stores[0]
    if kind not in INCIDENTS or store not in stores:
        raise SetupError(f"--incident={text}: expected KIND[:STORE] with KIND one of {', '.join(INCIDENTS)} "
                         f"and STORE one of {', '.join(stores)}, e.g. --incident=mass-delete:bannos")
    return kind, store


def cause_incident(url: str, kind: str, store: str) -> datetime:
    """Does the damage as `postgres` (the owner, as a bad deploy would); returns its commit time."""
    with psycopg.connect(url, autocommit=False) as conn:
        xid = conn.execute("select pg_current_xact_id()::text").fetchone()[0]
        conn.execute(INCIDENTS[kind][1].format(table=orders_table(store)))
        conn.commit()
        return conn.execute("select pg_xact_commit_timestamp(%s::xid)", (xid,)).fetchone()[0]
