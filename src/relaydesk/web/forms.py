"""Reading panel form values that need more than FastAPI's Form()."""

from __future__ import annotations

from datetime import datetime

from pydantic import ValidationError

from relaydesk.core.errors import Invalid
from relaydesk.core.i18n import N_


def form_datetime(value: str, field: str) -> datetime | None:
    """A time picked in the panel: app.js sends the browser's local time as ISO 8601 UTC."""
    text = value.strip()
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise Invalid(
            N_("'%(text)s' is not a date and time"), params={"text": text[:40]}, field=field
        ) from None


def form_problem(exc: ValidationError) -> Invalid:
    """A schema's refusal of form values, as a notice the person can act on."""
    problems = [
        f"{'.'.join(str(p) for p in err['loc']) or 'form'}: {err['msg']}" for err in exc.errors()
    ]
    return Invalid("; ".join(dict.fromkeys(problems)))
