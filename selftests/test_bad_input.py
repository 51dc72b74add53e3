"""Bad input gets one clear line: what is wrong and how to fix it, a non-zero exit, no
traceback, no secret, and the report is still written."""

import socket
import time

import pytest

from selftests.harness import run_suite

SECRET = "Tr0ub4dor-and-3-s3cret"


def assert_one_line_error(run, *expected: str) -> str:
    errors = [line for line in run.output.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, run.output
    for text in expected:
        assert text in errors[0], errors[0]
    assert run.exit_code == 4, run.output
    assert "Traceback" not in run.output, run.output
    assert SECRET not in run.output
    assert run.report is not None and run.report.exists(), "the HTML report must still be written"
    assert SECRET not in run.report.read_text()
    return errors[0]


def test_unknown_env_lists_the_known_ones(tmp_path):
    run = run_suite("--env=prod", env={}, workdir=tmp_path)
    assert_one_line_error(run, "unknown environment 'prod'", "known: local, staging, production, restore")


def test_missing_secret_names_the_variable(tmp_path):
    run = run_suite("--env=production", env={}, workdir=tmp_path)
    assert_one_line_error(run, "ORDAK_PRODUCTION_DB_URL")


@pytest.mark.parametrize("url", [f"not a url {SECRET}", f"postgresql://u:{SECRET}@[db.example.com/postgres",
                                 f"postgresql://u:{SECRET}@db.example.com:port/postgres"])
def test_unparsable_url(tmp_path, url):
    run = run_suite("--env=restore", env={"ORDAK_RESTORE_DB_URL": url}, workdir=tmp_path)
    assert_one_line_error(run, "ORDAK_RESTORE_DB_URL is not a valid PostgreSQL URL")


def test_unreachable_host_gives_up_within_the_connect_timeout(tmp_path):
    # A listener that accepts connections and never answers: the worst kind of unreachable.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        url = f"postgresql://postgres:{SECRET}@127.0.0.1:{port}/postgres?connect_timeout=2"
        started = time.monotonic()
        run = run_suite("--env=restore", env={"ORDAK_RESTORE_DB_URL": url}, workdir=tmp_path)
        elapsed = time.monotonic() - started
    assert_one_line_error(run, "cannot connect to 127.0.0.1", "no answer within 2 s")
    assert elapsed < 15, f"took {elapsed:.1f} s"


def test_wrong_password(tmp_path, reference):
    cluster, _ = reference
    admin = cluster.server.admin_url()
    import psycopg
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("drop role if exists ordak_password_probe")
        conn.execute("create role ordak_password_probe login password 'the-right-one'")
    url = f"postgresql://ordak_password_probe:{SECRET}@/postgres?host={cluster.server.datadir}"
    run = run_suite("--env=restore", env={"ORDAK_RESTORE_DB_URL": url}, workdir=tmp_path)
    assert_one_line_error(run, "wrong password for user 'ordak_password_probe'", "ORDAK_RESTORE_DB_URL")


def test_database_that_is_not_ordak_is_said_once(tmp_path, reference):
    cluster, _ = reference
    run = run_suite("--env=restore", env={"ORDAK_RESTORE_DB_URL": cluster.server.url("postgres")},
                    workdir=tmp_path)
    assert_one_line_error(run, "is not an Ordak database", "orders_bannos")
    assert set(run.outcomes) == {"ordak::setup"}, "no test should run, so nothing fails a hundred times"


def test_missing_database(tmp_path, reference):
    cluster, _ = reference
    run = run_suite("--env=restore", env={"ORDAK_RESTORE_DB_URL": cluster.server.url("ordak_nope")},
                    workdir=tmp_path)
    assert_one_line_error(run, "database 'ordak_nope' does not exist")


@pytest.mark.parametrize("content, expected", [
    ("[staging]\ndescription = 'x'\n[staging.secrets\ndb_url = 'X'\n", ":3: not valid TOML"),
    ("[staging]\ndescription = 'x'\nread_only = 'yes'\n[staging.secrets]\ndb_url = 'X'\n",
     ":3: [staging] read_only must be true or false"),
    ("[staging]\nconect_timeout = 3\n[staging.secrets]\ndb_url = 'X'\n", ":2: [staging] unknown setting 'conect_timeout'"),
    ("[staging]\n[staging.secrets]\ndb_url = 'X'\npassword = 'Y'\n", ":4: [staging] unknown secret 'password'"),
    ("[production]\nread_only = false\n[production.secrets]\ndb_url = 'X'\n",
     ":2: [production] production is always read-only"),
    ("[staging]\ndescription = 'no url'\n", ":1: [staging] needs secrets.db_url"),
])
def test_malformed_environments_file(tmp_path, content, expected):
    path = tmp_path / "envs.toml"
    path.write_text(content)
    run = run_suite("--env=staging", f"--environments={path}", env={}, workdir=tmp_path / "run")
    assert_one_line_error(run, f"envs.toml{expected}")
