"""An answer that uses a tool: the fake model asks for the shop's order status, relaydesk
calls the shop on loopback, and the model's answer is built from what came back."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from relaydesk.ai.providers import ChatTurn, LLMConfig
from relaydesk.automation import acting, tool_calls
from relaydesk.automation.builtins import Scene
from relaydesk.automation.models import AssistantTool
from relaydesk.core.config import get_settings
from relaydesk.core.crypto import encrypt
from tests.automation.conftest import answers, finished
from tests.fakes.openai import FakeOpenAI
from tests.fakes.shop import API_KEY, ORDER_SCHEMA, Shop


@pytest.fixture
def model() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    fake.start()
    yield fake
    fake.stop()


def order_tool(shop: Shop, **extra: Any) -> AssistantTool:
    return AssistantTool(
        owner="ai",
        name="order_status",
        description="The status of an order by its number, e.g. A-123",
        method="GET",
        url=f"{shop.base}/api/orders/{{order_id}}",
        parameters=ORDER_SCHEMA,
        secret_header_name="X-Api-Key",
        secret_header_value=encrypt(API_KEY),
        **{"enabled": True, "confirm": False, **extra},
    )


def shop_assistant(body: dict[str, Any]) -> Any:
    """Asks for the order's status once, then answers from the tool's result."""
    results = [m["content"] for m in body["messages"] if m["role"] == "tool"]
    if not results:
        return {"tool_calls": [{"name": "order_status", "arguments": {"order_id": "A-123"}}]}
    return f"Sprawdziłam: {results[-1]}"


def scene(run_id: int) -> Scene:
    """A run outside any conversation (the model and the shop only)."""
    return Scene(run_id, None, None, None)


def config(model: FakeOpenAI) -> LLMConfig:
    return LLMConfig(
        provider="openai", model="gpt-4o-mini", api_key="sk-test", base_url=model.base_url
    )


def test_the_model_calls_the_shop_once_and_answers_from_it(shop: Shop, model: FakeOpenAI) -> None:
    model.reply_with(shop_assistant)
    turns = [ChatTurn("system", "Jesteś asystentem sklepu."), ChatTurn("user", "Gdzie jest A-123?")]
    done = acting.converse(config(model), turns, [order_tool(shop)], scene(7))
    assert "w drodze" in done.completion.text
    [call] = done.calls
    assert (call.name, call.arguments, call.result.status) == (
        "order_status",
        {"order_id": "A-123"},
        200,
    )
    [(method, path, _, headers, _)] = shop.seen
    assert (method, path, headers["x-api-key"]) == ("GET", "/api/orders/A-123", API_KEY)
    first, second = model.requests
    assert [t["function"]["name"] for t in first["tools"]] == ["order_status"]
    assert second["messages"][-1]["role"] == "tool"
    assert done.completion.prompt_tokens > 0


def test_a_disabled_tool_is_not_offered(shop: Shop, model: FakeOpenAI) -> None:
    model.reply_with(lambda body: "Bez narzędzi" if "tools" not in body else "?")
    turns = [ChatTurn("user", "Gdzie jest A-123?")]
    done = acting.converse(config(model), turns, [order_tool(shop, enabled=False)], scene(7))
    assert done.completion.text == "Bez narzędzi" and done.calls == [] and shop.seen == []


def test_a_model_that_keeps_calling_is_made_to_answer_and_unknown_tools_fail_softly(
    shop: Shop, model: FakeOpenAI
) -> None:
    def stubborn(body: dict[str, Any]) -> Any:
        if body.get("tool_choice") == "none":
            return "Koniec."
        return {
            "tool_calls": [
                {"name": "nope", "arguments": {}},
                {"name": "order_status", "arguments": {"order_id": "A-124"}},
            ]
        }

    model.reply_with(stubborn)
    done = acting.converse(config(model), [ChatTurn("user", "?")], [order_tool(shop)], scene(9))
    assert done.completion.text == "Koniec."
    assert len(model.requests) == acting.MAX_ROUNDS + 1
    assert len(done.calls) == acting.MAX_ROUNDS * 2
    assert {c.result.error for c in done.calls if c.name == "nope"} == {
        "there is no tool named 'nope'"
    }
    assert len(shop.seen) == acting.MAX_ROUNDS  # only the real tool reached the shop
    assert {c.state for c in done.calls if c.name == "nope"} == {"refused"}


def test_a_customer_asks_for_an_order_and_the_answer_comes_from_the_shop(
    api: Any,
    db: Any,
    inbound: Callable[..., str],
    ai_on: Callable[..., Any],
    openai_fake: FakeOpenAI,
    shop: Shop,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """End to end: a signed webhook, the AI with a tool defined through the API, the
    shop on loopback, the answer at the emulator, the call in the runs API; the secret
    header reaches the shop and nothing else (no answer, no log line at DEBUG)."""
    caplog.set_level(logging.DEBUG)
    # (Logging's setup quiets httpx to WARNING once any test has run it.)
    caplog.set_level(logging.DEBUG, logger="httpx")
    ai_on()
    tool = {
        "name": "order_status",
        "description": "The status of an order by its number, e.g. A-123",
        "url": f"{shop.base}/api/orders/{{order_id}}",
        "parameters": ORDER_SCHEMA,
        "secret_header": {"name": "X-Api-Key", "value": API_KEY},
    }
    assert api.post("/api/ai/tools", json=tool).status_code == 201
    openai_fake.reply_with(shop_assistant)
    sid = inbound("+48600300001", "Dzień dobry, gdzie jest moja paczka A-123?")
    run = finished(db, sid)
    assert run.outcome == "ai", run.detail
    [answer] = answers(db, "+48600300001")
    assert "w drodze" in answer.body
    assert len(shop.seen) == 1 and shop.seen[0][3]["x-api-key"] == API_KEY
    runs = api.get("/api/automation/runs")
    [call] = runs.json()[0]["tool_calls"]
    assert (call["name"], call["arguments"], call["status"]) == (
        "order_status",
        {"order_id": "A-123"},
        200,
    )
    assert "w drodze" in call["excerpt"] and API_KEY not in runs.text
    assert "/api/orders/A-123" in caplog.text  # the call was logged, its secret was not
    assert API_KEY not in caplog.text


def test_a_transient_model_failure_is_asked_again_without_calling_the_tool_again(
    shop: Shop, model: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "llm_retry_backoff_seconds", 0.0)
    real_call = tool_calls.call

    def call_then_break_the_model(*args: Any, **kwargs: Any) -> tool_calls.ToolResult:
        result = real_call(*args, **kwargs)
        model.fail_next(503)  # the round after the tool call fails once
        return result

    monkeypatch.setattr(tool_calls, "call", call_then_break_the_model)
    model.reply_with(shop_assistant)
    model.fail_next(503)  # and so does the first round
    turns = [ChatTurn("user", "Gdzie jest A-123?")]
    done = acting.converse(config(model), turns, [order_tool(shop)], scene(3))
    assert "w drodze" in done.completion.text
    assert len(shop.seen) == 1  # the shop was asked once
    assert len(model.requests) == 4  # two rounds, each failed once and asked again
