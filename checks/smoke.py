"""The runbook's post-restore checklist (step 5), as one flow on a new test order:

ingest it the way the webhook does -> it is in the queue and unassigned counts move with its
assignment -> print the barcode -> complete Filling -> start/complete Covering, Decorating,
Packing -> Complete, out of the queue. Stage, timestamps and the stage-event trail are checked
at every step; the flow stops at the first step that goes wrong and names it.
"""

import json
import uuid

import psycopg

from checks import catalog, rpc
from checks.contract import orders_table
from checks.core import Check
from checks.target import Target, call

SMOKE = Check("smoke_flow", "a test order goes from ingestion to Complete through the RPCs, as the runbook's "
              "post-restore checklist walks it", "fix the step named; do not cut over until the flow passes")
MARK = "ordak-verify smoke test"


class StepFailed(Exception):
    pass


def shopify_payload(store: str, number: int) -> dict:
    """A minimal Shopify order, as the webhook Edge Function receives it."""
    shopify_id = 8_000_000_000_000 + number
    return {"id": shopify_id, "admin_graphql_api_id": f"gid://shopify/Order/{shopify_id}", "order_number": number,
            "currency": "AUD", "total_price": "1.00", "source_name": "web", "note": MARK, "ordak_verify_smoke": True,
            "customer": {"first_name": "ordak-verify", "last_name": "smoke test"},
            "line_items": [{"title": "Smoke Test Cake", "quantity": 1}]}


class _Flow:
    def __init__(self, target, conn, store, user):
        self.target, self.conn, self.store, self.user = target, conn, store, user
        self.passed: list[str] = []
        self.order_id: str | None = None

    def step(self, name: str, function: str, args: dict, *, stage: str, sets: tuple = (), as_service: bool = False):
        """Calls the RPC; the order must then be in `stage`, with `sets` newly set, one more event."""
        before = rpc.snapshot(self.conn, self.store, self.order_id) if self.order_id else None
        if not catalog.functions(self.target, ["public"], [function]):
            raise StepFailed(f"{name}: public.{function} is missing")
        try:
            with self.conn.transaction():
                role = self.target.as_service_role(self.conn) if as_service else \
                    self.target.as_staff(self.conn, self.user["user_id"], self.user["email"])
                with role:
                    answer = next(iter(call(self.conn, function, **args)[0].values()))
        except psycopg.Error as exc:
            raise StepFailed(f"{name}: {function} failed: {str(exc).splitlines()[0]}") from None
        if answer is False or (isinstance(answer, dict) and answer.get("success") is False):
            raise StepFailed(f"{name}: {function} answered {answer!r}")
        if as_service:
            self.order_id = answer
        after = rpc.snapshot(self.conn, self.store, self.order_id) if self.order_id else None
        if after is None:
            raise StepFailed(f"{name}: order {self.order_id} is not in public.{orders_table(self.store)}")
        if after["stage"] != stage:
            raise StepFailed(f"{name}: order is in {after['stage']}, expected {stage}")
        for column in sets:
            if after[column] is None or (before and before[column] is not None):
                raise StepFailed(f"{name}: {column} should have been set now, and was {before and before[column]} "
                                 f"-> {after[column]}")
        if before and after["events"] - before["events"] != 1:
            raise StepFailed(f"{name}: logged {after['events'] - before['events']} stage events, expected 1")
        self.passed.append(name)

    def in_queue(self) -> bool:
        with self.conn.transaction(), self.target.as_staff(self.conn, self.user["user_id"], self.user["email"]):
            rows = call(self.conn, "get_queue", p_store=self.store, p_search=self.order_id, p_limit=50)
        return any(r["id"] == self.order_id for r in rows)

    def unassigned(self, stage: str) -> int:
        with self.conn.transaction(), self.target.as_staff(self.conn, self.user["user_id"], self.user["email"]):
            rows = call(self.conn, "get_unassigned_counts", p_store=self.store)
        return next((r["count"] for r in rows if r["stage"] == stage), 0)

    def check(self, name: str, ok: bool, problem: str) -> None:
        if not ok:
            raise StepFailed(f"{name}: {problem}")
        self.passed.append(name)

    def walk(self) -> None:
        store = self.store
        number = 9_900_000 + uuid.uuid4().int % 90_000
        self.step("ingest", "ingest_order", {"p_store": store, "p_order": json.dumps(shopify_payload(store, number))},
                  stage="Filling", as_service=True)
        order = {"p_store": store, "p_order_id": self.order_id}
        self.check("listed in get_queue", self.in_queue(), "get_queue does not list the new order")
        unassigned = self.unassigned("Filling")
        self.step("assign", "assign_staff", {**order, "p_staff_id": self.user["user_id"]}, stage="Filling")
        self.check("unassigned count drops", self.unassigned("Filling") == unassigned - 1,
                   f"get_unassigned_counts still says {self.unassigned('Filling')} for Filling after assigning")
        self.step("unassign", "unassign_staff", order, stage="Filling")
        self.check("unassigned count recovers", self.unassigned("Filling") == unassigned,
                   f"get_unassigned_counts says {self.unassigned('Filling')} for Filling, expected {unassigned}")
        self.step("print barcode", "print_barcode", order, stage="Filling", sets=("filling_start_ts",))
        self.step("complete Filling", "complete_filling", order, stage="Covering", sets=("filling_complete_ts",))
        self.step("start Covering", "start_covering", order, stage="Covering", sets=("covering_start_ts",))
        self.step("complete Covering", "complete_covering", order, stage="Decorating", sets=("covering_complete_ts",))
        self.step("start Decorating", "start_decorating", order, stage="Decorating", sets=("decorating_start_ts",))
        self.step("complete Decorating", "complete_decorating", order, stage="Packing", sets=("decorating_complete_ts",))
        self.step("start Packing", "start_packing", order, stage="Packing", sets=("packing_start_ts",))
        self.step("complete Packing", "complete_packing", order, stage="Complete", sets=("packing_complete_ts",))
        self.check("out of get_queue", not self.in_queue(), "get_queue still lists the order once Complete")


def removal_sql(store: str, order_id: str) -> str:
    return (f"delete from public.stage_events where store = '{store}' and order_id = '{order_id}'; "
            f"delete from public.{orders_table(store)} where id = '{order_id}';")


def smoke_flow(target: Target, store: str, user: dict | None, persist: bool = False):
    """The flow in sandbox() (rolled back), or committed when persist is asked on a writable env."""
    if user is None:
        return SMOKE.blocked(store, "no staff user to walk the flow as: see test_staff_user_available")
    if persist:
        with target.connect() as conn, conn.transaction() as transaction:
            passed, order_id, problem = _walk(target, conn, store, user)
            if problem:
                raise psycopg.Rollback(transaction)  # keep nothing of a flow that failed
    else:
        with target.sandbox() as conn:
            passed, order_id, problem = _walk(target, conn, store, user)
    facts = {"steps_passed": f"{len(passed)}", "order": order_id}
    if persist and not problem:
        facts["kept"] = f"{order_id} is kept, marked '{MARK}'; remove it with: {removal_sql(store, order_id)}"
    violations = [{"object": f"test order {order_id or '(not ingested)'}", "problem": problem}] if problem else []
    return SMOKE.verdict(store, violations, **facts)


def _walk(target, conn, store, user):
    flow = _Flow(target, conn, store, user)
    try:
        flow.walk()
        return flow.passed, flow.order_id, None
    except StepFailed as exc:
        return flow.passed, flow.order_id, str(exc)
