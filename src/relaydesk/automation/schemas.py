"""API shapes of the automation settings, assistants and number bindings."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from relaydesk.core.credentials import KeyField


class AutoReplyIn(BaseModel):
    """Classic auto-reply: a switch and the text sent to every new message."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool
    message: str = Field("", max_length=1600)


class AutoReplyOut(BaseModel):
    """The classic auto-reply and since when it answers."""

    model_config = ConfigDict(from_attributes=True)

    enabled: bool
    message: str
    enabled_at: datetime | None
    suspended_by_ai: bool


class AIConfigIn(BaseModel):
    """AI auto-reply settings; omitted fields keep their stored value.

    `api_key` is write-only: a string sets it, "" or null clears it, absent keeps it.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None
    provider: Literal["openai", "local"] | None = None
    model: str | None = Field(None, min_length=1, max_length=100)
    temperature: float | None = Field(None, ge=0, le=2)
    system_prompt: str | None = Field(None, max_length=8000)
    history_limit: int | None = Field(None, ge=1, le=100)
    max_reply_segments: int | None = Field(None, ge=1, le=10)
    api_key: KeyField = Field(None, max_length=500)
    base_url: str | None = Field(None, max_length=500)
    fallback_message: str | None = Field(None, max_length=1600)
    knowledge_index: str | None = Field(
        None, max_length=64, description='A knowledge index to ground answers on; "" for none'
    )
    voice_replies: bool | None = Field(
        None, description="Answer a customer's voice note with a synthesised voice note"
    )


class UsageOut(BaseModel):
    """Running token totals for one provider and model."""

    model_config = ConfigDict(from_attributes=True)

    provider: str
    model: str
    calls: int
    prompt_tokens: int
    completion_tokens: int


class AIConfigOut(BaseModel):
    """The AI settings in effect; the key is never shown, only whether and where it is set."""

    enabled: bool
    provider: str
    model: str
    temperature: float
    system_prompt: str
    history_limit: int
    max_reply_segments: int
    base_url: str | None
    fallback_message: str
    knowledge_index: str | None
    voice_replies: bool = False
    enabled_at: datetime | None
    api_key_set: bool
    api_key_source: Literal["env", "panel", "none"]
    api_key_unreadable: bool
    base_url_source: Literal["env", "panel", "none"]
    local_model_path: str | None
    usage: list[UsageOut]


class TestIn(BaseModel):
    """A message to answer as if the customer had sent it; nothing is sent."""

    model_config = ConfigDict(extra="forbid")

    participant: str | None = Field(None, max_length=40)
    message: str = Field(..., min_length=1, max_length=1600)


class Turn(BaseModel):
    """One turn of the context the model read."""

    model_config = ConfigDict(from_attributes=True)

    role: str
    content: str


class TestOut(BaseModel):
    """What the model would answer, and what it read."""

    reply: str
    segments: int
    provider: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    context: list[Turn]
    new_session: bool | None = None
    tool_calls: list[ToolCallOut] = Field(
        default_factory=list,
        description="the tools the model called (a confirm tool only as a dry run)",
    )


class RulesIn(BaseModel):
    """Rules for every automatic answer; omitted fields keep their stored value."""

    model_config = ConfigDict(extra="forbid")

    help_message: str | None = Field(None, max_length=1600)
    start_message: str | None = Field(None, max_length=1600)
    takeover_minutes: int | None = Field(None, ge=0, le=7 * 24 * 60)
    loop_guard_per_hour: int | None = Field(None, ge=1, le=1000)
    debounce_seconds: float | None = Field(None, ge=0, le=120)


class RulesOut(BaseModel):
    """Rules for every automatic answer."""

    model_config = ConfigDict(from_attributes=True)

    help_message: str
    start_message: str
    takeover_minutes: int
    loop_guard_per_hour: int
    debounce_seconds: float


class AssistantIn(BaseModel):
    """An assistant's fields (document 002's first SMS and SMS prompt, and more)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, max_length=100)
    first_message: str = Field("", max_length=1000)
    system_prompt: str = Field("", max_length=8000)
    model: str | None = Field(None, max_length=100)
    temperature: float | None = Field(None, ge=0, le=2)
    session_timeout_minutes: int = Field(30, ge=1, le=1440)
    end_keywords: list[str] | None = Field(None, max_length=30)
    knowledge_index: str | None = Field(None, max_length=64)
    voice_replies: bool = Field(
        False, description="Answer a customer's voice note with a synthesised voice note"
    )


class AssistantOut(BaseModel):
    """An assistant and the numbers it answers on."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    first_message: str
    system_prompt: str
    model: str | None
    temperature: float | None
    session_timeout_minutes: int
    end_keywords: list[str]
    knowledge_index: str | None
    voice_replies: bool = False
    numbers: list[str]
    created_at: datetime
    updated_at: datetime

    @field_validator("end_keywords", mode="before")
    @classmethod
    def _no_keywords(cls, value: Any) -> Any:
        return [] if value is None else value


class PhoneNumberIn(BaseModel):
    """Bind one of our numbers to an assistant."""

    model_config = ConfigDict(extra="forbid")

    number: str = Field(..., min_length=3, max_length=40)
    assistant_id: int


class PhoneNumberOut(BaseModel):
    """A number and the assistant answering on it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    number: str
    assistant_id: int
    assistant_name: str
    bound_at: datetime


class ConversationAutomationIn(BaseModel):
    """The per-conversation bot switch."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool


class KnowledgePassageOut(BaseModel):
    """A passage of a knowledge index an answer used."""

    title: str
    url: str
    category: str
    score: float
    excerpt: str


class ToolCallOut(BaseModel):
    """One tool call of an answer: what the model asked and what came back."""

    id: str
    name: str
    arguments: dict[str, Any]
    status: int | None = Field(description="the tool's HTTP status; null when none came")
    latency_ms: int
    excerpt: str = Field(description="the start of the answer (or what went wrong)")
    error: str | None
    builtin: str | None = Field(None, description="the built-in tool called, if it was one")
    state: Literal[
        "called", "refused", "awaiting_confirmation", "confirmed", "declined", "dry_run"
    ] = Field(
        "called",
        description="called; refused (not called: unknown tool, bad arguments, a limit); "
        "awaiting_confirmation (a confirm tool: the customer was asked); confirmed (called "
        "after the customer's yes); declined (the customer said no); dry_run (the test box)",
    )


class RunOut(BaseModel):
    """What the pipeline did about one inbound message."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    inbound_message_id: int
    participant: str
    state: str
    outcome: str | None
    detail: str | None
    reply_message_id: int | None
    provider: str | None
    model: str | None
    prompt_tokens: int
    completion_tokens: int
    knowledge: list[KnowledgePassageOut] | None = Field(
        None, description="The knowledge passages the answer was grounded on"
    )
    tool_calls: list[ToolCallOut] | None = Field(
        None, description="The tools the model called for the answer, in order"
    )
    created_at: datetime
    finished_at: datetime | None


class ConversationAutomationOut(BaseModel):
    """Whether the bot answers a customer now, and why not."""

    participant: str
    enabled: bool
    paused_until: datetime | None
    opted_out_at: datetime | None
    opted_in_at: datetime | None
    last_run: RunOut | None
    last_failure: RunOut | None


class SecretHeaderIn(BaseModel):
    """A header sent with every call of a tool, such as an API key (write-only)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, examples=["X-Api-Key"])
    value: str = Field(min_length=1, max_length=4000)


BuiltinName = Literal["hand_over", "schedule_message", "search_knowledge"]


class ToolIn(BaseModel):
    """A tool as an admin defines it: an HTTP API, or one of relaydesk's built-in tools
    (`builtin`: then only the name, description, confirm and enabled may be given)."""

    model_config = ConfigDict(extra="forbid")

    builtin: BuiltinName | None = Field(
        default=None,
        description="hand_over: the bot stops and a person is called in; schedule_message: "
        "a message to this customer later; search_knowledge: the knowledge index",
    )
    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        examples=["order_status"],
        description="required for an HTTP tool; a built-in one is named after itself",
    )
    description: str | None = Field(
        default=None, max_length=2000, description="what the model reads"
    )
    method: Literal["GET", "POST"] | None = Field(default=None, description="GET by default")
    url: str | None = Field(
        default=None,
        min_length=1,
        max_length=2000,
        description="http(s); {placeholders} in the path or query are filled from arguments",
        examples=["https://shop.example.com/api/orders/{order_id}"],
    )
    parameters: dict[str, Any] | None = Field(
        default=None, description="JSON Schema of the arguments: an object"
    )
    secret_header: SecretHeaderIn | None = None
    confirm: bool = Field(default=False, description="the customer confirms before the call")
    enabled: bool = True


class ToolPatch(BaseModel):
    """A change to a tool; `secret_header: null` removes the header."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=64)
    description: str | None = Field(default=None, max_length=2000)
    method: Literal["GET", "POST"] | None = None
    url: str | None = Field(default=None, min_length=1, max_length=2000)
    parameters: dict[str, Any] | None = None
    secret_header: SecretHeaderIn | None = None
    confirm: bool | None = None
    enabled: bool | None = None


class ToolOut(BaseModel):
    """A tool as the API shows it: the secret header's name, never its value."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    assistant_id: int | None
    builtin: str | None
    name: str
    description: str
    method: str | None
    url: str | None
    parameters: dict[str, Any]
    secret_header_name: str | None
    confirm: bool
    enabled: bool
    created_at: datetime
    updated_at: datetime


class ToolTryIn(BaseModel):
    """Example arguments to call a tool with, from the panel's "try it"."""

    model_config = ConfigDict(extra="forbid")

    arguments: dict[str, Any] = Field(default_factory=dict)


class ToolTryOut(BaseModel):
    """What the tool answered (the first MAX_TRY_CHARS characters)."""

    status: int | None = Field(description="the HTTP status; null when no answer came")
    latency_ms: int
    content: str
    error: str | None
    truncated: bool
