"""Supabase migrations: the files in Git and the rows in supabase_migrations.schema_migrations."""

import re
from dataclasses import dataclass
from pathlib import Path

from pglast import split

# Files are supabase/migrations/<version>_<name>.sql; the version is the digits before the first _.
_FILE_NAME = re.compile(r"^(\d+)_(.*)\.sql$")


@dataclass(frozen=True)
class MigrationFile:
    version: str
    name: str
    path: Path

    def statements(self) -> list[str]:
        return split_statements(self.path.read_text())


def migration_files(folder: Path) -> list[MigrationFile]:
    """The migration files of a folder, oldest first (other files are ignored, as the CLI does)."""
    found = []
    for path in sorted(Path(folder).glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match:
            found.append(MigrationFile(match.group(1), match.group(2), path))
    return sorted(found, key=lambda m: m.version)


def split_statements(sql: str) -> list[str]:
    """Splits a file the way the Supabase CLI records it: at top-level `;`, each statement
    trimmed of surrounding whitespace and its trailing `;`. PostgreSQL's own scanner (via
    pglast) decides what is top level: quotes, dollar quotes and comments are respected."""
    return [s.strip().rstrip(";").strip() for s in split(sql, with_parser=False) if s.strip()]
