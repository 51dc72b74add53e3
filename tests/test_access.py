"""What the connected role may read and do, asked once before the checks that stand on it
(checks/rules/privileges.py). Each missing privilege is one finding naming the object, the privilege
and the fix; the checks that need it skip, pointing here. Read-only."""

import pytest

from checks.plugin import expect_clean
from checks.rules import privileges


@pytest.mark.urgent
def test_connected_role_privileges(target):
    expect_clean(privileges.connected_role(target))
