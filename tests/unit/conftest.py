"""The unit tier: pure logic that needs no server, no database and no live app.

A test here that asks for one of the app's fixtures fails at set-up, so the tier
stays fast, runs anywhere and starts nothing (the root conftest starts the app and,
on PostgreSQL, a database cluster only for tests outside this folder).
"""

from __future__ import annotations

import pytest

APP_FIXTURES = frozenset(
    {"server", "db", "api", "make_token", "twilio_post", "empty_spool", "panel", "make_user"}
)


@pytest.fixture(autouse=True)
def _no_app(request: pytest.FixtureRequest) -> None:
    used = sorted(APP_FIXTURES.intersection(request.fixturenames))
    if used:
        pytest.fail(f"a unit test uses the app ({', '.join(used)}); move it out of tests/unit")
