"""Content API templates in the emulator, read and sent through the real twilio SDK."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from relaydesk.channels.sandbox.content import TEMPLATES
from relaydesk.channels.twilio.gateway import (
    ContentTemplate,
    GatewayError,
    PooledHttpClient,
    TwilioGateway,
)
from relaydesk.core.config import Settings

from .conftest import SandboxServer, _nullable_to_json_schema

SPEC = Path(__file__).resolve().parents[3] / "shared" / "specs" / "twilio_content_v1.json"
SENDER = "whatsapp:+15005550006"
CUSTOMER = "whatsapp:+48600100200"
REMINDER = "HX4b4adba77b8189f09cc4069f16415ea0"
SHIPPED = "HX96d264af8fd4052ed8cc3282786eb850"
POLISH = "HX0a32c1fba19a7a5fe8dbeb4bfd8af1b9"
QUICK_REPLY = "HX080530486e03ed4e855e6de40699e4e6"


def gateway(sandbox: SandboxServer, prefix: str = "") -> TwilioGateway:
    return TwilioGateway(sandbox.client(prefix))


def list_schema(path: str) -> dict[str, Any]:
    """ListContentResponse (or ...AndApprovals) from the Content API spec, refs inlined."""
    if not SPEC.exists():
        pytest.skip(f"Content API spec not found at {SPEC}")
    spec = json.loads(SPEC.read_text())
    get = spec["paths"][path]["get"]
    schema = copy.deepcopy(get["responses"]["200"]["content"]["application/json"]["schema"])
    return dict(_nullable_to_json_schema({**schema, "components": spec["components"]}))


@pytest.mark.parametrize("prefix", ["", "/sandbox/twilio"])
def test_content_templates_are_listed_through_the_sdk(sandbox: SandboxServer, prefix: str) -> None:
    templates = gateway(sandbox, prefix).content_templates()

    by_sid = {t.sid: t for t in templates}
    assert list(by_sid) == [REMINDER, SHIPPED, POLISH, QUICK_REPLY]
    assert by_sid[REMINDER] == ContentTemplate(
        sid=REMINDER,
        friendly_name="appointment_reminder",
        language="en",
        variables={"1": "12/1", "2": "3pm"},
        body="Your appointment is coming up on {{1}} at {{2}}. "
        "Reply C to confirm or R to reschedule.",
        types=["twilio/text"],
    )
    assert by_sid[POLISH].language == "pl"
    assert by_sid[POLISH].body.startswith("Dzień dobry {{1}},")
    assert by_sid[QUICK_REPLY].types == ["twilio/quick-reply", "twilio/text"]
    assert "reply 1 for a courier" in by_sid[QUICK_REPLY].body


def test_template_sids_are_stable_across_restarts(sandbox: SandboxServer) -> None:
    assert [t.sid for t in TEMPLATES] == [REMINDER, SHIPPED, POLISH, QUICK_REPLY]


def test_sdk_follows_content_pages(sandbox: SandboxServer) -> None:
    client = sandbox.client()
    pages = client.content.v1.contents.page(page_size=3)
    assert [c.sid for c in pages] == [REMINDER, SHIPPED, POLISH]
    assert [c.sid for c in client.content.v1.contents.list(page_size=1)] == [
        REMINDER,
        SHIPPED,
        POLISH,
        QUICK_REPLY,
    ]


def test_content_lists_match_the_spec_and_show_whatsapp_approval(
    sandbox: SandboxServer, settings: Settings
) -> None:
    auth = (settings.account_sid, settings.auth_token)
    contents = httpx.get(f"{sandbox.base_url}/content/v1/Content?PageSize=2", auth=auth).json()
    jsonschema.Draft7Validator(list_schema("/v1/Content")).validate(contents)
    meta = contents["meta"]
    assert (meta["key"], meta["page"], meta["page_size"]) == ("contents", 0, 2)
    assert meta["next_page_url"] == "https://content.twilio.com/v1/Content?PageSize=2&Page=1"
    assert meta["previous_page_url"] is None

    approvals = httpx.get(f"{sandbox.base_url}/content/v1/ContentAndApprovals", auth=auth).json()
    jsonschema.Draft7Validator(list_schema("/v1/ContentAndApprovals")).validate(approvals)
    assert {c["approval_requests"]["status"] for c in approvals["contents"]} == {"approved"}
    assert approvals["meta"]["next_page_url"] is None


def test_content_fetch_and_unknown_sid(sandbox: SandboxServer, settings: Settings) -> None:
    fetched = sandbox.client().content.v1.contents(SHIPPED).fetch()
    assert (fetched.friendly_name, fetched.account_sid) == ("order_shipped", settings.account_sid)
    assert fetched.types == {
        "twilio/text": {"body": "Good news! Your order {{1}} has shipped and is on its way."}
    }

    auth = (settings.account_sid, settings.auth_token)
    missing = httpx.get(f"{sandbox.base_url}/content/v1/Content/HX{'0' * 32}", auth=auth)
    assert missing.status_code == 404
    assert missing.json()["code"] == 20404


def test_content_api_needs_the_account_credentials(
    sandbox: SandboxServer, settings: Settings
) -> None:
    answer = httpx.get(f"{sandbox.base_url}/content/v1/Content")
    assert answer.status_code == 401
    assert answer.json()["code"] == 20003
    with pytest.raises(GatewayError) as refused:
        TwilioGateway(sandbox.client(token="wrong-token")).content_templates()
    assert (refused.value.code, refused.value.status) == (20003, 401)


def send(sandbox: SandboxServer, content_sid: str, variables: str | None) -> str:
    sent = gateway(sandbox).create_message(
        to=CUSTOMER,
        from_=SENDER,
        messaging_service_sid=None,
        body=None,
        media_urls=None,
        content_sid=content_sid,
        content_variables=variables,
        status_callback=None,
    )
    return sent.sid


def test_message_with_a_content_sid_stores_the_rendered_text(sandbox: SandboxServer) -> None:
    full = send(sandbox, POLISH, json.dumps({"1": "Pani Zofio", "2": "14.06", "3": "9:30"}))
    # A missing variable takes the template's default, as Twilio does.
    partial = send(sandbox, REMINDER, json.dumps({"1": "Friday"}))

    client = sandbox.client()
    assert client.messages(full).fetch().body == (
        "Dzień dobry Pani Zofio, przypominamy o wizycie 14.06 o godz. 9:30. "
        "Odpowiedz TAK, aby potwierdzić."
    )
    assert client.messages(partial).fetch().body == (
        "Your appointment is coming up on Friday at 3pm. Reply C to confirm or R to reschedule."
    )
    with sandbox.control() as http:
        phone = http.get("/sandbox/phone/messages", params={"number": CUSTOMER}).json()
    assert [m["body"][:11] for m in phone["messages"]] == ["Dzień dobry", "Your appoin"]


def test_unknown_content_sid_is_refused_with_21655(sandbox: SandboxServer) -> None:
    with pytest.raises(GatewayError) as refused:
        send(sandbox, "HX" + "0" * 32, None)
    assert (refused.value.code, refused.value.status) == (21655, 400)
    with sandbox.control() as http:
        phone = http.get("/sandbox/phone/messages", params={"number": CUSTOMER}).json()
    assert phone["messages"] == []


@pytest.mark.parametrize("variables", ["not json", '["a"]', '{"1": ""}', '{"1": null}'])
def test_invalid_content_variables_are_refused_with_21656(
    sandbox: SandboxServer, variables: str
) -> None:
    with pytest.raises(GatewayError) as refused:
        send(sandbox, SHIPPED, variables)
    assert (refused.value.code, refused.value.status) == (21656, 400)


def test_content_urls_are_rebased_only_onto_an_emulator() -> None:
    emulator = PooledHttpClient("http://127.0.0.1:8000/sandbox/twilio", 5)
    live = PooledHttpClient("https://api.twilio.com", 5)
    content = "https://content.twilio.com/v1/Content?PageSize=50"
    api = "https://api.twilio.com/2010-04-01/Accounts/AC1.json"

    assert emulator.rebased(content) == (
        "http://127.0.0.1:8000/sandbox/twilio/content/v1/Content?PageSize=50"
    )
    assert (
        emulator.rebased(api) == "http://127.0.0.1:8000/sandbox/twilio/2010-04-01/Accounts/AC1.json"
    )
    assert emulator.rebased("https://media.example.com/x.jpg") == "https://media.example.com/x.jpg"
    assert (live.rebased(content), live.rebased(api)) == (content, api)
