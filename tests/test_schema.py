"""Schema sanity (runbook, weekly check 2): every object the contract names is there and as
documented; general rules a restore can break hold for every object. Read-only."""

import pytest

from checks.contract import contract, rpcs, tables
from checks.plugin import expect_clean
from checks.rules import schema

CONTRACT = contract()
TABLES = tables()
RPCS = rpcs()


@pytest.mark.parametrize("table", TABLES)
def test_table(target, table):
    expect_clean(schema.table(target, table, TABLES[table]))


@pytest.mark.parametrize("enum", CONTRACT["enums"])
def test_enum(target, enum):
    expect_clean(schema.enum(target, enum, CONTRACT["enums"][enum]))


@pytest.mark.parametrize("rpc", RPCS)
def test_rpc(target, rpc):
    expect_clean(schema.rpc(target, rpc, RPCS[rpc]))


@pytest.mark.parametrize("extension", CONTRACT["extensions"])
def test_extension(target, extension):
    expect_clean(schema.extension(target, extension))


def test_realtime_publication(target):
    expect_clean(schema.realtime_publication(target))


@pytest.mark.parametrize("table", CONTRACT["realtime"]["tables"])
def test_realtime_table(target, table):
    expect_clean(schema.realtime_table(target, table))


@pytest.mark.parametrize("job", CONTRACT["cron"]["jobs"])
def test_cron_job(target, job):
    expect_clean(schema.cron_job(target, job))


def test_indexes_valid(target):
    expect_clean(schema.indexes_valid(target))


def test_constraints_validated(target):
    expect_clean(schema.constraints_validated(target))


def test_triggers_enabled(target):
    expect_clean(schema.triggers_enabled(target))


def test_sequences_ahead_of_data(target):
    expect_clean(schema.sequences_ahead(target))
