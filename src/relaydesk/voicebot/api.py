"""REST routes of the voice-bot analytics: /api/voicebot."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse, Response, StreamingResponse

from relaydesk.core.errors import Invalid
from relaydesk.core.i18n import N_
from relaydesk.core.names import content_disposition
from relaydesk.deps import Admin, Id, Operator, SessionDep, Viewer, WriteSessionDep
from relaydesk.jobs.models import Job
from relaydesk.jobs.service import view as job_view
from relaydesk.voicebot import export, kpis, queries, settings
from relaydesk.voicebot import service as syncs
from relaydesk.voicebot.client import test_connection as try_connection
from relaydesk.voicebot.models import VoiceArchive
from relaydesk.voicebot.schemas import (
    AgentOut,
    ArchiveOut,
    ConversationDetail,
    ConversationPage,
    JobStarted,
    KpisOut,
    MonthOut,
    Outcome,
    SettingsIn,
    SettingsOut,
    SyncIn,
    TestConnectionIn,
    TestConnectionOut,
)

router = APIRouter(prefix="/api/voicebot", tags=["voicebot"])

MonthParam = Annotated[
    str | None, Query(max_length=7, description="YYYY-MM (UTC); default the current month")
]
FromParam = Annotated[date | None, Query(alias="from", description="First day (UTC)")]
ToParam = Annotated[date | None, Query(alias="to", description="Last day (UTC), inclusive")]
OutcomeParam = Annotated[Outcome | None, Query(description="call_successful")]
BAD_PERIOD: dict[int | str, dict[str, Any]] = {
    422: {
        "description": "Not a month, 'from' after 'to', both kinds given, or an agent id "
        "that is not one"
    }
}


def period(
    month: MonthParam = None, date_from: FromParam = None, date_to: ToParam = None
) -> tuple[datetime, datetime]:
    """The period of `month` or `from`/`to` (a request dependency)."""
    return kpis.period_of(month, date_from, date_to)


PeriodDep = Annotated[tuple[datetime, datetime], Depends(period)]


def agent_filter(
    agent_id: Annotated[
        str | None,
        Query(description="One agent's calls only: its ElevenLabs id (letters, digits, - and _)"),
    ] = None,
) -> str | None:
    """The agent filter (a request dependency); empty means every agent."""
    return settings.check_agent_id(agent_id) if agent_id else None


AgentParam = Annotated[str | None, Depends(agent_filter)]


# --- Settings and sync -----------------------------------------------------------------------


@router.get("/settings", response_model=SettingsOut)
def get_settings(principal: Admin, session: SessionDep) -> Any:
    """The agents and the API key's state (masked; the key itself is never returned)."""
    return settings.view(session)


@router.post("/settings", response_model=SettingsOut)
def save_settings(payload: SettingsIn, principal: Admin, session: WriteSessionDep) -> Any:
    """Change the agents and/or the API key (a field left out is kept)."""
    given = payload.model_fields_set
    view = settings.save(
        session,
        agent_ids=payload.agent_ids if "agent_ids" in given else None,
        api_key=payload.api_key if "api_key" in given else False,
        actor=principal.actor,
    )
    return view


@router.post(
    "/test-connection",
    response_model=TestConnectionOut,
    responses={409: {"description": "The stored key cannot be sent (enter it again)"}},
)
def test_connection(
    principal: Admin, session: SessionDep, payload: TestConnectionIn | None = None
) -> Any:
    """Ask ElevenLabs whether the key (given, or saved) works and the agents exist."""
    config = settings.read(session)
    if payload is not None and payload.api_key:
        config = dataclasses.replace(config, api_key=payload.api_key.strip())
    if payload is not None and payload.agent_ids is not None:
        config = dataclasses.replace(config, agent_ids=settings.clean_agent_ids(payload.agent_ids))
    session.rollback()  # no transaction left open while ElevenLabs answers
    return try_connection(config)


def _started(job: Job) -> dict[str, Any]:
    return {"job": job_view(job), "status_url": f"/api/jobs/{job.id}"}


@router.post(
    "/sync",
    response_model=JobStarted,
    status_code=202,
    responses={409: {"description": "A sync is already under way, or nothing is configured"}},
)
def sync(principal: Operator, session: WriteSessionDep, payload: SyncIn | None = None) -> Any:
    """Fetch the conversations of the days asked for (default this month) in the background."""
    payload = payload or SyncIn()
    if payload.date_from and payload.date_to and payload.date_from > payload.date_to:
        raise Invalid(N_("'from' is after 'to'"), params={}, field="from")
    job = syncs.start(
        session,
        trigger="manual",
        date_from=payload.date_from,
        date_to=payload.date_to,
        actor=principal.actor,
    )
    return _started(job)


@router.post(
    "/refetch-details",
    response_model=JobStarted,
    status_code=202,
    responses={409: {"description": "A sync is already under way, or nothing is configured"}},
)
def refetch_details(principal: Operator, session: WriteSessionDep) -> Any:
    """Fetch again the details of conversations that have no phone numbers."""
    job = syncs.start_refetch(session, principal.actor)
    return _started(job)


@router.get("/sync-logs", response_model=list[dict[str, Any]])
def sync_logs(
    principal: Viewer, session: SessionDep, limit: int = Query(50, ge=1, le=500)
) -> list[dict[str, Any]]:
    """The latest sync runs first: when, what was asked, counts and error."""
    # The OpenAPI document has always called these plain objects; SyncRunOut is their
    # shape, dumped here so that the document stays as it is.
    return [run.model_dump() for run in syncs.logs(session, limit)]


# --- KPIs and conversations ------------------------------------------------------------------


@router.get("/kpis", response_model=KpisOut, responses=BAD_PERIOD)
def get_kpis(principal: Viewer, session: SessionDep, span: PeriodDep, agent_id: AgentParam) -> Any:
    """The KPIs of the conversations that started in the period (UTC)."""
    start, end = span
    return kpis.compute(session, start=start, end=end, agent_id=agent_id)


@router.get("/conversations", response_model=ConversationPage, responses=BAD_PERIOD)
def list_conversations(
    principal: Viewer,
    session: SessionDep,
    span: PeriodDep,
    agent_id: AgentParam,
    outcome: OutcomeParam = None,
    page: int = Query(1, ge=1, le=100_000),
    per_page: int = Query(25, ge=1, le=queries.MAX_PER_PAGE),
) -> Any:
    """A page of the period's conversations, newest first."""
    start, end = span
    return queries.list_conversations(
        session,
        start=start,
        end=end,
        agent_id=agent_id,
        outcome=outcome,
        page=page,
        per_page=per_page,
    )


@router.get(
    "/conversations/{conversation_id}",
    response_model=ConversationDetail,
    responses={404: {"description": "No such conversation"}},
)
def get_conversation(conversation_id: str, principal: Viewer, session: SessionDep) -> Any:
    """One conversation with its transcript, evaluation and data-collection results."""
    return queries.get_conversation(session, conversation_id)


@router.get("/months", response_model=list[MonthOut])
def list_months(principal: Viewer, session: SessionDep) -> Any:
    """Months with conversations, newest first."""
    return queries.months(session)


@router.get("/agents", response_model=list[AgentOut])
def list_agents(principal: Viewer, session: SessionDep) -> Any:
    """Agents with conversations (for the agent filter)."""
    return queries.agents(session)


# --- CSV and archives ------------------------------------------------------------------------


@router.get(
    "/export-csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}, **BAD_PERIOD},
)
def export_csv(
    principal: Operator,
    span: PeriodDep,
    agent_id: AgentParam,
    outcome: OutcomeParam = None,
) -> Response:
    """The period's conversations (the table's filters) as CSV: UTF-8 with BOM, for Excel."""
    start, end = span
    body = export.stream_csv(start=start, end=end, agent_id=agent_id, outcome=outcome)
    name = export.csv_filename(start, end, agent_id)
    return StreamingResponse(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": content_disposition(name)},
    )


@router.post(
    "/archive",
    response_model=ArchiveOut,
    status_code=201,
    responses={422: {"description": "Not a month, or no conversations in it"}},
)
def archive(
    principal: Operator,
    session: WriteSessionDep,
    month: str = Query(..., max_length=7, description="YYYY-MM"),
) -> VoiceArchive:
    """Archive a month to CSV now (again: the file is replaced)."""
    return export.archive_month(session, month, "manual")


@router.get("/archives", response_model=list[ArchiveOut])
def list_archives(principal: Viewer, session: SessionDep) -> list[VoiceArchive]:
    """The monthly archives, newest month first."""
    return export.list_archives(session)


@router.get(
    "/archives/{archive_id}/download",
    response_class=FileResponse,
    responses={200: {"content": {"text/csv": {}}}, 404: {"description": "No such archive"}},
)
def download_archive(archive_id: Id, principal: Operator, session: SessionDep) -> Response:
    """One archive's CSV file."""
    path, name = export.download(session, archive_id)
    return FileResponse(
        path,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": content_disposition(name)},
    )
