"""What a run knows about its target: resolved once by the controller from the command line,
then handed to each xdist worker as plain strings (never printed)."""

import json
import os
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from checks.connect import options
from checks.connect.environments import Environment, load_dotenv_file, load_environments, read_only
from checks.connect.guards import stopped_by_guard
from checks.connect.target import Target, require_ordak
from checks.core import Clock
from checks.drill import restore_run
from checks.errors import SetupError
from checks.migration_files import require_migrations
from checks.rules import cold_exports
from checks.rules.platform import Platform


@dataclass
class Run:
    """What this pytest process knows about the target of the run."""
    env: Environment | None = None
    target: Target | None = None
    error: str | None = None
    facts: dict = field(default_factory=dict)
    compare: Target | None = None  # --compare-to, always read-only
    clock: Clock | None = None  # what "now" means for freshness, RPO and queue ages
    cluster: object | None = None  # the embedded ReferenceCluster (env local)
    template: object | None = None  # the reference Template the run's clone came from
    clone: str | None = None
    # A drill's timeline: [{"event": "incident", "at": aware datetime, ...}], in order. The
    # drill fills it; the report, the JSON summary and the postmortem draft show it.
    timeline: list = field(default_factory=list)
    platform: Platform | None = None  # the HTTP side of the environment (checks.platform)
    management: dict | None = None  # the Management API's answers, read once by the controller
    drill: object | None = None  # the rehearsed drill (checks.drill.rehearsal.Drill), cleaned up at the end
    drill_record: dict | None = None  # its canaries, incident, restore point... (checks.drill.rehearsal.Result.record)
    report_fallback: str | None = None  # why the reports went to a temp folder, if they did
    interrupted: str | None = None  # Ctrl-C before the checks: what the run was doing then
    previous: dict | None = None  # the last run of this environment in the history (its order counts)
    doing: str = "starting"  # what resolve() is doing now: a Ctrl-C's report names it

    def secrets(self) -> tuple[str, ...]:
        """Every secret this run knows, for redaction; the project ref names the project (it is in
        its host name too): shown, not a secret."""
        env = self.env
        known = [*(self.target.secrets() if self.target else env.secret_values() if env else ()),
                 *(self.compare.secrets() if self.compare else ())]
        shown = env.secret("project_ref") if env and env.has_secret("project_ref") else None
        return tuple(s for s in known if s and s != shown)

    def close(self, *, controller: bool) -> None:
        for target in (self.target, self.compare):
            if target is not None:
                target.close()
        if self.platform is not None:
            self.platform.close()
        if self.drill is not None:
            self.drill.close()
        if self.cluster is not None and controller:  # the controller made the clone
            self.cluster.drop(self.clone)
            self.cluster.close()


@dataclass(frozen=True)
class Options:
    """The command line's say on the target (names as in `pytest --help`, group "Ordak")."""
    env: str = "local"
    environments: Path = Path("environments.toml")
    migrations_dir: str | None = None
    restore_point: str | None = None
    compare_to: str | None = None
    persist_smoke: bool = False
    incident_at: str | None = None
    restore_started_at: str | None = None
    cold_exports: str | None = None  # the folder of cold exports (checks.cold_exports)
    drill: dict = field(default_factory=dict)  # --drill-mode, --incident, ... (checks.drill.rehearsal.plan_from)


def resolve(run: Run, root: Path, given: Options, progress) -> None:
    """Fills `run` for the controller: the environment, the target (an embedded clone, a URL, or
    a rehearsed drill's restored cluster), the reference time and --compare-to. Any problem is a
    SetupError (or a psycopg.Error met while starting) for one line and a non-zero exit."""
    load_dotenv_file(root / ".env")
    if given.migrations_dir:  # a folder the Supabase CLI would find migrations in, or one line
        require_migrations(given.migrations_dir)
    if given.cold_exports:  # a folder that can be read, or one line
        cold_exports.require_folder(given.cold_exports)
    environments = load_environments(given.environments)
    if given.env not in environments:
        raise SetupError(f"unknown environment '{given.env}'; known: {', '.join(environments)} "
                         f"(defined in {given.environments.name})")
    run.env = env = environments[given.env]
    restore_run.check_options(env, given.drill, {"--incident-at": given.incident_at,
                                                 "--restore-started-at": given.restore_started_at,
                                                 "--compare-to": given.compare_to})
    if env.rehearsal is not None:
        run.doing = "rehearsing the drill"
        restore_run.rehearse(run, given.drill, progress)
        run.facts = server_facts(run.target)
        return
    if env.embedded:
        from checks.reference.cluster import DEFAULT_SCALE, ReferenceCluster
        run.doing = "starting the embedded reference Ordak"
        run.cluster = ReferenceCluster.open("suite")
        run.template = run.cluster.template(env.scale or DEFAULT_SCALE, progress)
        run.clone = f"ordak_run_{os.getpid()}"
        url = run.cluster.clone(run.template, run.clone)
    else:
        url = env.secret("db_url")
    run.target = Target(env, url)
    run.doing = f"connecting to {run.target.location}"
    run.facts = server_facts(run.target)
    if run.facts["in_recovery"] and not env.read_only:  # a replica cannot be written: the write tests skip
        run.env = env = read_only(env)
        run.target.env = env
    # A real drill's timeline: the person's times, then the suite's first connection (just made).
    run.timeline = restore_run.timeline_of(given.incident_at, given.restore_started_at)
    require_ordak(run.target)
    if given.persist_smoke and env.read_only:
        raise SetupError(f"--persist-smoke writes a test order; environment '{env.name}' is read-only")
    now = run.target.scalar("select now()")
    run.clock = Clock(options.restore_point(given.restore_point, now), True) if given.restore_point else Clock(now, False)
    if given.compare_to:
        run.compare = Target(*options.compare_to(given.compare_to, env, run.target.location, environments))
        run.doing = f"connecting to {run.compare.location} (--compare-to={given.compare_to})"
        require_ordak(run.compare)
    run.doing = "starting the checks"


def server_facts(target: Target) -> dict:
    """What a person must know of the server before reading any verdict: its version, the role
    the suite connected as, the door it took, and whether it is a replica still in recovery
    (a hot standby answers every read, and would pass for a promoted copy)."""
    row = target.query("select current_setting('server_version') as version, current_user as role")[0]
    recovery = target.server_facts()
    return {"server_version": row["version"], "user": row["role"], "door": target.door,
            "in_recovery": recovery["in_recovery"], "recovery_note": recovery["note"]}


def one_line(exc: Exception, env: Environment | None) -> str:
    """A setup error as a person must read it; a database error met while starting, too."""
    if isinstance(exc, SetupError):
        return str(exc)
    stopped = stopped_by_guard(exc, env) if env else None
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return stopped or f"[{env.name if env else '?'}] the database refused a query needed to start: {first}"


def handoff(run: Run, environments: Path) -> dict[str, str]:
    """What an xdist worker needs of the resolved run (receive() is the other side)."""
    given = {"ordak_environments": str(environments), "ordak_env": run.env.name, "ordak_url": run.target.url,
             "ordak_clock": run.clock.at.isoformat(), "ordak_restore_point": run.clock.restore_point,
             "ordak_timeline": json.dumps(run.timeline, default=str)}
    if run.compare is not None:
        given["ordak_compare_env"], given["ordak_compare_url"] = run.compare.env.name, run.compare.url
    if run.cluster is not None:
        given["ordak_cluster"], given["ordak_template"] = str(run.cluster.home), run.template.name
        given["ordak_seeded_at"] = run.template.seeded_at.isoformat()
    if run.management is not None:
        given["ordak_management"] = json.dumps(run.management)
    if run.drill_record is not None:
        given["ordak_drill"] = json.dumps(run.drill_record)
    if run.previous is not None:
        given["ordak_previous"] = json.dumps(run.previous)
    if run.facts.get("in_recovery"):
        given["ordak_in_recovery"] = "1"  # a replica: read-only in every worker too
    return given


def receive(given: dict) -> Run:
    """A worker's run, from handoff()."""
    run = Run()
    environments = load_environments(Path(given["ordak_environments"]))
    run.env = environments[given["ordak_env"]]
    if given.get("ordak_in_recovery"):
        run.env, run.facts = read_only(run.env), {"in_recovery": True}
    run.target = Target(run.env, given["ordak_url"])
    run.clock = Clock(datetime.fromisoformat(given["ordak_clock"]), given["ordak_restore_point"])
    if "ordak_compare_env" in given:
        compared = environments.get(given["ordak_compare_env"]) or replace(run.env, name=given["ordak_compare_env"])
        run.compare = Target(read_only(compared), given["ordak_compare_url"])
    if "ordak_management" in given:
        run.management = json.loads(given["ordak_management"])
    run.timeline = restore_run.timeline_from_json(given["ordak_timeline"])
    run.drill_record = json.loads(given["ordak_drill"]) if "ordak_drill" in given else None
    run.previous = json.loads(given["ordak_previous"]) if "ordak_previous" in given else None
    if "ordak_cluster" in given:
        from checks.reference.cluster import ReferenceCluster, Template
        run.cluster = ReferenceCluster.attach(given["ordak_cluster"])
        run.template = Template(given["ordak_template"], datetime.fromisoformat(given["ordak_seeded_at"]))
    return run
