"""--migrations-dir is read as the Supabase CLI reads it: a folder that holds no migration (an
empty one, `supabase/` instead of `supabase/migrations`) stops the run with one line naming the
folder; a file not named <version>_<name>.sql is skipped with a note, never a failure; a
migration file the CLI cannot read or split still fails test_migration_files_valid."""

import json
import shutil
from pathlib import Path

import pytest

from checks.errors import SetupError
from checks.migration_files import require_migrations
from checks.reference.cluster import MIGRATIONS_DIR
from selftests.harness import run_suite
from selftests.connect.test_bad_input import assert_one_line_error

MIGRATIONS = object()  # in a layout: a copy of the reference's migrations folder
FOLDER = object()  # in a layout: an empty folder

# A folder that is not there, empty, or holds no migration: how each is laid out in the job's
# folder, what --migrations-dir names (relative to that folder), and what the one line says
# ({folder} stands for the job's folder).
NO_MIGRATIONS = {
    "no_such_folder": ({}, "nowhere/supabase/migrations",
                       "--migrations-dir {folder}/nowhere/supabase/migrations: no such folder; "
                       "point it at the app's supabase/migrations"),
    "empty_folder": ({"migrations/.gitkeep": b""}, "migrations",
                     "--migrations-dir {folder}/migrations is empty: it holds no migration "
                     "(<version>_<name>.sql files); point it at the app's supabase/migrations"),
    "supabase_folder_instead_of_its_migrations": (
        {"app/supabase/config.toml": b"project_id = 'ordak'\n", "app/supabase/migrations": MIGRATIONS},
        "app/supabase",
        "--migrations-dir {folder}/app/supabase holds no migration (<version>_<name>.sql files); "
        "did you mean {folder}/app/supabase/migrations?"),
    "app_root_instead_of_its_migrations": (
        {"app/README.md": b"# Ordak\n", "app/supabase/migrations": MIGRATIONS}, "app",
        "--migrations-dir {folder}/app holds no migration (<version>_<name>.sql files); "
        "did you mean {folder}/app/supabase/migrations?"),
    "folder_of_other_files": (
        {"docs/README.md": b"# Migrations\n", "docs/notes.txt": b"ask before pushing\n", "docs/old": FOLDER},
        "docs",
        "--migrations-dir {folder}/docs holds no migration (<version>_<name>.sql files), only README.md, "
        "notes.txt, old/; point it at the app's supabase/migrations"),
}

# Beside real migrations, files the Supabase CLI skips by their name: noted, never failing.
# .gitkeep is how an empty folder is kept in Git: not even a note.
SKIPPED = {"README.md": b"# Migrations\nRun `supabase db push`.\n", "notes.txt": b"ask before pushing\n",
           "fix.sql": b"create index on public.orders_bannos (due_date);\n"}


def lay_out(folder: Path, layout: dict) -> None:
    for relative, content in layout.items():
        path = folder / relative
        if content is MIGRATIONS:
            shutil.copytree(MIGRATIONS_DIR, path)
        elif content is FOLDER:
            path.mkdir(parents=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)


def suite_with(layout: dict, given: str, *tests: str, prepare=None):
    """A job for RunsAhead: lays out its clone's folder (layout: relative path -> bytes, or
    MIGRATIONS, or FOLDER), calls prepare(folder) if given, then runs the suite against the
    clone (--env=restore, as a drill would) with --migrations-dir=<folder>/<given>. Returns the
    run and the folder."""
    def job(clone):
        folder = clone.workdir
        folder.mkdir(parents=True, exist_ok=True)
        lay_out(folder, layout)
        if prepare is not None:
            prepare(folder)
        return run_suite("--env=restore", f"--migrations-dir={folder / given}", *tests,
                         env={"ORDAK_RESTORE_DB_URL": clone.url}, workdir=folder / "run"), folder
    return job


def break_two_migrations(folder: Path) -> None:
    """One migration not UTF-8 at its last line, one with a quote never closed past its end."""
    packing = folder / "migrations" / "20241020100000_start_packing.sql"
    packing.write_bytes(packing.read_bytes() + "\n-- r\u00e9sum\u00e9\n".encode("latin-1"))
    queue = folder / "migrations" / "20240915120000_queue_rpcs.sql"
    queue.write_text(queue.read_text() + "\nselect 'never closed;\n")


def runs_ahead() -> dict:
    """This module's runs, started when the session starts (selftests/conftest.py)."""
    return {
        **{f"test_a_folder_without_migrations_is_one_setup_error[{case}]": suite_with(layout, given)
           for case, (layout, given, _) in NO_MIGRATIONS.items()},
        "test_files_the_cli_skips_are_notes_not_failures": suite_with(
            {"migrations": MIGRATIONS, "migrations/.gitkeep": b"",
             **{f"migrations/{name}": content for name, content in SKIPPED.items()}},
            "migrations", "tests/test_migrations.py"),
        "test_a_healthy_folder_passes_without_notes": suite_with(
            {"migrations": MIGRATIONS}, "migrations", "tests/test_migrations.py"),
        "test_broken_migration_files_are_named_with_their_line": suite_with(
            {"migrations": MIGRATIONS}, "migrations", "tests/test_migrations.py", prepare=break_two_migrations),
    }


@pytest.mark.parametrize("case", NO_MIGRATIONS)
def test_a_folder_without_migrations_is_one_setup_error(ahead_run, case):
    """Not five "applied ... has no file" failures: one line naming the folder and what it
    should hold, exit status 4, the report still written."""
    run, folder = ahead_run
    *_, expected = NO_MIGRATIONS[case]
    line = assert_one_line_error(run, expected.format(folder=folder))
    assert line == "ERROR: " + expected.format(folder=folder), line
    assert set(run.outcomes) == {"ordak::setup"}, "no check runs: JUnit holds the setup error alone"


def test_files_the_cli_skips_are_notes_not_failures(ahead_run):
    """README.md, notes.txt and fix.sql beside real migrations: every migration check passes,
    and each skipped file is a note, in the terminal and in the report."""
    run, _ = ahead_run
    assert run.exit_code == 0, run.output
    assert run.with_status("passed") == {"test_migration_files_valid", "test_migration_files_applied",
                                         "test_applied_migrations_have_files",
                                         "test_applied_migrations_unchanged"}, run.output
    terminal = {line.split(" ", 2)[1].rstrip(":"): line for line in run.output.splitlines()
                if line.startswith("migration_files_valid[all] ")}
    assert set(terminal) == set(SKIPPED), run.output
    for line in terminal.values():
        assert "skipped: its name is not <version>_<name>.sql (the Supabase CLI skips it too" in line, line
    assert "if it is a migration, rename it <version>_<name>.sql" in terminal["fix.sql"]
    assert "rename it" not in terminal["README.md"]
    summary = json.loads(run.report.with_suffix(".json").read_text())
    noted = [note["object"] for check in summary["checks"] for verdict in check["verdicts"]
             if verdict["check"] == "migration_files_valid" for note in verdict["notes"]]
    assert sorted(noted) == sorted(SKIPPED), noted
    html = run.report.read_text()
    assert all(name in html for name in SKIPPED)
    assert ".gitkeep" not in run.output and ".gitkeep" not in html


def test_a_healthy_folder_passes_without_notes(ahead_run):
    run, _ = ahead_run
    assert run.exit_code == 0, run.output
    assert len(run.with_status("passed")) == 4 and not run.failed(), run.output
    assert "migration_files_valid[all] " not in run.output, "a healthy folder has nothing to note"


def test_broken_migration_files_are_named_with_their_line(ahead_run):
    """Not UTF-8, a quote never closed: one finding each, in test_migration_files_valid; the
    other migration checks keep judging the rest."""
    run, folder = ahead_run
    assert run.failed() == {"test_migration_files_valid"}, run.output
    message = run.outcome("test_migration_files_valid").message
    packing_lines = (folder / "migrations" / "20241020100000_start_packing.sql").read_bytes().count(b"\n")
    queue_lines = (MIGRATIONS_DIR / "20240915120000_queue_rpcs.sql").read_text().count("\n")
    assert f"20241020100000_start_packing.sql:{packing_lines}: not UTF-8 (byte 0xe9)" in message
    assert f"20240915120000_queue_rpcs.sql:{queue_lines + 2}: SQL cannot be split into statements: " \
           "unterminated quoted string" in message
    assert "Traceback" not in run.output


def test_a_folder_that_cannot_be_read_is_one_line(tmp_path, monkeypatch):
    """As root every folder is readable, so the refusal is the operating system's answer
    played back: what require_migrations makes of it is what is tested."""
    folder = tmp_path / "migrations"
    folder.mkdir()

    def refuse(path):
        raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr(Path, "iterdir", refuse)
    with pytest.raises(SetupError) as stopped:
        require_migrations(folder)
    assert str(stopped.value) == (f"--migrations-dir {folder} cannot be read (Permission denied); "
                                  "give this user read access to it, or point it at a readable copy")
