"""The sandbox phone page looks at our messages' files only through the network guard."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from relaydesk.core.config import get_settings
from tests.fakes import RecordingServer

Panel = Callable[[str], httpx.Client]


@pytest.fixture
def recorder() -> Iterator[RecordingServer]:
    """A service on another loopback port that the phone page must not reach."""
    with RecordingServer() as found:
        yield found


def test_phone_page_does_not_fetch_a_stored_media_url_at_an_internal_address(
    panel: Panel, recorder: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from relaydesk.channels.sandbox.runtime import get_emulator
    from relaydesk.channels.sandbox.store import StoredMessage

    number = "+48600100901"
    now = time.time()
    # A message kept in the emulator from before its media URLs were checked.
    stored = StoredMessage(
        sid="MM" + "9" * 32,
        account_sid=get_settings().account_sid,
        direction="outbound-api",
        from_addr="+15005550006",
        to_addr=number,
        body="",
        status="delivered",
        num_segments=1,
        num_media=1,
        date_created=now,
        date_updated=now,
        media=(f"{recorder.base_url}/photo",),
    )
    get_emulator().store.insert(stored, None)
    operator = panel("operator")
    page = operator.get("/sandbox-phone", params={"number": number})
    assert page.status_code == 200
    assert recorder.requests == []

    # The same page does look at the file once the deployer allows private networks.
    monkeypatch.setattr(get_settings(), "sandbox_allow_private_networks", True)
    assert operator.get("/sandbox-phone", params={"number": number}).status_code == 200
    assert recorder.requests == [("GET", "/photo")]
