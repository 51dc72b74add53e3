"""contract.toml: what a healthy Ordak must look like, loaded once."""

import tomllib
from functools import cache
from pathlib import Path

CONTRACT_PATH = Path(__file__).with_name("contract.toml")


@cache
def contract() -> dict:
    return tomllib.loads(CONTRACT_PATH.read_text())


def orders_table(store: str) -> str:
    return f"orders_{store}"


def tables() -> dict[str, dict]:
    """Every table the contract names, orders_<store> expanded from [order_table]."""
    spec = contract()
    expanded = {orders_table(store): spec["order_table"] for store in spec["stores"]}
    return {**expanded, **spec["tables"]}


def read_rpcs() -> list[str]:
    return [name for name, rpc in contract()["rpcs"].items() if rpc.get("read")]


def thresholds(overrides=None) -> dict[str, float]:
    """The contract's thresholds, with an environment's overrides applied."""
    return {**contract()["thresholds"], **dict(overrides or {})}


def stage_columns(stage: str) -> tuple[str, str]:
    """The start and complete timestamp columns of a stage (Complete has none)."""
    return f"{stage.lower()}_start_ts", f"{stage.lower()}_complete_ts"


def stages() -> list[str]:
    return contract()["enums"]["stage_type"]
