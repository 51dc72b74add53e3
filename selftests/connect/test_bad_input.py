"""Bad input gets one clear line: what is wrong and how to fix it, a non-zero exit, no
traceback, no secret, and the report is still written."""

import json
import os
import re
import shutil
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest

from checks.connect import guards
from checks.connect.environments import Environment
from checks.connect.target import Target
from checks.errors import SetupError
from selftests.harness import ROOT, run_suite
from selftests.pgbouncer import pgbouncer

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


def suite_run(*args: str, env: dict | None = None, files: dict | None = None):
    """A job for RunsAhead: run_suite(*args) in its clone's folder, files (name -> bytes)
    written there first. In args and env, {dir} stands for that folder and {url} for the
    clone's URL. Returns the run and the folder."""
    def job(clone):
        folder = clone.workdir
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in (files or {}).items():
            (folder / name).write_bytes(content)

        def fill(text: str) -> str:
            return text.replace("{dir}", str(folder)).replace("{url}", clone.url)
        return run_suite(*map(fill, args), env={k: fill(v) for k, v in (env or {}).items()},
                         workdir=folder / "run"), folder
    return job


def runs_ahead() -> dict:
    """This module's runs whose input is known up front, started when the session starts
    (selftests/conftest.py)."""
    restore = {"ORDAK_RESTORE_DB_URL": "{url}"}
    return {
        "test_unknown_env_lists_the_known_ones": suite_run("--env=prod"),
        "test_missing_secret_names_the_variable": suite_run("--env=production"),
        **{f"test_unparsable_url[{url}]": suite_run("--env=restore", env={"ORDAK_RESTORE_DB_URL": url})
           for url in UNPARSABLE},
        "test_unreachable_host_gives_up_within_the_connect_timeout": unreachable_host,
        **{f"test_malformed_environments_file[{expected}]": suite_run(
            "--env=staging", "--environments={dir}/envs.toml", files={"envs.toml": content.encode()})
           for content, expected in MALFORMED},
        "test_environments_file_that_is_not_utf8": suite_run(
            "--env=staging", "--environments={dir}/envs.toml",
            files={"envs.toml": "[staging]\n[staging.secrets]\n# caf\u00e9\ndb_url = 'X'\n".encode("latin-1")}),
        "test_environments_file_that_is_a_folder": suite_run("--env=staging", "--environments={dir}"),
        "test_dotenv_file_that_is_not_utf8": suite_run(  # .env is read from the project root: --rootdir here
            "--env=staging", "--rootdir={dir}", f"--environments={ROOT / 'environments.toml'}",
            files={".env": "ORDAK_STAGING_DB_URL=postgresql://caf\u00e9@/x\n".encode("latin-1")}),
        "test_data_dir_that_cannot_be_written": suite_run(
            "--env=local", env={"ORDAK_DATA_DIR": "{dir}/a-file/clusters"}, files={"a-file": b""}),
        **{f"test_options_that_cannot_be_right[{option}-{expected}]": suite_run("--env=restore", option, env=restore)
           for option, expected in BAD_OPTIONS},
        "test_compare_to_the_same_database_under_another_name": suite_run(
            "--env=restore", "--compare-to=production", env={**restore, "ORDAK_PRODUCTION_DB_URL": "{url}"}),
        "test_persist_smoke_on_a_read_only_env": suite_run(
            "--env=production", "--persist-smoke", env={"ORDAK_PRODUCTION_DB_URL": "{url}"}),
        **connection_targets_ahead(),
    }


def test_unknown_env_lists_the_known_ones(ahead_run):
    run, _ = ahead_run
    assert_one_line_error(run, "unknown environment 'prod'", "known: local, staging, production, restore")


def test_missing_secret_names_the_variable(ahead_run):
    run, _ = ahead_run
    assert_one_line_error(run, "ORDAK_PRODUCTION_DB_URL")


UNPARSABLE = [f"not a url {SECRET}", f"postgresql://u:{SECRET}@[db.example.com/postgres",
              f"postgresql://u:{SECRET}@db.example.com:port/postgres"]


@pytest.mark.parametrize("url", UNPARSABLE)
def test_unparsable_url(ahead_run, url):
    run, _ = ahead_run
    assert_one_line_error(run, "ORDAK_RESTORE_DB_URL is not a valid PostgreSQL URL")


def unreachable_host(clone) -> dict:
    """A job for RunsAhead: a run against a listener that accepts connections and never
    answers (the worst kind of unreachable), timed against a run stopped before connecting,
    so that a busy machine's slow start-up cancels out."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        url = f"postgresql://postgres:{SECRET}@127.0.0.1:{port}/postgres?connect_timeout=2"
        started = time.monotonic()
        run = run_suite("--env=restore", env={"ORDAK_RESTORE_DB_URL": url}, workdir=clone.workdir / "run")
        elapsed = time.monotonic() - started
    started = time.monotonic()
    run_suite("--env=nowhere", env={}, workdir=clone.workdir / "baseline")
    return {"run": run, "elapsed": elapsed, "baseline": time.monotonic() - started}


def test_unreachable_host_gives_up_within_the_connect_timeout(ahead_run):
    run, elapsed, baseline = ahead_run["run"], ahead_run["elapsed"], ahead_run["baseline"]
    assert_one_line_error(run, "cannot connect to 127.0.0.1", "no answer within 2 s")
    assert elapsed - baseline < 10, f"took {elapsed:.1f} s, {baseline:.1f} s of which is start-up"


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


def test_database_without_schema_public(tmp_path, ordak_clone):
    clone = ordak_clone("drop schema public cascade", as_admin=True)
    run = run_suite("--env=restore", env={"ORDAK_RESTORE_DB_URL": clone.url}, workdir=tmp_path)
    assert_one_line_error(run, "is not an Ordak database: it has no schema public")


MALFORMED = [
    ("[staging]\ndescription = 'x'\n[staging.secrets\ndb_url = 'X'\n", ":3: not valid TOML"),
    ("[staging]\ndescription = 'x'\nread_only = 'yes'\n[staging.secrets]\ndb_url = 'X'\n",
     ":3: [staging] read_only must be true or false"),
    ("[staging]\nconect_timeout = 3\n[staging.secrets]\ndb_url = 'X'\n", ":2: [staging] unknown setting 'conect_timeout'"),
    ("[staging]\n[staging.secrets]\ndb_url = 'X'\npassword = 'Y'\n", ":4: [staging] unknown secret 'password'"),
    ("[production]\nread_only = false\n[production.secrets]\ndb_url = 'X'\n",
     ":2: [production] production is always read-only"),
    ("[staging]\ndescription = 'no url'\n", ":1: [staging] needs secrets.db_url"),
    ("[staging]\ndescription = 'x'\nstatement_timeout = -5\n[staging.secrets]\ndb_url = 'X'\n",
     ":3: [staging] statement_timeout must be a positive number of seconds, not -5"),
    ("[staging]\nlock_timeout = 0\n[staging.secrets]\ndb_url = 'X'\n",
     ":2: [staging] lock_timeout must be a positive number of seconds, not 0"),
    ("[staging]\n\nstatement_timeout = 0.0004\n[staging.secrets]\ndb_url = 'X'\n",
     ":3: [staging] statement_timeout = 0.0004 rounds to 0 ms, which PostgreSQL reads as no timeout at all"),
    ("[staging]\nidle_in_transaction_timeout = nan\n[staging.secrets]\ndb_url = 'X'\n",
     ":2: [staging] idle_in_transaction_timeout must be a positive number of seconds, not nan"),
    ("[staging]\nconnect_timeout = -inf\n[staging.secrets]\ndb_url = 'X'\n",
     ":2: [staging] connect_timeout must be a positive number of seconds, not -inf"),
    ("[staging]\nlock_timeout = 3000000\n[staging.secrets]\ndb_url = 'X'\n",
     ":2: [staging] lock_timeout = 3000000 is more than PostgreSQL allows"),
    ("[local]\nembedded = true\nscale = 0\n", ":3: [local] scale must be at least 1"),
    ("[staging]\nconnect_timeout = 1e12\n[staging.secrets]\ndb_url = 'X'\n",
     ":2: [staging] connect_timeout = 1000000000000.0 is more than 120 s, the longest the suite waits"),
    ("[staging]\nhttp_timeout = 86400\n[staging.secrets]\ndb_url = 'X'\n",
     ":2: [staging] http_timeout = 86400 is more than 120 s"),
]


@pytest.mark.parametrize("content, expected", MALFORMED, ids=[expected for _, expected in MALFORMED])
def test_malformed_environments_file(ahead_run, content, expected):
    run, _ = ahead_run
    assert_one_line_error(run, f"envs.toml{expected}")


def test_environments_file_that_is_not_utf8(ahead_run):
    run, _ = ahead_run
    assert_one_line_error(run, "envs.toml:3: not UTF-8 (byte 0xe9); save the file as UTF-8")


def test_environments_file_that_is_a_folder(ahead_run):
    run, folder = ahead_run
    assert_one_line_error(run, f"{folder}: is a folder, not a file")


def test_dotenv_file_that_is_not_utf8(ahead_run):
    """.env is read from the project root (--rootdir here, so the real one is left alone)."""
    run, _ = ahead_run
    assert_one_line_error(run, ".env:1: not UTF-8 (byte 0xe9)")


def test_data_dir_that_cannot_be_written(ahead_run):
    run, folder = ahead_run
    assert_one_line_error(run, f"ORDAK_DATA_DIR {folder / 'a-file' / 'clusters'} cannot be written",
                          "point ORDAK_DATA_DIR at a writable folder")


@pytest.fixture
def ordak_url(ordak_clone):
    return ordak_clone().url


BAD_OPTIONS = [
    ("--restore-point=yesterday", "--restore-point 'yesterday' is not an ISO-8601 time; e.g. 20"),
    ("--restore-point=2020-11-20", "--restore-point '2020-11-20' is a date without a time of day"),
    ("--restore-point=2020-11-20T14:30", "--restore-point '2020-11-20T14:30' has no time zone"),
    ("--restore-point=2099-01-01T00:00:00Z", "--restore-point '2099-01-01T00:00:00Z' is in the future"),
    ("--compare-to=restore", "--compare-to=restore names the target itself"),
    ("--compare-to=nowhere", "--compare-to: unknown environment 'nowhere'"),
    ("--compare-to=local", "--compare-to needs an environment reached by URL"),
]


@pytest.mark.parametrize("option, expected", BAD_OPTIONS)
def test_options_that_cannot_be_right(ahead_run, option, expected):
    run, _ = ahead_run
    assert_one_line_error(run, expected)


def test_compare_to_the_same_database_under_another_name(ahead_run):
    run, _ = ahead_run
    assert_one_line_error(run, "--compare-to=production points at the same database as --env=restore")


@pytest.mark.parametrize("given", ["2020-11-20", "2020-11-20T14:30"])
def test_the_restore_point_hint_is_itself_accepted(tmp_path, ordak_url, given):
    refused = run_suite("--env=restore", f"--restore-point={given}", env={"ORDAK_RESTORE_DB_URL": ordak_url},
                        workdir=tmp_path / "refused")
    hint = re.search(r"e\.g\. (\S+)", assert_one_line_error(refused)).group(1)
    accepted = run_suite("--env=restore", f"--restore-point={hint}", "tests/test_schema.py", "-k", "test_enum",
                         env={"ORDAK_RESTORE_DB_URL": ordak_url}, workdir=tmp_path / "accepted")
    assert accepted.exit_code == 0, accepted.output
    assert accepted.with_status("passed"), accepted.output


def test_persist_smoke_on_a_read_only_env(ahead_run):
    run, _ = ahead_run
    assert_one_line_error(run, "--persist-smoke writes a test order; environment 'production' is read-only")


def test_a_pooler_refusing_the_urls_own_options(tmp_path, ordak_clone, reference):
    cluster, _ = reference
    clone = ordak_clone()
    with pgbouncer(cluster.server.datadir) as port:
        url = f"postgresql://postgres:{SECRET}@127.0.0.1:{port}/{clone.name}?options=-c%20search_path%3Dpublic"
        run = run_suite("--env=restore", env={"ORDAK_RESTORE_DB_URL": url}, workdir=tmp_path)
    assert_one_line_error(run, f"127.0.0.1:{port}/{clone.name} refuses startup options (a connection pooler): "
                               "remove options= from ORDAK_RESTORE_DB_URL")


def test_a_connection_that_loses_a_guard_stops_the_run(ordak_url, monkeypatch):
    """If the per-transaction guard ever went missing (a psycopg release changing how it
    begins transactions, say), connecting fails instead of running unguarded."""
    monkeypatch.setattr(Target, "through_pooler", property(lambda self: True))
    monkeypatch.setattr(guards, "per_transaction", lambda wanted: b"select 1")
    with pytest.raises(SetupError) as stopped:
        Target(Environment("production", read_only=True), ordak_url).connect()
    assert "the connection is not read-only (" in str(stopped.value)
    assert "transaction_read_only=off (wanted on)" in str(stopped.value)
    assert "statement_timeout=0 (wanted 120000)" in str(stopped.value)
    assert str(stopped.value).endswith("refusing to go on")


# Reading orders_bannos takes 10 ms a row (300 rows): a database far too slow for its timeout.
SLOW_READS = ("alter table public.orders_bannos rename to orders_bannos_rows",
              "create view public.orders_bannos as select o.* from public.orders_bannos_rows o "
              "where pg_sleep(0.01 + 0 * length(o.id)) is not null")  # o.id: once per row, not once


def test_a_check_stopped_by_the_statement_timeout_fails_in_one_line(tmp_path, ordak_clone):
    """A real check (counting a store's orders) on a database too slow for the timeout."""
    clone = ordak_clone(*SLOW_READS)
    envs = tmp_path / "envs.toml"
    envs.write_text("[restore]\nstatement_timeout = 1\n[restore.secrets]\ndb_url = 'ORDAK_RESTORE_DB_URL'\n")
    run = run_suite("--env=restore", f"--environments={envs}", "tests/test_store_data.py", "-k",
                    "test_store_not_empty and bannos", env={"ORDAK_RESTORE_DB_URL": clone.url}, workdir=tmp_path / "run")
    assert run.exit_code == 1, run.output
    assert run.outcome("test_store_not_empty[bannos]").message == (
        "a query ran longer than statement_timeout (1 s) on environment 'restore' and was stopped by the server; "
        "if the database is just slow or busy, raise statement_timeout under [restore] in environments.toml")
    assert "Traceback" not in run.output and "QueryCanceled" not in run.output, run.output
    assert run.report.exists()


def test_a_check_stopped_by_the_lock_timeout_fails_in_one_line(tmp_path, ordak_clone):
    """A real check meets a table locked by a migration: it gives up instead of queueing."""
    clone = ordak_clone()
    envs = tmp_path / "envs.toml"
    envs.write_text("[restore]\nlock_timeout = 0.5\n[restore.secrets]\ndb_url = 'ORDAK_RESTORE_DB_URL'\n")
    with psycopg.connect(clone.url) as migration:
        migration.execute("lock table public.orders_bannos in access exclusive mode")
        run = run_suite("--env=restore", f"--environments={envs}", "tests/test_store_data.py", "-k",
                        "test_store_not_empty and bannos", env={"ORDAK_RESTORE_DB_URL": clone.url},
                        workdir=tmp_path / "run")
    assert run.exit_code == 1, run.output
    assert run.outcome("test_store_not_empty[bannos]").message.startswith(
        "a query waited for a lock longer than lock_timeout (0.5 s) on environment 'restore'")
    assert "Traceback" not in run.output and "LockNotAvailable" not in run.output, run.output


# -- connection targets that are not what they seem (issue 19, point 6), waits that end (point 7)
class _WebPort(BaseHTTPRequestHandler):
    """A web port as Python's http.server is one: it waits for a whole request line, which libpq
    never sends, so libpq only times out. Every request it reads is recorded."""
    seen: list

    def _answer(self):
        self.seen.append((self.command, self.path, "apikey" in self.headers or "authorization" in self.headers))
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, *args):
        pass


def _eager_web_port(listener: socket.socket, seen: list) -> None:
    """A web server that answers whatever arrives at once with HTTP's 400 (as many proxies do):
    libpq then reads a stray 'H' where PostgreSQL's answer should be."""
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            first = conn.recv(4096).split(b"\r\n")[0]
            if first[:1].isalpha():  # an HTTP request line (libpq's packets start with a length)
                seen.append(tuple(first.decode().split(" ")[:2]))
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


def web_port(kind: str, sslmode: str):
    """A job for RunsAhead: a run whose URL names a port that speaks HTTP, not PostgreSQL."""
    def job(clone) -> dict:
        seen: list = []
        if kind == "http.server":
            server = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (_WebPort,), {"seen": seen}))
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
            port, stop = server.server_address[1], lambda: (server.shutdown(), server.server_close())
        else:
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen(8)
            threading.Thread(target=_eager_web_port, args=(listener, seen), daemon=True).start()
            port, stop = listener.getsockname()[1], listener.close
        try:
            url = f"postgresql://postgres:{SECRET}@127.0.0.1:{port}/postgres?connect_timeout=2{sslmode}"
            run = run_suite("--env=restore", env={"ORDAK_RESTORE_DB_URL": url}, workdir=clone.workdir / "run")
        finally:
            stop()
        return {"run": run, "port": port, "seen": seen}
    return job


WEB_PORTS = [("http.server", ""), ("http.server", "&sslmode=disable"), ("answers-at-once", "&sslmode=require")]
# What the person meant: a password holding '@', '#' and '/'. libpq ends the userinfo at the
# first '@', so it reads SECRET's first half as the password, "localhost" as the host, and the
# rest (the other half included) as the database; the person's host is 127.0.0.1, port 1.
HALVES = (SECRET[:10], SECRET[10:])
UNESCAPED = {
    "misread": (f"postgresql://postgres:{HALVES[0]}@localhost/{HALVES[1]}#1@127.0.0.1:1/postgres",
                ("cannot connect to 127.0.0.1:1/postgres: ORDAK_RESTORE_DB_URL was misread: its password holds a "
                 "character a URL must percent-encode", "@ -> %40, # -> %23, / -> %2F")),
    "unparsable": (f"postgresql://postgres:{HALVES[0]}/{HALVES[1]}@127.0.0.1:1/postgres",
                   ("ORDAK_RESTORE_DB_URL is not a valid PostgreSQL URL", "if the password in ORDAK_RESTORE_DB_URL "
                    "holds @ # / ? or %, write them percent-encoded (@ -> %40, # -> %23, / -> %2F")),
}
URL_CONNECT_TIMEOUTS = {"1000000000000": "connect_timeout=1e+12 in ORDAK_RESTORE_DB_URL: more than 120 s",
                        "0": "connect_timeout=0 in ORDAK_RESTORE_DB_URL: 0 or less means wait for ever"}


def silent_host_with(connect_timeout: str):
    """A job for RunsAhead: unreachable_host's silent listener, with the URL's own connect_timeout."""
    def job(clone) -> dict:
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen(8)
            url = (f"postgresql://postgres:{SECRET}@127.0.0.1:{silent.getsockname()[1]}/postgres"
                   f"?connect_timeout={connect_timeout}")
            started = time.monotonic()
            run = run_suite("--env=restore", env={"ORDAK_RESTORE_DB_URL": url}, workdir=clone.workdir / "run")
            return {"run": run, "elapsed": time.monotonic() - started}
    return job


def connection_targets_ahead() -> dict:
    return {
        **{f"test_a_port_that_speaks_http[{kind}-{sslmode}]": web_port(kind, sslmode) for kind, sslmode in WEB_PORTS},
        **{f"test_a_password_with_unescaped_characters[{case}]": suite_run(
            "--env=restore", env={"ORDAK_RESTORE_DB_URL": url}) for case, (url, _) in UNESCAPED.items()},
        **{f"test_the_urls_connect_timeout_is_bounded[{value}]": silent_host_with(value)
           for value in URL_CONNECT_TIMEOUTS},
    }


@pytest.mark.parametrize("kind, sslmode", WEB_PORTS)
def test_a_port_that_speaks_http(ahead_run, kind, sslmode):
    """libpq times out against http.server (whatever sslmode) and reads a stray 'H' from a
    server that answers at once; either way one GET / afterwards names the port for what it is."""
    run, port = ahead_run["run"], ahead_run["port"]
    status = 404 if kind == "http.server" else 400
    line = assert_one_line_error(run, f"cannot connect to 127.0.0.1:{port}/postgres: port {port} speaks HTTP "
                                      f"(GET / answered {status}), not PostgreSQL",
                                 "use the database's host and port, 5432 (direct) or 6543 (pooler)")
    assert "no answer within" not in line and "VPN" not in line
    probes = [seen[:2] for seen in ahead_run["seen"]]
    assert probes == [("GET", "/")], f"one read-only GET / and nothing else: {ahead_run['seen']}"
    assert not any(seen[2:] and seen[2] for seen in ahead_run["seen"]), "the probe carries no key"


@pytest.mark.parametrize("case", UNESCAPED)
def test_a_password_with_unescaped_characters(ahead_run, case):
    """Decided from the URL as written; neither half of the password is shown, though libpq
    read one as the password and the other as part of the database name."""
    run, _ = ahead_run
    assert_one_line_error(run, *UNESCAPED[case][1])
    for half in HALVES:
        assert half not in run.output and half not in run.report.read_text(), half


def test_a_wrong_password_that_may_need_encoding(tmp_path, reference):
    """libpq takes '#' as written (and decodes %XX): the password reaches the server, is wrong,
    and the line adds how to encode, in case that is why."""
    cluster, _ = reference
    with psycopg.connect(cluster.server.admin_url(), autocommit=True) as conn:
        conn.execute("drop role if exists ordak_password_encoded")
        conn.execute("create role ordak_password_encoded login password 'the-right-one'")
    url = f"postgresql://ordak_password_encoded:{SECRET}#1@/postgres?host={cluster.server.datadir}"
    run = run_suite("--env=restore", env={"ORDAK_RESTORE_DB_URL": url}, workdir=tmp_path)
    assert_one_line_error(run, "wrong password for user 'ordak_password_encoded': check the password in "
                               "ORDAK_RESTORE_DB_URL; if the password in ORDAK_RESTORE_DB_URL holds @ # / ? or %, "
                               "write them percent-encoded (@ -> %40, # -> %23")


def test_a_server_that_refuses_ssl(tmp_path, reference):
    """PgBouncer without TLS answers the SSL request with 'N': sslmode=require cannot be met."""
    cluster, _ = reference
    with pgbouncer(cluster.server.datadir) as port:
        url = f"postgresql://postgres:{SECRET}@127.0.0.1:{port}/postgres?sslmode=require"
        run = run_suite("--env=restore", env={"ORDAK_RESTORE_DB_URL": url}, workdir=tmp_path)
    assert_one_line_error(run, f"cannot connect to 127.0.0.1:{port}/postgres: the server does not offer SSL, but "
                               "the connection requires it (sslmode=require in ORDAK_RESTORE_DB_URL)",
                          "for a server of your own without SSL, use sslmode=prefer")


@pytest.mark.parametrize("value", URL_CONNECT_TIMEOUTS)
def test_the_urls_connect_timeout_is_bounded(ahead_run, value):
    """A silent host and a connect_timeout that would wait for ever (1e12 s, or libpq's 0):
    refused before connecting, in one line, with the report written."""
    run, elapsed = ahead_run["run"], ahead_run["elapsed"]
    assert_one_line_error(run, URL_CONNECT_TIMEOUTS[value], "give between 2 and 120 seconds, or remove it")
    assert elapsed < 60, f"took {elapsed:.1f} s"


def test_a_replica_in_recovery_is_named(tmp_path):
    """A real hot standby, streaming from a primary of its own: Target.server_facts() says it
    is in recovery, how far it has replayed, and a line for a person; the primary says nothing.
    A run against it names it in the terminal and on the report's first screen."""
    from checks.drill import pitr
    from checks.reference.embedded import SUPERUSER, EmbeddedServer, data_root
    home = data_root() / f"replica-{os.getpid()}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    pitr.own(home)
    primary = EmbeddedServer(home / "primary")
    standby = EmbeddedServer(home / "standby", settings={
        "hot_standby": "on", "primary_conninfo": f"'host={primary.datadir} user={SUPERUSER}'"})
    try:
        primary.start()
        with psycopg.connect(primary.admin_url(), autocommit=True) as conn:
            conn.execute("create role ordak_reader login")  # no superuser: what a weekly check connects as
        pitr.base_backup(primary, home / "backup")
        pitr.copy_data_dir(standby, home / "backup", standby.datadir)
        (standby.datadir / "standby.signal").touch()
        standby.start()
        with psycopg.connect(primary.admin_url(), autocommit=True) as conn:
            conn.execute("create table replicated (id int)")
            conn.execute("create table public.orders_bannos (id text)")  # enough of an Ordak to start a run
        replica = Target(Environment("restore", read_only=True), standby.url("postgres", "ordak_reader"))
        deadline = time.monotonic() + 30
        while not (facts := replica.server_facts())["last_replayed_at"] and time.monotonic() < deadline:
            time.sleep(0.05)
        replica.close()
        run = run_suite("--env=restore", "tests/test_access.py", env={"ORDAK_RESTORE_DB_URL": standby.url(
            "postgres", "ordak_reader")}, workdir=tmp_path / "run")
        source = Target(Environment("restore", read_only=True), primary.url("postgres", "ordak_reader"))
        primary_facts = source.server_facts()
        source.close()
    finally:
        standby.destroy()
        primary.destroy()
        shutil.rmtree(home, ignore_errors=True)
    assert facts["in_recovery"] is True and facts["replay_paused"] is False, facts
    assert facts["last_replayed_at"] and facts["replay_lag_seconds"] >= 0, facts
    assert facts["note"].startswith("the server is in recovery (replaying WAL): a hot-standby replica or a "
                                    "restore not yet promoted; read-only, its data trails the primary"), facts
    assert primary_facts == {"in_recovery": False, "replay_paused": None, "last_replayed_at": None,
                             "replay_lag_seconds": None, "note": None}
    named = "the server is in recovery (replaying WAL): a hot-standby replica or a restore not yet promoted"
    assert re.search(r"^WARNING: .*: " + re.escape(named), run.output, re.MULTILINE), run.output
    summary = json.loads(run.report.with_suffix(".json").read_text())
    assert named in summary["environment"]["replica"] and named in run.report.read_text()


def test_ctrl_c_while_connecting_still_writes_the_report(tmp_path):
    """Ctrl-C while the run waits for a silent host: exit status 2, one line saying what it was
    doing, and the report written, saying interrupted and where."""
    import signal
    import subprocess
    import sys
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        url = f"postgresql://postgres:{SECRET}@127.0.0.1:{port}/postgres?connect_timeout=100"
        report = tmp_path / "report.html"
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "ORDAK_"))}
        process = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--env=restore",
                                    f"--html={report}"], cwd=ROOT, env={**clean, "ORDAK_RESTORE_DB_URL": url},
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        silent.settimeout(60)
        waiting, _ = silent.accept()  # the run is connecting now, and will wait: stop it there
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
        waiting.close()
    assert process.returncode == 2, output
    assert f"ERROR: interrupted (Ctrl-C) while connecting to 127.0.0.1:{port}/postgres; nothing was verified" in output
    assert "Traceback" not in output and SECRET not in output, output
    summary = json.loads(report.with_suffix(".json").read_text())
    assert summary["verdict"] == "interrupted" and summary["interrupted"] == f"connecting to 127.0.0.1:{port}/postgres"
    assert "Interrupted (Ctrl-C) while connecting" in report.read_text() and SECRET not in report.read_text()
