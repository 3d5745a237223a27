"""Twilio settings entered in the panel: stored encrypted, masked, audited, env wins."""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import select

from relaydesk.channels.twilio.account import PanelValues, TwilioAccount, invalidate, resolve
from relaydesk.core.config import SANDBOX_DEFAULT_FROM, Settings, get_settings
from relaydesk.core.models import AuditEntry, Setting
from relaydesk.messaging.models import Message
from tests.conftest import AUTH_TOKEN, SPECS, wait_for

URL = "/api/settings/twilio"
LIVE_SID = "AC" + "0123456789abcdef" * 2
SERVICE_SID = "MG" + "fedcba9876543210" * 2
PANEL_TOKEN = "f00dfeed" * 4
SANDBOX_OFF = "the sandbox is off: relaydesk is connected to live Twilio"


@pytest.fixture(autouse=True)
def fresh_account() -> Iterator[None]:
    """Tables are emptied between tests; the in-process cache of them must go too."""
    invalidate()
    yield
    invalidate()


@pytest.fixture
def no_env_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if TWILIO_AUTH_TOKEN were unset, so the panel may store a token."""
    monkeypatch.setattr(get_settings(), "twilio_auth_token", None)


class StandaloneEmulator:
    """The emulator's Twilio routes at the root of another loopback port (a fake api.twilio.com).

    It shares the process's emulator state, so what it stores is visible to the test.
    """

    def __init__(self) -> None:
        from relaydesk.channels.sandbox.emulator import router

        app = FastAPI()
        app.include_router(router)
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def __enter__(self) -> StandaloneEmulator:
        self._thread.start()
        wait_for(lambda: self._server.started, what="the standalone emulator")
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


@pytest.fixture
def fake_twilio(monkeypatch: pytest.MonkeyPatch) -> Iterator[StandaloneEmulator]:
    """TWILIO_API_BASE_URL pointed at a standalone emulator, so live mode stays on loopback."""
    with StandaloneEmulator() as emulator:
        monkeypatch.setattr(get_settings(), "twilio_api_base_url", emulator.url)
        yield emulator


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- storing and showing ---------------------------------------------------------------


def test_panel_auth_token_is_stored_encrypted_and_only_shown_masked(
    api: httpx.Client, db: Any, no_env_token: None
) -> None:
    answer = api.put(URL, json={"auth_token": PANEL_TOKEN})
    assert answer.status_code == 200, answer.text

    row = db.get(Setting, "twilio.auth_token")
    assert row is not None and row.is_secret
    assert PANEL_TOKEN not in json.dumps(row.value)
    shown = api.get(URL)
    assert shown.status_code == 200
    assert PANEL_TOKEN not in shown.text and PANEL_TOKEN not in answer.text
    assert shown.json()["auth_token"] == {
        "set": True,
        "masked": "••••" + PANEL_TOKEN[-4:],
        "source": "panel",
    }


def test_blank_auth_token_keeps_the_stored_one_and_clearing_is_explicit(
    api: httpx.Client, no_env_token: None
) -> None:
    assert api.put(URL, json={"auth_token": PANEL_TOKEN}).status_code == 200

    kept = api.put(URL, json={"auth_token": "", "account_sid": LIVE_SID})
    assert kept.status_code == 200, kept.text
    assert kept.json()["auth_token"]["set"] is True
    assert api.put(URL, json={"auth_token": None}).json()["auth_token"]["set"] is True

    cleared = api.put(URL, json={"clear_auth_token": True})
    assert cleared.status_code == 200
    assert cleared.json()["auth_token"] == {"set": False, "masked": None, "source": "default"}


def test_view_names_sources_webhook_urls_and_env_variables(api: httpx.Client) -> None:
    view = api.get(URL).json()

    assert view["mode"] == {"value": "sandbox", "source": "default"}
    assert view["auth_token"] == {"set": True, "masked": "••••" + AUTH_TOKEN[-4:], "source": "env"}
    assert view["account_sid"] == {"value": None, "source": "default"}
    assert view["signature_validation"] == {"value": True, "source": "default"}
    assert view["active"]["account_sid"] == get_settings().account_sid
    assert view["active"]["default_from"] == SANDBOX_DEFAULT_FROM
    assert view["env_names"]["account_sid"] == "TWILIO_ACCOUNT_SID"
    assert view["webhook_urls"]["inbound"].endswith("/twilio/inbound")
    assert AUTH_TOKEN not in json.dumps(view)

    changed = api.put(URL, json={"public_base_url": "https://relay.example.com/"}).json()
    assert changed["public_base_url"] == {"value": "https://relay.example.com", "source": "panel"}
    assert changed["webhook_urls"] == {
        "inbound": "https://relay.example.com/twilio/inbound",
        "status": "https://relay.example.com/twilio/status",
    }


def test_numbers_are_normalised_and_empty_values_clear(api: httpx.Client) -> None:
    saved = api.put(
        URL,
        json={
            "default_from": "+48 600 100 200",
            "whatsapp_from": "+48600100201",
            "messaging_service_sid": SERVICE_SID,
        },
    ).json()
    assert saved["default_from"] == {"value": "+48600100200", "source": "panel"}
    assert saved["whatsapp_from"] == {"value": "whatsapp:+48600100201", "source": "panel"}
    assert saved["messaging_service_sid"]["value"] == SERVICE_SID

    cleared = api.put(URL, json={"default_from": "", "messaging_service_sid": None}).json()
    assert cleared["default_from"] == {"value": None, "source": "default"}
    assert cleared["messaging_service_sid"] == {"value": None, "source": "default"}
    assert cleared["whatsapp_from"]["value"] == "whatsapp:+48600100201"  # omitted: kept


# --- refusals --------------------------------------------------------------------------


def test_fields_set_in_the_environment_are_refused_with_409(api: httpx.Client, db: Any) -> None:
    for payload in ({"auth_token": PANEL_TOKEN}, {"clear_auth_token": True}):
        answer = api.put(URL, json=payload)
        assert answer.status_code == 409, answer.text
        assert "TWILIO_AUTH_TOKEN is set in the environment; change it there" in answer.text
    assert db.get(Setting, "twilio.auth_token") is None


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({"account_sid": "AC123"}, "'AC' followed by 32 hexadecimal"),
        ({"messaging_service_sid": "MGnope"}, "'MG' followed by 32 hexadecimal"),
        ({"default_from": "12345"}, "wrong number of digits"),
        ({"default_from": "whatsapp:+48600100200"}, "whatsapp_from"),
        ({"whatsapp_from": "whatsapp:call me"}, "only digits"),
        ({"public_base_url": "ftp://relay.example.com"}, "https://"),
        ({"mode": "production"}, "mode"),
        ({"account_sid": LIVE_SID, "bogus": 1}, "Unknown field 'bogus'"),
    ],
)
def test_invalid_values_get_a_readable_422_and_store_nothing(
    api: httpx.Client, db: Any, payload: dict[str, Any], words: str
) -> None:
    answer = api.put(URL, json=payload)

    assert answer.status_code == 422
    assert words in answer.json()["detail"]
    assert db.scalars(select(Setting)).all() == []


def test_live_mode_needs_an_account_sid_and_a_sender(api: httpx.Client) -> None:
    refused = api.put(URL, json={"mode": "live"})
    assert refused.status_code == 422
    assert "Live mode needs an Account SID, a sender number" in refused.json()["detail"]
    assert refused.json()["missing"] == [
        "an Account SID",
        "a sender number (default_from) or a Messaging Service",
    ]

    still = api.put(URL, json={"mode": "live", "account_sid": LIVE_SID})
    assert still.status_code == 422
    assert "sender" in still.json()["detail"]


def test_only_admins_may_read_or_change_twilio_settings(
    server: Any, make_token: Callable[[str], str]
) -> None:
    for role in ("viewer", "operator"):
        headers = {"Authorization": f"Bearer {make_token(role)}"}
        with httpx.Client(base_url=server.url, headers=headers) as client:
            assert client.get(URL).status_code == 403
            assert client.put(URL, json={"account_sid": LIVE_SID}).status_code == 403
            assert client.post(URL + "/test").status_code == 403
    assert httpx.get(server.url + URL).status_code == 401


def test_changes_are_audited_by_field_name_without_secret_values(
    api: httpx.Client, db: Any, no_env_token: None
) -> None:
    api.put(URL, json={"auth_token": PANEL_TOKEN, "account_sid": LIVE_SID})
    api.put(URL, json={"account_sid": LIVE_SID})  # no change: no entry

    entries = db.scalars(
        select(AuditEntry).where(AuditEntry.action == "settings.twilio.update")
    ).all()
    assert len(entries) == 1
    assert sorted(entries[0].details["fields"]) == ["twilio.account_sid", "twilio.auth_token"]
    assert entries[0].target == "twilio"
    assert entries[0].actor.startswith("token:")
    assert PANEL_TOKEN not in json.dumps(entries[0].details)


# --- using the settings ------------------------------------------------------------------


def test_connection_test_reaches_the_emulator_with_the_sandbox_credentials(
    api: httpx.Client,
) -> None:
    answer = api.post(URL + "/test")

    assert answer.status_code == 200
    result = answer.json()
    assert result["ok"] is True, result
    assert result["mode"] == "sandbox"
    assert result["account"] == {
        "sid": get_settings().account_sid,
        "friendly_name": "relaydesk sandbox",
        "status": "active",
        "type": "Trial",
    }
    assert "sandbox emulator" in result["detail"]


def test_connection_test_explains_bad_credentials_and_unreachable_twilio(
    api: httpx.Client, fake_twilio: StandaloneEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Live with an account the emulator does not know: Twilio answers 401 / 20003.
    switched = api.put(
        URL, json={"mode": "live", "account_sid": LIVE_SID, "default_from": "+48600100200"}
    )
    assert switched.status_code == 200, switched.text
    refused = api.post(URL + "/test").json()
    assert refused["ok"] is False and refused["mode"] == "live"
    assert refused["account"] is None
    assert "error 20003" in refused["detail"]
    assert "check the Account SID and auth token" in refused["detail"]

    monkeypatch.setattr(get_settings(), "twilio_api_base_url", f"http://127.0.0.1:{closed_port()}")
    unreachable = api.post(URL + "/test").json()
    assert unreachable["ok"] is False
    assert unreachable["detail"].startswith("Could not reach the Twilio API at http://127.0.0.1:")


def test_live_mode_sends_through_the_configured_api_and_turns_the_sandbox_off(
    api: httpx.Client, db: Any, fake_twilio: StandaloneEmulator
) -> None:
    # The emulator's own account, reached through a different API base: only the live
    # path can have delivered the message, since the embedded emulator answers 404.
    sandbox_sid = get_settings().account_sid
    switched = api.put(
        URL, json={"mode": "live", "account_sid": sandbox_sid, "default_from": "+15005550006"}
    )
    assert switched.status_code == 200, switched.text
    view = switched.json()
    assert view["mode"] == {"value": "live", "source": "panel"}
    assert view["active"]["api_base"] == fake_twilio.url

    sent = api.post("/api/send-message", json={"to": "+48600100220", "body": "live now"})
    assert sent.status_code == 201, sent.text
    assert sent.json()["sid"].startswith("SM")

    def delivered() -> bool:
        status = db.scalar(select(Message.status).where(Message.id == sent.json()["id"]))
        return bool(status == "delivered")

    wait_for(delivered, what="the status callback of the live send")

    embedded = f"{api.base_url}/sandbox/twilio/2010-04-01/Accounts/{sandbox_sid}.json"
    credentials = (sandbox_sid, AUTH_TOKEN)
    off = httpx.get(embedded, auth=credentials)
    assert off.status_code == 404
    assert off.json() == {"detail": SANDBOX_OFF, "code": "not_found"}
    assert api.get("/sandbox/phone/messages").status_code == 404

    back = api.put(URL, json={"mode": "sandbox"})
    assert back.json()["mode"] == {"value": "sandbox", "source": "panel"}
    assert httpx.get(embedded, auth=credentials).status_code == 200


def test_panel_token_signs_webhooks_in_live_mode(
    api: httpx.Client,
    db: Any,
    no_env_token: None,
    fake_twilio: StandaloneEmulator,
    twilio_post: Callable[..., httpx.Response],
    server: Any,
) -> None:
    from relaydesk.channels.twilio.signature import sign

    saved = api.put(
        URL,
        json={
            "mode": "live",
            "account_sid": LIVE_SID,
            "auth_token": PANEL_TOKEN,
            "default_from": "+48600100200",
        },
    )
    assert saved.status_code == 200, saved.text
    sid = "SM" + secrets.token_hex(16)
    params = {"MessageSid": sid, "From": "+48600100300", "To": "+48600100200", "Body": "hi"}

    old = twilio_post("/twilio/inbound", params)  # signed with the environment's old token
    assert old.status_code == 403
    signature = sign(server.url + "/twilio/inbound", params, PANEL_TOKEN)
    assert twilio_post("/twilio/inbound", params, signature=signature).status_code == 200
    wait_for(lambda: db.scalar(select(Message.id).where(Message.sid == sid)), what="inbound row")


def test_public_base_url_from_the_panel_is_a_valid_signing_url(
    api: httpx.Client, twilio_post: Callable[..., httpx.Response], server: Any
) -> None:
    from relaydesk.channels.twilio.signature import sign

    api.put(URL, json={"public_base_url": "https://relay.example.com"})
    params = {
        "MessageSid": "SM" + secrets.token_hex(16),
        "From": "+48600100300",
        "To": "+48600100200",
    }
    signature = sign("https://relay.example.com/twilio/inbound", params, AUTH_TOKEN)

    assert twilio_post("/twilio/inbound", params, signature=signature).status_code == 200


# --- the emulator's account resource ------------------------------------------------------


def test_emulator_fetch_account_is_twilio_shaped_and_checks_credentials(server: Any) -> None:
    spec = json.loads((SPECS / "twilio_api_v2010.json").read_text())
    schema = spec["components"]["schemas"]["api.v2010.account"]
    enums = spec["components"]["schemas"]
    base = f"{server.url}/sandbox/twilio/2010-04-01/Accounts"
    sid = get_settings().account_sid

    answer = httpx.get(f"{base}/{sid}.json", auth=(sid, AUTH_TOKEN))
    assert answer.status_code == 200
    account = answer.json()
    assert set(account) == set(schema["properties"])
    assert account["status"] in enums["account_enum_status"]["enum"]
    assert account["type"] in enums["account_enum_type"]["enum"]
    assert account["uri"] == f"/2010-04-01/Accounts/{sid}.json"
    assert time.strptime(account["date_created"], "%a, %d %b %Y %H:%M:%S +0000")

    wrong = httpx.get(f"{base}/{sid}.json", auth=(sid, "nope"))
    assert (wrong.status_code, wrong.json()["code"]) == (401, 20003)
    other = httpx.get(f"{base}/{LIVE_SID}.json", auth=(sid, AUTH_TOKEN))
    assert (other.status_code, other.json()["code"]) == (404, 20404)


# --- the merge rules, on hand-built settings ----------------------------------------------


def settings_with(**values: Any) -> Settings:
    """Settings from these values only (the test environment's Twilio values neutralised)."""
    base: dict[str, Any] = {"twilio_auth_token": None, "secret_key": "k" * 40, "port": 8123}
    return Settings(_env_file=None, **{**base, **values})


def panel(**values: str) -> PanelValues:
    return PanelValues(values)


LIVE_PANEL = {"mode": "live", "account_sid": LIVE_SID, "auth_token": PANEL_TOKEN}


def test_without_anything_configured_the_sandbox_defaults_apply() -> None:
    settings = settings_with()
    account = resolve(settings, panel())

    assert account == TwilioAccount(
        mode="sandbox",
        account_sid=settings.sandbox_credentials.account_sid,
        auth_token=settings.sandbox_credentials.auth_token,
        default_from=SANDBOX_DEFAULT_FROM,
        whatsapp_from=None,
        messaging_service_sid=None,
        public_base_url="http://127.0.0.1:8123",
        api_base="http://127.0.0.1:8123/sandbox/twilio",
        sources=account.sources,
    )
    assert set(account.sources.values()) == {"default"}


def test_panel_values_apply_in_live_mode_only() -> None:
    stored = panel(**LIVE_PANEL, default_from="+48600100200", public_base_url="https://r.example")

    live = resolve(settings_with(), stored)
    assert (live.mode, live.account_sid, live.auth_token) == ("live", LIVE_SID, PANEL_TOKEN)
    assert live.default_from == "+48600100200"
    assert live.api_base == "https://api.twilio.com"
    assert live.status_callback_url == "https://r.example/twilio/status"
    assert live.sources["account_sid"] == live.sources["mode"] == "panel"

    # The same values kept while in sandbox mode leave the emulator's credentials alone.
    settings = settings_with()
    sandbox = resolve(settings, panel(**{**stored.values, "mode": "sandbox"}))
    generated = settings.sandbox_credentials
    assert (sandbox.account_sid, sandbox.auth_token) == (
        generated.account_sid,
        generated.auth_token,
    )
    assert sandbox.default_from == SANDBOX_DEFAULT_FROM
    assert sandbox.public_base_url == "https://r.example"  # not a credential: used in both


def test_environment_values_win_over_the_panel() -> None:
    settings = settings_with(
        twilio_auth_token="env-token-" + "9" * 22,
        twilio_default_from="+48600100999",
        public_base_url="https://env.example",
    )
    account = resolve(settings, panel(**LIVE_PANEL, default_from="+48600100200"))

    assert account.mode == "live"
    assert account.auth_token == "env-token-" + "9" * 22
    assert account.default_from == "+48600100999"
    assert account.public_base_url == "https://env.example"
    assert account.account_sid == LIVE_SID
    assert account.sources["auth_token"] == "env"
    assert account.sources["account_sid"] == "panel"


def test_environment_mode_cannot_be_overridden_by_the_panel() -> None:
    forced = resolve(
        settings_with(twilio_mode="sandbox"), panel(**LIVE_PANEL, default_from="+48600100200")
    )
    assert (forced.mode, forced.sources["mode"]) == ("sandbox", "env")

    env_live = settings_with(
        twilio_account_sid=LIVE_SID,
        twilio_auth_token=PANEL_TOKEN,
        twilio_messaging_service_sid=SERVICE_SID,
    )
    account = resolve(env_live, panel(mode="sandbox"))
    assert (account.mode, account.sources["mode"]) == ("live", "env")
    assert account.messaging_service_sid == SERVICE_SID


def test_incomplete_live_settings_fall_back_to_the_sandbox_and_say_why() -> None:
    settings = settings_with()
    account = resolve(settings, panel(mode="live", account_sid=LIVE_SID))

    assert account.mode == "sandbox"
    assert account.account_sid == settings.sandbox_credentials.account_sid
    assert "an auth token" in account.problems[0]
    assert "sender" in account.problems[0]


def test_a_changed_secret_key_is_a_clear_error_not_garbage(monkeypatch: pytest.MonkeyPatch) -> None:
    from relaydesk.core.crypto import SecretUnreadable, decrypt, encrypt

    settings = get_settings()
    monkeypatch.setattr(settings, "secret_key", "first-key-" + "a" * 30)
    token = encrypt(PANEL_TOKEN)
    assert PANEL_TOKEN not in token
    assert decrypt(token) == PANEL_TOKEN

    monkeypatch.setattr(settings, "secret_key", "other-key-" + "b" * 30)
    with pytest.raises(SecretUnreadable, match="SECRET_KEY"):
        decrypt(token)
