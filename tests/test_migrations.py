"""Migrations in Git vs the database (runbook, weekly check 3). Point --migrations-dir at the
app's supabase/migrations; the default is the reference's. Read-only."""

from checks.plugin import expect_clean
from checks.rules import migrations


def test_migration_files_valid(migrations_dir):
    expect_clean(migrations.files_valid(migrations_dir))


def test_migration_files_applied(target, migrations_dir):
    expect_clean(migrations.files_applied(target, migrations_dir))


def test_applied_migrations_have_files(target, migrations_dir):
    expect_clean(migrations.applied_have_files(target, migrations_dir))


def test_applied_migrations_unchanged(target, migrations_dir):
    expect_clean(migrations.applied_unchanged(target, migrations_dir))
