"""Schema sanity: the tables and types Ordak needs exist and look as the contract says."""

from checks.contract import contract, orders_table
from checks.core import Check
from checks.errors import SetupError
from checks.target import Target

STORE_TABLE_READABLE = Check(
    "store_table_readable",
    "the store's order table exists and can be read",
    "restore the table from the migrations in Git (or the backup) before trusting this database",
)
ENUM_LABELS = Check(
    "enum_labels",
    "the enum has exactly the contract's labels, in order",
    "recreate the enum with the contract's labels; orders compare stages by this order",
)


def store_table_readable(target: Target, store: str):
    table = orders_table(store)
    if target.scalar("select to_regclass(%s) is null", (f"public.{table}",)):
        return STORE_TABLE_READABLE.verdict(store, [{"object": f"public.{table}", "problem": "table is missing"}])
    target.query(f'select 1 from public."{table}" limit 1')
    return STORE_TABLE_READABLE.verdict(store, [])


def enum_labels(target: Target, enum: str, expected: list[str]):
    rows = target.query(
        "select e.enumlabel from pg_enum e join pg_type t on t.oid = e.enumtypid"
        " where t.typnamespace = 'public'::regnamespace and t.typname = %s order by e.enumsortorder",
        (enum,))
    found = [r["enumlabel"] for r in rows]
    name = f"public.{enum}"
    if not found:
        return ENUM_LABELS.verdict(enum, [{"object": name, "problem": "type is missing"}])
    violations = [{"object": f"{name}.{label}", "problem": "label is missing"} for label in expected if label not in found]
    violations += [{"object": f"{name}.{label}", "problem": "label is not in the contract"}
                   for label in found if label not in expected]
    common_found = [label for label in found if label in expected]
    common_expected = [label for label in expected if label in found]
    if common_found != common_expected:
        violations.append({"object": name, "problem": "labels are out of order",
                           "expected": ", ".join(common_expected), "found": ", ".join(common_found)})
    return ENUM_LABELS.verdict(enum, violations)


def require_ordak(target: Target) -> None:
    """Stops the run once, clearly, when the database is not an Ordak at all."""
    tables = contract()["core_tables"]
    present = target.scalar(
        "select count(*) from pg_class where relnamespace = 'public'::regnamespace and relname = any(%s)",
        (tables,))
    if not present:
        raise SetupError(f"[{target.env.name}] {target.location} is not an Ordak database: none of "
                         f"{', '.join(tables)} exists in schema public; check the database URL")
