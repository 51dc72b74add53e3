"""RPC behaviour: idempotence, stage guards and roles, judged by effect.

Everything here writes, so it runs inside target.sandbox() (rolled back). Each RPC is judged
alone: the order it acts on is put in the right state by direct SQL, and the staff calling it
are created inside the sandbox, so one broken RPC never fails another's test. The effect of a
call (the order's stage, timestamps, assignee and stage events, before and after) is judged
apart from its answer, so "idempotent but silent" is its own finding.
"""

import itertools
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from checks import catalog
from checks.contract import contract, orders_table, stage_columns, stages
from checks.core import Check, Verdict
from checks.target import Target, call

ROLES = ("Staff", "Supervisor", "Admin")
NOTES = "ordak-verify"
_numbers = itertools.count(1)

REPEAT_EFFECT = Check("repeat_effect", "the first call acts once; calling again changes nothing "
                      "(stage, timestamps, assignee, stage events)",
                      "make the RPC check the order's state first and return early when the work is done")
REPEAT_ANSWER = Check("repeat_answer", "calling again answers as documented (already_done / skipped / rejected)",
                      "return the documented answer on a repeat, so callers can tell a no-op from a success")
INVALID_TRANSITION = Check("invalid_transition", "a call on an order in the wrong stage is rejected and changes nothing",
                           "guard the stage at the top of the RPC (and lock the row) before writing anything")
ROLE_REQUIRED = Check("role_required", "a caller below the RPC's role is refused and changes nothing",
                      "check the caller's staff_shared role inside the RPC, through auth.uid()")
ANON_REFUSED = Check("anon_refused", "anon is refused and changes nothing",
                     "revoke execute from anon and public; check the caller's staff role inside the RPC")
UNKNOWN_USER_REFUSED = Check("unknown_user_refused", "a signed-in user who is not staff is refused and changes nothing",
                             "look the caller up in staff_shared (active, approved) and refuse anyone else")


def behaviour() -> dict:
    return contract()["behaviour"]


# -- actors and orders inside a sandbox ------------------------------------------------------
@dataclass(frozen=True)
class Actor:
    user_id: str
    email: str
    role: str


def create_actors(conn: psycopg.Connection) -> dict[str, Actor]:
    """One active, approved staff user per role, created inside the sandbox."""
    actors = {}
    for role in ROLES:
        actor = Actor(str(uuid.uuid4()), f"verify-{role.lower()}-{uuid.uuid4().hex[:8]}@ordak-verify.invalid", role)
        conn.execute("insert into auth.users (id, email) values (%s, %s)", (actor.user_id, actor.email))
        conn.execute("insert into public.staff_shared (user_id, full_name, role, store, email, is_active, approved)"
                     " values (%s, %s, %s, 'both', %s, true, true)",
                     (actor.user_id, f"ordak-verify {role}", role, actor.email))
        actors[role] = actor
    return actors


def fresh_order(conn: psycopg.Connection, store: str) -> str:
    """A new order in Filling, nothing printed, nobody assigned: written as the webhook's would be."""
    number = 9_000_000 + next(_numbers) * 1000 + uuid.uuid4().int % 1000
    order_id = f"{store}-{number}"
    conn.execute(sql.SQL("insert into {} (id, shopify_order_id, shopify_order_gid, shopify_order_number, "
                         "customer_name, product_title, order_json) values (%s, %s, %s, %s, %s, %s, %s)").format(
        sql.Identifier("public", orders_table(store))),
        (order_id, 9_000_000_000_000 + number, f"gid://shopify/Order/{9_000_000_000_000 + number}", number,
         "ordak-verify test order", "Test Cake", psycopg.types.json.Jsonb({"source_name": "web", "test": True})))
    return order_id


def put_in_stage(conn: psycopg.Connection, store: str, order_id: str, stage: str, started: bool,
                 assignee: str | None = None) -> None:
    """Sets an order's stage with timestamps consistent with it: earlier stages done, this one
    started or not, later ones untouched."""
    rank = stages().index(stage)
    assignments = [sql.SQL("stage = {}").format(sql.Literal(stage)), sql.SQL("assignee_id = {}").format(sql.Literal(assignee))]
    for i, each in enumerate(stages()[:-1]):
        start, done = stage_columns(each)
        start_value = "now() - interval '2 hours'" if i < rank or (i == rank and started) else "null"
        done_value = "now() - interval '1 hour'" if i < rank else "null"
        assignments += [sql.SQL("{} = " + start_value).format(sql.Identifier(start)),
                        sql.SQL("{} = " + done_value).format(sql.Identifier(done))]
    conn.execute(sql.SQL("update {} set {} where id = %s").format(
        sql.Identifier("public", orders_table(store)), sql.SQL(", ").join(assignments)), (order_id,))


def snapshot(conn: psycopg.Connection, store: str, order_id: str) -> dict:
    """The order's stage, every stage timestamp, its assignee, and how many events it has."""
    columns = [c for stage in stages()[:-1] for c in stage_columns(stage)]
    row = conn.execute(sql.SQL("select stage::text as stage, assignee_id::text as assignee, {}, "
                               "(select count(*) from public.stage_events e where e.store = %s and e.order_id = o.id) "
                               "as events from {} o where o.id = %s").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier("public", orders_table(store))),
        (store, order_id)).fetchone()
    return dict(row)


def age_timestamps(conn: psycopg.Connection, store: str, order_id: str) -> None:
    """Moves the order's stage timestamps an hour back. Inside one sandbox transaction now()
    never moves, so an RPC that wrongly resets a timestamp to now() would look harmless; real
    calls are separate transactions. Aging between calls makes such a reset visible."""
    columns = [c for stage in stages()[:-1] for c in stage_columns(stage)]
    conn.execute(sql.SQL("update {} set {} where id = %s").format(
        sql.Identifier("public", orders_table(store)),
        sql.SQL(", ").join(sql.SQL("{0} = {0} - interval '1 hour'").format(sql.Identifier(c)) for c in columns)),
        (order_id,))


def last_event(conn: psycopg.Connection, store: str, order_id: str) -> str | None:
    row = conn.execute("select event_type from public.stage_events where store = %s and order_id = %s "
                       "order by at_ts desc, id desc limit 1", (store, order_id)).fetchone()
    return row["event_type"] if row else None


# -- calling -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Answer:
    value: Any = None
    error: str | None = None

    @property
    def rejected(self) -> bool:
        return self.error is not None or self.value is False or (
            isinstance(self.value, dict) and self.value.get("success") is False)

    def __str__(self) -> str:
        return f"error: {self.error}" if self.error else repr(self.value)


def arguments(name: str, store: str, order_id: str, staff_id: str | None = None) -> dict:
    """Named arguments for the RPC, from the contract's signature."""
    values = {"p_store": store, "p_order_id": order_id, "p_notes": NOTES, "p_staff_id": staff_id}
    names = [part.split()[0] for part in contract()["rpcs"][name]["args"].split(",")]
    return {n: values[n] for n in names}


def invoke(target: Target, conn: psycopg.Connection, caller: Actor | str | None, name: str, args: dict) -> Answer:
    """Calls the RPC the way PostgREST would, as a staff Actor, "anon", or a user id that is
    not staff; inside a savepoint, so a refusal leaves the sandbox usable."""
    try:
        with conn.transaction():
            if caller == "anon":
                role = target.as_anon(conn)
            elif isinstance(caller, Actor):
                role = target.as_staff(conn, caller.user_id, caller.email)
            else:
                role = target.as_staff(conn, caller)
            with role:
                rows = call(conn, name, **args)
    except psycopg.Error as exc:
        return Answer(error=str(exc).splitlines()[0])
    return Answer(next(iter(rows[0].values())) if rows else None)


def missing_rpc(target: Target, name: str) -> str | None:
    if not catalog.functions(target, ["public"], [name]):
        return f"public.{name} is missing: see test_rpc[{name}]"
    return None


def _changes(before: dict, after: dict) -> list[str]:
    changed = [f"{key} {before[key]} -> {after[key]}" for key in before if key != "events" and before[key] != after[key]]
    if after["events"] != before["events"]:
        changed.append(f"{after['events'] - before['events']} stage event(s) logged")
    return changed


# -- idempotence -----------------------------------------------------------------------------
def _prepare_for(conn, store: str, name: str, actors: dict[str, Actor]) -> str:
    """An order on which the RPC's first call must act."""
    spec, order_id = behaviour()[name], fresh_order(conn, store)
    if "from" in spec:
        put_in_stage(conn, store, order_id, spec["from"], started=name.startswith(("complete_", "qc_")))
    if spec.get("clears_assignee"):
        put_in_stage(conn, store, order_id, "Filling", started=False, assignee=actors["Staff"].user_id)
    return order_id


def idempotence(target: Target, store: str, name: str) -> tuple[Verdict, Verdict]:
    """(effect verdict, answer verdict) of calling the RPC twice on a suitable order."""
    subject = f"{store}-{name}"
    missing = missing_rpc(target, name)
    if missing:
        return REPEAT_EFFECT.blocked(subject, missing), REPEAT_ANSWER.blocked(subject, missing)
    spec = behaviour()[name]
    with target.sandbox() as conn:
        actors = create_actors(conn)
        order_id = _prepare_for(conn, store, name, actors)
        args = arguments(name, store, order_id, actors["Staff"].user_id)
        before = snapshot(conn, store, order_id)
        first = invoke(target, conn, actors["Admin"], name, args)
        after_first = snapshot(conn, store, order_id)
        logged = last_event(conn, store, order_id)
        age_timestamps(conn, store, order_id)
        middle = snapshot(conn, store, order_id)
        second = invoke(target, conn, actors["Admin"], name, args)
        after = snapshot(conn, store, order_id)
    where = f"{name}('{order_id}')"
    effect = [{"object": where, "problem": f"first call: {p}"}
              for p in _first_call_problems(spec, first, before, after_first, logged)]
    effect += [{"object": where, "problem": f"second call changed {change}"} for change in _changes(middle, after)]
    return (REPEAT_EFFECT.verdict(subject, effect),
            REPEAT_ANSWER.verdict(subject, _answer_problems(spec, second, where)))


def _first_call_problems(spec: dict, first: Answer, before: dict, after: dict, logged: str | None) -> list[str]:
    if first.rejected:
        return [f"rejected ({first}) on an order it should act on"]
    problems = []
    if "to" in spec and after["stage"] != spec["to"]:
        problems.append(f"stage is {after['stage']}, expected {spec['to']}")
    if "to" not in spec and after["stage"] != before["stage"]:
        problems.append(f"stage moved {before['stage']} -> {after['stage']}")
    problems += [f"{column} was not set" for column in spec.get("sets", []) if after[column] is None]
    if spec.get("sets_assignee") and after["assignee"] is None:
        problems.append("assignee was not set")
    if spec.get("clears_assignee") and after["assignee"] is not None:
        problems.append("assignee was not cleared")
    if after["events"] - before["events"] != 1:
        problems.append(f"logged {after['events'] - before['events']} stage events, expected exactly 1")
    elif logged != spec["event"]:
        problems.append(f"logged a '{logged}' event, expected '{spec['event']}'")
    return problems


def _answer_problems(spec: dict, second: Answer, where: str) -> list[dict]:
    documented = spec["repeat"]
    if documented == "rejected":
        ok, expected = second.rejected, "rejected (an error, or false)"
    elif documented == "true":
        ok, expected = second.error is None and second.value is True, "true"
    else:
        ok = second.error is None and isinstance(second.value, dict) and second.value.get(documented) is True
        expected = f'{{"{documented}": true}}'
    return [] if ok else [{"object": where, "problem": f"repeat answered {second}; documented: {expected}"}]


# -- guards and roles ------------------------------------------------------------------------
def _wrong_stage(spec: dict) -> str:
    rank = stages().index(spec["from"])
    return stages()[rank - 1] if rank > 0 else stages()[rank + 1]


def invalid_transition(target: Target, store: str, name: str) -> Verdict:
    subject = f"{store}-{name}"
    missing = missing_rpc(target, name)
    if missing:
        return INVALID_TRANSITION.blocked(subject, missing)
    wrong = _wrong_stage(behaviour()[name])
    with target.sandbox() as conn:
        actors = create_actors(conn)
        order_id = fresh_order(conn, store)
        put_in_stage(conn, store, order_id, wrong, started=True)
        before = snapshot(conn, store, order_id)
        answer = invoke(target, conn, actors["Admin"], name, arguments(name, store, order_id, actors["Staff"].user_id))
        after = snapshot(conn, store, order_id)
    return INVALID_TRANSITION.verdict(subject, _refusal_problems(f"{name}('{order_id}') in {wrong}", answer, before, after))


def _refusal_problems(where: str, answer: Answer, before: dict, after: dict) -> list[dict]:
    problems = [] if answer.rejected else [{"object": where, "problem": f"accepted, answering {answer}"}]
    problems += [{"object": where, "problem": f"changed {change}"} for change in _changes(before, after)]
    return problems


def refused(target: Target, store: str, name: str, caller: str) -> Verdict:
    """caller: 'below' (a staff user under the RPC's role), 'anon', or 'unknown' (not staff)."""
    check = {"below": ROLE_REQUIRED, "anon": ANON_REFUSED, "unknown": UNKNOWN_USER_REFUSED}[caller]
    missing = missing_rpc(target, name)
    if missing:
        return check.blocked(name, missing)
    with target.sandbox() as conn:
        actors = create_actors(conn)
        order_id = _prepare_for(conn, store, name, actors)
        who = {"below": lambda: actors[ROLES[ROLES.index(behaviour()[name]["min_role"]) - 1]],
               "anon": lambda: "anon", "unknown": lambda: str(uuid.uuid4())}[caller]()
        before = snapshot(conn, store, order_id)
        answer = invoke(target, conn, who, name, arguments(name, store, order_id, actors["Staff"].user_id))
        after = snapshot(conn, store, order_id)
    label = who.role if isinstance(who, Actor) else "anon" if who == "anon" else "a user who is not staff"
    return check.verdict(name, _refusal_problems(f"{name}('{order_id}') called by {label}", answer, before, after))


# -- scanning --------------------------------------------------------------------------------
def scan_problems(conn: psycopg.Connection, store: str, order_id: str, number: int, shared_number: bool) -> list[str]:
    """What get_order_for_scan gets wrong for one order, in each documented form. A bare number
    that both stores use may resolve to either store's order."""
    other = next(s for s in contract()["stores"] if s != store)
    forms = {f"{contract()['barcode_prefixes'][store]}{number}": {order_id},
             f"{store}-{number}": {order_id},
             str(number): {order_id, f"{other}-{number}"} if shared_number else {order_id}}
    problems = []
    for scan, acceptable in forms.items():
        try:
            with conn.transaction():
                rows = call(conn, "get_order_for_scan", p_scan=scan)
        except psycopg.Error as exc:
            problems.append(f"get_order_for_scan({scan!r}) failed: {str(exc).splitlines()[0]}")
            continue
        found = [r["id"] for r in rows]
        if len(found) != 1 or found[0] not in acceptable:
            problems.append(f"get_order_for_scan({scan!r}) gave {found or 'nothing'}, expected {order_id}")
    return problems
