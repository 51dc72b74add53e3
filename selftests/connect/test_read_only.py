"""Read-only environments are read-only at the connection level, not by convention."""

import textwrap

import psycopg
import pytest

from checks.connect.environments import Environment, load_environments
from checks.connect.target import Target
from checks.errors import SetupError
from selftests.harness import ROOT, run_suite

PRODUCTION = Environment("production", read_only=True)


@pytest.fixture
def clone_url(ordak_clone):
    return ordak_clone().url


def test_production_connection_refuses_writes(clone_url):
    target = Target(PRODUCTION, clone_url)
    with target.connect() as conn:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("create table public.should_not_exist (id int)")
        conn.rollback()
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("update public.orders_bannos set notes = 'x'")


def test_read_only_holds_through_the_pooler_door(clone_url, monkeypatch):
    """Through Supavisor (port 6543) session settings don't stick: no startup options are
    sent, and each transaction is READ ONLY and sets the timeouts itself. (A real PgBouncer
    is tried in test_connection_guards.py.)"""
    monkeypatch.setattr(Target, "through_pooler", property(lambda self: True))
    target = Target(PRODUCTION, clone_url)
    with target.connect() as conn:
        assert conn.execute("show default_transaction_read_only").fetchone()["default_transaction_read_only"] == "off"
        assert conn.execute("select setting from pg_settings where name = 'statement_timeout'").fetchone() == \
            {"setting": "120000"}
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("delete from public.work_queue")
    assert target.door.startswith("pooler")


def test_sandbox_is_refused_on_a_read_only_env(clone_url):
    with pytest.raises(PermissionError, match="read-only"):
        with Target(PRODUCTION, clone_url).sandbox():
            pass


def test_sandbox_always_rolls_back(clone_url):
    target = Target(Environment("staging"), clone_url)
    with pytest.raises(RuntimeError):
        with target.sandbox() as conn:
            conn.execute("delete from public.orders_bannos")
            raise RuntimeError("boom")
    with target.sandbox() as conn:
        conn.execute("delete from public.orders_flourlane")
    assert target.scalar("select count(*) from public.orders_bannos") > 0
    assert target.scalar("select count(*) from public.orders_flourlane") > 0


def test_no_setting_makes_production_writable(tmp_path):
    path = tmp_path / "envs.toml"
    path.write_text("[production]\n[production.secrets]\ndb_url = 'X'\n")
    assert load_environments(path)["production"].read_only is True
    path.write_text("[production]\nread_only = false\n[production.secrets]\ndb_url = 'X'\n")
    with pytest.raises(SetupError, match="always read-only"):
        load_environments(path)


WRITING_TEST = textwrap.dedent("""
    import pytest

    @pytest.mark.writes
    def test_writes(target):
        with target.sandbox() as conn:
            conn.execute("update public.orders_bannos set notes = 'sandboxed'")

    def test_reads(target):
        assert target.scalar("select count(*) > 0 from public.orders_bannos")
""")


@pytest.mark.parametrize("env_name, writes_outcome", [("production", "skipped"), ("staging", "passed")])
def test_tests_that_write_are_skipped_on_read_only_envs(tmp_path, clone_url, env_name, writes_outcome):
    (tmp_path / "test_w.py").write_text(WRITING_TEST)
    run = run_suite("-p", "checks.plugin", f"--environments={ROOT / 'environments.toml'}", f"--env={env_name}",
                    "test_w.py", env={f"ORDAK_{env_name.upper()}_DB_URL": clone_url}, workdir=tmp_path / "run",
                    root=tmp_path)
    assert run.exit_code == 0, run.output
    assert run.outcome("test_writes").status == writes_outcome, run.output
    assert run.outcome("test_reads").status == "passed", run.output
    if writes_outcome == "skipped":
        assert "skipped because environment 'production' is read-only" in run.outcome("test_writes").message
