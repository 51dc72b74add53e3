"""Every door keeps every guard: a direct connection, one whose URL carries its own options=
(hostile ones here), and a real PgBouncer in transaction mode, both the kind that refuses
startup options and the kind that drops them without a word. Through each, the suite's
connection is tried the way it could go wrong on production: a write, a query that outlives
the statement timeout, a wait for a lock, a lock held by a connection left idle."""

import textwrap
import time
from urllib.parse import quote

import psycopg
import pytest

from checks.connect.environments import Environment
from checks.connect.guards import stopped_by_guard
from checks.connect.target import Target
from checks.plugin import RUN
from selftests.harness import run_suite
from selftests.pgbouncer import pgbouncer, require

# Short timeouts, so that each attempt takes half a second.
GUARDED = Environment("production", read_only=True, statement_timeout=0.5, lock_timeout=0.2,
                      idle_in_transaction_timeout=0.5)
# What a URL could carry to switch every guard off: the suite's own settings must win.
HOSTILE = ("-c default_transaction_read_only=off -c statement_timeout=0 -c lock_timeout=0 "
           "-c idle_in_transaction_session_timeout=0")
DOORS = ["direct", "direct, URL with options=", "PgBouncer refusing options", "PgBouncer dropping options"]


@pytest.fixture(scope="module")
def bouncers(pytestconfig):
    """Two real PgBouncers in transaction mode in front of the run's embedded cluster."""
    require()
    cluster = pytestconfig.stash[RUN].cluster
    if cluster is None:
        pytest.fail("the self-tests need the embedded reference: run them with --env=local", pytrace=False)
    with pgbouncer(cluster.server.datadir) as refusing, \
            pgbouncer(cluster.server.datadir, ignore_options=True) as dropping:
        yield {"PgBouncer refusing options": refusing, "PgBouncer dropping options": dropping}


@pytest.fixture
def clone(ordak_clone):
    return ordak_clone()


def door_url(door: str, clone, bouncers) -> str:
    if door == "direct":
        return clone.url
    if door == "direct, URL with options=":
        return f"{clone.url}&options={quote(HOSTILE)}"
    return f"postgresql://postgres@127.0.0.1:{bouncers[door]}/{clone.name}"


@pytest.fixture(params=DOORS)
def door(request, clone):
    """(name, url) of one door to the clone; the PgBouncers only start for their doors."""
    bouncers = request.getfixturevalue("bouncers") if request.param.startswith("PgBouncer") else {}
    return request.param, door_url(request.param, clone, bouncers)


def test_the_door_is_told_by_what_the_server_answers(door):
    name, url = door
    target = Target(GUARDED, url)
    target.connect().close()
    assert target.door.startswith("pooler" if name.startswith("PgBouncer") else "direct"), target.door


def test_writes_are_refused(door, clone):
    target = Target(GUARDED, door[1])
    with target.connect() as conn:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("update public.orders_bannos set notes = 'written'")
        conn.rollback()
        conn.read_only = None  # a plain BEGIN, psycopg's READ ONLY set aside: the server's own guard holds
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            with conn.transaction():
                conn.execute("delete from public.work_queue")
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        target.query("insert into public.settings select * from public.settings limit 1")
    with psycopg.connect(clone.url) as admin:
        assert admin.execute("select count(*) from public.orders_bannos where notes = 'written'").fetchone() == (0,)


def test_a_query_outliving_the_statement_timeout_is_cancelled(door):
    target = Target(GUARDED, door[1])
    started = time.monotonic()
    with pytest.raises(psycopg.errors.QueryCanceled) as cancelled:
        target.query("select pg_sleep(30)")
    assert time.monotonic() - started < 10
    with target.rolled_back() as conn, pytest.raises(psycopg.errors.QueryCanceled):
        conn.execute("select pg_sleep(30)")
    line = stopped_by_guard(cancelled.value, GUARDED)
    assert "statement_timeout (0.5 s) on environment 'production'" in line
    assert "raise statement_timeout under [production] in environments.toml" in line


def test_waiting_for_a_lock_gives_up(door, clone):
    target = Target(GUARDED, door[1])
    with psycopg.connect(clone.url) as holder:
        holder.execute("lock table public.orders_bannos in access exclusive mode")
        started = time.monotonic()
        with pytest.raises(psycopg.errors.LockNotAvailable) as waited:
            target.query("select count(*) from public.orders_bannos")
        assert time.monotonic() - started < 10
    assert "raise lock_timeout under [production]" in stopped_by_guard(waited.value, GUARDED)


def test_a_lock_held_by_an_idle_connection_is_released(door, clone):
    """A run stuck between two queries of a transaction (a hung test) must not keep a lock
    that blocks production's migrations: the idle-in-transaction timeout ends it."""
    target = Target(GUARDED, door[1])
    conn = target.connect()
    conn.execute("select count(*) from public.orders_bannos")  # holds ACCESS SHARE until the end
    with psycopg.connect(clone.url) as migration:
        migration.execute("set local lock_timeout = '20s'")
        started = time.monotonic()
        migration.execute("lock table public.orders_bannos in access exclusive mode")  # waits for the release
        assert time.monotonic() - started < 15
    with pytest.raises(psycopg.Error):
        conn.execute("select 1")  # the server ended the idle session
    conn.close()


PROBE = textwrap.dedent("""
    def test_slow_check(target):
        target.scalar("select pg_sleep(30)")
""")


def through(door: str, job):
    """A job for RunsAhead: job(clone, url), url the clone's door (a PgBouncer of its own, for
    a PgBouncer door)."""
    def run(clone):
        if not door.startswith("PgBouncer"):
            return job(clone, door_url(door, clone, {}))
        with pgbouncer(clone.cluster.server.datadir, ignore_options=door.endswith("dropping options")) as port:
            return job(clone, door_url(door, clone, {door: port}))
    return run


def slow_check(clone, url):
    """PROBE as a production run with a statement timeout of 1 s."""
    folder = clone.workdir
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test_slow.py").write_text(PROBE)
    envs = folder / "envs.toml"
    envs.write_text("[production]\nstatement_timeout = 1\n[production.secrets]\ndb_url = 'ORDAK_PRODUCTION_DB_URL'\n")
    return run_suite("--env=production", f"--environments={envs}", "-p", "checks.plugin", "--rootdir", str(folder),
                     str(folder / "test_slow.py"), env={"ORDAK_PRODUCTION_DB_URL": url}, workdir=folder / "run")


def weekly_production_run(clone, url):
    return clone.run_suite(env_name="production", extra_env={"ORDAK_PRODUCTION_DB_URL": url})


TIMEOUT_DOORS = ["direct", "PgBouncer refusing options"]
WEEKLY_DOORS = ["PgBouncer refusing options", "direct, URL with options="]


def runs_ahead() -> dict:
    """This module's whole-suite runs, started when the session starts (selftests/conftest.py)."""
    return {**{f"test_a_check_stopped_by_the_timeout_fails_in_one_line[{door}]": through(door, slow_check)
               for door in TIMEOUT_DOORS},
            **{f"test_a_production_run_through_the_door_is_green_and_read_only[{door}]": through(
                door, weekly_production_run) for door in WEEKLY_DOORS}}


@pytest.mark.parametrize("name", TIMEOUT_DOORS)
def test_a_check_stopped_by_the_timeout_fails_in_one_line(ahead_run, name):
    run = ahead_run
    assert run.exit_code == 1, run.output
    message = run.outcome("test_slow_check").message
    assert message.startswith("a query ran longer than statement_timeout (1 s) on environment 'production'"), message
    assert "raise statement_timeout under [production] in environments.toml" in message
    assert "Traceback" not in run.output and "QueryCanceled" not in run.output, run.output


@pytest.mark.parametrize("name", WEEKLY_DOORS)
def test_a_production_run_through_the_door_is_green_and_read_only(ahead_run, name):
    """The whole suite as a weekly production run, through the pooler or with a hostile
    options= in its URL: every read-only check passes, tests that write are skipped."""
    run = ahead_run
    assert run.exit_code == 0, run.output
    assert not run.failed() and run.with_status("passed"), run.output
    door = "pooler: read-only and timeouts set in every transaction" if name.startswith("PgBouncer") \
        else "direct: read-only and timeouts set for the session"
    assert door in run.report.read_text()
