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
