"""Fixtures the inbox tests share with others: inbound webhooks and automation settings
(tests/automation), signed-in panel clients (tests/web)."""

from __future__ import annotations

from tests.automation.conftest import ai_on, inbound, rules  # noqa: F401 (fixtures)
from tests.web.conftest import make_user, panel  # noqa: F401 (fixtures)
