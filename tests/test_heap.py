"""Start-up objects are left out of garbage collections (no long pauses under load)."""

from __future__ import annotations

import gc

from relaydesk.core.heap import settle_after_startup
from tests.conftest import LiveServer


def test_a_started_server_freezes_what_start_up_created_once(server: LiveServer) -> None:
    # The app's lifespan ran (the live server is up): modules, classes and the app are
    # in the permanent generation, which full collections skip.
    frozen = gc.get_freeze_count()
    assert frozen > 10_000
    settle_after_startup()  # a second app in the same process changes nothing
    assert gc.get_freeze_count() == frozen
