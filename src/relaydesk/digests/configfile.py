"""The original app's `news_config.json`: export the recipients in it, import them from it.

The original kept its news recipients in one JSON file: a number, the hour of the
digest, the prompt mode (all categories or a custom prompt), the prompt and an enabled
flag. Files written by hand or by different versions vary, so the import is tolerant:
a list of entries or an object holding them (`recipients`, or entries keyed by id),
several spellings of each field, hours as "08:00", "8" or 8. Each entry that cannot be
read is reported with the reason; the others are imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from relaydesk.core import audit, clock
from relaydesk.core.errors import Invalid, RelaydeskError
from relaydesk.core.i18n import N_
from relaydesk.digests import service
from relaydesk.digests.models import NewsRecipient

MAX_ENTRIES = 1000
_LIST_KEYS = ("recipients", "news_recipients", "subscribers", "numbers")
_PHONE = ("phone", "number", "phone_number", "to", "msisdn")
_TIME = ("send_time", "time", "hour", "send_hour", "at")
_MODE = ("mode", "prompt_mode", "prompt_type", "type")
_PROMPT = ("prompt", "custom_prompt", "query")
_ENABLED = ("enabled", "active", "is_active")
_ZONE = ("timezone", "tz", "time_zone")
_ALL = {"all_categories", "all-categories", "all", "categories", "default", "summary"}
_CUSTOM = {"custom_prompt", "custom-prompt", "custom", "prompt"}
_TRUE = {"true", "1", "yes", "on", "y"}
_FALSE = {"false", "0", "no", "off", "n"}


def export(session: Session) -> dict[str, Any]:
    """The recipients in the original app's format (GET /api/news/config)."""
    return {
        "recipients": [
            {
                "id": r.id,
                "phone": r.phone,
                "time": r.send_time,
                "timezone": r.timezone,
                "prompt_mode": r.mode,
                "prompt": r.prompt or "",
                "enabled": r.enabled,
                "last_sent": r.last_sent_at.astimezone(UTC).isoformat() if r.last_sent_at else None,
            }
            for r in service.list_recipients(session)
        ],
        "exported_at": clock.now().isoformat(),
    }


@dataclass
class ImportReport:
    """What an import did: ids created, entries already present, entries refused and why."""

    created: list[int] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)


def _entries(data: Any) -> tuple[list[Any], str | None]:
    """The entries of the file and its default time zone."""
    if isinstance(data, list):
        return data, None
    if not isinstance(data, dict):
        raise Invalid(N_("news_config.json must hold a list of recipients or an object"), params={})
    default_zone = _first(data, _ZONE)
    if _first(data, _PHONE) is not None:  # a file with a single recipient
        return [data], None
    for key in _LIST_KEYS:
        found = data.get(key)
        if isinstance(found, list):
            return found, default_zone
        if isinstance(found, dict):  # keyed by id
            return list(found.values()), default_zone
    raise Invalid(
        N_("No recipients found: expected a list, or an object with a 'recipients' list"),
        params={},
        field="recipients",
    )


def _first(entry: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if entry.get(key) not in (None, ""):
            return entry[key]
    return None


def _time(value: Any, minute: Any) -> str:
    """'08:00', '8:00', '08:00:00', '8' or 8 (with an optional separate minute) as HH:MM."""
    if isinstance(value, bool):
        raise Invalid(N_("the time is not a time of day"), params={}, field="send_time")
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        whole = isinstance(minute, int) or (isinstance(minute, str) and minute.isdigit())
        return f"{int(value):02d}:{int(minute) if whole else 0:02d}"
    text = str(value).strip()
    parts = text.split(":")
    if len(parts) == 3:  # seconds are not part of a digest's time
        text = ":".join(parts[:2])
    return text


def _mode(entry: dict[str, Any], prompt: str | None) -> str:
    raw = _first(entry, _MODE)
    if isinstance(raw, str) and raw.strip().lower() in _ALL:
        return "all_categories"
    if isinstance(raw, str) and raw.strip().lower() in _CUSTOM:
        return "custom_prompt"
    if raw is not None:
        raise Invalid(
            N_("unknown prompt mode '%(mode)s'"), params={"mode": str(raw)[:30]}, field="mode"
        )
    custom = entry.get("use_custom_prompt", entry.get("custom"))
    if isinstance(custom, bool):
        return "custom_prompt" if custom else "all_categories"
    return "custom_prompt" if prompt else "all_categories"


def _enabled(entry: dict[str, Any]) -> bool:
    raw = _first(entry, _ENABLED)
    if raw is None or isinstance(raw, bool):
        return raw is not False
    text = str(raw).strip().lower()
    if text in _TRUE | _FALSE:
        return text in _TRUE
    raise Invalid(
        N_("'enabled' must be true or false, not '%(value)s'"),
        params={"value": text[:20]},
        field="enabled",
    )


def read_entry(entry: Any, default_zone: str | None) -> tuple[service.Fields, bool]:
    """One entry as validated recipient settings and its enabled flag, or Invalid."""
    if not isinstance(entry, dict):
        raise Invalid(N_("the entry is not an object"), params={})
    phone = _first(entry, _PHONE)
    if phone is None:
        raise Invalid(N_("the entry has no phone number"), params={}, field="phone")
    when = _first(entry, _TIME)
    if when is None:
        raise Invalid(N_("the entry has no send time"), params={}, field="send_time")
    raw_prompt = _first(entry, _PROMPT)
    prompt = str(raw_prompt).strip() if raw_prompt is not None else None
    fields = service.clean(
        str(phone),
        _time(when, entry.get("minute")),
        _first(entry, _ZONE) or default_zone,
        _mode(entry, prompt),
        prompt,
    )
    return fields, _enabled(entry)


def import_config(session: Session, data: Any, actor: str) -> ImportReport:
    """Create the recipients of a `news_config.json` document; the same entry twice is kept once."""
    entries, default_zone = _entries(data)
    if len(entries) > MAX_ENTRIES:
        raise Invalid(
            N_("The file has %(count)s recipients; at most %(limit)s at once"),
            params={"count": f"{len(entries):,}", "limit": f"{MAX_ENTRIES:,}"},
        )
    report = ImportReport()
    for index, entry in enumerate(entries):
        label = _first(entry, _PHONE) if isinstance(entry, dict) else None
        try:
            fields, enabled = read_entry(entry, default_zone)
        except RelaydeskError as exc:
            report.problems.append({"index": index, "phone": label, "error": exc.message})
            continue
        existing = session.scalar(
            select(NewsRecipient.id).where(
                NewsRecipient.phone == fields.phone,
                NewsRecipient.send_time == fields.send_time,
                NewsRecipient.timezone == fields.timezone,
                NewsRecipient.mode == fields.mode,
                NewsRecipient.prompt.is_(None)
                if fields.prompt is None
                else NewsRecipient.prompt == fields.prompt,
            )
        )
        if existing is not None:
            report.duplicates.append({"index": index, "phone": fields.phone, "id": existing})
            continue
        report.created.append(service.create(session, fields, actor, enabled=enabled).id)
    audit.record(
        session,
        actor,
        "news.config.import",
        "news_recipients",
        {
            "created": len(report.created),
            "duplicates": len(report.duplicates),
            "problems": len(report.problems),
        },
    )
    return report
