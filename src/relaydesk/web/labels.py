"""Names of statuses, sources and roles in the panel's language, built once per language.

The templates look them up instead of calling gettext per row: a 200-bubble chat page
would otherwise make thousands of translation calls.
"""

from __future__ import annotations

from functools import cache

from relaydesk.core.i18n import translations


def N_(text: str) -> str:
    """Mark a string for translation without translating it here."""
    return text


STATUSES = {
    "pending": N_("pending"),
    "accepted": N_("accepted"),
    "scheduled": N_("scheduled"),
    "queued": N_("queued"),
    "sending": N_("sending"),
    "sent": N_("sent"),
    "delivered": N_("delivered"),
    "undelivered": N_("undelivered"),
    "failed": N_("failed"),
    "read": N_("read"),
    "received": N_("received"),
    "receiving": N_("receiving"),
    "canceled": N_("canceled"),
}
SOURCES = {
    "customer": N_("customer"),
    "api": N_("API"),
    "operator": N_("operator"),
    "auto_reply": N_("auto-reply"),
    "ai": N_("AI"),
    "assistant": N_("assistant"),
    "reminder": N_("reminder"),
    "campaign": N_("campaign"),
    "news": N_("news"),
}
ROLES = {"admin": N_("admin"), "operator": N_("operator"), "viewer": N_("viewer")}


@cache
def labels(language: str) -> dict[str, dict[str, str]]:
    """Every label group translated into `language`."""
    gettext = translations(language).gettext
    return {
        name: {key: gettext(text) for key, text in group.items()}
        for name, group in (("status", STATUSES), ("source", SOURCES), ("role", ROLES))
    }
