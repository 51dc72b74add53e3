"""The suite reaches an Ordak: its store tables can be read and its stages are the documented ones."""

import pytest

from checks import schema
from checks.contract import contract
from checks.plugin import expect_clean


@pytest.mark.parametrize("store", contract()["stores"])
def test_store_table_readable(target, store):
    expect_clean(schema.store_table_readable(target, store))


def test_stage_enum_labels(target):
    expect_clean(schema.enum_labels(target, "stage_type", contract()["stages"]))
