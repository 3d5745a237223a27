"""The embedded emulator's outbound requests go through the network guard.

Status callbacks and media URLs are whatever a caller of the emulator's API typed: they
may reach relaydesk itself, never the machine's other services or its network.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from relaydesk.channels.twilio.gateway import make_client
from relaydesk.core import netguard
from relaydesk.core.config import get_settings
from tests.conftest import wait_for
from tests.fakes import RecordingServer

SENDER = "+15005550006"
INTERNAL = ("169.254.169.254", "10.20.30.40")


@pytest.fixture
def recorder() -> Iterator[RecordingServer]:
    """A service on another loopback port that the emulator must not reach."""
    with RecordingServer() as found:
        yield found


@pytest.fixture
def twilio(server: Any) -> Client:
    """The real twilio SDK pointed at the embedded emulator with this installation's account."""
    settings = get_settings()
    return make_client(f"{server.url}/sandbox/twilio", settings.account_sid, settings.auth_token)


def refusals(caplog: pytest.LogCaptureFixture, sid: str, status: str) -> list[str]:
    """Logged refusals of `sid`'s status callback for `status`."""
    return [
        r.getMessage()
        for r in caplog.records
        if sid in r.getMessage() and f"({status})" in r.getMessage() and "refused" in r.getMessage()
    ]


def test_status_callbacks_to_internal_addresses_are_refused_and_relaydesk_still_gets_its_own(
    api: httpx.Client, twilio: Client, recorder: RecordingServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="relaydesk.channels.sandbox")
    targets = [f"{recorder.base_url}/status", *(f"http://{ip}/status" for ip in INTERNAL)]
    targets.append(f"http://localhost:{recorder.port}/status")
    sent = [
        twilio.messages.create(to="+48600100801", from_=SENDER, body="x", status_callback=url)
        for url in targets
    ]
    # relaydesk's own status callback (the server's base URL) is delivered as before.
    ours = api.post("/api/send-message", json={"to": "+48600100802", "body": "Dzień dobry"})
    assert ours.status_code == 201, ours.text
    wait_for(
        lambda: api.get(f"/api/messages/{ours.json()['id']}").json()["status"] == "delivered",
        what="relaydesk's own status callbacks",
    )
    # A message's callbacks keep to one lane in order: once `delivered` was refused,
    # nothing of that message is left to post.
    for msg in sent:
        wait_for(lambda m=msg: refusals(caplog, m.sid, "delivered"), what=f"refusal of {msg.sid}")
        assert refusals(caplog, msg.sid, "sent")
    assert recorder.requests == []
    assert any("SANDBOX_ALLOW_PRIVATE_NETWORKS" in r.getMessage() for r in caplog.records)


def test_private_networks_setting_lets_callbacks_reach_a_local_receiver(
    twilio: Client, recorder: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "sandbox_allow_private_networks", True)
    msg = twilio.messages.create(
        to="+48600100803", from_=SENDER, body="x", status_callback=f"{recorder.base_url}/cb"
    )
    wait_for(lambda: len(recorder.requests) >= 2, what="callbacks at the allowed receiver")
    assert recorder.requests == [("POST", "/cb"), ("POST", "/cb")]
    assert twilio.messages(msg.sid).fetch().status == "delivered"


@pytest.mark.parametrize(
    "host", ["127.0.0.1:{port}", "localhost:{port}", *INTERNAL, "[::1]:{port}"]
)
def test_media_url_at_an_internal_address_is_refused_like_twilio_and_never_fetched(
    twilio: Client, recorder: RecordingServer, host: str
) -> None:
    port = recorder.port
    url = f"http://{host.format(port=port)}/photo.png"
    with pytest.raises(TwilioRestException) as refused:
        twilio.messages.create(to="+48600100804", from_=SENDER, media_url=[url])
    assert (refused.value.status, refused.value.code) == (400, 21620)
    assert "SANDBOX_ALLOW_PRIVATE_NETWORKS" in refused.value.msg
    assert twilio.messages.list(to="+48600100804") == []
    assert recorder.requests == []


def test_media_url_on_relaydesk_itself_is_accepted(twilio: Client, server: Any) -> None:
    msg = twilio.messages.create(
        to="+48600100805", from_=SENDER, media_url=[f"{server.url}/static/favicon.svg"]
    )
    assert msg.num_media == "1"


def test_a_name_that_resolves_inside_only_when_connecting_is_refused_before_sending(
    recorder: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the check sees a public address, the connection reaches loopback."""
    from relaydesk.channels.sandbox.outbound import Outbound

    real = socket.getaddrinfo
    asked: list[str] = []

    def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "rebind.test":
            return real(host, port, *args, **kwargs)
        asked.append(host)
        address = "93.184.216.34" if len(asked) == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port or 80)))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    port = recorder.port
    settings = get_settings().model_copy(update={"sandbox_allow_private_networks": False})
    outbound = Outbound(settings)  # relaydesk's own address is settings.base_url only
    try:
        with pytest.raises(netguard.BlockedAddress, match=r"internal address 127\.0\.0\.1"):
            outbound.request("POST", f"http://rebind.test:{port}/cb", body="x=1")
    finally:
        outbound.close()
    assert len(asked) >= 2  # checked, then resolved again to connect
    assert recorder.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/a\x00b.png",
        "http://127.0.0.1:{port}/a\r\nX-Injected: 1",
        "http://127.0.0.1:{port}\\@example.com/a.png",
        "http://example.com:99999999999999999999/a.png",
        "http://0x7f000001:{port}/a.png",
        "http://[::ffff:127.0.0.1]:{port}/a.png",
    ],
)
def test_malformed_or_disguised_media_urls_are_refused_too(
    twilio: Client, recorder: RecordingServer, url: str
) -> None:
    with pytest.raises(TwilioRestException) as refused:
        twilio.messages.create(
            to="+48600100806", from_=SENDER, media_url=[url.format(port=recorder.port)]
        )
    assert (refused.value.status, refused.value.code) == (400, 21620)
    assert "\x00" not in refused.value.msg and "\r" not in refused.value.msg
    assert twilio.messages.list(to="+48600100806") == []
    assert recorder.requests == []
