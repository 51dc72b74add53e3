"""A real PgBouncer (Debian's `pgbouncer` package) in transaction mode, in front of the
embedded cluster: the pooler door, as Supabase's port 6543 behaves (no session state
between transactions, no startup options passed on)."""

import os
import pwd
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from checks.reference.embedded import SYSTEM_USER, data_root


def binary() -> str | None:
    return shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/sbin")


def require() -> str:
    found = binary()
    if not found:
        pytest.skip("PgBouncer is not installed (Debian: apt-get install pgbouncer): "
                    "the transaction-pooler door is not proven on this machine")
    return found


@contextmanager
def pgbouncer(socket_dir: Path, *, ignore_options: bool = False) -> Iterator[int]:
    """Runs PgBouncer on 127.0.0.1 (a free port, yielded) in front of the server listening in
    socket_dir; any database, user postgres. PgBouncer refuses startup options unless
    ignore_options, where it drops them silently (the pooler that gives no sign)."""
    program = require()
    _remove_leftovers()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    home = data_root() / f"pgbouncer-{os.getpid()}-{'ignore' if ignore_options else 'refuse'}-{port}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    (home / "users.txt").write_text('"postgres" ""\n')
    (home / "pgbouncer.ini").write_text(f"""\
[databases]
* = host={socket_dir} port=5432

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {home}/users.txt
pool_mode = transaction
default_pool_size = 4
max_client_conn = 200
logfile = {home}/log
log_connections = 0
log_disconnections = 0
ignore_startup_parameters = {"options" if ignore_options else ""}
""")
    # PgBouncer refuses to run as root: as root it runs as the embedded server's system user.
    user = SYSTEM_USER if os.geteuid() == 0 else None
    if user:
        entry = pwd.getpwnam(user)
        for path in (home, *home.iterdir()):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    # It logs to its log file and to stderr: an unread pipe would fill up and freeze it.
    process = subprocess.Popen([program, str(home / "pgbouncer.ini")], user=user, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(port, process, home)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(home, ignore_errors=True)


def _remove_leftovers() -> None:
    """Folders of runs that were killed before they could clean up."""
    for home in data_root().glob("pgbouncer-*-*"):
        try:
            os.kill(int(home.name.split("-")[1]), 0)
        except ProcessLookupError:
            shutil.rmtree(home, ignore_errors=True)
        except (ValueError, PermissionError):
            pass


def _wait_for(port: int, process: subprocess.Popen, home: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = (home / "log").read_text() if (home / "log").exists() else ""
            raise RuntimeError(f"pgbouncer exited: {log[-500:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("pgbouncer did not start listening within 10 s")
