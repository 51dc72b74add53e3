"""RPC behaviour: idempotence, stage guards and roles, judged by effect.

Everything here writes, so it runs inside target.sandbox() (rolled back). Each scenario of
contract.toml's [behaviour] is judged alone: its order arrives the way orders arrive (inbox
and a service-role upsert) and is put in the right state by direct SQL, and the staff calling
it are created inside the sandbox, so one broken RPC never fails another's test. The effect
of a call (every column of the order, and its stage events by type, before and after) is
judged apart from its answer, so "idempotent but silent" is its own finding.
"""

import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any

import psycopg
from psycopg import sql

from checks.connect.target import Target, call
from checks.contract import behaviours, contract, orders_table, runbook_holds, runbook_says, stage_columns, stages
from checks.core import Check, Verdict
from checks.rules import catalog, privileges
from checks.rules.ingest import ingest, probe_number, shopify_payload
from checks.rules.privileges import ACTS_AS, WRITTEN

ROLES = ("Staff", "Supervisor", "Admin")
NOTES = "ordak-verify"
# Events that record a stage change: a repeat must never add one. (print and assign events
# record actions: one per call, by design.)
STAGE_CHANGE_EVENTS = ("start", "complete", "qc_return")
FOREIGN_KEY_VIOLATION = "23503"

REPEAT_EFFECT = Check("repeat_effect", "the first call acts once; calling again changes no order column and "
                      "logs no second start/complete/qc_return event (print and assign log one per call)",
                      "make the RPC check the order's state first and return early when the work is done")
REPEAT_ANSWER = Check("repeat_answer", "calling again answers as documented (already_done / skipped / rejected)",
                      "return the documented answer on a repeat, so callers can tell a no-op from a success")
INVALID_TRANSITION = Check("invalid_transition", "a call on an order in the wrong stage (or naming inactive staff) "
                           "is rejected and changes nothing",
                           "guard the stage at the top of the RPC (and lock the row) before writing anything")
ROLE_REQUIRED = Check("role_required", "a caller below the RPC's role is refused and changes nothing",
                      "check the caller's staff_shared role inside the RPC, through auth.uid()")
ANON_REFUSED = Check("anon_refused", "anon is refused and changes nothing",
                     "revoke execute from anon and public; check the caller's staff role inside the RPC")
SPLIT_SCAN = Check("split_scan", "each cake of a split order scans, by its full id, to that very row",
                   "make get_order_for_scan look the full id up as it is (suffix included) before the number alone")
NOT_STAFF_REFUSED = Check("not_staff_refused", "a signed-in user who is not active staff (unknown, or "
                          "deactivated) is refused and changes nothing",
                          "look the caller up in staff_shared (active, approved) and refuse anyone else")


def scenarios() -> dict[str, dict]:
    return behaviours()


# -- actors and orders inside a sandbox ------------------------------------------------------
@dataclass(frozen=True)
class Actor:
    user_id: str
    email: str
    role: str

    @property
    def label(self) -> str:
        return self.role


def create_actors(conn: psycopg.Connection) -> dict[str, Actor]:
    """One active, approved staff user per role, and a deactivated Admin, inside the sandbox
    (one statement per table: most probes make their own)."""
    actors = {key: Actor(str(uuid.uuid4()), f"verify-{role.lower()}-{uuid.uuid4().hex[:8]}@ordak-verify.invalid", role)
              for key, role in [*zip(ROLES, ROLES), ("inactive", "Admin")]}
    # Multi-row VALUES with untyped parameters: each value takes its column's type (a role enum too).
    conn.execute("insert into auth.users (id, email) values " + ", ".join(["(%s, %s)"] * len(actors)),
                 [v for a in actors.values() for v in (a.user_id, a.email)])
    conn.execute("insert into public.staff_shared (user_id, full_name, role, store, email, is_active, approved) values "
                 + ", ".join(["(%s, %s, %s, 'both', %s, %s, true)"] * len(actors)),
                 [v for key, a in actors.items() for v in (a.user_id, f"ordak-verify {a.role}", a.role, a.email,
                                                            key != "inactive")])
    return actors


def fresh_order(target: Target, conn: psycopg.Connection, store: str) -> str:
    """A new order in Filling, nothing printed, nobody assigned, ingested as orders are."""
    return ingest(target, conn, store, shopify_payload(store, probe_number(), note=NOTES))[0]


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
    """Every column of the order but updated_at (writers set it themselves), and its stage
    events counted by type under "events"."""
    row = conn.execute(sql.SQL(
        "select to_jsonb(o) - 'updated_at' as columns, (select coalesce(jsonb_object_agg(t, n), '{{}}') from ("
        " select event_type as t, count(*) as n from public.stage_events e where e.store = %s and e.order_id = o.id "
        " group by 1) c) as events from {} o where o.id = %s").format(sql.Identifier("public", orders_table(store))),
        (store, order_id)).fetchone()
    return {**row["columns"], "events": row["events"]} if row else {}


def age_timestamps(conn: psycopg.Connection, store: str, order_id: str) -> None:
    """Moves the order's stage timestamps an hour back. Inside one sandbox transaction now()
    never moves, so an RPC that wrongly resets a timestamp to now() would look harmless; real
    calls are separate transactions. Aging between calls makes such a reset visible."""
    columns = [c for stage in stages()[:-1] for c in stage_columns(stage)]
    conn.execute(sql.SQL("update {} set {} where id = %s").format(
        sql.Identifier("public", orders_table(store)),
        sql.SQL(", ").join(sql.SQL("{0} = {0} - interval '1 hour'").format(sql.Identifier(c)) for c in columns)),
        (order_id,))


def events(conn: psycopg.Connection, store: str, order_id: str) -> dict[str, dict]:
    """The order's stage events by id (inside one transaction their at_ts are all equal)."""
    return {str(r["id"]): r for r in conn.execute(
        "select id, event_type, meta from public.stage_events where store = %s and order_id = %s",
        (store, order_id)).fetchall()}


def new_event(conn: psycopg.Connection, store: str, order_id: str, known: dict) -> dict | None:
    """One event logged since `known` was taken (the only one, if the call logged exactly one)."""
    added = [e for key, e in events(conn, store, order_id).items() if key not in known]
    return added[0] if len(added) == 1 else None


def event_changes(before: dict, after: dict) -> dict[str, int]:
    """Events added per type between two snapshots."""
    types = set(before.get("events", {})) | set(after.get("events", {}))
    added = {t: after["events"].get(t, 0) - before["events"].get(t, 0) for t in types}
    return {t: n for t, n in added.items() if n}


def column_changes(before: dict, after: dict) -> list[str]:
    return [f"{key} {before[key]} -> {after.get(key)}" for key in before if key != "events" and before[key] != after.get(key)]


def clearable(spec: dict) -> list[str]:
    """Columns an effective call of the scenario may leave null: those it clears, and those it
    may clear or keep (contract may_clear: the live Ordak clears, the reference keeps)."""
    return spec.get("clears", []) + spec.get("may_clear", [])


def assignee_problem(spec: dict, before: dict, after: dict) -> str | None:
    """What an effective call did to the assignee that its contract entry does not allow: only
    a scenario that sets the assignee may give it a value; one that clears or may clear it may
    only make it null; any other must leave it as it was."""
    old, new = before["assignee_id"], after["assignee_id"]
    if old == new or "assignee_id" in spec.get("sets", []) or (new is None and "assignee_id" in clearable(spec)):
        return None
    allowed = ("it may only clear it (contract may_clear)" if "assignee_id" in clearable(spec)
               else "the contract does not let it change the assignee")
    return f"changed the assignee: {old} -> {new}; {allowed}"


# -- calling -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Answer:
    value: Any = None
    error: str | None = None
    sqlstate: str | None = None

    @property
    def rejected(self) -> bool:
        return self.error is not None or self.value is False or (
            isinstance(self.value, dict) and self.value.get("success") is False)

    def __str__(self) -> str:
        return f"error: {self.error}" if self.error else repr(self.value)


def arguments(spec: dict, store: str, order_id: str, actors: dict[str, Actor], staff: str | None = None) -> dict:
    """Named arguments for the scenario's RPC, from the contract's signature."""
    staff_id = {"active": actors["Staff"].user_id, "null": None, "inactive": actors["inactive"].user_id}.get(
        staff or spec.get("staff"))
    values = {"p_store": store, "p_order_id": order_id, "p_notes": NOTES, "p_staff_id": staff_id}
    names = [part.split()[0] for part in contract()["rpcs"][spec["rpc"]]["args"].split(",")]
    return {n: values[n] for n in names}


def invoke(target: Target, conn: psycopg.Connection, caller: Actor | str, name: str, args: dict) -> Answer:
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
    except psycopg.OperationalError:
        raise  # a timeout or a lost connection is no answer of the RPC: the run reports it as such
    except psycopg.Error as exc:
        return Answer(error=str(exc).splitlines()[0], sqlstate=exc.sqlstate)
    return Answer(next(iter(rows[0].values())) if rows else None)


@cache  # once per target: the catalog never changes under a run (its writes all roll back)
def missing(target: Target, name: str, store: str) -> str | None:
    """Why the RPC cannot be exercised: a table its orders stand on, or the RPC itself, is
    missing (test_table and test_rpc report that once)."""
    blocker = catalog.missing_table(target, orders_table(store), f"webhook_inbox_{store}", "stage_events", "staff_shared")
    if blocker:
        return blocker
    if not catalog.functions(target, ["public"], [name]):
        return f"public.{name} is missing: see test_rpc[{name}]"
    return cannot_probe(target)


def cannot_probe(target: Target) -> str | None:
    """Why this role cannot run the write probes: they create staff users, then act as them, as
    anon and as the service role (test_connected_role_privileges names what is missing)."""
    return privileges.blocker(target, *WRITTEN, *(f"SET ROLE {r}" for r in ACTS_AS))


# -- idempotence -----------------------------------------------------------------------------
def prepare(target: Target, conn, store: str, spec: dict, actors: dict[str, Actor]) -> str:
    """An order on which the scenario's first call must act. Every scenario but one that sets
    the assignee gets an assigned order: on an unassigned one, keeping, clearing and handing the
    order to someone else could not be told apart (and a call that must keep the assignee would
    never be seen clearing it)."""
    order_id = fresh_order(target, conn, store)
    assigned = spec.get("assigned") or "assignee_id" not in spec.get("sets", [])
    if "from" in spec or assigned:
        put_in_stage(conn, store, order_id, spec.get("from", "Filling"), started=spec["rpc"].startswith(("complete_", "qc_")),
                     assignee=actors["Staff"].user_id if assigned else None)
    return order_id


def idempotence(target: Target, store: str, name: str) -> tuple[Verdict, Verdict]:
    """(effect verdict, answer verdict) of calling the scenario twice on a suitable order, as
    the least role allowed to call it."""
    subject, spec = f"{store}-{name}", scenarios()[name]
    blocker = missing(target, spec["rpc"], store)
    if blocker:
        return REPEAT_EFFECT.blocked(subject, blocker), REPEAT_ANSWER.blocked(subject, blocker)
    with target.sandbox() as conn:
        actors = create_actors(conn)
        caller = actors[spec.get("min_role", "Admin")]
        order_id = prepare(target, conn, store, spec, actors)
        args = arguments(spec, store, order_id, actors)
        before, logged = snapshot(conn, store, order_id), events(conn, store, order_id)
        first = invoke(target, conn, caller, spec["rpc"], args)
        after_first, first_event = snapshot(conn, store, order_id), new_event(conn, store, order_id, logged)
        age_timestamps(conn, store, order_id)
        middle, logged = snapshot(conn, store, order_id), events(conn, store, order_id)
        second = invoke(target, conn, caller, spec["rpc"], args)
        after, second_event = snapshot(conn, store, order_id), new_event(conn, store, order_id, logged)
    where = f"{spec['rpc']}('{order_id}') as {caller.label}"
    effect = [{"object": where, "problem": f"first call: {p}"}
              for p in _first_call_problems(spec, args, first, before, after_first, first_event)]
    effect += [{"object": where, "problem": f"second call: {p}"}
               for p in _repeat_problems(spec, middle, after, second, second_event)]
    return REPEAT_EFFECT.verdict(subject, effect), REPEAT_ANSWER.verdict(subject, _answer_problems(spec, second, where))


def _first_call_problems(spec: dict, args: dict, first: Answer, before: dict, after: dict, event) -> list[str]:
    if first.rejected:
        return [f"rejected ({first}) on an order it should act on"]
    problems = []
    if "to" in spec and after["stage"] != spec["to"]:
        problems.append(f"stage is {after['stage']}, expected {spec['to']}")
    if "to" not in spec and after["stage"] != before["stage"]:
        problems.append(f"stage moved {before['stage']} -> {after['stage']}")
    for column in spec.get("sets", []):
        wanted = args.get("p_staff_id") if column == "assignee_id" else None
        if after[column] is None or (wanted and after[column] != wanted):
            problems.append(f"{column} was not set" + (f" to {wanted}" if wanted else ""))
    problems += [f"{column} was not cleared" for column in spec.get("clears", []) if after[column] is not None]
    assignee = assignee_problem(spec, before, after)
    problems += [assignee] if assignee else []
    problems += _event_problems(spec, event_changes(before, after), event, first_call=True)
    return problems


def _repeat_problems(spec: dict, middle: dict, after: dict, second: Answer, event) -> list[str]:
    # Every column, may_clear ones too: the live Ordak clears the assignee when the order moves
    # on, and a repeat moves nothing.
    problems = [f"changed {change}" for change in column_changes(middle, after)]
    added = event_changes(middle, after)
    if spec.get("every_call_logs") and not second.rejected:
        return problems + _event_problems(spec, added, event, first_call=False)
    repeated = {t: n for t, n in added.items() if t in STAGE_CHANGE_EVENTS or t == spec.get("event")}
    return problems + [f"logged {n} more '{t}' event(s); a repeat must log none" for t, n in repeated.items()]


def _event_problems(spec: dict, added: dict[str, int], event, first_call: bool) -> list[str]:
    """The call logged exactly one event of the scenario's type (and its first_meta flag)."""
    wanted = spec.get("event")
    if wanted is None:
        return []
    if added != {wanted: 1}:
        logged = ", ".join(f"{n} '{t}'" for t, n in sorted(added.items())) or "nothing"
        return [f"logged {logged}; expected exactly one '{wanted}' event"]
    flag = spec.get("first_meta")
    if flag and (event["meta"] or {}).get(flag) is not first_call:
        return [f"its '{wanted}' event has meta.{flag} = {(event['meta'] or {}).get(flag)}, expected {first_call}"]
    return []


def _answer_problems(spec: dict, second: Answer, where: str) -> list[dict]:
    documented = spec.get("repeat")
    if documented is None or not runbook_holds(spec.get("repeat_runbook")):
        return []
    if documented == "rejected":
        ok, expected = second.rejected, "rejected (an error, or false)"
    else:
        ok = second.error is None and isinstance(second.value, dict) and second.value.get(documented) is True
        expected = f'{{"{documented}": true}}'
    if ok:
        return []
    problem = f"repeat answered {second}; documented: {expected}"
    if spec.get("repeat_runbook"):
        problem += f"; {runbook_says(spec['repeat_runbook'])}"
    return [{"object": where, "problem": problem}]


# -- guards and roles ------------------------------------------------------------------------
def guarded(spec: dict) -> bool:
    """Scenarios with a documented guard: a stage they act on (the first print aside, which
    is a docket print in any stage once printed), or the staff member they assign."""
    return ("from" in spec and spec["rpc"] != "print_barcode") or spec.get("staff") == "active"


def _wrong_stage(spec: dict) -> str:
    rank = stages().index(spec["from"])
    return stages()[rank - 1] if rank > 0 else stages()[rank + 1]


def invalid_transition(target: Target, store: str, name: str) -> Verdict:
    subject, spec = f"{store}-{name}", scenarios()[name]
    blocker = missing(target, spec["rpc"], store)
    if blocker:
        return INVALID_TRANSITION.blocked(subject, blocker)
    with target.sandbox() as conn:
        actors = create_actors(conn)
        order_id = fresh_order(target, conn, store)
        if "from" in spec:
            wrong, staff = f"in {_wrong_stage(spec)}", None
            put_in_stage(conn, store, order_id, _wrong_stage(spec), started=True,
                         assignee=actors["Staff"].user_id if spec.get("assigned") else None)
        else:
            wrong, staff = "naming a deactivated staff member", "inactive"
        before = snapshot(conn, store, order_id)
        answer = invoke(target, conn, actors["Admin"], spec["rpc"], arguments(spec, store, order_id, actors, staff))
        after = snapshot(conn, store, order_id)
    return INVALID_TRANSITION.verdict(subject, _refusal_problems(f"{spec['rpc']}('{order_id}') {wrong}", answer,
                                                                 before, after))


def _refusal_problems(where: str, answer: Answer, before: dict, after: dict) -> list[dict]:
    problems = [] if answer.rejected else [{"object": where, "problem": f"accepted, answering {answer}"}]
    if answer.sqlstate == FOREIGN_KEY_VIOLATION:  # SYSTEM.md: a foreign key that happens to fail is no refusal
        problems.append({"object": where, "problem": f"failed only on a foreign key ({answer.error}): the RPC does "
                                                     "not look the caller up in staff_shared itself"})
    problems += [{"object": where, "problem": f"changed {change}"} for change in column_changes(before, after)]
    problems += [{"object": where, "problem": f"logged {n} '{t}' event(s)"} for t, n in event_changes(before, after).items()]
    return problems


def refused(target: Target, store: str, name: str, caller: str) -> Verdict:
    """caller: 'below' (a staff user under the scenario's role), 'anon', 'unknown' (signed in,
    not in staff_shared) or 'inactive' (a deactivated Admin)."""
    check = {"below": ROLE_REQUIRED, "anon": ANON_REFUSED, "unknown": NOT_STAFF_REFUSED,
             "inactive": NOT_STAFF_REFUSED}[caller]
    spec = scenarios()[name]
    subject = f"{name}-{caller}" if check is NOT_STAFF_REFUSED else name
    blocker = missing(target, spec["rpc"], store)
    if blocker:
        return check.blocked(subject, blocker)
    with target.sandbox() as conn:
        actors = create_actors(conn)
        order_id = prepare(target, conn, store, spec, actors)
        who = {"below": lambda: actors[ROLES[ROLES.index(spec.get("min_role", "Staff")) - 1]],
               "anon": lambda: "anon", "unknown": lambda: str(uuid.uuid4()),
               "inactive": lambda: actors["inactive"]}[caller]()
        before = snapshot(conn, store, order_id)
        answer = invoke(target, conn, who, spec["rpc"], arguments(spec, store, order_id, actors))
        after = snapshot(conn, store, order_id)
    label = {"anon": "anon", "unknown": "a signed-in user who is not staff", "inactive": "a deactivated Admin"}.get(
        caller, getattr(who, "label", ""))
    return check.verdict(subject, _refusal_problems(f"{spec['rpc']}('{order_id}') called by {label}", answer,
                                                    before, after))


# -- scanning --------------------------------------------------------------------------------
def scan(conn: psycopg.Connection, code: str) -> list[str]:
    """The order ids get_order_for_scan gives for one scan (one composite row: its id, or
    nothing for a null result)."""
    return [r["id"] for r in call(conn, "get_order_for_scan", p_scan=code) if r.get("id") is not None]


def scans(conn: psycopg.Connection, codes: list[str]) -> list[list[str] | psycopg.Error]:
    """What get_order_for_scan gives for each code: its order ids, or the error it raised.
    One statement scans them all; only when that fails is each scanned alone, to tell which."""
    try:
        with conn.transaction():
            rows = conn.execute(
                "select array_remove(array_agg(s.id), null) as ids from unnest(%s::text[]) with ordinality c(code, n)"
                " left join lateral public.get_order_for_scan(p_scan => c.code) s on true group by c.n order by c.n",
                (codes,)).fetchall()
        return [r["ids"] for r in rows]
    except psycopg.OperationalError:
        raise
    except psycopg.Error:
        pass
    found = []
    for code in codes:
        try:
            with conn.transaction():
                found.append(scan(conn, code))
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:
            found.append(exc)
    return found


def scan_forms(store: str, order_id: str, number: int, shared_number: bool, split: bool = False) -> dict[str, set]:
    """The documented forms of one order's barcode, each with the ids it may resolve to. A bare
    number that both stores use may resolve to either store's order. A split order's cake is
    scanned by its full id only: the other forms name the whole Shopify order, not one cake."""
    other = next(s for s in contract()["stores"] if s != store)
    return {order_id: {order_id}} if split else {
        f"{contract()['barcode_prefixes'][store]}{number}": {order_id},
        f"{store}-{number}": {order_id},
        str(number): {order_id, f"{other}-{number}"} if shared_number else {order_id}}


def scan_problems(conn: psycopg.Connection, orders: list[tuple]) -> dict[str, list[str]]:
    """What get_order_for_scan gets wrong, per order, for each (store, order_id, number,
    shared_number, split) given, in every form of its barcode."""
    forms = [(order[1], code, acceptable) for order in orders for code, acceptable in scan_forms(*order).items()]
    problems = {order[1]: [] for order in orders}
    for (order_id, code, acceptable), found in zip(forms, scans(conn, [code for _, code, _ in forms])):
        if isinstance(found, psycopg.Error):
            problems[order_id].append(f"get_order_for_scan({code!r}) failed: {str(found).splitlines()[0]}")
        elif len(found) != 1 or found[0] not in acceptable:
            problems[order_id].append(f"get_order_for_scan({code!r}) gave {found or 'nothing'}, expected {order_id}")
    return problems


def split_scans(target: Target, user: dict, cakes: list[tuple]) -> Verdict:
    """Every split cake given, (store, id, number), scanned by its full id."""
    with target.rolled_back() as conn, target.as_staff(conn, user["user_id"], user["email"]):
        problems = scan_problems(conn, [(store, order_id, number, False, True) for store, order_id, number in cakes])
    violations = [{"object": order_id, "problem": problem} for order_id, found in problems.items() for problem in found]
    return SPLIT_SCAN.verdict("all", violations, cakes_scanned=len(cakes))
