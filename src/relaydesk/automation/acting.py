"""An answer that may use tools: the model asks for calls, relaydesk makes them, the
model answers from what came back (OpenAI's tool calling, several rounds).

No database transaction is open here: the caller holds none while the model or a tool
runs. The tools offered are the enabled ones without `confirm`: a tool that changes
something waits for the confirmation flow (next), so it is not offered yet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from relaydesk.ai import providers
from relaydesk.ai.providers import ChatTurn, Completion, LLMConfig
from relaydesk.automation import tool_calls
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


@dataclass
class Conversation:
    """The answer and every tool call made for it."""

    completion: Completion
    calls: list[ToolCallRecord] = field(default_factory=list)


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
    }


def offered(tools: list[AssistantTool]) -> list[AssistantTool]:
    """The tools the model may call now."""
    return [tool for tool in tools if tool.enabled and not tool.confirm]


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


def converse(
    config: LLMConfig, turns: list[ChatTurn], tools: list[AssistantTool], run_id: int
) -> Conversation:
    """Ask the model with `tools`; make the calls it asks for; its final answer."""
    import openai

    client = providers.openai_client(config)
    settings = get_settings()
    usable = {tool.name: tool for tool in offered(tools)}
    specs = [_spec(tool) for tool in usable.values()]
    messages: list[Any] = [providers.openai_message(turn) for turn in turns]
    records: list[ToolCallRecord] = []
    prompt = completion = 0
    # Typed loosely: the SDK's overloads cannot see through the optional tools below.
    create: Any = client.chat.completions.create
    round_ = 0
    while True:
        last = round_ >= MAX_ROUNDS or len(records) >= MAX_CALLS or not specs
        round_ += 1
        choice = {"tools": specs, "tool_choice": "none" if last else "auto"} if specs else {}

        def ask(choice: dict[str, Any] = choice) -> Any:
            try:
                return create(
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
            name = call.function.name
            arguments = _arguments(call.function.arguments)
            tool = usable.get(name)
            if tool is None:
                result = _refused(f"there is no tool named {name!r}")
            elif arguments is None:
                result = _refused("the arguments are not a JSON object")
            elif len(records) >= MAX_CALLS:
                result = _refused(f"at most {MAX_CALLS} calls per answer")
            else:
                key = tool_calls.idempotency_key(run_id, call.id)
                result = tool_calls.call(tool, arguments, key=key)
            records.append(ToolCallRecord(call.id, name, arguments or {}, result))
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": call.id,
                    "content": tool_calls.as_model_text(result),
                }
            )
