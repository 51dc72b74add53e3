"""Work-queue health (the runbook's thresholds) and the production-queue RPCs, called as a
real staff user inside a transaction that rolls back (read-only where the env is)."""

from datetime import timedelta

from psycopg import sql

from checks import catalog
from checks.contract import contract, orders_table, stages
from checks.core import Check
from checks.target import Target, call

SHOWN = 20

PENDING = Check("queue_pending", "fewer pending jobs than the limit", "find why the worker stopped draining "
                "work_queue (its logs, locked rows) before the backlog delays Shopify")
OLDEST_PENDING = Check("queue_oldest_pending", "the oldest pending job is younger than the limit",
                       "restart or fix the worker; a pending job this old is not being picked up")
STALE_LOCKS = Check("queue_stale_locks", "no claimed job (pending or processing) has held its lock past the limit",
                    "the worker holding it died: clear locked_at/locked_by so another worker retries it")
RETRIES = Check("queue_retries", "no job has retried more than the maximum",
                "inspect the job's payload and error; move it to dead_letter once understood")
STAFF_USER = Check("staff_user", "an active Admin or Supervisor exists to call the queue RPCs as",
                   "set staff_user (uuid or email) for this environment in environments.toml")
GET_QUEUE = Check("get_queue", "get_queue lists exactly the store's open orders: no Complete or POS order, none missing",
                  "re-apply the migration that defines get_queue; staff are working from a wrong queue")
UNASSIGNED = Check("get_unassigned_counts", "get_unassigned_counts equals the orders with no assignee, per open stage",
                   "re-apply the migration that defines get_unassigned_counts")
STATS = Check("get_queue_stats", "get_queue_stats agrees with the order table",
              "re-apply the migration that defines get_queue_stats")


def status_counts(target: Target) -> dict[str, int]:
    return {r["status"]: r["n"] for r in target.query("select status, count(*) as n from public.work_queue group by 1")}


def pending(target: Target, thresholds: dict):
    counts = status_counts(target)
    limit, waiting = thresholds["queue_max_pending"], counts.get("pending", 0)
    violations = [] if waiting < limit else [
        {"object": "public.work_queue", "problem": f"{waiting} pending jobs; the limit is {limit}"}]
    return PENDING.verdict("work_queue", violations, by_status=", ".join(f"{k}={v}" for k, v in sorted(counts.items())))


def oldest_pending(target: Target, clock, thresholds: dict):
    limit = timedelta(minutes=thresholds["queue_max_pending_age_minutes"])
    rows = target.query("select id, topic, created_at from public.work_queue where status = 'pending' "
                        "and created_at < %s order by created_at limit %s", (clock.at - limit, SHOWN))
    return OLDEST_PENDING.verdict("work_queue", [
        {"object": f"work_queue {r['id']} ({r['topic']})",
         "problem": f"pending since {r['created_at']:%Y-%m-%d %H:%M %Z}, {_minutes(clock.at - r['created_at'])} min "
                    f"before the {clock.label}; the limit is {thresholds['queue_max_pending_age_minutes']} min"}
        for r in rows])


def stale_locks(target: Target, clock, thresholds: dict):
    limit = timedelta(minutes=thresholds["queue_max_lock_minutes"])
    rows = target.query("select id, topic, status, locked_at, locked_by from public.work_queue "
                        "where status in ('pending', 'processing') and locked_at < %s order by locked_at limit %s",
                        (clock.at - limit, SHOWN))
    return STALE_LOCKS.verdict("work_queue", [
        {"object": f"work_queue {r['id']} ({r['topic']}, {r['status']})",
         "problem": f"locked by {r['locked_by']} for {_minutes(clock.at - r['locked_at'])} min; "
                    f"the limit is {thresholds['queue_max_lock_minutes']} min"} for r in rows])


def retries(target: Target, thresholds: dict):
    limit = thresholds["queue_max_retries"]
    rows = target.query("select id, topic, status, retry_count from public.work_queue where retry_count > %s "
                        "order by retry_count desc limit %s", (limit, SHOWN))
    return RETRIES.verdict("work_queue", [
        {"object": f"work_queue {r['id']} ({r['topic']}, {r['status']})",
         "problem": f"retried {r['retry_count']} times; the maximum is {limit}"} for r in rows])


def _minutes(delta: timedelta) -> int:
    return int(delta.total_seconds() // 60)


# -- the queue RPCs, as staff -------------------------------------------------------------
def staff_user(target: Target) -> dict | None:
    """The user the RPCs are called as: the env's staff_user, else the first active Admin or
    Supervisor (Admins first)."""
    wanted = target.env.staff_user
    rows = target.query(
        "select user_id, email, role from public.staff_shared where is_active and approved "
        "and (%(wanted)s::text is null and role in ('Admin', 'Supervisor') "
        "     or user_id::text = %(wanted)s or email = %(wanted)s) "
        "order by case role when 'Admin' then 0 when 'Supervisor' then 1 else 2 end, user_id limit 1",
        {"wanted": wanted})
    return rows[0] if rows else None


def staff_user_available(target: Target):
    user = staff_user(target)
    wanted = target.env.staff_user
    problem = (f"staff_user {wanted} is not active, approved staff" if wanted
               else "no active, approved Admin or Supervisor in staff_shared")
    return STAFF_USER.verdict("staff_shared", [] if user else [{"object": "public.staff_shared", "problem": problem}],
                              **({"calling_as": f"{user['email'] or user['user_id']} ({user['role']})"} if user else {}))


def _as_staff_blocker(target: Target, name: str) -> str | None:
    if not catalog.functions(target, ["public"], [name]):
        return f"public.{name} is missing: see test_rpc[{name}]"
    if staff_user(target) is None:
        return "no staff user to call it as: see test_staff_user_available"
    if not target.scalar("select pg_has_role(current_user, 'authenticated', 'MEMBER')"):
        return "the connected role cannot act as authenticated; connect as postgres to call the RPCs"
    return None


def get_queue(target: Target, store: str):
    blocker = _as_staff_blocker(target, "get_queue")
    if blocker:
        return GET_QUEUE.blocked(store, blocker)
    page, user = contract()["queue"]["page_size"], staff_user(target)
    table = sql.Identifier("public", orders_table(store))
    with target.rolled_back() as conn:  # one snapshot: the table's truth and the RPC's answer agree in time
        expected = {r["id"] for r in conn.execute(sql.SQL("select id from {} where not ({})").format(
            table, sql.SQL(contract()["queue"]["excluded"]))).fetchall()}
        with target.as_staff(conn, user["user_id"], user["email"]):
            listed, totals, duplicates = _page_through(conn, store, page)
        unexpected = conn.execute(sql.SQL("select id, stage::text as stage from {} where id = any(%s)").format(table),
                                  (sorted(set(listed) - expected),)).fetchall()
    complete = sorted(r["id"] for r in unexpected if r["stage"] == "Complete")
    excluded = sorted(r["id"] for r in unexpected if r["stage"] != "Complete")
    unknown = sorted(set(listed) - expected - {r["id"] for r in unexpected})
    violations = []
    for ids, problem in ((complete, "Complete order(s) listed"), (excluded, "excluded (point-of-sale) order(s) listed"),
                         (sorted(expected - set(listed)), "open order(s) not listed"),
                         (unknown, "unknown id(s) listed"), (duplicates, "order(s) listed twice across pages")):
        if ids:
            violations.append({"object": f"get_queue('{store}')", "problem": f"{len(ids)} {problem}: {_some(ids)}"})
    if totals and totals != {len(expected)}:
        violations.append({"object": f"get_queue('{store}')",
                           "problem": f"total_count says {sorted(totals)}, the table has {len(expected)} open orders"})
    return GET_QUEUE.verdict(store, violations, listed=len(listed))


def _page_through(conn, store: str, page: int) -> tuple[list[str], set[int], list[str]]:
    """Every row get_queue gives, page after page: ids in order, total_count values, repeats."""
    listed, totals, offset = [], set(), 0
    while True:
        rows = call(conn, "get_queue", p_store=store, p_offset=offset, p_limit=page)
        listed += [r["id"] for r in rows]
        totals |= {r["total_count"] for r in rows}
        if len(rows) < page:
            break
        offset += page
    seen, duplicates = set(), set()
    for order_id in listed:
        (duplicates if order_id in seen else seen).add(order_id)
    return listed, totals, sorted(duplicates)


def unassigned_counts(target: Target, store: str):
    blocker = _as_staff_blocker(target, "get_unassigned_counts")
    if blocker:
        return UNASSIGNED.blocked(store, blocker)
    user = staff_user(target)
    with target.rolled_back() as conn:
        with target.as_staff(conn, user["user_id"], user["email"]):
            answered = {r["stage"]: r["count"] for r in call(conn, "get_unassigned_counts", p_store=store)}
        truth = {r["stage"]: r["n"] for r in conn.execute(sql.SQL(
            "select stage::text as stage, count(*) as n from {} where assignee_id is null and stage <> 'Complete' "
            "group by 1").format(sql.Identifier("public", orders_table(store)))).fetchall()}
    violations = [{"object": f"get_unassigned_counts('{store}')",
                   "problem": f"{stage}: says {answered.get(stage, 0)}, the table has {truth.get(stage, 0)}"}
                  for stage in stages()[:-1] if answered.get(stage, 0) != truth.get(stage, 0)]
    violations += [{"object": f"get_unassigned_counts('{store}')", "problem": f"answers for {stage}, not an open stage"}
                   for stage in answered if stage not in stages()[:-1]]
    return UNASSIGNED.verdict(store, violations)


def queue_stats(target: Target, store: str):
    blocker = _as_staff_blocker(target, "get_queue_stats")
    if blocker:
        return STATS.blocked(store, blocker)
    expected_columns = contract()["queue"]["stats"]
    user = staff_user(target)
    with target.rolled_back() as conn:
        with target.as_staff(conn, user["user_id"], user["email"]):
            answered = call(conn, "get_queue_stats", p_store=store)
        truth = conn.execute(sql.SQL("select {} from {}").format(
            sql.SQL(", ").join(sql.SQL("count(*) filter (where {}) as {}").format(sql.SQL(rule), sql.Identifier(name))
                               for name, rule in expected_columns.items()),
            sql.Identifier("public", orders_table(store)))).fetchone()
    if len(answered) != 1:
        return STATS.verdict(store, [{"object": f"get_queue_stats('{store}')",
                                      "problem": f"returned {len(answered)} rows, not one"}])
    row = answered[0]
    return STATS.verdict(store, [
        {"object": f"get_queue_stats('{store}').{name}", "problem": f"says {row.get(name, 'nothing')}, the table has {truth[name]}"}
        for name in expected_columns if row.get(name) != truth[name]])


def _some(ids: list[str]) -> str:
    return ", ".join(ids[:SHOWN]) + (f" (+{len(ids) - SHOWN} more)" if len(ids) > SHOWN else "")
