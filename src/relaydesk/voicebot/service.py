"""Voice-bot syncs as the API and the schedule start and show them: queue, refuse, list.

The work itself (listing and fetching ElevenLabs conversations, resumable) is the job
runners' in sync.py.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime

from sqlalchemy import select
from sqlalchemy.orm import Session

from relaydesk.core.audit import record
from relaydesk.core.db import utcnow
from relaydesk.core.errors import Conflict, Invalid, NotConfigured
from relaydesk.core.i18n import N_
from relaydesk.jobs import service as jobs
from relaydesk.jobs.models import Job
from relaydesk.voicebot import settings
from relaydesk.voicebot.models import SyncStatus, VoiceSyncRun
from relaydesk.voicebot.schemas import SyncRunOut

SYNC = "voicebot.sync"
REFETCH = "voicebot.refetch"


def _refuse_while_active(session: Session) -> None:
    running = session.scalar(
        select(Job.id).where(Job.kind.in_((SYNC, REFETCH)), Job.status.in_(jobs.ACTIVE)).limit(1)
    )
    if running is not None:
        raise Conflict(
            N_("A voice-bot sync is already under way (job %(job)s); wait for it to finish"),
            params={"job": running},
            job_id=running,
        )


def ready_config(session: Session) -> settings.VoicebotConfig:
    """The voice-bot settings; NotConfigured until the key and an agent are set."""
    config = settings.read(session)
    if not config.ready:
        raise NotConfigured(
            N_(
                "Set the ElevenLabs API key and at least one agent id in the voice-bot "
                "settings first"
            ),
            params={},
        )
    return config


def default_range(now: datetime | None = None) -> tuple[datetime, datetime]:
    """From the first day of the current month (UTC) to now."""
    now = now or utcnow()
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0), now


def _range(date_from: date | None, date_to: date | None) -> tuple[datetime, datetime]:
    start, end = default_range()
    if date_from is not None:
        start = datetime.combine(date_from, dtime(), UTC)
    if date_to is not None:  # the whole last day, but not the future
        end = min(end, datetime.combine(date_to + timedelta(days=1), dtime(), UTC))
    if start >= end:
        raise Invalid(
            N_("The start date must be before the end date (and not in the future)"), params={}
        )
    return start, end


def start(
    session: Session,
    *,
    trigger: str = "manual",
    date_from: date | None = None,
    date_to: date | None = None,
    actor: str,
) -> Job:
    """Queue a sync of [date_from, date_to] (default: this month so far); Conflict if one runs."""
    ready_config(session)
    range_from, range_to = _range(date_from, date_to)
    _refuse_while_active(session)
    params = {"trigger": trigger, "from": range_from.isoformat(), "to": range_to.isoformat()}
    job = jobs.start(session, SYNC, params, actor)
    record(session, actor, "voicebot.sync.start", f"job:{job.id}", params)
    return job


def start_refetch(session: Session, actor: str) -> Job:
    """Queue a re-fetch of the details of every conversation without a customer number."""
    ready_config(session)
    _refuse_while_active(session)
    job = jobs.start(session, REFETCH, {"trigger": "refetch"}, actor)
    record(session, actor, "voicebot.refetch.start", f"job:{job.id}")
    return job


def _shown_status(run: VoiceSyncRun, now: datetime) -> SyncStatus:
    """The run's status; a dead worker's run (no heartbeat for a while) reads 'interrupted'."""
    beat = run.heartbeat_at or run.started_at
    if run.status == SyncStatus.RUNNING and beat < now - jobs.STALE_AFTER:
        return SyncStatus.INTERRUPTED
    return run.status


def logs(session: Session, limit: int = 50) -> list[SyncRunOut]:
    """The newest sync runs first, as the sync log shows them."""
    runs = session.scalars(select(VoiceSyncRun).order_by(VoiceSyncRun.id.desc()).limit(limit))
    now = utcnow()
    return [
        SyncRunOut.model_validate(run).model_copy(update={"status": _shown_status(run, now)})
        for run in runs
    ]


# The work ------------------------------------------------------------------------------
