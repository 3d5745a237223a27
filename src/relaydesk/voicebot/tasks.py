"""The voice-bot schedules: a daily incremental sync and the monthly CSV archive (UTC)."""

from __future__ import annotations

import logging
from datetime import timedelta

from relaydesk.core import clock
from relaydesk.core.db import session_scope
from relaydesk.core.errors import Conflict
from relaydesk.core.tasks import BULK, periodic
from relaydesk.voicebot import service, settings

log = logging.getLogger(__name__)

ARCHIVE_DAYS = range(1, 6)  # the previous month is archived on days 1–5


@periodic("voicebot.daily_sync", minutes="0", hours="2", queue=BULK)
def daily_sync() -> None:
    """Sync from the first day of this month; quietly skipped when unset or already running.

    On days 1–5 it starts from the first day of the previous month, so the calls of that
    month's last evening are in before the 03:00 archive of the month is written.
    """
    today = clock.now().date()
    first = today.replace(day=1)
    if today.day in ARCHIVE_DAYS:
        first = (first - timedelta(days=1)).replace(day=1)
    with session_scope() as session:
        if not settings.read(session).ready:
            return
        try:
            service.start(session, trigger="daily", date_from=first, actor="system:voicebot-daily")
        except Conflict:
            log.info("voicebot: the daily sync found a sync already under way")


@periodic("voicebot.monthly_archive", minutes="0", hours="3", queue=BULK)
def monthly_archive() -> None:
    """On days 1–5, archive the previous month to CSV unless that was done already."""
    if clock.now().day not in ARCHIVE_DAYS:
        return
    # export.py builds on this module's siblings; imported here so the schedule loads alone.
    from relaydesk.voicebot.export import archive_previous_month_if_missing

    archive_previous_month_if_missing()
