"""Backups and restores with PostgreSQL's own tools, the two ways the runbook restores:

- physical: WAL archiving, `pg_basebackup` checked by `pg_verifybackup`, then point-in-time
  recovery into a new cluster (base backup + archived WAL + recovery_target_time);
- logical (the cold export): `pg_dump` of the database, `pg_restore` into a fresh
  Supabase-shaped cluster.

The restore only reads its sources: the base backup is copied before the server touches it,
the archive is read by `cp` in restore_command, and both are made read-only to the server's
user while it recovers. manifest() lets the drill prove they did not change.
"""

import os
import pwd
import re
import subprocess
import time
from datetime import datetime
from pathlib import Path

import psycopg

from checks.errors import SetupError
from checks.reference.embedded import SUPERUSER, EmbeddedServer, binary

SEGMENT = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$")


def archiving(archive: Path) -> dict:
    """Server settings that archive every finished WAL segment into `archive`, and keep each
    transaction's commit time (the canaries' clock: the very time recovery_target_time uses)."""
    return {"wal_level": "replica", "archive_mode": "on", "track_commit_timestamp": "on",
            # copied under a temporary name, then renamed: a segment appears whole or not at all
            "archive_command": f"'test ! -f {archive}/%f && cp %p {archive}/%f.tmp && mv {archive}/%f.tmp {archive}/%f'"}


def own(path: Path) -> None:
    """Gives a folder we made to the server's system user (root runs the server as another user)."""
    if os.geteuid() == 0:
        from checks.reference.embedded import SYSTEM_USER
        entry = pwd.getpwnam(SYSTEM_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


# -- physical ---------------------------------------------------------------------------
def base_backup(server: EmbeddedServer, dest: Path) -> None:
    """A plain-format base backup with its WAL and a manifest. No fsync: throwaway clusters."""
    done = _tool(server, "pg_basebackup", "-h", str(server.datadir), "-U", SUPERUSER, "-D", str(dest),
                 "-Fp", "-X", "stream", "-c", "fast", "--no-sync")
    if done.returncode != 0:
        raise SetupError(f"pg_basebackup failed: {_last_line(done)}")


def verify_backup(server: EmbeddedServer, dest: Path) -> None:
    """pg_verifybackup against the backup's manifest: a damaged backup is named, file by file."""
    done = _tool(server, "pg_verifybackup", "-q", str(dest))
    if done.returncode != 0:
        errors = [line.removeprefix("pg_verifybackup: error: ") for line in done.stderr.splitlines()
                  if "error:" in line]
        raise SetupError(f"pg_verifybackup rejects the base backup {dest.name}: "
                         + "; ".join(errors[:3] or [_last_line(done)]))


def switch_wal(conn) -> str:
    """Closes the current WAL segment so that it is archived; returns its file name."""
    return conn.execute("select pg_walfile_name(pg_switch_wal())").fetchone()[0]


def wait_archived(archive: Path, segment: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not (archive / segment).exists():
        if time.monotonic() > deadline:
            raise SetupError(f"WAL segment {segment} was not archived into {archive} within {timeout:.0f} s: "
                             f"check archive_command in the production cluster's log")
        time.sleep(0.02)


def recover(backup: Path, archive: Path, dest: Path, target: datetime, extension_dir: Path) -> EmbeddedServer:
    """Point-in-time recovery into a new cluster at `dest`: a copy of the base backup, WAL
    from the archive up to `target` (commits at or before it are kept), then promotion.

    hot_standby is off, so the server accepts connections only once recovery has finished
    (pg_ctl returns as soon as recovery starts: we wait for the first accepted connection)."""
    server = EmbeddedServer(dest, extension_dir, {
        "restore_command": f"'cp --no-preserve=mode {archive}/%f %p'",  # the archive is read-only
        "recovery_target_time": f"'{target.isoformat()}'",
        "recovery_target_inclusive": "on",
        "recovery_target_action": "promote",
        "archive_mode": "off",  # the copy carries production's archive_command: never write there
        "hot_standby": "off",
        "track_commit_timestamp": "on",
    })
    copy_data_dir(server, backup, dest)
    (dest / "recovery.signal").touch()
    try:
        server.start(wait_seconds=3600)
        wait_promoted(server)
    except SetupError:
        time.sleep(0.5)  # let a dying server finish its log
        raise SetupError(recovery_failure(dest, archive, target)) from None
    return server


def wait_promoted(server: EmbeddedServer) -> None:
    """Until the server accepts a connection out of recovery; a server that dies instead fails."""
    while True:
        try:
            with psycopg.connect(server.admin_url(), autocommit=True) as conn:
                if not conn.execute("select pg_is_in_recovery()").fetchone()[0]:
                    return
        except psycopg.OperationalError as exc:
            if not (server.datadir / "postmaster.pid").exists():
                raise SetupError(str(exc)) from None
        time.sleep(0.05)


def copy_data_dir(server: EmbeddedServer, source: Path, dest: Path) -> None:
    """cp -a as the server's user; the copy is writable even where the source is read-only."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    own(dest.parent)
    for command in (["cp", "-a", str(source), str(dest)], ["chmod", "-R", "u+w", str(dest)]):
        done = subprocess.run(command, capture_output=True, text=True, user=server.run_as)
        if done.returncode != 0:
            raise SetupError(f"copying {source} to {dest} failed: {_last_line(done)}")
    drop_source_leftovers(dest)


def drop_source_leftovers(dest: Path) -> None:
    """The source's server log, socket lock file (the socket lives in the data dir) and backup
    manifest came along with a copy of its data dir; the copy's server would trip on them."""
    for leftover in [dest / "log", dest / "backup_manifest", *dest.glob(".s.PGSQL.*")]:
        leftover.unlink(missing_ok=True)


def recovery_failure(datadir: Path, archive: Path, target: datetime) -> str:
    """One line on why recovery stopped: a gap in the archive first, then the server's word."""
    gap = archive_gap(archive)
    log = (datadir / "log").read_text(errors="replace") if (datadir / "log").exists() else ""
    fatal = [line.split("FATAL:", 1)[1].strip() for line in log.splitlines() if "FATAL:" in line]
    said = f" (server: {fatal[-1]})" if fatal else ""
    if gap:
        return f"WAL segment {gap} is missing from the archive {archive}: recovery cannot reach {target.isoformat()}{said}"
    if fatal:
        return f"recovery to {target.isoformat()} failed: {fatal[-1]}"
    tail = " | ".join(log.strip().splitlines()[-2:])
    return f"recovery to {target.isoformat()} failed: {tail or 'the server did not start'}"


def archive_gap(archive: Path) -> str | None:
    """The first WAL segment missing between the oldest and newest archived ones, if any."""
    numbers: dict[str, set[int]] = {}
    for path in archive.iterdir():
        match = SEGMENT.match(path.name)
        if match:
            timeline, high, low = match.groups()
            numbers.setdefault(timeline, set()).add(int(high, 16) * 0x100 + int(low, 16))
    for timeline, present in sorted(numbers.items()):
        for number in range(min(present), max(present)):
            if number not in present:
                return f"{timeline}{number // 0x100:08X}{number % 0x100:08X}"
    return None


def read_only(path: Path) -> None:
    """Takes write permission off a finished backup or archive, for everyone but root."""
    subprocess.run(["chmod", "-R", "a-w", str(path)], check=True)


def writable(path: Path) -> None:
    subprocess.run(["chmod", "-R", "u+w", str(path)], check=True)


def manifest(path: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file under path: any write to a file changes its entry."""
    files = [path] if path.is_file() else sorted(path.rglob("*"))
    root = path.parent if path.is_file() else path
    return {str(f.relative_to(root)): (f.stat().st_size, f.stat().st_mtime_ns)
            for f in files if f.is_file() and f.suffix != ".tmp"}


def changes(before: dict, after: dict, new_allowed: bool = False) -> list[str]:
    """Files changed or removed between two manifests (and added, unless new files are allowed:
    production goes on archiving WAL while the restore runs)."""
    touched = [name for name, seen in before.items() if after.get(name) != seen]
    return sorted(touched + ([] if new_allowed else [name for name in after if name not in before]))


def size_mb(path: Path) -> int:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20)


# -- logical (the cold export) ----------------------------------------------------------
DUMPED_SCHEMAS = ["public", "auth", "storage"]  # the app's schema, its users and buckets


def dump(server: EmbeddedServer, dbname: str, dest: Path, snapshot: str | None = None) -> None:
    """pg_dump -Fc of the app's schemas, as a person with the database URL would take it."""
    args = ["-h", str(server.datadir), "-U", "postgres", "-d", dbname, "-Fc", "-f", str(dest),
            *(f"--schema={s}" for s in DUMPED_SCHEMAS)]
    if snapshot:
        args.append(f"--snapshot={snapshot}")
    done = _tool(server, "pg_dump", *args)
    if done.returncode != 0:
        raise SetupError(f"pg_dump failed: {_last_line(done)}")


def restore_dump(server: EmbeddedServer, dbname: str, dump_file: Path) -> list[str]:
    """pg_restore into a database of a fresh Supabase-shaped cluster, as `postgres` (the most a
    Supabase user is), without owners and grants (roles of the old project do not carry over).
    Objects the fresh project already has are errors pg_restore skips: they are returned."""
    done = _tool(server, "pg_restore", "-h", str(server.datadir), "-U", "postgres", "-d", dbname,
                 "--no-owner", "--no-acl", str(dump_file))
    errors = [line.split("error:", 1)[1].strip() for line in done.stderr.splitlines() if "error:" in line]
    if done.returncode != 0 and not errors:
        raise SetupError(f"pg_restore failed: {_last_line(done)}")
    return [e for e in errors if not e.startswith("errors ignored on restore")]


# -- internals --------------------------------------------------------------------------
def _tool(server: EmbeddedServer, program: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary(program)), *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, user=server.run_as)


def _last_line(done: subprocess.CompletedProcess) -> str:
    lines = (done.stderr.strip() or done.stdout.strip()).splitlines()
    return lines[-1] if lines else f"exit status {done.returncode}"
