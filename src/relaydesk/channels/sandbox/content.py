"""The emulator's Content API templates (HX... SIDs) and how a message renders one."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, replace
from typing import Any

from relaydesk.channels.sandbox.errors import ApiError
from relaydesk.channels.sandbox.validation import CreateRequest

CONTENT_BASE = "https://content.twilio.com/v1"
# The seeded templates have always existed; a fixed date keeps answers stable.
SEEDED_AT = "2024-01-15T10:00:00Z"
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]{1,16})\s*\}\}")
MAX_VARIABLES = 100
MAX_VALUE = 1600


@dataclass(frozen=True)
class Template:
    """One approved template as Twilio's Content API describes it."""

    sid: str
    friendly_name: str
    language: str
    variables: dict[str, str]
    types: dict[str, dict[str, Any]]
    category: str = "UTILITY"

    def body(self) -> str:
        """The text a person reads: twilio/text's body, else the first type's body."""
        text = self.types.get("twilio/text") or next(iter(self.types.values()), {})
        return str(text.get("body", ""))


def _sid(name: str) -> str:
    # Derived from the name so SIDs stay the same across restarts and machines.
    return "HX" + hashlib.sha256(f"relaydesk-sandbox-content:{name}".encode()).hexdigest()[:32]


def _template(
    name: str, language: str, variables: dict[str, str], types: dict[str, dict[str, Any]]
) -> Template:
    return Template(_sid(name), name, language, variables, types)


TEMPLATES: tuple[Template, ...] = (
    _template(
        "appointment_reminder",
        "en",
        {"1": "12/1", "2": "3pm"},
        {
            "twilio/text": {
                "body": "Your appointment is coming up on {{1}} at {{2}}. "
                "Reply C to confirm or R to reschedule."
            }
        },
    ),
    _template(
        "order_shipped",
        "en",
        {"1": "12345"},
        {"twilio/text": {"body": "Good news! Your order {{1}} has shipped and is on its way."}},
    ),
    _template(
        "przypomnienie_o_wizycie",
        "pl",
        {"1": "Pani Anno", "2": "12.05", "3": "10:00"},
        {
            "twilio/text": {
                "body": "Dzień dobry {{1}}, przypominamy o wizycie {{2}} o godz. {{3}}. "
                "Odpowiedz TAK, aby potwierdzić."
            }
        },
    ),
    _template(
        "delivery_choice",
        "en",
        {"1": "Anna"},
        {
            "twilio/quick-reply": {
                "body": "Hi {{1}}, how would you like to receive your order?",
                "actions": [
                    {"title": "Courier", "id": "delivery_courier"},
                    {"title": "Pickup point", "id": "delivery_pickup"},
                ],
            },
            "twilio/text": {"body": "Hi {{1}}, reply 1 for a courier or 2 for a pickup point."},
        },
    ),
)
_BY_SID = {t.sid.lower(): t for t in TEMPLATES}


def find_template(sid: str) -> Template | None:
    """A seeded template by SID (hex digits in any case, as Twilio accepts)."""
    return _BY_SID.get(sid.lower())


def render_text(template: Template, variables: dict[str, str]) -> str:
    """The template's body with `{{key}}` filled from `variables`, else the defaults."""

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        return variables.get(key) or template.variables.get(key) or match.group(0)

    return PLACEHOLDER.sub(fill, template.body())


def with_content(req: CreateRequest) -> CreateRequest:
    """The request with its template rendered into `body`; ApiError 21655/21656 as Twilio."""
    if not req.content_sid:
        return req
    template = find_template(req.content_sid)
    if template is None:
        raise ApiError(400, 21655, "The ContentSid is Invalid")
    variables = parse_variables(req.content_variables)
    return replace(req, body=render_text(template, variables))


def parse_variables(raw: str | None) -> dict[str, str]:
    """ContentVariables: a JSON object of short keys to non-empty text values."""
    if not raw:
        return {}
    invalid = ApiError(400, 21656, "The ContentVariables Parameter is invalid")
    try:
        data = json.loads(raw)
    except ValueError:
        raise invalid from None
    if not isinstance(data, dict) or len(data) > MAX_VARIABLES:
        raise invalid
    values: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise invalid
        text = str(value)
        if not text or len(key) > 16 or len(text) > MAX_VALUE:
            raise invalid
        values[key] = text
    return values


def content_json(template: Template, account_sid: str) -> dict[str, Any]:
    """The `content.v1.content` resource."""
    url = f"{CONTENT_BASE}/Content/{template.sid}"
    return {
        "account_sid": account_sid,
        "date_created": SEEDED_AT,
        "date_updated": SEEDED_AT,
        "friendly_name": template.friendly_name,
        "language": template.language,
        "links": {
            "approval_create": f"{url}/ApprovalRequests/whatsapp",
            "approval_fetch": f"{url}/ApprovalRequests",
        },
        "sid": template.sid,
        "types": template.types,
        "url": url,
        "variables": template.variables,
    }


def content_and_approvals_json(template: Template, account_sid: str) -> dict[str, Any]:
    """The `content.v1.content_and_approvals` resource: approved for WhatsApp."""
    body = content_json(template, account_sid)
    del body["links"], body["url"]
    body["approval_requests"] = {
        "name": template.friendly_name,
        "category": template.category,
        "content_type": next(iter(template.types)),
        "status": "approved",
        "rejection_reason": "",
        "allow_category_change": False,
    }
    return body
