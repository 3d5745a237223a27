"""REST routes of business hours: everyone reads them, admins replace them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from relaydesk.core.config import get_settings
from relaydesk.core.db import utcnow
from relaydesk.deps import Admin, SessionDep, Viewer, WriteSessionDep
from relaydesk.inbox import hours, hours_settings

router = APIRouter(tags=["inbox"])

Time = Annotated[str, Field(min_length=1, max_length=5, examples=["09:00"])]
Interval = Annotated[
    list[Time],
    Field(min_length=2, max_length=2, description='[open, close] as "HH:MM"; close may be 24:00'),
]
Day = Annotated[list[Interval], Field(max_length=hours.MAX_INTERVALS)]
Holiday = Annotated[str, Field(min_length=1, max_length=10, examples=["2026-12-25"])]

_DAYS_DESCRIPTION = (
    "The opening intervals of each weekday, Monday first and Sunday last: up to "
    f"{hours.MAX_INTERVALS} [open, close] pairs a day, each open before it closes, none "
    "overlapping (stored in order); [] closes the day"
)
_OFFICE = [[["09:00", "17:00"]]] * 5 + [[], []]


class BusinessHoursIn(BaseModel):
    """PUT /api/business-hours: the whole schedule (what is left out takes its default)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        description="Outside the hours customers get the out-of-office message (once per "
        "conversation per closed period) and the panel's header shows the state"
    )
    timezone: str = Field(
        min_length=1, max_length=64, description="IANA name", examples=["Europe/Warsaw"]
    )
    days: list[Day] = Field(
        min_length=7, max_length=7, description=_DAYS_DESCRIPTION, examples=[_OFFICE]
    )
    holidays: list[Holiday] = Field(
        default_factory=list,
        max_length=hours.MAX_HOLIDAYS,
        description="Dates (YYYY-MM-DD, local) closed all day",
    )
    message: str | None = Field(
        default=None,
        max_length=hours.MAX_MESSAGE,
        description="The out-of-office answer; left out: the installation's default text; "
        '"" sends none (outside the hours the classic auto-reply answers, if on)',
    )


class BusinessHoursOut(BaseModel):
    """The schedule, and whether it is open now by it."""

    enabled: bool
    timezone: str
    days: list[list[list[str]]] = Field(description=_DAYS_DESCRIPTION)
    holidays: list[str]
    message: str
    open_now: bool = Field(description="Open at this moment by the schedule (even when off)")
    closes_at: datetime | None = Field(
        description="While open: when it closes (null: not within a year)"
    )
    opens_at: datetime | None = Field(
        description="While closed: when it opens (null: not within a year)"
    )


def _out(config: hours.BusinessHours) -> BusinessHoursOut:
    now = hours.state(config, utcnow())
    return BusinessHoursOut(
        enabled=config.enabled,
        timezone=config.timezone,
        days=config.days,
        holidays=config.holidays,
        message=config.message,
        open_now=now.open,
        closes_at=now.change if now.open else None,
        opens_at=None if now.open else now.change,
    )


@router.get("/api/business-hours", response_model=BusinessHoursOut)
def read_business_hours(principal: Viewer, session: SessionDep) -> BusinessHoursOut:
    """The business hours, the out-of-office message, and whether it is open now."""
    return _out(hours_settings.read(session))


@router.put("/api/business-hours", response_model=BusinessHoursOut)
def replace_business_hours(
    payload: BusinessHoursIn, principal: Admin, session: WriteSessionDep
) -> BusinessHoursOut:
    """Replace the business hours as a whole (audited).

    Outside them the out-of-office message answers in the classic auto-reply's place,
    once per conversation per closed period; the assistant and AI replies, when on,
    answer around the clock instead. Each weekday is checked: times as HH:MM, each
    interval opening before it closes, none overlapping.
    """
    message = payload.message
    if message is None:
        message = hours.default(get_settings().language).message
    config = hours.BusinessHours(
        enabled=payload.enabled,
        timezone=payload.timezone,
        days=payload.days,
        holidays=payload.holidays,
        message=message,
    )
    return _out(hours_settings.save(session, config, principal.actor))
