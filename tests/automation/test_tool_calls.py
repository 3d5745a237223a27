"""Calling a tool against a real shop API on loopback: the right request with the secret
header, an idempotency key per run and call, and every failure turned into something
the model can explain (issue 23, part 2: the HTTP call; the model loop comes next)."""

from __future__ import annotations

from typing import Any

import pytest

from relaydesk.automation import tool_calls
from relaydesk.automation.models import AssistantTool
from relaydesk.core.config import get_settings
from relaydesk.core.crypto import encrypt
from tests.fakes.shop import API_KEY, Shop

ORDER_SCHEMA = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}, "lang": {"type": "string"}},
    "required": ["order_id"],
}


def tool(url: str, method: str = "GET", schema: dict[str, Any] | None = None) -> AssistantTool:
    return AssistantTool(
        owner="ai",
        name="t",
        method=method,
        url=url,
        parameters=schema or {"type": "object", "properties": {"x": {"type": "string"}}},
        secret_header_name="X-Api-Key",
        secret_header_value=encrypt(API_KEY),
    )


def test_an_order_lookup_sends_one_get_with_the_argument_and_the_secret_header(
    shop: Shop,
) -> None:
    order = tool(f"{shop.base}/api/orders/{{order_id}}", schema=ORDER_SCHEMA)
    result = tool_calls.call(order, {"order_id": "A-123", "lang": "pl"})
    assert result.ok and "w drodze" in result.content
    [(method, path, query, headers, _)] = shop.seen
    assert (method, path, query) == ("GET", "/api/orders/A-123", {"lang": ["pl"]})
    assert headers["x-api-key"] == API_KEY and "idempotency-key" not in headers


def test_an_argument_cannot_change_the_path_or_the_host(shop: Shop) -> None:
    order = tool(f"{shop.base}/api/orders/{{order_id}}", schema=ORDER_SCHEMA)
    result = tool_calls.call(order, {"order_id": "../../admin?x=1#"})
    assert result.status == 404
    assert shop.seen[0][1] == "/api/orders/..%2F..%2Fadmin%3Fx%3D1%23"


def test_a_post_carries_the_same_idempotency_key_when_repeated(shop: Shop) -> None:
    book = tool(
        f"{shop.base}/api/bookings",
        method="POST",
        schema={"type": "object", "properties": {"slot": {"type": "string"}}},
    )
    key = tool_calls.idempotency_key("run:41", "book", {"slot": "2026-12-07 10:00"})
    first = tool_calls.call(book, {"slot": "2026-12-07 10:00"}, key=key)
    again = tool_calls.call(book, {"slot": "2026-12-07 10:00"}, key=key)  # after a crash
    assert first.status == again.status == 201
    assert shop.bookings == {key: 2}  # one key: the shop books once
    assert shop.seen[0][4] == {"slot": "2026-12-07 10:00"}
    # The key follows what is called, whatever id the model gave the call or the
    # order it wrote the arguments in; another run, slot or repetition gets another.
    assert tool_calls.idempotency_key("run:41", "book", {"slot": "2026-12-07 10:00"}) == key
    a, b = {"a": 1, "b": 2}, {"b": 2, "a": 1}
    assert tool_calls.idempotency_key("run:1", "t", a) == tool_calls.idempotency_key(
        "run:1", "t", b
    )
    others = {
        tool_calls.idempotency_key("run:42", "book", {"slot": "2026-12-07 10:00"}),
        tool_calls.idempotency_key("run:41", "book", {"slot": "2026-12-07 11:00"}),
        tool_calls.idempotency_key("run:41", "book", {"slot": "2026-12-07 10:00"}, nth=1),
    }
    assert key not in others and len(others) == 3


def test_failures_become_answers_the_model_can_explain(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    boom = tool_calls.call(tool(f"{shop.base}/api/boom"), {})
    assert boom.status == 500 and not boom.ok and "database down" in boom.content
    big = tool_calls.call(tool(f"{shop.base}/api/big"), {})
    assert big.ok and big.truncated and len(big.content) < tool_calls.MAX_BYTES + 100
    moved = tool_calls.call(tool(f"{shop.base}/api/moved"), {})
    assert moved.status == 302 and not moved.ok  # redirects are not followed
    bad = tool_calls.call(tool(f"{shop.base}/api/orders/{{order_id}}", schema=ORDER_SCHEMA), {})
    assert bad.status is None and "bad arguments" in (bad.error or "")
    monkeypatch.setattr(tool_calls, "TIMEOUT", 0.2)
    slow = tool_calls.call(tool(f"{shop.base}/api/slow"), {})
    assert slow.status is None and "no answer within" in (slow.error or "")
    closed = tool_calls.call(tool("http://127.0.0.1:1/nothing"), {})
    assert closed.status is None and "could not connect" in (closed.error or "")
    assert len(shop.seen) == 4  # the bad arguments never left relaydesk


def test_internal_addresses_are_refused_at_call_time_by_default(shop: Shop) -> None:
    get_settings().tools_allow_private_networks = False
    result = tool_calls.call(tool(f"{shop.base}/api/boom"), {})
    assert result.status is None and "TOOLS_ALLOW_PRIVATE_NETWORKS" in (result.error or "")
    assert shop.seen == []
