"""The replay list for cut-over: the Shopify deliveries to replay onto the restored copy.

The runbook's cut-over re-enables the Shopify webhooks and replays the deliveries missed
(Shopify Admin). Which ones: every order production received after the restore point that
the restored copy lacks. Two sources, both read from production (read-only) and matched
against the copy:

- the order tables: orders created after the restore point whose id the copy lacks. The
  cakes of a split order (`bannos-24201-A`, `-B`, ...) are one Shopify order: one line, its
  ids together;
- the webhook inbox of each store: deliveries stored after the restore point for which the
  copy holds no order (by the documented ids: inbox `<store>-<number>`, orders that id or
  that id with a split suffix; or the payload's Shopify order id). It names the orders an
  incident deleted from production too, whose deliveries the inbox still holds.

Written to `<report>-replay.csv` beside the run's HTML report, one line per order or
delivery (columns in COLUMNS), oldest first. The verdict carries the file and the counts as
facts; nothing is judged: what to replay is a to-do, not a fault.
"""

import csv
import re
from datetime import datetime, timezone
from pathlib import Path

from psycopg import sql

from checks.connect.target import Target
from checks.contract import contract, orders_table
from checks.core import Check, Verdict
from checks.rules import catalog

COLUMNS = ["source", "store", "id", "cakes", "shopify_order_number", "shopify_order_id", "shopify_order_gid",
           "created_at", "processed"]
BATCH = 5000  # ids asked of the copy per query

REPLAY = Check("replay_list", "the Shopify orders to replay at cut-over: production's orders created after the restore "
               "point that the restored copy lacks (split orders as one), and the webhook inbox deliveries of that "
               "window whose orders it lacks, written beside the report (<report>-replay.csv)",
               "at cut-over, re-enable the Shopify webhooks and replay every order the file lists (Shopify Admin), "
               "then run the suite again: the list must be empty")


def inbox_table(store: str) -> str:
    return f"webhook_inbox_{store}"


def file_beside(report: Path) -> Path:
    """The replay list's file for a report: reports/<run>.html -> reports/<run>-replay.csv."""
    return report.with_name(f"{report.stem}-replay.csv")


def replay_list(target: Target, production: Target, since: datetime, path: Path) -> Verdict:
    """Writes the replay list to `path` and returns its verdict (facts: the file, the counts)."""
    lines: list[dict] = []
    notes: list[dict] = []
    for store in contract()["stores"]:
        orders, why = _orders(target, production, store, since)
        lines += orders
        if why:
            notes.append({"object": f"{production.env.name}: public.{orders_table(store)}", "problem": why,
                          "note": "what the replay list could not read"})
        deliveries, why = _deliveries(target, production, store, since)
        lines += deliveries
        if why:
            notes.append({"object": f"{production.env.name}: public.{inbox_table(store)}", "problem": why,
                          "note": "what the replay list could not read"})
    # oldest first; an order before the inbox row of its delivery
    lines.sort(key=lambda line: (line["created_at"], line["store"], line["source"].startswith("webhook_inbox_"),
                                 line["id"]))
    _write(path, lines)
    shopify = {(line["store"], line["shopify_order_id"] or _number(line["id"], line["store"]) or line["id"])
               for line in lines}
    from_orders = [line for line in lines if line["source"].startswith("orders_")]
    return REPLAY.verdict("all", [], notes, replay_file=shown(path), replay_count=len(shopify),
                          replay_orders=len(from_orders), replay_order_rows=sum(line["cakes"] for line in from_orders),
                          replay_inbox_rows=len(lines) - len(from_orders), replay_from=since.isoformat(),
                          replay_compared_with=production.env.name)


def shown(path: Path) -> str:
    """The path as a person at the terminal reads it: relative to the working directory when under it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _number(order_id: str, store: str) -> str | None:
    match = re.fullmatch(rf"{re.escape(store)}-(\d+)(?:-\w+)?", order_id.split(" ")[0])
    return match[1] if match else None


def _orders(target: Target, production: Target, store: str, since: datetime) -> tuple[list[dict], str | None]:
    table = orders_table(store)
    if catalog.missing_table(production, table):
        return [], (f"not read (missing or unreadable there): the orders it held after the restore point are listed "
                    f"from public.{inbox_table(store)} only")
    rows = production.query(sql.SQL(
        "select id, shopify_order_number, shopify_order_id, shopify_order_gid, created_at from {} "
        "where created_at > %s order by created_at, id").format(sql.Identifier("public", table)), (since,))
    here = _present(target, table, [r["id"] for r in rows])
    collapsed: dict[tuple, dict] = {}
    for row in (r for r in rows if r["id"] not in here):
        key = (row["shopify_order_id"],) if row["shopify_order_id"] is not None else ("id", row["id"])
        line = collapsed.get(key)
        if line is None:
            collapsed[key] = {"source": table, "store": store, "id": row["id"], "cakes": 1,
                              "shopify_order_number": row["shopify_order_number"],
                              "shopify_order_id": row["shopify_order_id"],
                              "shopify_order_gid": row["shopify_order_gid"], "created_at": row["created_at"],
                              "processed": ""}
        else:  # a sibling of a split order: the same Shopify order
            line["id"] = " ".join(sorted([*line["id"].split(" "), row["id"]]))
            line["cakes"] += 1
            line["created_at"] = min(line["created_at"], row["created_at"])
    return list(collapsed.values()), None


def _present(target: Target, table: str, ids: list[str]) -> set[str]:
    """The ids the copy holds (none when it lacks the table)."""
    if not ids or catalog.missing_table(target, table):
        return set()
    found: set[str] = set()
    query = sql.SQL("select id from {} where id = any(%s)").format(sql.Identifier("public", table))
    for start in range(0, len(ids), BATCH):
        found |= {r["id"] for r in target.query(query, (ids[start:start + BATCH],))}
    return found


def _deliveries(target: Target, production: Target, store: str, since: datetime) -> tuple[list[dict], str | None]:
    inbox = inbox_table(store)
    if catalog.missing_table(production, inbox):
        return [], "not read (missing or unreadable there): the deliveries it held are not listed"
    columns = catalog.columns(production, "public", inbox)
    if "created_at" not in columns:
        return [], ("has no created_at column: its deliveries after the restore point cannot be told apart, and are "
                    "not listed")
    # SYSTEM.md names the inbox's id and processed columns; the payload is its jsonb column (a
    # Shopify order: id, admin_graphql_api_id, order_number), whatever its name.
    payload = next((name for name, c in sorted(columns.items()) if c["type"] == "jsonb"), None)
    fields = (sql.SQL("case when {p} ->> 'order_number' ~ '^[0-9]+$' then ({p} ->> 'order_number')::bigint end, "
                      "case when {p} ->> 'id' ~ '^[0-9]+$' then ({p} ->> 'id')::bigint end, "
                      "{p} ->> 'admin_graphql_api_id'").format(p=sql.Identifier(payload))
              if payload else sql.SQL("null::bigint, null::bigint, null::text"))
    processed = sql.Identifier("processed") if "processed" in columns else sql.SQL("null::boolean")
    rows = production.query(sql.SQL(
        "select id, number, shopify_id, gid, processed, created_at "
        "from (select id, {fields}, {processed}, created_at from {inbox} where created_at > %s) "
        "  as r(id, number, shopify_id, gid, processed, created_at) order by created_at, id").format(
        fields=fields, processed=processed, inbox=sql.Identifier("public", inbox)), (since,))
    if not rows:
        return [], None
    held = _orders_held(target, store, rows)
    lines = [{"source": inbox, "store": store, "id": row["id"], "cakes": "", "shopify_order_number": row["number"],
              "shopify_order_id": row["shopify_id"], "shopify_order_gid": row["gid"], "created_at": row["created_at"],
              "processed": "" if row["processed"] is None else row["processed"]}
             for row in rows if row["id"] not in held and (row["shopify_id"] is None or row["shopify_id"] not in held)]
    return lines, None


def _orders_held(target: Target, store: str, rows: list[dict]) -> set:
    """Inbox ids (and Shopify order ids) the copy holds an order for: an order with that id, or
    that id with a split suffix (<store>-<number>-A), or the payload's Shopify order id."""
    table = orders_table(store)
    if catalog.missing_table(target, table):
        return set()
    ids = [r["id"] for r in rows]
    shopify = [r["shopify_id"] for r in rows if r["shopify_id"] is not None]
    query = sql.SQL("select id, shopify_order_id from {} where id = any(%s) or shopify_order_id = any(%s)").format(
        sql.Identifier("public", table))
    held: set = set()
    for start in range(0, max(len(ids), len(shopify)), BATCH):
        for order in target.query(query, (ids[start:start + BATCH], shopify[start:start + BATCH])):
            held.add(order["id"])
            held.add(re.sub(r"-(?:[A-Z]|\d+)$", "", order["id"]) if order["id"].count("-") > 1 else order["id"])
            if order["shopify_order_id"] is not None:
                held.add(order["shopify_order_id"])
    return held


def _write(path: Path, lines: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as out:
        writer = csv.DictWriter(out, COLUMNS)
        writer.writeheader()
        for line in lines:
            at = line["created_at"]
            writer.writerow({**line, "created_at": at.astimezone(timezone.utc).isoformat()
                             if isinstance(at, datetime) else at})
