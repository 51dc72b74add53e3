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
    """Every table the contract names, orders_<store> expanded from [order_table]; the
    tables only documented as present have an empty spec."""
    spec = contract()
    expanded = {orders_table(store): spec["order_table"] for store in spec["stores"]}
    return {**expanded, **spec["tables"], **{name: {} for name in spec["also_present"]}}


def advisory() -> dict:
    """The reference's own choices: checked, reported as notes, never failing."""
    return contract()["advisory"]


def runbook_holds(entry: str | None) -> bool:
    """Whether the runbook's side of a runbook-vs-live disagreement is still required."""
    return entry is None or contract()["runbook"][entry]["holds"]


def runbook_says(entry: str) -> str:
    """Both sides of a disagreement and the one line that settles it, for a finding's text."""
    said = contract()["runbook"][entry]
    return (f"runbook vs live Ordak: the runbook expects that {said['expects']}; {said['live']}. "
            f"If the team decides the runbook is stale, set runbook.{entry}.holds = false in checks/contract.toml")


def rpcs() -> dict[str, dict]:
    """The RPCs required now (a runbook-only RPC while its [runbook] entry holds)."""
    return {name: spec for name, spec in contract()["rpcs"].items() if runbook_holds(spec.get("runbook"))}


def read_rpcs() -> list[str]:
    return [name for name, rpc in rpcs().items() if rpc.get("read")]


def behaviours() -> dict[str, dict]:
    """Write-RPC scenarios whose RPC is required, each with its `rpc` filled in."""
    required = rpcs()
    found = {name: {"rpc": name, **spec} for name, spec in contract()["behaviour"].items()}
    return {name: spec for name, spec in found.items() if spec["rpc"] in required}


def thresholds(overrides=None) -> dict[str, float]:
    """The contract's thresholds (advisory ones too), with an environment's overrides applied."""
    return {**contract()["thresholds"], **advisory()["thresholds"], **dict(overrides or {})}


def stage_columns(stage: str) -> tuple[str, str]:
    """The start and complete timestamp columns of a stage (Complete has none)."""
    return f"{stage.lower()}_start_ts", f"{stage.lower()}_complete_ts"


def stages() -> list[str]:
    return contract()["enums"]["stage_type"]
