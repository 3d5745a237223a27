"""X-Forwarded-* headers count only from the proxies in FORWARDED_ALLOW_IPS, as in uvicorn.

The app applies them itself, in one middleware and with uvicorn's own syntax (IPs,
CIDR networks or "*"): the client address and scheme from X-Forwarded-For and
X-Forwarded-Proto, and the host from X-Forwarded-Host, all only when the immediate
peer is a trusted proxy. From anyone else they are dropped, so the CSRF origin check,
the secure-cookie decision and the URLs a Twilio signature is checked against never
take a client's word for the host or scheme.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from relaydesk.core.config import ConfigError, get_settings
from relaydesk.core.proxies import ForwardedHeaders
from tests.conftest import AUTH_TOKEN, LiveServer
from tests.test_config import make
from tests.web.conftest import csrf_of

Panel = Callable[[str], httpx.Client]
FORM = {"to": "+48600100299", "body": "hello"}


def trust(monkeypatch: pytest.MonkeyPatch, proxies: str) -> None:
    """FORWARDED_ALLOW_IPS as the server sees it."""
    monkeypatch.setattr(get_settings(), "forwarded_allow_ips", proxies)


# --- The middleware ----------------------------------------------------------------------------


async def _echo(scope: Any, receive: Any, send: Any) -> None:
    """An ASGI app that answers with what it was told about the request."""
    headers = {k.decode(): v.decode() for k, v in scope["headers"]}
    body = (
        f"{scope['scheme']}|{scope['client'][0]}|{headers.get('host')}|"
        f"{sorted(k for k in headers if k.startswith('x-forwarded'))}"
    ).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def seen(peer: str, proxies: str, headers: dict[str, str]) -> list[str]:
    """scheme, client, host and the X-Forwarded-* headers left, for a request from `peer`."""
    app = ForwardedHeaders(_echo, trusted=proxies)
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))

    async def ask() -> str:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://relaydesk.internal:8000"
        ) as client:
            return (await client.get("/", headers=headers)).text

    # On a thread of its own: the browser tests' driver may have left this thread an
    # event loop marked running, and asyncio.run refuses to start inside one.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, ask()).result().split("|")


FORWARDED = {
    "X-Forwarded-For": "203.0.113.7",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "panel.example.com",
}


def test_an_untrusted_peers_forwarded_headers_are_dropped_unread() -> None:
    assert seen("198.51.100.4", "127.0.0.1", FORWARDED) == [
        "http",
        "198.51.100.4",
        "relaydesk.internal:8000",
        "[]",
    ]


@pytest.mark.parametrize("proxies", ["127.0.0.1", "10.0.0.0/8, 127.0.0.1", "*"])
def test_a_trusted_proxy_sets_client_scheme_and_host(proxies: str) -> None:
    peer = "10.1.2.3" if "10.0.0.0/8" in proxies else "127.0.0.1"
    assert seen(peer, proxies, FORWARDED) == ["https", "203.0.113.7", "panel.example.com", "[]"]


def test_the_host_nearest_the_proxy_counts_and_a_host_that_is_not_one_is_ignored() -> None:
    chained = {**FORWARDED, "X-Forwarded-Host": "evil.example, panel.example.com"}
    assert seen("127.0.0.1", "127.0.0.1", chained)[2] == "panel.example.com"
    for bad in ("evil.example/path", "user@evil.example", "a b", "evil.example:99999", ""):
        headers = {**FORWARDED, "X-Forwarded-Host": bad}
        assert seen("127.0.0.1", "127.0.0.1", headers)[2] == "relaydesk.internal:8000", bad


def test_forwarded_allow_ips_takes_uvicorns_syntax_and_refuses_anything_else(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert make(monkeypatch, tmp_path).forwarded_allow_ips == "127.0.0.1,::1"
    for good in ("127.0.0.1", "10.0.0.0/8, 192.168.1.5", "*", "::1"):
        settings = make(monkeypatch, tmp_path, FORWARDED_ALLOW_IPS=good)
        assert settings.forwarded_allow_ips == good.replace(" ", "")
    assert make(monkeypatch, tmp_path, FORWARDED_ALLOW_IPS="").forwarded_allow_ips == ""
    for bad in ("proxy.local", "10.0.0.0/33", "127.0.0.1;10.0.0.1", "*,10.0.0.1"):
        with pytest.raises(ConfigError, match="FORWARDED_ALLOW_IPS") as caught:
            make(monkeypatch, tmp_path, FORWARDED_ALLOW_IPS=bad)
        assert "\n" not in str(caught.value)


# --- The live server ---------------------------------------------------------------------------


def test_a_forged_forwarded_host_does_not_pass_the_origin_check(
    panel: Panel, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = panel("operator")
    token = csrf_of(client)
    trust(monkeypatch, "192.0.2.10")  # the proxy is elsewhere: this client is not it
    forged = client.post(
        "/messages/send",
        data={**FORM, "csrf_token": token},
        headers={"Origin": "https://evil.example", "X-Forwarded-Host": "evil.example"},
    )
    assert forged.status_code == 403, forged.text
    assert "another site" in forged.text


def test_behind_a_trusted_proxy_the_public_origin_passes(
    panel: Panel, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = panel("operator")
    token = csrf_of(client)
    trust(monkeypatch, "127.0.0.1,::1")  # the test client plays the proxy
    proxied = client.post(
        "/messages/send",
        data={**FORM, "csrf_token": token},
        headers={
            "Origin": "https://panel.example.com",
            "X-Forwarded-Host": "panel.example.com",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-For": "203.0.113.7",
        },
    )
    assert proxied.status_code == 200, proxied.text


def _signed_elsewhere(server: LiveServer, headers: dict[str, str]) -> httpx.Response:
    """An inbound webhook signed for https://other.example/…, sent straight to the server."""
    from relaydesk.channels.twilio.signature import sign

    sid = "SM" + secrets.token_hex(16)
    params = {
        "MessageSid": sid,
        "AccountSid": "AC" + "1" * 32,
        "From": "+48600100298",
        "To": "+15005550006",
        "Body": "forwarded",
        "NumMedia": "0",
    }
    signature = sign("https://other.example/twilio/inbound", params, AUTH_TOKEN)
    return httpx.post(
        server.url + "/twilio/inbound",
        data=params,
        headers={"X-Twilio-Signature": signature, **headers},
        timeout=30,
    )


def test_a_webhook_signature_is_checked_against_forwarded_urls_only_from_a_trusted_proxy(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch, db: Any
) -> None:
    from relaydesk.messaging.models import Message

    elsewhere = {"X-Forwarded-Host": "other.example", "X-Forwarded-Proto": "https"}
    trust(monkeypatch, "192.0.2.10")
    assert _signed_elsewhere(server, elsewhere).status_code == 403
    trust(monkeypatch, "127.0.0.1")
    assert _signed_elsewhere(server, elsewhere).status_code == 200
    assert db.scalar(select(func.count()).select_from(Message)) == 1


def test_serve_runs_uvicorn_with_the_same_proxies(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn
    from click.testing import CliRunner

    from relaydesk import cli

    ran: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: ran.update(options))
    monkeypatch.setattr(cli, "_prepare_database", lambda settings: None)
    monkeypatch.setattr(cli, "_ensure_first_admin", lambda settings: None)
    trust(monkeypatch, "10.0.0.0/8")
    result = CliRunner().invoke(cli.main, ["serve", "--no-worker"])
    assert result.exit_code == 0, result.output
    assert ran["forwarded_allow_ips"] == "10.0.0.0/8"
    # The app applies the headers itself; uvicorn applying them first would hide the
    # peer that decides whether X-Forwarded-Host may be believed.
    assert ran["proxy_headers"] is False


def test_cookies_are_secure_only_when_a_trusted_proxy_says_https(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "panel.example.com"}
    for proxies, secure in (("192.0.2.10", False), ("127.0.0.1", True)):
        trust(monkeypatch, proxies)
        page = httpx.get(server.url + "/login", headers=headers, timeout=30)
        assert page.status_code == 200
        cookie = page.headers["set-cookie"]
        assert cookie.startswith("relaydesk_login_csrf="), cookie
        assert ("Secure" in cookie) is secure, (proxies, cookie)
