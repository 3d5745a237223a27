"""The voice-bot KPIs of a period, computed in SQL (the same numbers on SQLite and PostgreSQL).

Two aggregate queries, each a range scan of the start_time (or agent_id, start_time)
index: sums and counts per UTC day (the period's figures add them up), and the
evaluation results per criterion.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.orm import Session

from relaydesk.core.db import utcnow
from relaydesk.core.errors import Invalid
from relaydesk.voicebot.extract import DROPOUT_TEXT, ERROR_TEXT, N_, TRANSFER_TOOLS
from relaydesk.voicebot.models import VoiceConversation, VoiceEvaluation

MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
MAX_RANGE_DAYS = 366
SHORT_CALL_SECS = 30
LONG_CALL_SECS = 300

C = VoiceConversation


MAX_CRITERIA = 200


def period_of(
    month: str | None, date_from: date | None, date_to: date | None
) -> tuple[datetime, datetime]:
    """[start, end) in UTC of a month "YYYY-MM" or of from…to (inclusive days); default now."""
    if month and (date_from or date_to):
        raise Invalid(N_("Give either month or from/to, not both"), params={}, field="month")
    if month:
        found = MONTH.match(month.strip())
        if not found:
            raise Invalid(
                N_("'%(month)s' is not a month; use YYYY-MM"),
                params={"month": month[:20]},
                field="month",
            )
        first = date(int(found.group(1)), int(found.group(2)), 1)
        return _midnight(first), _midnight(_next_month(first))
    if date_from is None and date_to is None:
        first = utcnow().date().replace(day=1)
        return _midnight(first), _midnight(_next_month(first))
    if date_from is None:
        assert date_to is not None
        date_from = date_to.replace(day=1)
    if date_to is None:
        date_to = max(date_from, utcnow().date())
    if date_from > date_to:
        raise Invalid(N_("'from' is after 'to'"), params={}, field="from")
    if (date_to - date_from).days >= MAX_RANGE_DAYS:
        raise Invalid(
            N_("The range is longer than %(days)s days"),
            params={"days": MAX_RANGE_DAYS},
            field="to",
        )
    return _midnight(date_from), _midnight(date_to + timedelta(days=1))


def month_period(month: str) -> tuple[datetime, datetime]:
    """[start, end) of a month "YYYY-MM" (422 when it is not one)."""
    return period_of(month, None, None)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _next_month(first: date) -> date:
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def in_period(start: datetime, end: datetime, agent_id: str | None) -> ColumnElement[bool]:
    """The WHERE clause of a period (and an agent): a range on an indexed column pair."""
    clause = and_(C.start_time >= start, C.start_time < end)
    if agent_id:
        clause = and_(C.agent_id == agent_id, clause)
    return clause


def day_of(session: Session, *, length: int = 10) -> ColumnElement[str]:
    """The UTC date ("YYYY-MM-DD", or "YYYY-MM" with length 7) of start_time, in SQL."""
    if session.get_bind().dialect.name == "postgresql":
        pattern = "YYYY-MM-DD" if length == 10 else "YYYY-MM"
        return func.to_char(func.timezone("UTC", C.start_time), pattern)
    # SQLite stores UTC datetimes as "YYYY-MM-DD HH:MM:SS.ffffff" text.
    return func.substr(C.start_time, 1, length)


def _count(condition: ColumnElement[bool]) -> ColumnElement[int]:
    # COUNT(*) FILTER (WHERE …): the same on SQLite (3.30+) and PostgreSQL, and cheaper
    # than SUM(CASE …) on SQLite.
    return func.count().filter(condition)


def _is_error() -> ColumnElement[bool]:
    return or_(C.has_error.is_(True), C.status == "failed")


# Per-day sums and counts: the period's figures are these added up (a month has ≤ 31
# rows), so the conversations of the period are read once.
_SUMS: tuple[str, ...] = (
    "total",
    "successful",
    "failed",
    "in_total",
    "in_successful",
    "in_failed",
    "out_total",
    "out_successful",
    "out_failed",
    "duration",
    "short",
    "long",
    "agent_messages",
    "costs",
    "errors",
    "rating_sum",
    "ratings",
    "likes",
    "dislikes",
    "transfers",
    "dropouts",
)


def _daily_query(session: Session, where: ColumnElement[bool]) -> Select[*tuple[Any, ...]]:
    success = C.call_successful == "success"
    failure = C.call_successful == "failure"
    inbound = C.direction == "inbound"
    outbound = C.direction == "outbound"
    day = C.day.label("day")
    return (
        select(
            day,
            func.count().label("total"),
            _count(success).label("successful"),
            _count(failure).label("failed"),
            _count(inbound).label("in_total"),
            _count(and_(inbound, success)).label("in_successful"),
            _count(and_(inbound, failure)).label("in_failed"),
            _count(outbound).label("out_total"),
            _count(and_(outbound, success)).label("out_successful"),
            _count(and_(outbound, failure)).label("out_failed"),
            func.sum(C.duration_secs).label("duration"),
            func.min(C.duration_secs).label("min_duration"),
            func.max(C.duration_secs).label("max_duration"),
            _count(C.duration_secs < SHORT_CALL_SECS).label("short"),
            _count(C.duration_secs > LONG_CALL_SECS).label("long"),
            func.sum(C.agent_messages).label("agent_messages"),
            func.sum(C.cost).label("cost"),
            func.count(C.cost).label("costs"),
            _count(_is_error()).label("errors"),
            func.sum(C.rating).label("rating_sum"),
            func.count(C.rating).label("ratings"),
            func.sum(C.likes).label("likes"),
            func.sum(C.dislikes).label("dislikes"),
            _count(C.transferred.is_(True)).label("transfers"),
            _count(C.dropout.is_(True)).label("dropouts"),
        )
        .where(where)
        .group_by(day)
        .order_by(day)
    )


def rate(part: int, whole: int) -> float:
    """part / whole × 100 with one decimal; 0 when whole is 0."""
    return round(part * 100 / whole, 1) if whole else 0.0


def _avg(total: float, count: int, digits: int) -> float:
    return round(total / count, digits) if count else 0.0


def compute(
    session: Session, *, start: datetime, end: datetime, agent_id: str | None
) -> dict[str, Any]:
    """Every KPI of the conversations that started in [start, end) (of one agent)."""
    # The day bounds let the query stream along the (agent, day, …) covering index.
    last_day = (end - timedelta(microseconds=1)).strftime("%Y-%m-%d")
    where = and_(
        in_period(start, end, agent_id), C.day >= start.strftime("%Y-%m-%d"), C.day <= last_day
    )
    days = [row._mapping for row in session.execute(_daily_query(session, where))]
    t = {name: sum(int(d[name] or 0) for d in days) for name in _SUMS}
    cost = sum(float(d["cost"] or 0) for d in days)
    rating_sum = sum(float(d["rating_sum"] or 0) for d in days)
    total = t["total"]
    return {
        "period": {"from": start, "to": end},
        "total": total,
        "successful": t["successful"],
        "failed": t["failed"],
        "unknown": total - t["successful"] - t["failed"],
        "conversion_rate": rate(t["successful"], total),
        "direction": {
            name: {
                "total": t[f"{key}_total"],
                "successful": t[f"{key}_successful"],
                "failed": t[f"{key}_failed"],
            }
            for name, key in (("inbound", "in"), ("outbound", "out"))
        },
        "duration": {
            "avg": _avg(t["duration"], total, 1),
            "min": min((int(d["min_duration"]) for d in days), default=0),
            "max": max((int(d["max_duration"]) for d in days), default=0),
            "short": t["short"],
            "long": t["long"],
        },
        "avg_agent_messages": _avg(t["agent_messages"], total, 1),
        "cost": {"total": round(cost, 2), "avg": _avg(cost, t["costs"], 2)},
        "errors": t["errors"],
        "error_rate": rate(t["errors"], total),
        "avg_rating": round(rating_sum / t["ratings"], 2) if t["ratings"] else None,
        "rating_count": t["ratings"],
        "likes": t["likes"],
        "dislikes": t["dislikes"],
        "evaluation": _evaluation(session, start, end, agent_id),
        "transfers": {"count": t["transfers"], "rate": rate(t["transfers"], total)},
        "dropouts": {"count": t["dropouts"], "rate": rate(t["dropouts"], total)},
        "daily": [
            {
                "date": str(d["day"]),
                "total": int(d["total"]),
                "successful": int(d["successful"]),
                "conversion_rate": rate(int(d["successful"]), int(d["total"])),
                "avg_duration": _avg(int(d["duration"] or 0), int(d["total"]), 1),
                "cost": round(float(d["cost"] or 0), 2),
            }
            for d in days
        ],
        "definitions": definitions(),
    }


def _evaluation(
    session: Session, start: datetime, end: datetime, agent_id: str | None
) -> dict[str, dict[str, Any]]:
    E = VoiceEvaluation
    found: dict[str, dict[str, int]] = {}
    for criterion in _criteria(session):
        tally = {"success": 0, "failure": 0, "unknown": 0}
        for result in tally:
            where = and_(
                E.criterion == criterion,
                E.result == result,
                E.start_time >= start,
                E.start_time < end,
            )
            if agent_id:
                where = and_(where, E.agent_id == agent_id)
            tally[result] = int(session.scalar(select(func.count()).where(where)) or 0)
        if any(tally.values()):
            found[criterion] = tally
    return {
        criterion: {
            **tally,
            "pass_rate": rate(tally["success"], tally["success"] + tally["failure"]),
        }
        for criterion, tally in sorted(found.items())
    }


def _criteria(session: Session) -> list[str]:
    """Every evaluation criterion ever stored, found by skipping along the index.

    A loose index scan: each step asks the index for the next criterion after the last
    one (a seek), so it costs a few seeks per criterion, not a read of every result.
    """
    E = VoiceEvaluation
    found: list[str] = []
    last: str | None = session.scalar(select(func.min(E.criterion)))
    while last is not None and len(found) < MAX_CRITERIA:
        found.append(last)
        last = session.scalar(select(func.min(E.criterion)).where(E.criterion > last))
    return found


def definitions(gettext: Callable[[str], str] = lambda text: text) -> dict[str, str]:
    """How each KPI is computed, one plain sentence each (the panel's tooltips).

    The API answers in English; the panel passes its language's `gettext`.
    """
    values = {
        "short": SHORT_CALL_SECS,
        "long": LONG_CALL_SECS,
        "seconds": SHORT_CALL_SECS,
        "tools": " / ".join(sorted(TRANSFER_TOOLS)),
    }
    texts = {
        "total": N_("Conversations that started in the period (UTC)."),
        "successful": N_(
            "Conversations that ElevenLabs' analysis marked call_successful = success."
        ),
        "failed": N_("Conversations that ElevenLabs' analysis marked call_successful = failure."),
        "unknown": N_("Conversations whose analysis gave no verdict (call_successful = unknown)."),
        "conversion_rate": N_("Successful conversations / all conversations × 100."),
        "direction": N_(
            "Inbound and outbound phone calls, each with its successful and failed ones; "
            "calls without phone data count in neither."
        ),
        "duration": N_(
            "Call length (call_duration_secs): average, shortest, longest, short calls under "
            "%(short)d s and long calls over %(long)d s."
        ),
        "avg_agent_messages": N_(
            "Average number of transcript turns spoken by the bot per conversation."
        ),
        "cost": N_(
            "ElevenLabs cost (metadata.cost, in credits): the sum over the period and the "
            "average per conversation that reports one."
        ),
        "errors": ERROR_TEXT,
        "error_rate": N_("Conversations with an error / all conversations × 100."),
        "avg_rating": N_(
            "Average caller rating (1–5) over the conversations that have one; likes and "
            "dislikes are counted separately."
        ),
        "evaluation": N_(
            "Per evaluation criterion: success, failure and unknown results; pass rate = "
            "success / (success + failure) × 100."
        ),
        "transfers": N_(
            "Conversations in which the bot called the %(tools)s tool, and their share of all "
            "conversations."
        ),
        "dropouts": DROPOUT_TEXT,
        "daily": N_(
            "Per UTC day with calls: conversations, successful ones, conversion rate, average "
            "duration and cost."
        ),
    }
    return {key: gettext(text) % values for key, text in texts.items()}
