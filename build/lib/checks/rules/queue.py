"""Work-queue health (the runbook's thresholds) and the production-queue RPCs, called as a
real staff user inside a transaction that rolls back (read-only where the env is).

Each RPC question costs a fixed number of calls, whatever the size of the store: the RPC's
own total_count against the table's count, and a bounded sample compared row by row. Walking
the whole queue page by page (to name every missing order) is the deep option, for drills."""

import weakref
from dataclasses import dataclass, field
from datetime import timedelta

import psycopg
from psycopg import sql

from checks.connect.target import Target, call
from checks.contract import contract, orders_table, runbook_holds, runbook_says, stages
from checks.contract import thresholds as thresholds_of
from checks.core import Check
from checks.rules import catalog, data, privileges

SHOWN = 20

PENDING = Check("queue_pending", "fewer pending jobs than the limit", "find why the worker stopped draining "
                "work_queue (its logs, locked rows) before the backlog delays Shopify")
OLDEST_PENDING = Check("queue_oldest_pending", "the oldest pending job is younger than the limit",
                       "restart or fix the worker; a pending job this old is not being picked up")
STALE_LOCKS = Check("queue_stale_locks", "no pending job has been locked past the limit",
                    "the worker holding it died: clear locked_at/locked_by so another worker retries it")
RETRIES = Check("queue_retries", "no job has retried more than the reference's maximum (a note, never failing)",
                "inspect the job's payload and error; move it to dead_letter once understood")
STAFF_USER = Check("staff_user", "an active Admin or Supervisor exists to call the queue RPCs as",
                   "set staff_user (uuid or email) for this environment in environments.toml")
GET_QUEUE = Check("get_queue", "get_queue lists exactly the store's queue: no point-of-sale order, no Complete "
                  "order (runbook), none missing",
                  "re-apply the migration that defines get_queue; staff are working from a wrong queue")
UNASSIGNED = Check("get_unassigned_counts", "get_unassigned_counts equals the orders with no assignee, per open stage",
                   "re-apply the migration that defines get_unassigned_counts")
STATS = Check("get_queue_stats", "get_queue_stats agrees with the order table",
              "re-apply the migration that defines get_queue_stats")


def status_counts(target: Target) -> dict[str, int]:
    return {r["status"]: r["n"] for r in target.query("select status, count(*) as n from public.work_queue group by 1")}


def pending(target: Target, thresholds: dict):
    blocker = catalog.missing_table(target, "work_queue")
    if blocker:
        return PENDING.blocked("work_queue", blocker)
    counts = status_counts(target)
    limit, waiting = thresholds["queue_max_pending"], counts.get("pending", 0)
    violations = [] if waiting < limit else [
        {"object": "public.work_queue", "problem": f"{waiting} pending jobs; the limit is {limit}"}]
    return PENDING.verdict("work_queue", violations, by_status=", ".join(f"{k}={v}" for k, v in sorted(counts.items())))


def oldest_pending(target: Target, clock, thresholds: dict):
    blocker = catalog.missing_table(target, "work_queue")
    if blocker:
        return OLDEST_PENDING.blocked("work_queue", blocker)
    limit = timedelta(minutes=thresholds["queue_max_pending_age_minutes"])
    rows = target.query("select id, topic, created_at from public.work_queue where status = 'pending' "
                        "and created_at < %s order by created_at limit %s", (clock.at - limit, SHOWN))
    return OLDEST_PENDING.verdict("work_queue", [
        {"object": f"work_queue {r['id']} ({r['topic']})",
         "problem": f"pending since {r['created_at']:%Y-%m-%d %H:%M %Z}, {_minutes(clock.at - r['created_at'])} min "
                    f"before the {clock.label}; the limit is {thresholds['queue_max_pending_age_minutes']} min"}
        for r in rows])


def stale_locks(target: Target, clock, thresholds: dict):
    """Pending jobs locked too long fail (the runbook's rule); processing jobs locked too
    long are a note (the reference's rule)."""
    blocker = catalog.missing_table(target, "work_queue")
    if blocker:
        return STALE_LOCKS.blocked("work_queue", blocker)
    limits = {"pending": thresholds["queue_max_lock_minutes"], "processing": thresholds["queue_max_processing_lock_minutes"]}
    rows = target.query("select id, topic, status, locked_at, locked_by from public.work_queue "
                        "where status = 'pending' and locked_at < %s or status = 'processing' and locked_at < %s "
                        "order by locked_at limit %s",
                        (clock.at - timedelta(minutes=limits["pending"]), clock.at - timedelta(minutes=limits["processing"]),
                         SHOWN))
    found = {"pending": [], "processing": []}
    for r in rows:
        found[r["status"]].append({"object": f"work_queue {r['id']} ({r['topic']}, {r['status']})",
                                   "problem": f"locked by {r['locked_by']} for {_minutes(clock.at - r['locked_at'])} "
                                              f"min; the limit is {limits[r['status']]} min"})
    return STALE_LOCKS.verdict("work_queue", found["pending"], notes=[
        {**f, "note": "the runbook limits pending locks only; this limit is the reference's"} for f in found["processing"]])


def retries(target: Target, thresholds: dict):
    blocker = catalog.missing_table(target, "work_queue")
    if blocker:
        return RETRIES.blocked("work_queue", blocker)
    limit = thresholds["queue_max_retries"]
    rows = target.query("select id, topic, status, retry_count from public.work_queue where retry_count > %s "
                        "order by retry_count desc limit %s", (limit, SHOWN))
    return RETRIES.verdict("work_queue", [
        {"object": f"work_queue {r['id']} ({r['topic']}, {r['status']})",
         "problem": f"retried {r['retry_count']} times; the maximum is {limit}"} for r in rows]).advisory(
        "SYSTEM.md sets no retry limit; this one is the reference's")


def _minutes(delta: timedelta) -> int:
    return int(delta.total_seconds() // 60)


# -- the queue RPCs, as staff -------------------------------------------------------------
def staff_user(target: Target) -> dict | None:
    """The user the RPCs are called as: the env's staff_user, else the first active Admin or
    Supervisor (Admins first)."""
    if catalog.missing_table(target, "staff_shared"):
        return None
    wanted = target.env.staff_user
    rows = target.query(
        "select user_id, email, role from public.staff_shared where is_active and approved "
        "and (%(wanted)s::text is null and role in ('Admin', 'Supervisor') "
        "     or user_id::text = %(wanted)s or email = %(wanted)s) "
        "order by case role when 'Admin' then 0 when 'Supervisor' then 1 else 2 end, user_id limit 1",
        {"wanted": wanted})
    return rows[0] if rows else None


def staff_user_available(target: Target):
    blocker = catalog.missing_table(target, "staff_shared")
    if blocker:
        return STAFF_USER.blocked("staff_shared", blocker)
    user = staff_user(target)
    wanted = target.env.staff_user
    problem = (f"staff_user {wanted} is not active, approved staff" if wanted
               else "no active, approved Admin or Supervisor in staff_shared")
    return STAFF_USER.verdict("staff_shared", [] if user else [{"object": "public.staff_shared", "problem": problem}],
                              **({"calling_as": f"{user['email'] or user['user_id']} ({user['role']})"} if user else {}))


def as_staff_blocker(target: Target, name: str, store: str) -> str | None:
    missing = catalog.missing_table(target, orders_table(store), "staff_shared")
    if missing:
        return missing
    if not catalog.functions(target, ["public"], [name]):
        return f"public.{name} is missing: see test_rpc[{name}]"
    if staff_user(target) is None:
        return "no staff user to call it as: see test_staff_user_available"
    return privileges.blocker(target, "SET ROLE authenticated")


# -- one snapshot per store: the table's counts and the RPCs' answers -------------------------
# The three queue checks of a store share one transaction (one snapshot, so that the table's
# truth and the RPCs' answers agree in time): the run's one pass over the store's orders for
# every count (checks.rules.data.count_query), then each RPC, called as staff, in a savepoint of its
# own, so that one that raises fails its own check and no other. Kept for the run.
QUEUE_RPCS = ("get_queue", "get_unassigned_counts", "get_queue_stats")
_SNAPSHOTS: "weakref.WeakKeyDictionary[Target, dict[str, Snapshot]]" = weakref.WeakKeyDictionary()


@dataclass
class Snapshot:
    counts: dict
    sample: int
    answers: dict = field(default_factory=dict)  # RPC -> its rows, or the error it raised
    truth: dict = field(default_factory=dict)  # the ids get_queue listed -> {id, stage, pos}


def snapshot(target: Target, store: str) -> Snapshot:
    """The store's counts and the queue RPCs' answers (those that can be called), in one snapshot."""
    found = _SNAPSHOTS.setdefault(target, {})
    if store in found:
        return found[store]
    callable_ = [name for name in QUEUE_RPCS if as_staff_blocker(target, name, store) is None]
    user, sample = staff_user(target), int(thresholds_of(target.env.thresholds)["queue_sample_size"])
    rules = contract()["queue"]
    table, pos = sql.Identifier("public", orders_table(store)), sql.SQL(rules["point_of_sale"])
    with target.rolled_back() as conn:
        taken = Snapshot(data.tally(conn.execute(data.count_query(store)).fetchall()), sample)
        if callable_:
            with target.as_staff(conn, user["user_id"], user["email"]):
                for name in callable_:
                    try:
                        with conn.transaction():  # a savepoint: an RPC that raises leaves the others theirs
                            taken.answers[name] = _ask(conn, name, store, sample)
                    except psycopg.Error as exc:
                        taken.answers[name] = exc
        listed = taken.answers.get("get_queue")
        if isinstance(listed, tuple):
            taken.truth = _truth(conn, table, pos, [r["id"] for r in listed[0] + listed[1]])
    data.remember_counts(target, store, taken.counts)
    found[store] = taken
    return taken


def _ask(conn, name: str, store: str, sample: int):
    if name == "get_queue":  # the queue's first page, and the Complete tab's
        return (call(conn, "get_queue", p_store=store, p_limit=sample),
                call(conn, "get_queue", p_store=store, p_stage="Complete", p_limit=sample))
    return call(conn, name, p_store=store)


def _truth(conn, table, pos, ids: list[str]) -> dict:
    return {r["id"]: r for r in conn.execute(sql.SQL(
        "select id, stage::text as stage, {pos} as pos from {t} where id = any(%s)").format(pos=pos, t=table),
        (sorted(set(ids)),)).fetchall()}


def _answer(taken: Snapshot, name: str):
    answer = taken.answers[name]
    if isinstance(answer, BaseException):
        raise answer
    return answer


def get_queue(target: Target, store: str, thresholds: dict, deep: bool = False):
    """A fixed number of calls: the queue's first page, the Complete tab's first page, and the
    table's own counts, in one snapshot. `deep` also walks every page, naming missing orders."""
    blocker = as_staff_blocker(target, "get_queue", store)
    if blocker:
        return GET_QUEUE.blocked(store, blocker)
    sample = int(thresholds["queue_sample_size"])
    taken = snapshot(target, store)
    if deep or taken.sample != sample:
        return _get_queue_alone(target, store, sample, deep)
    first, complete_tab = _answer(taken, "get_queue")
    listed = [r["id"] for r in first + complete_tab]
    counts = {"open": taken.counts["open"], "complete": taken.counts["complete"]}
    return GET_QUEUE.verdict(store, _queue_problems(store, counts, first, complete_tab, listed, taken.truth, None, {}),
                             listed=first[0]["total_count"] if first else 0)


def _get_queue_alone(target: Target, store: str, sample: int, deep: bool):
    """get_queue in a snapshot of its own: for --deep-queue, which walks every page."""
    user, rules = staff_user(target), contract()["queue"]
    table, pos, complete = (sql.Identifier("public", orders_table(store)), sql.SQL(rules["point_of_sale"]),
                            sql.SQL(rules["complete"]))
    with target.rolled_back() as conn:  # one snapshot: the table's truth and the RPC's answers agree in time
        counts = conn.execute(sql.SQL("select count(*) filter (where not ({pos}) and not ({c})) as open, "
                                      "count(*) filter (where not ({pos}) and {c}) as complete from {t}").format(
            pos=pos, c=complete, t=table)).fetchone()
        with target.as_staff(conn, user["user_id"], user["email"]):
            first = call(conn, "get_queue", p_store=store, p_limit=sample)
            complete_tab = call(conn, "get_queue", p_store=store, p_stage="Complete", p_limit=sample)
            walked = _page_through(conn, store, sample) if deep else None
        listed = [r["id"] for r in first + complete_tab] + (walked[0] if deep else [])
        truth = _truth(conn, table, pos, listed)
        queue = {r["id"]: r["stage"] for r in conn.execute(sql.SQL(
            "select id, stage::text as stage from {} where not ({})").format(table, pos))} if deep else {}
    return GET_QUEUE.verdict(store, _queue_problems(store, counts, first, complete_tab, listed, truth, walked, queue),
                             listed=first[0]["total_count"] if first else 0)


def _queue_problems(store, counts, first, complete_tab, listed, truth, walked, queue) -> list[dict]:
    where, problems = f"get_queue('{store}')", []
    excludes_complete = runbook_holds("get_queue_excludes_complete")
    total = first[0]["total_count"] if first else 0
    complete_total = complete_tab[0]["total_count"] if complete_tab else 0
    named = sorted(set(listed))
    for ids, problem in (([i for i in named if i in truth and truth[i]["pos"]], "point-of-sale order(s) listed"),
                         ([i for i in named if i not in truth], "unknown id(s) listed")):
        if ids:
            problems.append({"object": where, "problem": f"{len(ids)} {problem}: {_some(ids)}"})
    stale = [f"{r['id']} ({r['stage']}; the table says {truth[r['id']]['stage']})" for r in first + complete_tab
             if r["id"] in truth and str(r["stage"]) != truth[r["id"]]["stage"]]
    if stale:
        problems.append({"object": where, "problem": f"{len(stale)} row(s) with the wrong stage: {_some(stale)}"})
    complete_listed = [i for i in named if i in truth and truth[i]["stage"] == "Complete" and not truth[i]["pos"]]
    if excludes_complete:
        if complete_listed or complete_total or (counts["complete"] and total == counts["open"] + counts["complete"]):
            problems.append({"object": where, "problem": f"lists Complete orders ({complete_total} with p_stage => "
                             f"'Complete'{'; e.g. ' + _some(complete_listed) if complete_listed else ''}); "
                             f"{runbook_says('get_queue_excludes_complete')}"})
        elif total != counts["open"]:
            problems.append({"object": where, "problem": f"total_count says {total}; the table has {counts['open']} "
                                                         "open orders (point of sale aside)"})
    else:
        if total != counts["open"] + counts["complete"]:
            problems.append({"object": where, "problem": f"total_count says {total}; the table has "
                             f"{counts['open'] + counts['complete']} orders it lists (point of sale aside)"})
        if complete_total != counts["complete"]:
            problems.append({"object": f"get_queue('{store}', p_stage => 'Complete')",
                             "problem": f"total_count says {complete_total}; the table has {counts['complete']} "
                                        "Complete orders (point of sale aside)"})
    if walked is not None:
        expected = {i for i, stage in queue.items() if not (excludes_complete and stage == "Complete")}
        for ids, problem in ((sorted(expected - set(walked[0])), "order(s) not listed"),
                             (walked[1], "order(s) listed twice across pages")):
            if ids:
                problems.append({"object": where, "problem": f"{len(ids)} {problem}: {_some(ids)}"})
    return problems


def _page_through(conn, store: str, page: int) -> tuple[list[str], list[str]]:
    """Every row get_queue gives, page after page: ids in order, and the ids listed twice."""
    listed, offset = [], 0
    while True:
        rows = call(conn, "get_queue", p_store=store, p_offset=offset, p_limit=page)
        listed += [r["id"] for r in rows]
        if len(rows) < page:
            break
        offset += page
    seen, duplicates = set(), set()
    for order_id in listed:
        (duplicates if order_id in seen else seen).add(order_id)
    return listed, sorted(duplicates)


def unassigned_counts(target: Target, store: str):
    blocker = as_staff_blocker(target, "get_unassigned_counts", store)
    if blocker:
        return UNASSIGNED.blocked(store, blocker)
    taken = snapshot(target, store)
    answered = {r["stage"]: r["count"] for r in _answer(taken, "get_unassigned_counts")}
    truth = taken.counts["unassigned"]
    violations = [{"object": f"get_unassigned_counts('{store}')",
                   "problem": f"{stage}: says {answered.get(stage, 0)}, the table has {truth.get(stage, 0)}"}
                  for stage in stages()[:-1] if answered.get(stage, 0) != truth.get(stage, 0)]
    violations += [{"object": f"get_unassigned_counts('{store}')", "problem": f"answers for {stage}, not an open stage"}
                   for stage in answered if stage not in stages()[:-1]]
    return UNASSIGNED.verdict(store, violations)


def queue_stats(target: Target, store: str):
    blocker = as_staff_blocker(target, "get_queue_stats", store)
    if blocker:
        return STATS.blocked(store, blocker)
    expected_columns = contract()["queue"]["stats"]
    taken = snapshot(target, store)
    answered, truth = _answer(taken, "get_queue_stats"), taken.counts["stats"]
    if len(answered) != 1:
        return STATS.verdict(store, [{"object": f"get_queue_stats('{store}')",
                                      "problem": f"returned {len(answered)} rows, not one"}])
    row = answered[0]
    return STATS.verdict(store, [
        {"object": f"get_queue_stats('{store}').{name}", "problem": f"says {row.get(name, 'nothing')}, the table has {truth[name]}"}
        for name in expected_columns if row.get(name) != truth[name]])


def _some(ids: list[str]) -> str:
    return ", ".join(ids[:SHOWN]) + (f" (+{len(ids) - SHOWN} more)" if len(ids) > SHOWN else "")
