"""Supabase migrations: the files in Git and the rows in supabase_migrations.schema_migrations."""

from pathlib import Path

from checks.connect.target import Target
from checks.core import Check
from checks.migration_files import MigrationFile, UnreadableMigration, migration_files, normalized, skipped_files
from checks.rules import privileges

FILES_VALID = Check("migration_files_valid", "every migration file is one the Supabase CLI can apply: UTF-8, its "
                    "quotes, dollar quotes and comments closed (a file not named <version>_<name>.sql is skipped "
                    "with a note, as the CLI skips it)",
                    "save the file as UTF-8; fix the SQL at the line named")
APPLIED = Check("migrations_applied", "every migration file in Git is applied to the database",
                "apply the missing migrations in order (supabase db push), or restore a later backup")
KNOWN = Check("migrations_known", "every migration the database records has its file in Git",
              "commit the missing file to supabase/migrations, or find out who changed the database by hand")
UNCHANGED = Check("migrations_unchanged", "no migration file was edited after it was applied",
                  "revert the edit and put the change in a new migration file")


MIGRATIONS_TABLE = "supabase_migrations.schema_migrations"


def recorded(target: Target) -> list[dict] | None:
    """Rows of supabase_migrations.schema_migrations, or None when the table is absent."""
    if target.scalar("select to_regclass(%s) is null", (MIGRATIONS_TABLE,)):
        return None
    return target.query(f"select version, name, statements from {MIGRATIONS_TABLE} order by version")


def _heads(files: list[MigrationFile], rows: list[dict]) -> dict:
    return {"head_in_git": files[-1].version if files else None,
            "head_in_database": rows[-1]["version"] if rows else None}


def files_valid(folder: Path):
    """Migration files the CLI could not read or split: each one a migration that never runs as
    written. Files the CLI skips by their name (a README.md, a stray fix.sql) are notes, never
    failures: the folder is read as the CLI reads it, and a doc file must not turn a run red."""
    violations = []
    for migration in migration_files(folder):
        try:
            migration.statements()
        except UnreadableMigration as exc:
            where, _, problem = str(exc).partition(": ")
            violations.append({"object": where, "problem": problem})
    notes = [{"object": path.name, "problem": "skipped: its name is not <version>_<name>.sql",
              "note": "the Supabase CLI skips it too" + ("; so it is never applied: if it is a migration, rename "
                                                           "it <version>_<name>.sql" if path.suffix == ".sql" else "")}
             for path in skipped_files(folder)]
    return FILES_VALID.verdict("all", violations, notes=notes)


def files_applied(target: Target, folder: Path):
    unreadable = privileges.blocker(target, MIGRATIONS_TABLE)
    if unreadable:
        return APPLIED.blocked("all", unreadable)
    files, rows = migration_files(folder), recorded(target)
    if rows is None:
        return APPLIED.verdict("all", [{"object": "supabase_migrations.schema_migrations",
                                        "problem": "table is missing: this database records no migrations"}])
    applied = {r["version"] for r in rows}
    return APPLIED.verdict("all", [
        {"object": f"{m.path.name}", "problem": "never applied to the database"}
        for m in files if m.version not in applied], **_heads(files, rows))


def applied_have_files(target: Target, folder: Path):
    unreadable = privileges.blocker(target, MIGRATIONS_TABLE)
    if unreadable:
        return KNOWN.blocked("all", unreadable)
    files, rows = migration_files(folder), recorded(target)
    if rows is None:
        return KNOWN.blocked("all", "no migrations table: see test_migration_files_applied")
    in_git = {m.version for m in files}
    return KNOWN.verdict("all", [
        {"object": f"version {r['version']}" + (f" ({r['name']})" if r["name"] else ""),
         "problem": f"applied to the database but has no file in {folder}"}
        for r in rows if r["version"] not in in_git])


def applied_unchanged(target: Target, folder: Path):
    unreadable = privileges.blocker(target, MIGRATIONS_TABLE)
    if unreadable:
        return UNCHANGED.blocked("all", unreadable)
    files, rows = migration_files(folder), recorded(target)
    if rows is None:
        return UNCHANGED.blocked("all", "no migrations table: see test_migration_files_applied")
    by_version = {r["version"]: r for r in rows}
    violations, unverifiable, unreadable = [], [], []
    for m in files:
        row = by_version.get(m.version)
        if row is None:
            continue
        if not row["statements"]:
            unverifiable.append(m.version)  # written by an older CLI or by hand: nothing to compare
            continue
        try:
            m.statements()  # scans the file: an unreadable one is test_migration_files_valid's finding
        except UnreadableMigration:
            unreadable.append(m.path.name)
            continue
        if normalized(m.text()) != normalized(";\n".join(row["statements"])):
            violations.append({"object": m.path.name, "problem": "file differs from the statements applied"})
    return UNCHANGED.verdict("all", violations, unverifiable=unverifiable, unreadable=unreadable)
