"""Supabase migration files, read as the Supabase CLI reads them: which files of a folder are
migrations (`<version>_<name>.sql`), their statements (split at top-level `;`), and one
normalisation to compare a file with what the database recorded. Below the rules and the
reference: both read the same files (the app's in Git, the reference's own)."""

import re
from dataclasses import dataclass
from pathlib import Path

from pglast import split
from pglast.parser import ParseError, scan

from checks.errors import SetupError

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
