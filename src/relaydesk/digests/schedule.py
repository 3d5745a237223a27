"""Daily digests: when one is due (pure, zoneinfo).

A recipient gets one digest per local day at `send_time` in its own time zone. The
rules, all computed from stored state so a restart changes nothing:
- due once local now has reached today's send instant and `last_sent_on` is before today;
- a day whose send instant is before `active_since` is not owed (created at 15:00 with
  08:00: the first digest is tomorrow's);
- after downtime the same day it goes out once, late; days that passed are never sent;
- a send time in the spring-forward gap (02:30 on the last Sunday of March in Warsaw)
  fires at the first instant that exists after it (03:00); in the autumn fold it fires
  once, at the first occurrence.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from relaydesk.core.clock import wall_instant
from relaydesk.core.clock import zone as zone
from relaydesk.core.errors import Invalid
from relaydesk.core.i18n import N_

DEFAULT_TIMEZONE = "Europe/Warsaw"
MODES = ("all_categories", "custom_prompt")
send_instant = wall_instant  # the rules of the spring gap and the autumn fold are core.clock's


def parse_send_time(value: str) -> time:
    """'HH:MM' (00:00–23:59) as a time, or Invalid."""
    text = value.strip()
    hours, sep, minutes = text.partition(":")
    if (
        sep
        and len(hours) in (1, 2)
        and len(minutes) == 2
        and hours.isdigit()
        and minutes.isdigit()
        and int(hours) < 24
        and int(minutes) < 60
    ):
        return time(int(hours), int(minutes))
    raise Invalid(
        N_("'%(text)s' is not a time of day; write HH:MM between 00:00 and 23:59"),
        params={"text": text[:20]},
        field="send_time",
    )


def due_day(
    send_time: str,
    timezone: str,
    active_since: datetime,
    last_sent_on: str | None,
    now: datetime,
) -> date | None:
    """The local date a digest is owed for at `now`, or None (see the module's rules)."""
    tz = zone(timezone)
    today = now.astimezone(tz).date()
    at = send_instant(today, parse_send_time(send_time), tz)
    if now < at or at < active_since:
        return None
    # "Before today", not "not today": after a time-zone change to one behind, the
    # stored date may be ahead of the new local date; that day was already served.
    if last_sent_on is not None and last_sent_on >= today.isoformat():
        return None
    return today


def next_send_at(
    send_time: str,
    timezone: str,
    active_since: datetime,
    last_sent_on: str | None,
    now: datetime,
) -> datetime:
    """When the next scheduled digest goes out (UTC), for display; now when one is owed."""
    if due_day(send_time, timezone, active_since, last_sent_on, now) is not None:
        return now
    tz = zone(timezone)
    at = parse_send_time(send_time)
    day = now.astimezone(tz).date()
    for _ in range(3):  # today, or tomorrow (or the day after, past a day-long gap)
        instant = send_instant(day, at, tz)
        served = last_sent_on is not None and last_sent_on >= day.isoformat()
        if instant > now and instant >= active_since and not served:
            return instant
        day += timedelta(days=1)
    return send_instant(day, at, tz)
