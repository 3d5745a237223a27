"""CSV of conversations: streamed on demand, and monthly archives under DATA_DIR/voicebot/archives.

UTF-8 with a byte order mark, so that Excel shows Polish letters; dates ISO 8601 in UTC.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from relaydesk.core.config import get_settings
from relaydesk.core.db import dialect_insert, get_sessionmaker, session_scope, utcnow
from relaydesk.core.errors import Invalid, NotFound
from relaydesk.core.i18n import N_
from relaydesk.core.ondisk import file_lock, write_atomically
from relaydesk.voicebot.kpis import month_period
from relaydesk.voicebot.models import VoiceArchive
from relaydesk.voicebot.queries import ITEM_FIELDS, filtered, item_query

BOM = "\ufeff"
CSV_FIELDS = ITEM_FIELDS
ARCHIVE_NAME = re.compile(r"voicebot-\d{4}-(0[1-9]|1[0-2])\.csv")
# A cell starting with one of these is a formula to Excel: free text is defused with a '.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_TEXT_FIELDS = {"agent_name", "title", "summary"}
_FLUSH_EVERY = 500


def _cell(name: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = str(value)
    if name in _TEXT_FIELDS and text.startswith(_FORMULA_START):
        return "'" + text
    return text


def _csv_chunks(
    session: Session, where: ColumnElement[bool], counted: list[int] | None = None
) -> Iterator[str]:
    """The CSV text in chunks: BOM and header first, then the rows, newest first (their
    number is added to `counted[0]`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write(BOM)
    writer.writerow(CSV_FIELDS)
    rows = session.execute(item_query(where).execution_options(yield_per=1000))
    for n, row in enumerate(rows, 1):
        writer.writerow([_cell(name, getattr(row, name)) for name in CSV_FIELDS])
        if counted is not None:
            counted[0] += 1
        if n % _FLUSH_EVERY == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def stream_csv(
    *, start: datetime, end: datetime, agent_id: str | None, outcome: str | None
) -> Iterator[bytes]:
    """The filtered conversations as CSV bytes; reads in its own session (it outlives the
    request's), and checks the filters before the first byte."""
    where = filtered(start=start, end=end, agent_id=agent_id, outcome=outcome)

    def generate() -> Iterator[bytes]:
        with get_sessionmaker()() as session:
            for chunk in _csv_chunks(session, where):
                yield chunk.encode("utf-8")

    return generate()


def csv_filename(start: datetime, end: datetime, agent_id: str | None) -> str:
    """A download name that says what is inside: voicebot-2025-03.csv or a date range."""
    last = (end - timedelta(days=1)).date()
    if start.day == 1 and (end.date() - start.date()).days in range(28, 32) and end.day == 1:
        span = f"{start:%Y-%m}"
    else:
        span = f"{start:%Y-%m-%d}_{last:%Y-%m-%d}"
    agent = f"-{agent_id}" if agent_id else ""
    return f"voicebot-{span}{agent}.csv"


def archive_dir() -> Path:
    """DATA_DIR/voicebot/archives (created when needed)."""
    path = get_settings().data_dir / "voicebot" / "archives"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _month_csv(start: datetime, end: datetime) -> tuple[bytes, int]:
    """A month's CSV and its row count, read in a session of its own (no write lock held)."""
    where = filtered(start=start, end=end, agent_id=None, outcome=None)
    counted = [0]
    with get_sessionmaker()() as session:
        data = "".join(_csv_chunks(session, where, counted)).encode("utf-8")
    return data, counted[0]


def _write_archive(month: str, data: bytes) -> dict[str, Any]:
    filename = f"voicebot-{month}.csv"
    write_atomically(archive_dir() / filename, data)
    return {
        "month": month,
        "filename": filename,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def archive_month(session: Session, month: str, trigger: str = "manual") -> VoiceArchive:
    """Write a month's archive (again): the file is replaced and its row updated."""
    start, end = month_period(month)
    month = f"{start:%Y-%m}"
    with file_lock(archive_dir() / ".lock"):
        data, rows = _month_csv(start, end)
        if rows == 0:
            raise Invalid(
                N_("There are no conversations in %(month)s to archive"),
                params={"month": month},
                field="month",
            )
        values = {**_write_archive(month, data), "rows": rows, "trigger": trigger}
        insert = dialect_insert(session)(VoiceArchive).values(**values, created_at=utcnow())
        session.execute(
            insert.on_conflict_do_update(
                index_elements=[VoiceArchive.month],
                set_={**values, "created_at": utcnow()},
            )
        )
    archive = session.scalar(
        select(VoiceArchive)
        .where(VoiceArchive.month == month)
        .execution_options(populate_existing=True)
    )
    assert archive is not None
    return archive


def previous_month(now: datetime) -> str:
    """ "YYYY-MM" of the month before `now`'s (UTC)."""
    first = now.astimezone(UTC).date().replace(day=1)
    last = first - timedelta(days=1)
    return f"{last:%Y-%m}"


def archive_previous_month_if_missing(now: datetime | None = None) -> VoiceArchive | None:
    """Archive last month once (the schedule calls it on days 1–5); None when it exists
    already or the month had no calls. Safe when several workers run it at once."""
    month = previous_month(now or utcnow())
    start, end = month_period(month)
    with file_lock(archive_dir() / ".lock"):
        with get_sessionmaker()() as reader:
            if reader.scalar(select(VoiceArchive.id).where(VoiceArchive.month == month)):
                return None
        data, rows = _month_csv(start, end)
        if rows == 0:
            return None
        values = {**_write_archive(month, data), "rows": rows, "trigger": "auto"}
        with session_scope() as session:
            # The unique month decides between workers that do not share this lock.
            insert = dialect_insert(session)(VoiceArchive).values(**values, created_at=utcnow())
            done = session.execute(
                insert.on_conflict_do_nothing(index_elements=[VoiceArchive.month])
            ).rowcount  # type: ignore[attr-defined]
            if not done:
                return None
            return session.scalar(select(VoiceArchive).where(VoiceArchive.month == month))


def list_archives(session: Session) -> list[VoiceArchive]:
    """Every archive, the newest month first."""
    return list(session.scalars(select(VoiceArchive).order_by(VoiceArchive.month.desc())))


def archive_path(filename: str) -> Path:
    """The file of an archive; NotFound for any name that is not an archive's or that would
    lead out of the archive folder."""
    folder = archive_dir().resolve()
    if not ARCHIVE_NAME.fullmatch(filename):
        raise NotFound(N_("No such archive file"), params={})
    path = (folder / filename).resolve()
    if path.parent != folder or not path.is_file():
        raise NotFound(N_("No such archive file"), params={})
    return path


def download(session: Session, archive_id: int) -> tuple[Path, str]:
    """The path and download name of archive `archive_id`."""
    archive = session.get(VoiceArchive, archive_id)
    if archive is None:
        raise NotFound(N_("Archive %(id)s does not exist"), params={"id": archive_id})
    return archive_path(archive.filename), archive.filename
