"""API shapes of the voice-bot analytics: settings, sync, KPIs, conversations, archives."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from relaydesk.core.credentials import KeyField
from relaydesk.jobs.schemas import JobOut
from relaydesk.voicebot.models import SyncStatus

Outcome = Literal["success", "failure", "unknown"]


class SettingsIn(BaseModel):
    """What to change; a field left out is kept."""

    model_config = ConfigDict(extra="forbid")

    agent_ids: list[str] | str | None = Field(
        None, description="ElevenLabs agent ids: a list, or text separated by commas or spaces"
    )
    api_key: KeyField = Field(
        None,
        max_length=500,
        description="The ElevenLabs API key (write-only; never returned). Left out: kept; "
        'null or "": removed.',
    )


class SettingsOut(BaseModel):
    """The settings in effect; the key only masked."""

    agent_ids: list[str]
    api_key_set: bool
    api_key_masked: str | None = Field(description="The key's last 4 characters, or null")
    api_key_source: Literal["env", "panel", "none"] = Field(
        description="ELEVENLABS_API_KEY (env) wins over the key saved in the panel"
    )
    api_key_unreadable: bool = Field(
        description="A saved key cannot be decrypted (the SECRET_KEY changed)"
    )
    base_url: str = Field(description="ELEVENLABS_BASE_URL")


class TestConnectionIn(BaseModel):
    """Try a key or agents before saving them (the saved ones when left out)."""

    model_config = ConfigDict(extra="forbid")

    agent_ids: list[str] | str | None = None
    api_key: str | None = None


class TestConnectionOut(BaseModel):
    """Whether ElevenLabs accepted the key, and what it says about each agent."""

    ok: bool
    detail: str
    agents: list[dict[str, Any]] = Field(
        default_factory=list, description="Per agent: {agent_id, ok, detail}"
    )


class SyncIn(BaseModel):
    """The days to sync (UTC, inclusive); default from the first of this month to today."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    date_from: date | None = Field(None, alias="from")
    date_to: date | None = Field(None, alias="to")


class SyncRunOut(BaseModel):
    """A sync run as the sync log shows it (GET /api/voicebot/sync-logs)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    trigger: str
    status: SyncStatus
    range_from: datetime | None
    range_to: datetime | None
    agent_ids: list[str]
    listed: int
    fetched: int
    created: int
    updated: int
    error: str | None
    job_id: int | None
    started_at: datetime
    finished_at: datetime | None

    @field_validator("agent_ids", mode="before")
    @classmethod
    def _no_agents(cls, value: Any) -> Any:
        return [] if value is None else value


class JobStarted(BaseModel):
    """A background job; poll `status_url` for its progress."""

    job: JobOut
    status_url: str


class Period(BaseModel):
    """[from, to) in UTC."""

    model_config = ConfigDict(populate_by_name=True)

    from_: datetime = Field(alias="from", serialization_alias="from")
    to: datetime


class DirectionKpi(BaseModel):
    """Calls of one direction."""

    total: int
    successful: int
    failed: int


class DurationKpi(BaseModel):
    """Call length in seconds."""

    avg: float
    min: int
    max: int
    short: int = Field(description="Calls shorter than 30 s")
    long: int = Field(description="Calls longer than 300 s")


class CostKpi(BaseModel):
    """ElevenLabs cost in credits."""

    total: float
    avg: float = Field(description="Per conversation that reports a cost")


class EvaluationKpi(BaseModel):
    """Results of one evaluation criterion."""

    success: int
    failure: int
    unknown: int
    pass_rate: float = Field(description="success / (success + failure) × 100")


class CountRate(BaseModel):
    """A count and its share of all conversations (%)."""

    count: int
    rate: float


class DayKpi(BaseModel):
    """One UTC day with calls."""

    date: str = Field(description="YYYY-MM-DD (UTC)")
    total: int
    successful: int
    conversion_rate: float
    avg_duration: float
    cost: float


class KpisOut(BaseModel):
    """The KPIs of a period; `definitions` says how each one is computed."""

    period: Period
    total: int
    successful: int
    failed: int
    unknown: int
    conversion_rate: float = Field(description="successful / total × 100 (1 decimal)")
    direction: dict[Literal["inbound", "outbound"], DirectionKpi]
    duration: DurationKpi
    avg_agent_messages: float
    cost: CostKpi
    errors: int
    error_rate: float
    avg_rating: float | None = Field(description="1–5; null when no conversation has a rating")
    rating_count: int
    likes: int
    dislikes: int
    evaluation: dict[str, EvaluationKpi] = Field(description="Per criterion id")
    transfers: CountRate
    dropouts: CountRate
    daily: list[DayKpi]
    definitions: dict[str, str] = Field(description="KPI name → how it is computed")


class ConversationItem(BaseModel):
    """One call as the table and the CSV show it."""

    conversation_id: str
    agent_id: str
    agent_name: str | None
    start_time: datetime
    duration_secs: int
    direction: str | None = Field(description="inbound | outbound | null (no phone data)")
    status: str
    call_successful: Outcome
    customer_number: str | None = Field(description="E.164")
    agent_number: str | None
    rating: float | None
    likes: int
    dislikes: int
    cost: float | None
    title: str | None
    summary: str | None
    transferred: bool
    dropout: bool
    has_error: bool
    chat_url: str | None = Field(
        description="The panel's chat with this customer, when a messaging contact has the number"
    )


class ConversationPage(BaseModel):
    """A page of calls, newest first."""

    items: list[ConversationItem]
    total: int
    page: int
    per_page: int


class TranscriptTurn(BaseModel):
    """One turn of the dialogue."""

    role: str = Field(description="user | agent")
    message: str | None
    time_in_call_secs: float | None


class EvaluationResult(BaseModel):
    """One evaluation criterion of a call."""

    criterion: str
    result: str
    rationale: str | None


class DataCollected(BaseModel):
    """One data-collection item of a call."""

    id: str
    value: Any
    rationale: str | None


class ConversationDetail(ConversationItem):
    """A call with its transcript and analysis."""

    transcript: list[TranscriptTurn]
    evaluation: list[EvaluationResult]
    data_collection: list[DataCollected]
    termination_reason: str | None


class MonthOut(BaseModel):
    """A month (UTC) that has conversations."""

    month: str = Field(description="YYYY-MM")
    conversations: int


class AgentOut(BaseModel):
    """An agent that has conversations."""

    agent_id: str
    agent_name: str | None
    conversations: int


class ArchiveOut(BaseModel):
    """A month's CSV archive."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    month: str
    filename: str
    rows: int
    size: int = Field(description="Bytes")
    sha256: str
    trigger: Literal["auto", "manual"]
    created_at: datetime
    download_url: str
