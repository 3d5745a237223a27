"""Tool definitions (issue 23, part 1): admins give an assistant or the global AI the
business's own HTTP APIs; everything is checked when saved, and the secret header's
value is write-only (encrypted at rest, never in an answer or the audit log)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from relaydesk.automation.models import AssistantTool
from relaydesk.core.config import get_settings
from relaydesk.core.crypto import decrypt
from relaydesk.core.models import AuditEntry

SECRET = "sk_live_do-not-show-0123456789"
ORDER = {
    "name": "order_status",
    "description": "Where is the customer's order? Needs the order number, e.g. A-123.",
    "method": "GET",
    "url": "https://93.184.216.34/api/orders/{order_id}",
    "parameters": {
        "type": "object",
        "properties": {"order_id": {"type": "string", "description": "e.g. A-123"}},
        "required": ["order_id"],
    },
    "secret_header": {"name": "X-Api-Key", "value": SECRET},
}


@pytest.fixture
def assistant(api: httpx.Client) -> int:
    made = api.post("/api/assistants", json={"name": "Sklep"})
    assert made.status_code == 201, made.text
    return int(made.json()["id"])


def test_an_admin_defines_a_tool_and_its_secret_is_never_shown_again(
    api: httpx.Client, assistant: int, db: Any
) -> None:
    made = api.post(f"/api/assistants/{assistant}/tools", json=ORDER)
    assert made.status_code == 201, made.text
    tool = made.json()
    assert tool["secret_header_name"] == "X-Api-Key" and tool["assistant_id"] == assistant
    assert SECRET not in made.text
    listed = api.get(f"/api/assistants/{assistant}/tools")
    assert [t["name"] for t in listed.json()] == ["order_status"] and SECRET not in listed.text
    stored = db.scalar(select(AssistantTool).where(AssistantTool.id == tool["id"]))
    assert (
        SECRET not in stored.secret_header_value and decrypt(stored.secret_header_value) == SECRET
    )
    # Changed without a new secret: the header stays; null removes it.
    changed = api.patch(
        f"/api/assistants/{assistant}/tools/{tool['id']}", json={"confirm": True, "method": "POST"}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["confirm"] is True and changed.json()["secret_header_name"] == "X-Api-Key"
    removed = api.patch(
        f"/api/assistants/{assistant}/tools/{tool['id']}", json={"secret_header": None}
    )
    assert removed.json()["secret_header_name"] is None
    entries = db.scalars(
        select(AuditEntry).where(AuditEntry.action.like("tool.%")).order_by(AuditEntry.id)
    ).all()
    assert [e.action for e in entries] == ["tool.created", "tool.changed", "tool.changed"]
    assert all(SECRET not in str(e.details) for e in entries)
    assert api.delete(f"/api/assistants/{assistant}/tools/{tool['id']}").status_code == 204
    assert api.get(f"/api/assistants/{assistant}/tools").json() == []


def test_the_global_ai_has_its_own_tools_and_names_are_unique_per_owner(
    api: httpx.Client, assistant: int
) -> None:
    assert api.post("/api/ai/tools", json=ORDER).status_code == 201
    assert api.post("/api/ai/tools", json=ORDER).status_code == 409
    # The same name for an assistant is another tool.
    assert api.post(f"/api/assistants/{assistant}/tools", json=ORDER).status_code == 201
    ai_tool = api.get("/api/ai/tools").json()[0]
    # Neither side reaches the other's tools.
    assert api.delete(f"/api/assistants/{assistant}/tools/{ai_tool['id']}").status_code == 404
    assert api.get("/api/assistants/999999/tools").status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "order status"}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"name": "zamówienie"}, "name"),
        ({"method": "DELETE"}, "method"),
        ({"parameters": {"type": "string"}}, "parameters"),
        ({"parameters": {"type": "object", "properties": {}}}, "parameters"),
        ({"parameters": {"type": "object", "properties": {"a": {"type": "nope"}}}}, "parameters"),
        ({"url": "https://93.184.216.34/orders/{number}"}, "url"),
        ({"url": "https://{order_id}.example.com/"}, "not the host"),
        ({"url": "ftp://shop.example.com/"}, "url"),
        ({"url": "https://93.184.216.34/a b"}, "url"),
        ({"url": "https://93.184.216.34/\x00"}, "url"),
        ({"url": "http://127.0.0.1:8000/api/settings"}, "url"),
        ({"url": "http://169.254.169.254/latest/meta-data/"}, "url"),
        ({"url": "http://[::1]/"}, "url"),
        ({"url": "http://10.0.0.5/orders/{order_id}"}, "url"),
        ({"secret_header": {"name": "Host", "value": "x"}}, "secret_header"),
        ({"secret_header": {"name": "X-Key\r\nX-Evil", "value": "x"}}, "secret_header"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_bad_tools_are_refused_and_nothing_is_stored(
    api: httpx.Client, assistant: int, change: dict[str, Any], field: str
) -> None:
    answer = api.post(f"/api/assistants/{assistant}/tools", json={**ORDER, **change})
    assert answer.status_code == 422, answer.text
    assert field in answer.text
    assert api.get(f"/api/assistants/{assistant}/tools").json() == []


def test_internal_addresses_need_the_setting(
    api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    internal = {**ORDER, "url": "http://127.0.0.1:9000/orders/{order_id}"}
    assert api.post("/api/ai/tools", json=internal).status_code == 422
    monkeypatch.setattr(get_settings(), "tools_allow_private_networks", True)
    assert api.post("/api/ai/tools", json=internal).status_code == 201


def test_only_admins_see_or_change_tools(
    api: httpx.Client,
    assistant: int,
    server: Any,
    make_token: Callable[[str], str],
) -> None:
    assert api.post("/api/ai/tools", json=ORDER).status_code == 201
    for role in ("operator", "viewer"):
        headers = {"Authorization": f"Bearer {make_token(role)}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as other:
            assert other.get("/api/ai/tools").status_code == 403
            assert other.post(f"/api/assistants/{assistant}/tools", json=ORDER).status_code == 403
    with httpx.Client(base_url=server.url, timeout=30) as anonymous:
        assert anonymous.get("/api/ai/tools").status_code == 401


def test_at_most_twenty_tools_each(api: httpx.Client) -> None:
    for n in range(20):
        made = api.post("/api/ai/tools", json={**ORDER, "name": f"tool_{n}"})
        assert made.status_code == 201, made.text
    assert api.post("/api/ai/tools", json={**ORDER, "name": "one_more"}).status_code == 409
