"""Supabase migrations: the files in Git and the rows in supabase_migrations.schema_migrations."""

import re
from dataclasses import dataclass
from pathlib import Path

from pglast import split
from pglast.parser import ParseError, scan

from checks import privileges
from checks.core import Check
from checks.errors import SetupError
from checks.target import Target

# Files are supabase/migrations/<version>_<name>.sql; the version is the digits before the first _.
_FILE_NAME = re.compile(r"^(\d+)_(.*)\.sql$")


class UnreadableMigration(ValueError):
    """A migration file that is not UTF-8, or whose SQL cannot be split (an unterminated quote,
    dollar quote or comment): `file:line: what`."""


@dataclass(frozen=True)
class MigrationFile:
    version: str
    name: str
    path: Path

    def text(self) -> str:
        data = self.path.read_bytes()
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[:exc.start].count(b"\n") + 1
            raise UnreadableMigration(f"{self.path.name}:{line}: not UTF-8 (byte 0x{data[exc.start]:02x}); "
                                      f"the Supabase CLI reads migrations as UTF-8") from None

    def statements(self) -> list[str]:
        text = self.text()
        try:
            return split_statements(text)
        except ParseError as exc:
            offset = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else None
            line = text[:offset].count("\n") + 1 if offset is not None else "?"
            raise UnreadableMigration(f"{self.path.name}:{line}: SQL cannot be split into statements: "
                                      f"{str(exc.args[0]).split(' at or near')[0]}") from None


def migration_files(folder: Path) -> list[MigrationFile]:
    """The migration files of a folder, oldest first (other files are skipped, as the CLI
    does: skipped_files() names them)."""
    found = []
    for path in sorted(Path(folder).glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match and path.is_file():
            found.append(MigrationFile(match.group(1), match.group(2), path))
    return sorted(found, key=lambda m: m.version)


def skipped_files(folder: Path) -> list[Path]:
    """Files of the folder the Supabase CLI skips (with a warning) because their name is not
    <version>_<name>.sql: a README.md, a notes.txt, a fix.sql. Hidden files (.gitkeep) and
    subfolders are left out: they are how a folder is kept in Git, not something to report."""
    return [path for path in sorted(Path(folder).iterdir())
            if path.is_file() and not path.name.startswith(".") and not _FILE_NAME.match(path.name)]


def require_migrations(folder: str | Path) -> None:
    """Stops the run (SetupError, one line) unless --migrations-dir is a folder the Supabase CLI
    would find migrations in. Otherwise every migration the database records would fail as
    "has no file": a wrong path read as missing files."""
    path = Path(folder)
    if not path.is_dir():
        raise SetupError(f"--migrations-dir {folder}: no such folder; point it at the app's supabase/migrations")
    try:
        if migration_files(path):
            return
        entries = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir() if not p.name.startswith("."))
    except OSError as exc:
        raise SetupError(f"--migrations-dir {folder} cannot be read ({exc.strerror}); "
                         f"give this user read access to it, or point it at a readable copy") from None
    expected = "holds no migration (<version>_<name>.sql files)"
    # The two likely slips: the supabase/ folder (migrations are in its migrations/) or the
    # app's root (in its supabase/migrations/).
    for meant in (path / "migrations", path / "supabase" / "migrations"):
        if meant.is_dir() and migration_files(meant):
            raise SetupError(f"--migrations-dir {folder} {expected}; did you mean {meant}?")
    if not entries:
        raise SetupError(f"--migrations-dir {folder} is empty: it {expected}; point it at the app's supabase/migrations")
    shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
    raise SetupError(f"--migrations-dir {folder} {expected}, only {shown}; point it at the app's supabase/migrations")


def split_statements(sql: str) -> list[str]:
    """Splits a file the way the Supabase CLI records it: at top-level `;`, each statement
    trimmed of surrounding whitespace and its trailing `;`. PostgreSQL's own scanner (via
    pglast) decides what is top level: quotes, dollar quotes and comments are respected."""
    return [s.strip().rstrip(";").strip() for s in split(sql, with_parser=False) if s.strip()]


def normalized(sql: str) -> str:
    """One normalisation for both sides of a comparison: PostgreSQL's own tokens, without
    comments, whitespace or `;`, keywords and identifiers lower-cased, literals untouched."""
    tokens = []
    for token in scan(sql):
        if token.name in ("SQL_COMMENT", "C_COMMENT", "ASCII_59"):
            continue
        text = sql[token.start:token.end + 1]
        tokens.append(text if token.name in ("SCONST", "USCONST", "BCONST", "XCONST") else text.lower())
    return " ".join(tokens)


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
