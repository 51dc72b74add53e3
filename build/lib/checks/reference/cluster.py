"""The embedded reference Ordak: a Supabase-shaped cluster, Ordak's migrations, seed data.

Building takes seconds; so the result is kept as a template database, keyed by a hash of
everything that shapes it, and every run gets a fresh clone (tens of milliseconds).

    python -m checks.reference [--scale N]   # start it and print a URL for psql
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import psycopg
from filelock import FileLock, Timeout

from checks.errors import SetupError
from checks.migration_files import migration_files
from checks.reference.embedded import EmbeddedServer, data_root

REFERENCE_DIR = Path(__file__).resolve().parent  # its SQL and extensions are package data, beside this module
MIGRATIONS_DIR = REFERENCE_DIR / "supabase" / "migrations"
DEFAULT_SCALE = 300  # orders per store


def _reference_files() -> list[Path]:
    return [*sorted((REFERENCE_DIR / "extensions").iterdir()),
            REFERENCE_DIR / "bootstrap" / "roles.sql", REFERENCE_DIR / "bootstrap" / "supabase.sql",
            *(m.path for m in migration_files(MIGRATIONS_DIR)),
            REFERENCE_DIR / "seed.sql", REFERENCE_DIR / "shift_time.sql", Path(__file__)]


def fingerprint(scale: int) -> str:
    """Changes whenever a file that shapes the reference changes, or the scale does."""
    digest = hashlib.sha256(f"scale={scale}".encode())
    for path in _reference_files():
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


@dataclass(frozen=True)
class Template:
    name: str
    seeded_at: datetime  # the "now" of the seed data


class ReferenceCluster:
    """An embedded server holding reference templates and the clones made from them.

    open() owns a purpose's folder for the life of the process (a file lock) and runs the
    server; a second concurrent run gets a private throwaway cluster instead of waiting.
    attach() uses a cluster another process owns (an xdist worker uses its controller's)."""

    def __init__(self, home: Path, lock: FileLock | None = None, private: bool = False, settings: dict | None = None):
        self.home = home
        self.server = EmbeddedServer(home / "pg", REFERENCE_DIR / "extensions", settings)
        self._lock = lock
        self.private = private
        self._manifest_path = home / "templates.json"

    @classmethod
    def open(cls, purpose: str = "suite", settings: dict | None = None, wait: float = 0) -> "ReferenceCluster":
        """wait: seconds to wait for a busy shared cluster before taking a private one (which
        costs an initdb and a build): worth it where the owner needs it only briefly."""
        home = data_root() / purpose
        home.mkdir(parents=True, exist_ok=True)
        _remove_orphans(purpose)
        lock = FileLock(str(home / "lock"))
        try:
            lock.acquire(timeout=wait)
            cluster = cls(home, lock, settings=settings)
        except Timeout:
            cluster = cls(data_root() / f"{purpose}-private-{os.getpid()}", private=True, settings=settings)
        cluster.start()
        return cluster

    @classmethod
    def attach(cls, home: str | Path) -> "ReferenceCluster":
        return cls(Path(home))

    def start(self) -> None:
        self.server.start()
        self._run_file(self.server.admin_url("postgres"), REFERENCE_DIR / "bootstrap" / "roles.sql")
        # Clones of a crashed earlier run: nobody else uses this folder, so they are garbage.
        for name in self._databases("ordak_run_%") + self._databases("ordak_clone_%"):
            self.drop(name)

    def close(self) -> None:
        """Stops the server this process owns (an attached cluster is left alone)."""
        if self.private:
            self.server.destroy()
            shutil.rmtree(self.home, ignore_errors=True)
        elif self._lock:
            self.server.stop()
            self._lock.release()

    # -- templates ---------------------------------------------------------------
    def template(self, scale: int = DEFAULT_SCALE, progress=None) -> Template:
        """The reference at this scale, built now unless an identical build is cached. A build
        at 1M orders per store takes minutes: `progress` (a print-like callable) hears each step."""
        name = f"ordak_tpl_{scale}_{fingerprint(scale)}"
        manifest = self._manifest()
        if name in manifest and name in self._databases(name):
            return Template(name, datetime.fromisoformat(manifest[name]["seeded_at"]))
        for stale in self._databases(f"ordak_tpl_{scale}_%"):
            self.drop_template(Template(stale, datetime.now(timezone.utc)))
        manifest = self._manifest()
        try:
            seeded_at = self._build(name, scale, progress or (lambda line: None))
        except psycopg.Error as exc:
            raise SetupError(f"building the reference Ordak failed: {str(exc).splitlines()[0]}") from exc
        manifest[name] = {"seeded_at": seeded_at.isoformat(), "scale": scale}
        self._manifest_path.write_text(json.dumps(manifest, indent=1))
        return Template(name, seeded_at)

    def _build(self, name: str, scale: int, say) -> datetime:
        building = f"{name}_build"
        started = time.perf_counter()
        say(f"building the reference Ordak at {scale:,} orders/store (kept for later runs) ...")
        self.drop(building)
        self._admin(f'create database "{building}" owner postgres')
        self._run_file(self.server.admin_url(building), REFERENCE_DIR / "bootstrap" / "supabase.sql")
        with psycopg.connect(self.server.url(building), autocommit=True) as conn:
            for migration in migration_files(MIGRATIONS_DIR):
                apply_migration(conn, migration)
            with conn.transaction():
                anchor = conn.execute("select now()").fetchone()[0]
                conn.execute("select set_config('ordak.seed_orders', %s, true),"
                             " set_config('ordak.seed_anchor', %s, true)", (str(scale), anchor.isoformat()))
                for title, sql in seed_sections():
                    conn.execute(sql)
                    say(f"  seed: {title} ({time.perf_counter() - started:.1f} s)")
            conn.execute("vacuum analyze")
        self._admin(f'alter database "{building}" rename to "{name}"')
        self._admin(f'alter database "{name}" is_template true allow_connections false')
        say(f"  reference built and analysed ({time.perf_counter() - started:.1f} s)")
        return anchor

    def drop_template(self, template: Template) -> None:
        self._admin(f'alter database "{template.name}" is_template false')
        self.drop(template.name)
        manifest = self._manifest()
        if manifest.pop(template.name, None):
            self._manifest_path.write_text(json.dumps(manifest, indent=1))

    # -- clones ------------------------------------------------------------------
    def clone(self, template: Template, name: str, *, shift_to_now: bool = True, file_copy: bool = False) -> str:
        """A fresh copy of the template; returns its URL (as `postgres`).

        With shift_to_now the data's clock is moved from the seed time to now, so the clone
        looks live (its newest order minutes old). file_copy copies the files after a
        checkpoint instead of through WAL: faster for a big template (the drill's production)."""
        strategy = " strategy file_copy" if file_copy else ""
        self._admin(f'create database "{name}" template "{template.name}" owner postgres{strategy}')
        if shift_to_now:
            move_clock_to_now(self.server.admin_url(name), template.seeded_at)
        return self.server.url(name)

    def drop(self, name: str) -> None:
        self._admin(f'drop database if exists "{name}" with (force)')

    # -- internals ---------------------------------------------------------------
    def _admin(self, sql: str) -> None:
        with psycopg.connect(self.server.admin_url(), autocommit=True) as conn:
            conn.execute(sql)

    def _databases(self, like: str) -> list[str]:
        with psycopg.connect(self.server.admin_url(), autocommit=True) as conn:
            rows = conn.execute("select datname from pg_database where datname like %s", (like,))
            return [name for (name,) in rows]

    def _manifest(self) -> dict:
        try:
            return json.loads(self._manifest_path.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    @staticmethod
    def _run_file(url: str, path: Path) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(path.read_text())


def _remove_orphans(purpose: str) -> None:
    """Private clusters whose process died (crash, kill -9) are stopped and deleted."""
    for home in data_root().glob(f"{purpose}-private-*"):
        pid = int(home.name.rsplit("-", 1)[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            EmbeddedServer(home / "pg").destroy()
            shutil.rmtree(home, ignore_errors=True)
        except PermissionError:
            pass  # alive, someone else's


def seed_sections() -> list[tuple[str, str]]:
    """checks/reference/seed.sql cut at its section rules (`-- ----- title`): run one after another in
    one transaction, they are the seed, with a progress line each."""
    sections, title, lines = [], None, []  # what precedes the first rule goes with it
    for line in (REFERENCE_DIR / "seed.sql").read_text().splitlines(keepends=True):
        rule = re.match(r"-- -{10,} (.+)", line)
        if rule:
            if title is not None:
                sections.append((title, "".join(lines)))
                lines = []
            title = rule.group(1).strip()
        lines.append(line)
    return [*sections, (title, "".join(lines))]


def move_clock_to_now(admin_url: str, seeded_at: datetime) -> None:
    """Moves a copy's data from the seed time to now (checks/reference/shift_time.sql), as the superuser."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("select set_config('ordak.shift', (now() - %s::timestamptz)::text, false)", (seeded_at,))
        conn.execute((REFERENCE_DIR / "shift_time.sql").read_text())


def apply_migration(conn: psycopg.Connection, migration) -> None:
    """Applies one migration file and records it the way the Supabase CLI does."""
    with conn.transaction():
        conn.execute(migration.path.read_text())
        conn.execute("insert into supabase_migrations.schema_migrations (version, name, statements)"
                     " values (%s, %s, %s)", (migration.version, migration.name, migration.statements()))


@contextmanager
def running_reference(purpose: str, scale: int = DEFAULT_SCALE, clone_name: str = "ordak"):
    """Starts a cluster, clones the reference into `clone_name`, yields (cluster, url)."""
    cluster = ReferenceCluster.open(purpose)
    try:
        template = cluster.template(scale, progress=lambda line: print(line, flush=True))
        cluster.drop(clone_name)
        yield cluster, cluster.clone(template, clone_name)
    finally:
        cluster.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m checks.reference", description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=int, default=DEFAULT_SCALE, help="orders per store (default %(default)s)")
    args = parser.parse_args(argv)
    try:
        with running_reference("explore", args.scale, "ordak") as (cluster, url):
            print(f"Reference Ordak is up ({args.scale} orders per store). Connect with:\n"
                  f"  psql '{url}'\n"
                  f"or run the suite against it:\n"
                  f"  ORDAK_STAGING_DB_URL='{url}' pytest --env=staging\n"
                  "Ctrl-C stops it.", flush=True)
            signal.signal(signal.SIGTERM, signal.default_int_handler)
            while True:
                signal.pause()
    except KeyboardInterrupt:
        return 0
    except SetupError as exc:
        print(f"error: {exc}")
        return 2

