"""Reading conversations: a page of a period, one call with its transcript, months with data."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from sqlalchemy import ColumnElement, Select, exists, func, select
from sqlalchemy.orm import Session

from relaydesk.contacts.models import Contact
from relaydesk.core.errors import Invalid, NotFound
from relaydesk.core.i18n import N_
from relaydesk.inbox.profile_schemas import CallItem
from relaydesk.inbox.profiles import register_section
from relaydesk.voicebot.kpis import day_of, in_period
from relaydesk.voicebot.models import VoiceConversation

C = VoiceConversation
OUTCOMES = ("success", "failure", "unknown")
MAX_PER_PAGE = 100

# The columns of a conversation as the list, the detail and the CSV show them (no details).
ITEM_FIELDS = (
    "conversation_id",
    "agent_id",
    "agent_name",
    "start_time",
    "duration_secs",
    "direction",
    "status",
    "call_successful",
    "customer_number",
    "agent_number",
    "rating",
    "likes",
    "dislikes",
    "cost",
    "title",
    "summary",
    "transferred",
    "dropout",
    "has_error",
)


def _has_contact() -> ColumnElement[bool]:
    """Whether a messaging contact (any channel) has the caller's number."""
    return exists().where(Contact.phone == C.customer_number)


def filtered(
    *, start: datetime, end: datetime, agent_id: str | None, outcome: str | None
) -> ColumnElement[bool]:
    """The WHERE clause of the conversation table's filters."""
    where = in_period(start, end, agent_id)
    if outcome:
        if outcome not in OUTCOMES:
            raise Invalid(
                N_("outcome must be one of %(outcomes)s"),
                params={"outcomes": ", ".join(OUTCOMES)},
                field="outcome",
            )
        where = where & (C.call_successful == outcome)
    return where


def item_query(where: ColumnElement[bool]) -> Select[Any]:
    """The item columns plus whether a contact has the number, newest first."""
    columns = [getattr(C, name) for name in ITEM_FIELDS]
    return (
        select(*columns, _has_contact().label("has_contact"))
        .where(where)
        .order_by(C.start_time.desc(), C.id.desc())
    )


def item(row: Any) -> dict[str, Any]:
    """One row of item_query as the API shows it."""
    data = {name: getattr(row, name) for name in ITEM_FIELDS}
    number = data["customer_number"]
    data["chat_url"] = f"/chat/{quote(number, safe='')}" if number and row.has_contact else None
    return data


def list_conversations(
    session: Session,
    *,
    start: datetime,
    end: datetime,
    agent_id: str | None,
    outcome: str | None,
    page: int = 1,
    per_page: int = 25,
) -> dict[str, Any]:
    """One page of the period's conversations, newest first, with the total count."""
    if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
        raise Invalid(
            N_("page must be ≥ 1 and per_page between 1 and %(max)s"), params={"max": MAX_PER_PAGE}
        )
    where = filtered(start=start, end=end, agent_id=agent_id, outcome=outcome)
    total = session.scalar(select(func.count()).select_from(C).where(where)) or 0
    rows = session.execute(item_query(where).limit(per_page).offset((page - 1) * per_page))
    return {
        "items": [item(row) for row in rows],
        "total": int(total),
        "page": page,
        "per_page": per_page,
    }


def get_conversation(session: Session, conversation_id: str) -> dict[str, Any]:
    """One conversation with its transcript, evaluation and data collection results."""
    row = session.execute(
        item_query(C.conversation_id == conversation_id).add_columns(
            C.details, C.termination_reason
        )
    ).first()
    if row is None:
        raise NotFound(N_("Conversation %(id)s is not synced"), params={"id": conversation_id[:64]})
    details: dict[str, Any] = row.details if isinstance(row.details, dict) else {}
    analysis = _dict(details.get("analysis"))
    metadata = _dict(details.get("metadata"))
    transcript = details.get("transcript")
    return {
        **item(row),
        "transcript": [
            {
                "role": str(turn.get("role") or ""),
                "message": turn.get("message"),
                "time_in_call_secs": turn.get("time_in_call_secs"),
            }
            for turn in (transcript if isinstance(transcript, list) else [])
            if isinstance(turn, dict)
        ],
        "evaluation": [
            {
                "criterion": str(found.get("criteria_id") or key),
                "result": str(found.get("result") or "unknown"),
                "rationale": found.get("rationale"),
            }
            for key, found in _entries(analysis.get("evaluation_criteria_results"))
        ],
        "data_collection": [
            {
                "id": str(found.get("data_collection_id") or key),
                "value": found.get("value"),
                "rationale": found.get("rationale"),
            }
            for key, found in _entries(analysis.get("data_collection_results"))
        ],
        "termination_reason": metadata.get("termination_reason") or row.termination_reason,
    }


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _entries(value: Any) -> list[tuple[str, dict[str, Any]]]:
    return [(str(k), v) for k, v in _dict(value).items() if isinstance(v, dict)]


def months(session: Session) -> list[dict[str, Any]]:
    """Months ("YYYY-MM", UTC) that have conversations, newest first, with their counts."""
    month = day_of(session, length=7).label("month")
    rows = session.execute(select(month, func.count()).group_by(month).order_by(month.desc())).all()
    return [{"month": str(m), "conversations": int(n)} for m, n in rows]


def agents(session: Session) -> list[dict[str, Any]]:
    """The agents that have conversations (for the agent filter), with their name."""
    latest = func.max(C.start_time)
    rows = session.execute(
        select(C.agent_id, func.max(C.agent_name), func.count(), latest)
        .group_by(C.agent_id)
        .order_by(latest.desc())
    ).all()
    return [
        {"agent_id": agent_id, "agent_name": name, "conversations": int(count)}
        for agent_id, name, count, _ in rows
    ]


def calls_of(session: Session, number: str, limit: int) -> tuple[int, list[CallItem]]:
    """A customer's calls (by the caller's number), newest first, and how many (one query)."""
    fields = list(CallItem.model_fields)
    total = func.count().over().label("total")
    rows = session.execute(
        select(*(getattr(C, name) for name in fields), total)
        .where(C.customer_number == number)
        .order_by(C.start_time.desc(), C.id.desc())
        .limit(limit)
    ).all()
    items = [CallItem(**{name: getattr(row, name) for name in fields}) for row in rows]
    return (int(rows[0].total) if rows else 0), items


register_section("calls", calls_of)
