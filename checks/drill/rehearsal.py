"""The drill: a real restore of a simulated production, rehearsed end to end.

    production -> base backup -> workload (canaries) -> incident -> restore -> integrity -> (the suite)

`production` is an embedded cluster of its own holding the reference Ordak (a base backup of
the cached reference cluster of its scale, its clock moved to now), with WAL archiving on.
The workload writes canary orders at known commit times; at the restore point it pauses
(no transaction straddles it) and production is copied as it is then, with the server's own
CREATE DATABASE: that copy, not derived from the backup or WAL under test, is
"production as of the restore point" for --compare-to. The incident then damages production,
and the restore builds a new cluster from the base backup and the archive (pitr) or from a
pg_dump taken at the restore point (dump). Integrity: pg_amcheck reads every page of the
restored copy's tables and indexes (checks.amcheck). The suite then runs against the restored
cluster. A cold export given with --dump-file is restored and checked the same way, without the
phases before the restore: there is no production to rehearse.

Each phase prints one line when it starts and when it ends. A phase that fails stops the
drill with one line naming the phase and why; every throwaway cluster and folder is removed
on success (close()), failure and Ctrl-C, and a drill killed outright is cleaned up by the next.
"""

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import psycopg

from checks.connect.environments import Environment
from checks.connect.target import Target
from checks.contract import contract
from checks.drill import pitr
from checks.drill.workload import INCIDENTS, QUIET, Workload, cause_incident, parse_incident
from checks.errors import SetupError
from checks.reference.cluster import REFERENCE_DIR, ReferenceCluster, move_clock_to_now
from checks.reference.embedded import EmbeddedServer, data_root
from checks.rules import amcheck, cold_exports, recovery
from checks.rules.recovery import Canary

PRODUCTION_DB = "ordak_run_production"  # ordak_run_*: dropped by the cluster's next start if left over
AS_OF_DB = "ordak_run_production_as_of"
RESTORED_DB = PRODUCTION_DB  # a physical restore keeps the database's name
OFFSET = re.compile(r"^([+-])(\d+(?:\.\d+)?)s$")
MODES = ("pitr", "dump")
SHARED_CLUSTER_WAIT = 120  # seconds; then a private copy of the reference cluster is built


@dataclass
class Plan:
    """What to rehearse: from the environment's [<env>.rehearsal] table and the options."""
    mode: str = "pitr"
    scale: int = 10_000
    workload_seconds: float = 6.0
    workload_rate: float | None = None  # orders per second; None: as fast as production takes them
    after_incident_seconds: float = 1.0
    restore_point: str = "-2s"  # relative to the incident (-2s, +1s) or an ISO-8601 time
    recovery_target: str | None = None  # what the restore actually aims at (default: the restore point)
    incident: str = "mass-delete"
    # The restored copy's HTTP cron jobs would call Shopify at once: a person pauses them first.
    # False rehearses forgetting it (the suite must then name them).
    pause_http_cron: bool = True
    dump_file: str | None = None  # a cold export to restore and verify instead of a rehearsed production

    def validate(self, stores: list[str]) -> tuple[str, str]:
        if self.mode not in MODES:
            raise SetupError(f"--drill-mode={self.mode}: expected one of {', '.join(MODES)}")
        if self.dump_file is not None:
            if self.mode != "dump":
                raise SetupError(f"--dump-file restores a cold export (pg_dump): use it with --drill-mode=dump, "
                                 f"not {self.mode}")
            cold_exports.require_archive(Path(self.dump_file), "--dump-file", full=True)
        for name in ("restore_point", "recovery_target"):
            value = getattr(self, name)
            if value is not None and not OFFSET.match(value):
                _absolute(value, name)
        if self.workload_seconds <= 0:
            raise SetupError("--workload-seconds must be a positive number of seconds")
        if self.workload_rate is not None and self.workload_rate <= 0:
            raise SetupError("rehearsal.workload_rate must be a positive number of orders per second")
        return parse_incident(self.incident, stores)


def plan_from(rehearsal, scale: int | None, options: dict) -> Plan:
    """The environment's [<env>.rehearsal] table, then the command line's options (those given).
    --dump-file makes it a dump drill unless --drill-mode says otherwise."""
    given = {**dict(rehearsal or {}), **{k: v for k, v in options.items() if v is not None}}
    if options.get("dump_file") is not None and options.get("mode") is None:
        given["mode"] = "dump"
    return Plan(scale=scale or Plan.scale, **given)


def _absolute(text: str, name: str) -> datetime:
    option = "--" + name.replace("_", "-")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SetupError(f"{option}={text}: expected seconds relative to the incident (-2s, +1s) or an ISO-8601 "
                         f"time with a zone (2026-11-20T14:30:00Z)") from None
    if moment.tzinfo is None:
        raise SetupError(f"{option}={text} has no time zone; add one, e.g. {text}Z for UTC")
    return moment


def _resolve_time(text: str, incident: float, name: str) -> float:
    match = OFFSET.match(text)
    if match:
        sign, amount = match.groups()
        return incident + (float(amount) if sign == "+" else -float(amount))
    return _absolute(text, name).timestamp()


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)


@dataclass
class Result:
    """What the suite and the drill's own checks need, as plain data (it travels to xdist workers)."""
    mode: str
    target_url: str
    compare_url: str | None  # production as of the restore point (None: a given cold export)
    restore_point: datetime
    recovery_target: datetime
    incident: dict | None  # None: a given cold export, restored without a rehearsal
    timeline: list = field(default_factory=list)
    canaries: list = field(default_factory=list)
    source: dict = field(default_factory=dict)  # what the restore read, before and after: changed files
    phases: dict = field(default_factory=dict)  # phase -> seconds
    restore_errors: list = field(default_factory=list)  # statements pg_restore skipped (dump mode)
    http_cron_paused: list | None = None  # HTTP cron jobs paused on the restored copy (None: not done)
    amcheck: dict | None = None  # pg_amcheck's result on the restored copy (checks.amcheck.pg_amcheck)
    production_url: str | None = None  # production as it is now, after the incident: the replay list's side
    dump_file: str | None = None  # the cold export restored (--dump-file)

    def record(self) -> dict:
        def plain(value):
            return value.isoformat() if isinstance(value, datetime) else value
        return {"mode": self.mode, "restore_point": plain(self.restore_point),
                "recovery_target": plain(self.recovery_target),
                "incident": {k: plain(v) for k, v in self.incident.items()} if self.incident is not None else None,
                "canaries": [c.record() for c in self.canaries], "source": self.source, "phases": self.phases,
                "restore_errors": self.restore_errors, "http_cron_paused": self.http_cron_paused,
                "amcheck": self.amcheck, "production_url": self.production_url, "dump_file": self.dump_file}

    @staticmethod
    def canaries_of(record: dict) -> list[Canary]:
        return [Canary.from_record(c) for c in record["canaries"]]


class Drill:
    def __init__(self, plan: Plan, progress=print):
        self.plan = plan
        self.stores = contract()["stores"]
        self.incident_kind, self.incident_store = plan.validate(self.stores)
        self.say = progress
        _remove_orphans()
        self.home = data_root() / f"drill-run-{os.getpid()}"
        self.archive, self.backup = self.home / "archive", self.home / "backup"
        self.server: EmbeddedServer | None = None  # production
        self.restored: EmbeddedServer | None = None
        self.timeline: list[dict] = []
        self.phases: dict[str, float] = {}
        self.canaries: list[Canary] = []
        self.source: dict = {}
        self.restore_errors: list[str] = []
        self.http_cron_paused: list[str] | None = None
        self.amcheck: dict | None = None
        self.closed = False

    # -- the whole drill --------------------------------------------------------------
    def run(self) -> Result:
        try:
            if self.plan.dump_file is not None:
                self.phase("restore", self.restore_given_dump)
            else:
                self.phase("production", self.production)
                if self.plan.mode == "pitr":
                    self.phase("base backup", self.base_backup)
                self.phase("workload", self.workload)
                self.phase("incident", self.incident)
                self.phase("restore", self.restore)
            self.phase("integrity", self.integrity)
        except BaseException:
            self.close()
            raise
        rehearsed = self.plan.dump_file is None
        return Result(
            self.plan.mode, self.restored_url, self.server.url(AS_OF_DB) if rehearsed else None,
            _utc(self.restore_at), _utc(self.target_at),
            {"kind": self.incident_kind, "store": self.incident_store, "what": INCIDENTS[self.incident_kind][0],
             "at": self.incident_at} if rehearsed else None,
            self.timeline, self.canaries, self.source, self.phases, self.restore_errors, self.http_cron_paused,
            amcheck=self.amcheck, production_url=self.production_url if rehearsed else None,
            dump_file=self.plan.dump_file)

    @property
    def steps(self) -> list[str]:
        if self.plan.dump_file is not None:
            return ["restore", "integrity", "suite"]
        return ["production", *(["base backup"] if self.plan.mode == "pitr" else []), "workload", "incident",
                "restore", "integrity", "suite"]

    def phase(self, name: str, work) -> None:
        number = f"[{self.steps.index(name) + 1}/{len(self.steps)}]"
        self.say(f"drill {number} {name} ...")
        started = time.perf_counter()
        try:
            summary = work()
        except SetupError as exc:
            raise SetupError(f"the drill stopped at phase {number} '{name}': {exc}") from None
        except psycopg.Error as exc:
            raise SetupError(f"the drill stopped at phase {number} '{name}': "
                             f"{str(exc).strip().splitlines()[0]}") from None
        self.phases[name] = round(time.perf_counter() - started, 2)
        self.say(f"drill {number} {name}: {summary} ({self.phases[name]:.1f} s)")

    def event(self, name: str, at: datetime, **details) -> None:
        self.timeline.append({"event": name, "at": at, **details})

    # -- phases -------------------------------------------------------------------------
    def production(self) -> str:
        self.home.mkdir(parents=True)
        pitr.own(self.home)
        self.archive.mkdir()
        pitr.own(self.archive)
        # Production is a cluster of its own, holding Ordak only (what it holds, the base backup
        # and the restore carry too): a copy of the cached reference cluster of this scale.
        (self.home / "production").mkdir()
        pitr.own(self.home / "production")
        self.server = EmbeddedServer(self.home / "production" / "pg", REFERENCE_DIR / "extensions")
        # Another drill holds it for a base backup's seconds only: worth waiting for.
        cluster = ReferenceCluster.open(cluster_purpose(self.plan.scale), wait=SHARED_CLUSTER_WAIT)
        try:
            template = cluster.template(self.plan.scale, progress=lambda line: self.say(f"  {line.strip()}"))
            pitr.base_backup(cluster.server, self.server.datadir)
        finally:
            cluster.close()
        pitr.drop_source_leftovers(self.server.datadir)
        self.server.start()
        with psycopg.connect(self.server.admin_url(), autocommit=True) as conn:
            conn.execute(f'alter database "{template.name}" is_template false allow_connections true')
            conn.execute(f'alter database "{template.name}" rename to "{PRODUCTION_DB}"')
        # Its clock moved to now before archiving starts: WAL that no restore needs is never archived.
        move_clock_to_now(self.server.admin_url(PRODUCTION_DB), template.seeded_at)
        self.server.stop()
        self.server.settings.update(pitr.archiving(self.archive) if self.plan.mode == "pitr"
                                    else {"track_commit_timestamp": "on"})
        self.server.start()
        archiving = "WAL archived to " + str(self.archive) if self.plan.mode == "pitr" else "no WAL archive (dump mode)"
        return (f"reference Ordak at {self.plan.scale:,} orders/store in {PRODUCTION_DB}, a cluster of its own "
                f"({pitr.size_mb(self.server.datadir / 'base'):,} MB); {archiving}")

    @property
    def production_url(self) -> str:
        return self.server.url(PRODUCTION_DB)

    def base_backup(self) -> str:
        self.backup_started = time.time()
        pitr.base_backup(self.server, self.backup)
        pitr.verify_backup(self.server, self.backup)
        self.event("base_backup", datetime.now(timezone.utc))
        return f"pg_basebackup {pitr.size_mb(self.backup):,} MB, verified by pg_verifybackup"

    def workload(self) -> str:
        self.workload_started = time.time()
        self.incident_plan = self.workload_started + self.plan.workload_seconds
        self.restore_at = _resolve_time(self.plan.restore_point, self.incident_plan, "restore_point")
        self.target_at = _resolve_time(self.plan.recovery_target or self.plan.restore_point, self.incident_plan,
                                       "recovery_target")
        self.event("workload_started", _utc(self.workload_started))
        self.traffic = Workload(self.production_url, self.stores, rate=self.plan.workload_rate)
        self.as_of_taken = False
        self.snapshot_holder = None
        self.dump_process = None
        if self.restore_at <= self.workload_started:  # nothing has been written since: production is as it was
            self._at_restore_point()
        pause = self.restore_at if self.restore_at < self.incident_plan and not self.as_of_taken else None
        self.traffic.run_until(self.incident_plan, quiet_at=pause, on_quiet=self._at_restore_point)
        return (f"{len(self.traffic.canaries)} canary orders ingested, {self.traffic.moves} stage RPC calls; "
                f"restore point {_utc(self.restore_at):%H:%M:%S.%f}"[:-3] + " UTC")

    def _at_restore_point(self) -> None:
        """In the workload's quiet gap just after the restore point: one commit that marks where
        recovery must stop, then the as-of copy (and in dump mode, the dump's snapshot)."""
        self.event("restore_point", _utc(self.restore_at))
        if self.plan.mode == "pitr" and time.time() > self.restore_at:
            working = [s for s in self.stores if s not in self.traffic.failures]
            if working:
                self.traffic.ingest(working[0])  # a commit after the restore point, before the copy's WAL
        self._copy_as_of()
        if self.plan.mode == "dump":
            self._start_dump()

    def _copy_as_of(self) -> None:
        self.traffic.close()
        with psycopg.connect(self.server.admin_url(), autocommit=True) as conn:
            conn.execute(f'create database "{AS_OF_DB}" template "{PRODUCTION_DB}" strategy file_copy')
        self.traffic.conn = self.traffic.target.connect()
        self.as_of_taken = True

    def _start_dump(self) -> None:
        """pg_dump of production as of the restore point: a snapshot exported now (nothing is in
        flight), imported by pg_dump, which then runs beside the traffic."""
        self.snapshot_holder = psycopg.connect(self.production_url)
        self.snapshot_holder.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        snapshot = self.snapshot_holder.execute("select pg_export_snapshot()").fetchone()[0]
        self.dump_file = self.home / "production.dump"
        server = self.server
        command = [str(pitr.binary("pg_dump")), "-h", str(server.datadir), "-U", "postgres", "-d", PRODUCTION_DB,
                   "-Fc", "-f", str(self.dump_file), f"--snapshot={snapshot}",
                   *(f"--schema={s}" for s in pitr.DUMPED_SCHEMAS)]
        self.dump_process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                             stdin=subprocess.DEVNULL, user=server.run_as)

    def incident(self) -> str:
        self.traffic.close()
        self.incident_at = cause_incident(self.production_url, self.incident_kind, self.incident_store)
        self.event("incident", self.incident_at, kind=self.incident_kind, store=self.incident_store)
        # Production lives on after the incident: traffic goes on where it still can (and past a
        # restore point or recovery target set after the incident, so that recovery finds its stop).
        self.traffic.conn = self.traffic.target.connect()
        self.traffic.run_until(max(time.time() + self.plan.after_incident_seconds, self.restore_at + 2 * QUIET,
                                   self.target_at + 2 * QUIET),
                               quiet_at=None if self.as_of_taken else self.restore_at, on_quiet=self._at_restore_point)
        self.traffic.close()
        self.canaries = self.traffic.canaries
        if self.plan.mode == "pitr":
            with psycopg.connect(self.server.admin_url(), autocommit=True) as conn:
                segment = pitr.switch_wal(conn)
            pitr.wait_archived(self.archive, segment)
            detail = f"WAL archived up to {segment}"
        else:
            detail = self._finish_dump()
        stopped = "; traffic stopped for " + ", ".join(f"{s} ({why})" for s, why in self.traffic.failures.items()) \
            if self.traffic.failures else ""
        return (f"{INCIDENTS[self.incident_kind][0]} ({self.incident_store}) at {self.incident_at:%H:%M:%S.%f}"[:-3]
                + f" UTC; {detail}{stopped}")

    def _finish_dump(self) -> str:
        if self.dump_process is None:
            raise SetupError("dump mode needs a restore point during the workload (the cold export is taken then)")
        _, stderr = self.dump_process.communicate()
        self.snapshot_holder.close()
        if self.dump_process.returncode != 0:
            raise SetupError(f"pg_dump failed: {(stderr.strip().splitlines() or ['?'])[-1]}")
        return f"pg_dump taken at the restore point: {self.dump_file.stat().st_size / 2**20:,.0f} MB"

    def restore(self) -> str:
        """The restore reads its sources, read-only to it, and is checked to have left them as they were."""
        started = datetime.now(timezone.utc)
        self.event("restore_started", started, mode=self.plan.mode)
        sources = {"base backup": self.backup, "WAL archive": self.archive} if self.plan.mode == "pitr" \
            else {"dump": self.dump_file}
        before = {name: pitr.manifest(path) for name, path in sources.items()}
        production_before = self._production_digest()
        for path in sources.values():
            pitr.read_only(path)
        try:
            detail = self._restore_pitr() if self.plan.mode == "pitr" else self._restore_dump()
        finally:
            for path in sources.values():
                pitr.writable(path)
        for name, path in sources.items():  # production goes on archiving: new WAL segments are its own
            changed = pitr.changes(before[name], pitr.manifest(path), new_allowed=name == "WAL archive")
            self.source[name] = {"files": len(before[name]), "changed": changed}
        production_after = self._production_digest()
        self.source["production"] = {"files": len(production_before), "changed": sorted(
            k for k in production_before if production_before[k] != production_after.get(k))}
        with psycopg.connect(self.restored_url) as conn:  # the first connection it accepts
            conn.execute("select 1")
        self.event("restored_accepting_connections", datetime.now(timezone.utc))
        untouched = all(not s["changed"] for s in self.source.values())
        return f"{detail}; sources {'unchanged' if untouched else 'CHANGED'}; {self._pause_http_cron()}"

    def _pause_http_cron(self) -> str:
        """Before anything else on the restored copy, as a person must: its pg_cron jobs that call
        out over HTTP (to Shopify, through an Edge Function) are paused until cut-over."""
        if not self.plan.pause_http_cron:
            return "its HTTP cron jobs left running (rehearsal: pause_http_cron = false)"
        target = Target(Environment(name="restored (drill)", restore_target=True), self.restored_url)
        try:
            self.http_cron_paused = recovery.pause_http_cron_jobs(target)
        finally:
            target.close()
        if self.plan.dump_file is None:  # a given export has no timeline: no incident to measure from
            self.event("http_cron_jobs_paused", datetime.now(timezone.utc),
                       jobs=", ".join(self.http_cron_paused) or "none")
        return f"HTTP cron jobs paused first: {', '.join(self.http_cron_paused) or 'none'}"

    def _restore_pitr(self) -> str:
        if self.target_at < self.backup_started:  # PostgreSQL would silently stop at the backup's own end
            raise SetupError(f"the recovery target {_utc(self.target_at):%H:%M:%S} UTC is before the base backup "
                             f"(started {_utc(self.backup_started):%H:%M:%S} UTC): restore to a later point, or "
                             f"from an older backup")
        self.restored = pitr.recover(self.backup, self.archive, self.home / "restored", _utc(self.target_at),
                                     REFERENCE_DIR / "extensions")
        self.restored_url = self.restored.url(RESTORED_DB)
        segments = sum(1 for p in self.archive.iterdir() if pitr.SEGMENT.match(p.name))
        return (f"point-in-time recovery to {_utc(self.target_at):%H:%M:%S.%f}"[:-3]
                + f" UTC from the base backup and {segments} archived WAL segments")

    def _production_digest(self) -> dict:
        """Rows ever inserted, updated and deleted, per table of production: any write by anyone
        moves them (vacuum does not). The traffic's sessions have ended, so their counts are in."""
        with psycopg.connect(self.server.admin_url(PRODUCTION_DB)) as conn:
            rows = conn.execute("select schemaname || '.' || relname, n_tup_ins, n_tup_upd, n_tup_del "
                                "from pg_stat_user_tables").fetchall()
        return {name: counts for name, *counts in rows}

    def _restore_dump(self) -> str:
        self.restored = EmbeddedServer(self.home / "restored", REFERENCE_DIR / "extensions")
        self.restored.start()
        admin = self.restored.admin_url
        with psycopg.connect(admin("postgres"), autocommit=True) as conn:
            conn.execute((REFERENCE_DIR / "bootstrap" / "roles.sql").read_text())
            conn.execute(f'create database "{RESTORED_DB}" owner postgres')
        with psycopg.connect(admin(RESTORED_DB), autocommit=True) as conn:
            conn.execute((REFERENCE_DIR / "bootstrap" / "supabase.sql").read_text())
        self.restore_errors = skipped = pitr.restore_dump(self.restored, RESTORED_DB, self.dump_file)
        self.restored_url = self.restored.url(RESTORED_DB)
        return (f"pg_restore into a fresh Supabase-shaped cluster; {len(skipped)} statement(s) skipped (objects "
                f"the fresh project already has, platform schemas postgres does not own)")

    def restore_given_dump(self) -> str:
        """--dump-file: a cold export, restored as a dump drill restores its own (a fresh
        Supabase-shaped cluster, pg_restore), from a copy: the given file is only read, and
        checked unchanged afterwards. Its restore point is the time the export was taken."""
        given = Path(self.plan.dump_file)
        self.home.mkdir(parents=True)
        pitr.own(self.home)
        before = pitr.manifest(given)
        toc = cold_exports.require_archive(given, "--dump-file")
        self.restore_at = self.target_at = toc["created_at"].timestamp()
        self.dump_file = self.home / "given.dump"
        shutil.copyfile(given, self.dump_file)
        self.dump_file.chmod(0o644)  # read by pg_restore as the server's user
        detail = self._restore_dump()
        self.source["dump"] = {"files": 1, "changed": pitr.changes(before, pitr.manifest(given))}
        return (f"{given.name}, taken {toc['created_at']:%Y-%m-%d %H:%M:%S} UTC: {detail}; "
                f"{self._pause_http_cron()}")

    def integrity(self) -> str:
        """pg_amcheck on every page of the restored copy's tables and indexes, before the suite
        reads it (checks.amcheck); test_pages_verify names what it found."""
        self.amcheck = result = amcheck.pg_amcheck(self.restored, RESTORED_DB,
                                                   progress=lambda line: self.say(f"  {line}"))
        found = len(result["corruptions"])
        if self.timeline:
            self.event("pages_verified", datetime.now(timezone.utc), corruptions=found)
        verdict = "every page reads back sound" if not found else f"{found} CORRUPTION(S): see test_pages_verify"
        return (f"{result['tool']}: {result['relations']} relations, {result['pages']:,} pages "
                f"(heapallindexed: {', '.join(result['heapallindexed']) or 'none'}): {verdict}")

    # -- cleanup ------------------------------------------------------------------------
    def close(self) -> None:
        """Stops and removes every throwaway cluster and folder of this drill (idempotent)."""
        if self.closed:
            return
        self.closed = True
        if getattr(self, "dump_process", None) is not None and self.dump_process.poll() is None:
            self.dump_process.kill()
        if getattr(self, "traffic", None) is not None:
            self.traffic.close()
        if self.restored is not None:
            self.restored.destroy()
        if self.server is not None:
            self.server.destroy()
        if self.home.exists():
            pitr.writable(self.home)
            shutil.rmtree(self.home, ignore_errors=True)


def cluster_purpose(scale: int) -> str:
    """The cached reference cluster production is copied from: the template of one scale only,
    since whatever else it held would be copied along."""
    return f"drill-{scale}"


def _remove_orphans() -> None:
    """Folders of drills whose process died (kill -9): their restored server is stopped, all removed."""
    root = data_root()
    for home in root.glob("drill-run-*") if root.exists() else []:
        pid = int(home.name.rsplit("-", 1)[1])
        try:
            os.kill(pid, 0)
            continue
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        for server in (home / "restored", home / "production" / "pg"):
            EmbeddedServer(server).stop_leftover()
        pitr.writable(home)
        shutil.rmtree(home, ignore_errors=True)

