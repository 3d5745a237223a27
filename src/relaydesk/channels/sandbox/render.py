"""Message resources and list pages in exactly the JSON shape of Twilio's API 2010."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

from relaydesk.channels.sandbox.store import StoredMessage

API_VERSION = "2010-04-01"
# The emulator's account has always existed; a fixed date keeps its answers stable.
SANDBOX_CREATED = "Sat, 01 Jan 2000 00:00:00 +0000"


def rfc2822(epoch: float | None) -> str | None:
    """Twilio's timestamp format, e.g. `Thu, 24 Aug 2023 05:01:45 +0000`."""
    if epoch is None:
        return None
    return format_datetime(datetime.fromtimestamp(int(epoch), UTC))


def messages_path(account_sid: str) -> str:
    """The list URI relative to https://api.twilio.com."""
    return f"/{API_VERSION}/Accounts/{account_sid}/Messages"


def account_json(account_sid: str, auth_token: str) -> dict[str, Any]:
    """The `api.v2010.account` resource of the emulator's account (a trial, always active)."""
    base = f"/{API_VERSION}/Accounts/{account_sid}"
    subresources = {
        "messages": "Messages",
        "incoming_phone_numbers": "IncomingPhoneNumbers",
        "balance": "Balance",
        "usage": "Usage",
    }
    return {
        # Twilio returns the token to its owner too; only the owner's credentials get here.
        "auth_token": auth_token,
        "date_created": SANDBOX_CREATED,
        "date_updated": SANDBOX_CREATED,
        "friendly_name": "relaydesk sandbox",
        "owner_account_sid": account_sid,
        "sid": account_sid,
        "status": "active",
        "subresource_uris": {key: f"{base}/{name}.json" for key, name in subresources.items()},
        "type": "Trial",
        "uri": f"{base}.json",
    }


def message_json(msg: StoredMessage) -> dict[str, Any]:
    """The `api.v2010.account.message` resource for one message."""
    base = f"{messages_path(msg.account_sid)}/{msg.sid}"
    return {
        "account_sid": msg.account_sid,
        "api_version": API_VERSION,
        "body": msg.body,
        "date_created": rfc2822(msg.date_created),
        "date_sent": rfc2822(msg.date_sent),
        "date_updated": rfc2822(msg.date_updated),
        "direction": msg.direction,
        "error_code": msg.error_code,
        "error_message": msg.error_message,
        "from": msg.from_addr,
        "messaging_service_sid": msg.messaging_service_sid,
        "num_media": str(msg.num_media),
        "num_segments": str(msg.num_segments),
        "price": None,
        "price_unit": "USD",
        "sid": msg.sid,
        "status": msg.status,
        "subresource_uris": {
            "media": f"{base}/Media.json",
            "feedback": f"{base}/Feedback.json",
        },
        "to": msg.to_addr,
        "uri": f"{base}.json",
    }


def page_json(
    account_sid: str,
    messages: list[StoredMessage],
    *,
    filters: list[tuple[str, str]],
    page: int,
    page_size: int,
    token: str | None,
    has_next: bool,
) -> dict[str, Any]:
    """A `ListMessageResponse` whose next/previous URIs the twilio SDK can follow."""
    path = f"{messages_path(account_sid)}.json"

    def uri(page_no: int, page_token: str | None) -> str:
        params = [*filters, ("PageSize", str(page_size)), ("Page", str(page_no))]
        if page_token:
            params.append(("PageToken", page_token))
        return f"{path}?{urlencode(params)}"

    start = page * page_size
    next_uri = uri(page + 1, "PA" + messages[-1].sid) if has_next and messages else None
    prev_uri = uri(page - 1, "PB" + messages[0].sid) if page > 0 and messages else None
    return {
        "messages": [message_json(m) for m in messages],
        "end": start + max(len(messages) - 1, 0),
        "first_page_uri": uri(0, None),
        "next_page_uri": next_uri,
        "page": page,
        "page_size": page_size,
        "previous_page_uri": prev_uri,
        "start": start,
        "uri": uri(page, token),
    }
