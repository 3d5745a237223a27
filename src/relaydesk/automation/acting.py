"""An answer that may use tools: the model asks for calls, relaydesk makes them, the
model answers from what came back (OpenAI's tool calling, several rounds).

No database transaction is open while the model or a tool runs. Each call is kept on
the run as soon as it is made (`journal`), so a run retried after a crash does not call
a POST tool again: when the model asks for the same tool with the same arguments, the
kept result is given back instead. Every POST also carries an idempotency key derived
from the run, the tool and the arguments, so even a call cut short by the crash reaches
the business's API with the key it saw the first time.

Tools marked `confirm` are offered too, but calling one only asks the customer
(automation.confirming); built-in tools are carried out by relaydesk
(automation.builtins). In the test box (`scene.dry_run`) a confirm tool, a hand-over
and a scheduled message are only described.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from relaydesk.ai import providers
from relaydesk.ai.providers import ChatTurn, Completion, LLMConfig
from relaydesk.automation import builtins, confirming, tool_calls
from relaydesk.automation.builtins import Scene
from relaydesk.automation.confirming import Settled
from relaydesk.automation.models import AssistantTool
from relaydesk.automation.tool_calls import ToolResult
from relaydesk.core.config import get_settings
from relaydesk.core.vendor import retry

MAX_ROUNDS = 4  # model turns that may call tools; the next one must answer in words
MAX_CALLS = 8  # tool calls per answer, over every round


@dataclass(frozen=True)
class ToolCallRecord:
    """One call the model asked for and what came of it."""

    call_id: str
    name: str
    arguments: dict[str, Any]
    result: ToolResult
    state: str = "called"  # see schemas.ToolCallOut.state
    builtin: str | None = None


@dataclass
class Conversation:
    """The answer and every tool call made for it."""

    completion: Completion
    calls: list[ToolCallRecord] = field(default_factory=list)

    @property
    def hand_over(self) -> str | None:
        """The reason the model handed the conversation over (None: it did not)."""
        for call in self.calls:
            handed = call.state in ("called", "confirmed") and call.result.ok
            if call.builtin == builtins.HAND_OVER and handed:
                return str(call.arguments.get("reason") or "")
        return None


def recorded(call: ToolCallRecord) -> dict[str, Any]:
    """A call as the run keeps it (the runs API and the chat show it)."""
    return {
        "id": call.call_id,
        "name": call.name,
        "arguments": call.arguments,
        "status": call.result.status,
        "latency_ms": call.result.latency_ms,
        "excerpt": call.result.excerpt,
        "error": call.result.error,
        "state": call.state,
        "builtin": call.builtin,
    }


def offered(tools: list[AssistantTool]) -> list[AssistantTool]:
    """The tools the model may call now."""
    return [tool for tool in tools if tool.enabled]


def _spec(tool: AssistantTool) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        },
    }


def _arguments(raw: str | None) -> dict[str, Any] | None:
    try:
        parsed = json.loads(raw or "{}")
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _refused(text: str) -> ToolResult:
    return ToolResult(None, 0, f"The tool failed: {text}", error=text)


def carry_out(tool: AssistantTool, arguments: dict[str, Any], scene: Scene, key: str) -> ToolResult:
    """Make one call now (a confirm tool's asking is `confirming.asked`, not this)."""
    if tool.builtin is None:
        return tool_calls.call(tool, arguments, key=key)
    problem = tool_calls.check_arguments(tool, arguments)
    if problem:
        return _refused(problem)
    if tool.builtin == builtins.SEARCH:
        status, text = builtins.search(scene.knowledge_index, str(arguments["query"]))
    elif tool.builtin == builtins.SCHEDULE:
        status, text = builtins.schedule(
            scene, str(arguments["text"]), str(arguments["send_at"]), scene.source
        )
    elif tool.builtin == builtins.HAND_OVER:
        status, text = builtins.hand_over_result(str(arguments["reason"]), scene.dry_run)
    else:
        return _refused(f"unknown built-in tool {tool.builtin!r}")
    if status >= 300:
        return ToolResult(status, 0, text, error=f"HTTP {status}")
    return ToolResult(status, 0, text)


class _Replay:
    """The calls an earlier attempt of this run made, given back instead of made again."""

    def __init__(self, prior: Sequence[dict[str, Any]]) -> None:
        self.kept: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for item in prior:
            if item.get("state") in ("called", "awaiting_confirmation"):
                args = item.get("arguments") or {}
                self.kept.setdefault((item["name"], tool_calls.canonical(args)), []).append(item)

    def take(self, name: str, arguments: dict[str, Any]) -> ToolResult | None:
        found = self.kept.get((name, tool_calls.canonical(arguments)))
        if not found:
            return None
        item = found.pop(0)
        return ToolResult(
            item.get("status"),
            int(item.get("latency_ms") or 0),
            str(item.get("excerpt") or ""),
            error=item.get("error"),
        )


def _settled_messages(settled: Sequence[Settled]) -> list[dict[str, Any]]:
    """The confirmed (or refused) calls as the model's own earlier calls and results."""
    messages: list[dict[str, Any]] = []
    for number, item in enumerate(settled):
        call_id = f"call_confirmed_{item.row_id}_{number}"
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {
                            "name": item.tool.name,
                            "arguments": json.dumps(item.arguments, ensure_ascii=False),
                        },
                    }
                ],
            }
        )
        messages.append(
            {
                "role": "tool",
                "tool_call_id": call_id,
                "content": tool_calls.as_model_text(item.result),
            }
        )
    return messages


def settled_records(settled: Sequence[Settled]) -> list[ToolCallRecord]:
    """How the settled confirmations are kept on the run that settled them."""
    return [
        ToolCallRecord(
            f"confirmation_{item.row_id}",
            item.tool.name,
            item.arguments,
            item.result,
            item.state,
            item.tool.builtin,
        )
        for item in settled
    ]


def converse(
    config: LLMConfig,
    turns: list[ChatTurn],
    tools: list[AssistantTool],
    scene: Scene,
    *,
    prior: Sequence[dict[str, Any]] = (),
    settled: Sequence[Settled] = (),
    journal: Callable[[list[dict[str, Any]]], None] | None = None,
) -> Conversation:
    """Ask the model with `tools`; make the calls it asks for; its final answer."""
    import openai

    client = providers.openai_client(config)
    settings = get_settings()
    usable = {tool.name: tool for tool in offered(tools)}
    specs = [_spec(tool) for tool in usable.values()]
    messages: list[Any] = [providers.openai_message(turn) for turn in turns]
    messages.extend(_settled_messages(settled))
    records: list[ToolCallRecord] = settled_records(settled)
    first = len(records)  # the calls of this answer's rounds come after the settled ones
    replay = _Replay(prior)
    seen: dict[tuple[str, str], int] = {}
    prompt = completion = 0

    def _one(call_id: str, name: str, raw: str | None) -> ToolCallRecord:
        arguments = _arguments(raw)
        tool = usable.get(name)
        if tool is None:
            return ToolCallRecord(
                call_id,
                name,
                arguments or {},
                _refused(f"there is no tool named {name!r}"),
                "refused",
            )
        if arguments is None:
            return ToolCallRecord(
                call_id,
                name,
                {},
                _refused("the arguments are not a JSON object"),
                "refused",
                tool.builtin,
            )
        if len(records) - first >= MAX_CALLS:
            return ToolCallRecord(
                call_id,
                name,
                arguments,
                _refused(f"at most {MAX_CALLS} calls per answer"),
                "refused",
                tool.builtin,
            )
        same = (name, tool_calls.canonical(arguments))
        nth = seen[same] = seen.get(same, -1) + 1
        # The test box is no run: its calls get keys of their own, never a run's.
        scope = f"test:{secrets.token_hex(8)}" if scene.dry_run else f"run:{scene.run_id}"
        key = tool_calls.idempotency_key(scope, name, arguments, nth)
        if tool.confirm:
            state = "dry_run" if scene.dry_run else "awaiting_confirmation"
            result = confirming.asked(tool, arguments, scene, key)
            return ToolCallRecord(call_id, name, arguments, result, state, tool.builtin)
        kept = replay.take(name, arguments)
        if kept is not None:
            return ToolCallRecord(call_id, name, arguments, kept, "called", tool.builtin)
        dry = scene.dry_run and tool.builtin in (builtins.HAND_OVER, builtins.SCHEDULE)
        result = carry_out(tool, arguments, scene, key)
        state = (
            "dry_run"
            if dry
            else (
                "refused"
                if result.status is None
                and result.error
                and result.error.startswith("bad arguments")
                else "called"
            )
        )
        return ToolCallRecord(call_id, name, arguments, result, state, tool.builtin)

    round_ = 0
    while True:
        last = round_ >= MAX_ROUNDS or len(records) - first >= MAX_CALLS or not specs
        round_ += 1
        choice = {"tools": specs, "tool_choice": "none" if last else "auto"} if specs else {}

        def ask(choice: dict[str, Any] = choice) -> Any:
            try:
                return providers.chat_completion(
                    client,
                    model=config.model,
                    messages=messages,
                    temperature=config.temperature,
                    max_tokens=config.max_tokens,
                    **choice,
                )
            except openai.APIError as exc:
                raise providers.openai_error(config, exc) from None

        # A transient failure asks the model again for this round only: the tools
        # already called are not called again.
        response = retry(
            ask,
            attempts=settings.llm_retries + 1,
            backoff=providers.llm_backoff(settings.llm_retry_backoff_seconds),
            label=providers.describe(config),
        )
        if response.usage:
            prompt += response.usage.prompt_tokens
            completion += response.usage.completion_tokens
        message = response.choices[0].message if response.choices else None
        asked = list(message.tool_calls or []) if message is not None and not last else []
        if not asked:
            text = ((message.content if message else None) or "").strip()
            if not text:
                raise providers.empty_answer(config)
            done = Completion(text, prompt, completion, response.model or config.model, "openai")
            return Conversation(done, records)
        messages.append(
            {
                "role": "assistant",
                "content": message.content if message else None,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {
                            "name": call.function.name,
                            "arguments": call.function.arguments,
                        },
                    }
                    for call in asked
                ],
            }
        )
        for call in asked:
            record = _one(call.id, call.function.name, call.function.arguments)
            records.append(record)
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": call.id,
                    "content": tool_calls.as_model_text(record.result),
                }
            )
        if journal is not None and not scene.dry_run:
            journal([recorded(r) for r in records])
