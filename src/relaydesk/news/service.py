"""News sources, the article files as the API and panel manage them, and the daily schedule.

Sources are rows; a category is simply the `category` (slug) their rows share, and the
label shown for it is the one typed with its first source. Settings are JSON values in
`settings` (audited like every other domain's), read fresh on every use.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from relaydesk.core import settings_store
from relaydesk.core.audit import record
from relaydesk.core.config import get_settings
from relaydesk.core.errors import Conflict, Invalid, NotFound
from relaydesk.core.i18n import N_
from relaydesk.indexes.schemas import RetrievalSettings
from relaydesk.indexes.service import RETRIEVAL_KEY, Retrieval, read_retrieval
from relaydesk.news import files
from relaydesk.news.models import NewsSource
from relaydesk.news.schemas import CategoryOut, ScheduleOut, SettingsOut, SourceOut
from relaydesk.news.sources import Category, Source, category_slugs, normalise_url

SCHEDULE_KEY = "news.schedule"
SCHEDULE_STATE_KEY = "news.schedule.state"
DEFAULT_INDEX = "news"
DEFAULT_TIMEZONE = "Europe/Warsaw"


def news_dir() -> Path:
    """Where the per-category article files are kept."""
    return get_settings().data_dir / "news"


# --- Sources -------------------------------------------------------------------------------


def list_sources(session: Session) -> list[CategoryOut]:
    """Categories by name, each with its label and its sources in the order they were added."""
    rows = session.scalars(select(NewsSource).order_by(NewsSource.category, NewsSource.id))
    groups: dict[str, CategoryOut] = {}
    for row in rows:
        source = SourceOut.model_validate(row)
        group = groups.setdefault(
            row.category, CategoryOut(category=row.category, label=source.label, sources=[])
        )
        group.sources.append(source)
    return list(groups.values())


def add_source(session: Session, category: str, url: str, kind: str, actor: str) -> NewsSource:
    """Add a feed or section page to a category (created on first use); 409 on a repeat."""
    # The scraper's own rules, so that nothing is stored that a scrape would refuse.
    checked = Category(category, [Source(url, kind)])  # type: ignore[arg-type]
    source = checked.sources[0]
    existing = list(session.scalars(select(NewsSource).where(NewsSource.category == checked.name)))
    key = normalise_url(source.url)
    for row in existing:
        if normalise_url(row.url) == key:
            raise Conflict(
                N_("Category '%(category)s' already has the source %(url)s"),
                params={"category": row.label or row.category, "url": row.url},
                field="url",
            )
    # One label per category: the first one typed names it, later spellings join it.
    label = existing[0].label if existing else checked.label
    row = NewsSource(category=checked.name, label=label, url=source.url, kind=source.kind)
    session.add(row)
    session.flush()
    record(
        session,
        actor,
        "news.source.create",
        f"news_source:{row.id}",
        {"category": row.category, "url": row.url, "kind": row.kind},
    )
    return row


def delete_source(session: Session, source_id: int, actor: str) -> None:
    """Remove one source (its category disappears with its last source; files stay)."""
    row = session.get(NewsSource, source_id)
    if row is None:
        raise NotFound(N_("News source %(id)s does not exist"), params={"id": source_id})
    record(
        session,
        actor,
        "news.source.delete",
        f"news_source:{row.id}",
        {"category": row.category, "url": row.url},
    )
    session.delete(row)
    session.flush()


def categories(session: Session, names: list[str] | None = None) -> list[Category]:
    """The categories to scrape (all, or the named ones, by slug or label); Invalid for an
    unknown name or one that is not a name."""
    groups = list_sources(session)
    if names is not None:
        names = category_slugs(names)
        known = {g.category for g in groups}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise Invalid(
                N_("No sources in category %(unknown)s; known: %(known)s"),
                params={
                    "unknown": ", ".join(repr(n) for n in unknown),
                    "known": ", ".join(sorted(known)) or N_("none yet"),
                },
                field="categories",
            )
        groups = [g for g in groups if g.category in names]
    if not groups:
        raise Invalid(
            N_("There are no news sources yet: add a feed or a section page first"), params={}
        )
    return [
        Category(
            g.category,
            [Source(s.url, s.kind) for s in g.sources],  # type: ignore[arg-type]
            g.label,
        )
        for g in groups
    ]


# --- Files ---------------------------------------------------------------------------------


def list_files() -> list[dict[str, Any]]:
    """The stored category files (name, category, kind, size in bytes, modified)."""
    return [asdict(f) for f in files.list_files(news_dir())]


def file_groups() -> list[dict[str, Any]]:
    """The files by category, each with its .json and .txt entry (either may be missing)."""
    groups: dict[str, dict[str, Any]] = {}
    for f in files.list_files(news_dir()):
        group = groups.setdefault(f.category, {"category": f.category, "json": None, "txt": None})
        group[f.kind] = asdict(f)
    return list(groups.values())


def delete_file(session: Session, name: str, actor: str) -> None:
    """Delete one news file (NotFound / Invalid for anything that is not one)."""
    files.delete_file(news_dir(), name)
    record(session, actor, "news.file.delete", f"news_file:{name}", None)


def delete_all_files(session: Session, actor: str) -> list[str]:
    """Delete every news file; the names deleted."""
    deleted = files.delete_all(news_dir())
    record(session, actor, "news.file.delete_all", "news_files", {"deleted": deleted})
    return deleted


# --- Settings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """A daily scrape and index build at a local time (None: only on demand)."""

    scrape_at: str | None = None  # HH:MM
    timezone: str = DEFAULT_TIMEZONE

    def __post_init__(self) -> None:
        zone(self.timezone)
        if self.scrape_at is not None:
            parse_hhmm(self.scrape_at)

    def due_on(self, now: datetime) -> str | None:
        """The local date (YYYY-MM-DD) whose scrape is due at `now` (aware), or None."""
        if self.scrape_at is None:
            return None
        local = now.astimezone(zone(self.timezone))
        return local.date().isoformat() if local.time() >= parse_hhmm(self.scrape_at) else None


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`; Invalid when there is none of that name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(
            N_("'%(name)s' is not a time zone; use a name like Europe/Warsaw"),
            params={"name": name},
            field="timezone",
        ) from None


def parse_hhmm(text: str) -> time:
    """'08:30' as a time; Invalid for anything else."""
    try:
        hours, minutes = text.split(":")
        if len(hours) != 2 or len(minutes) != 2:
            raise ValueError
        return time(int(hours), int(minutes))
    except ValueError:
        raise Invalid(
            N_("'%(text)s' is not a time of day as HH:MM"), params={"text": text}, field="scrape_at"
        ) from None


def _stored(session: Session, key: str) -> dict[str, Any]:
    value = settings_store.read(session, [key]).values.get(key)
    return dict(value) if isinstance(value, dict) else {}


def read_schedule(session: Session) -> Schedule:
    """The stored daily schedule (off when nothing usable is stored)."""
    data = _stored(session, SCHEDULE_KEY)
    try:
        return Schedule(data.get("scrape_at"), data.get("timezone") or DEFAULT_TIMEZONE)
    except (Invalid, TypeError, AttributeError):
        return Schedule()


def save_settings(
    session: Session,
    actor: str,
    *,
    retrieval: Retrieval | None = None,
    schedule: Schedule | None = None,
) -> None:
    """Store what was given, audited as news.settings.update."""
    changes: dict[str, Any] = {}
    if retrieval is not None:
        changes[RETRIEVAL_KEY] = asdict(retrieval)
    if schedule is not None:
        changes[SCHEDULE_KEY] = asdict(schedule)
    if changes:
        settings_store.save(
            session, changes, actor=actor, action="news.settings.update", target="news"
        )


def settings_view(session: Session) -> SettingsOut:
    """The retrieval settings and the schedule with the date of its last run."""
    schedule = read_schedule(session)
    return SettingsOut(
        retrieval=RetrievalSettings.model_validate(read_retrieval(session), from_attributes=True),
        schedule=ScheduleOut(
            scrape_at=schedule.scrape_at,
            timezone=schedule.timezone,
            last_run_on=last_scheduled(session),
        ),
    )


def last_scheduled(session: Session) -> str | None:
    """The local date of the last scheduled refresh, if any."""
    value = _stored(session, SCHEDULE_STATE_KEY).get("last_run_on")
    return value if isinstance(value, str) else None


def mark_scheduled(session: Session, day: str) -> None:
    """Remember that the refresh of `day` was started (audited: it is a system action)."""
    settings_store.save(
        session,
        {SCHEDULE_STATE_KEY: {"last_run_on": day}},
        actor="system:news-schedule",
        action="news.schedule.run",
        target="news",
    )
