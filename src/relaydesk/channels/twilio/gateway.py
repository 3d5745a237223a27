"""The only place relaydesk talks to Twilio's REST API (or the sandbox emulator)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from relaydesk.channels.twilio.errors import describe_error, is_permanent

log = logging.getLogger(__name__)

TWILIO_API = "https://api.twilio.com"
POOL_SIZE = 256  # at least CAMPAIGN_CONCURRENCY's upper bound


class RebasedHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """Sends the SDK's requests to another base URL (the emulator), after the SDK built them."""

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.base_url = base_url.rstrip("/")
        if self.session is not None:
            # Campaign dispatchers make up to CAMPAIGN_CONCURRENCY calls at once; requests'
            # default pool (10) would open and drop a connection for each extra one.
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE)
            self.session.mount("https://", adapter)
            self.session.mount("http://", adapter)
            # requests reads the proxy, netrc and CA-bundle variables again on every call,
            # a good part of a campaign's CPU per message. They are read once here instead.
            self.session.proxies.update(requests.utils.get_environ_proxies(self.base_url))
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            if bundle:
                self.session.verify = bundle
            self.session.trust_env = False

    def request(self, method: str, uri: str, *args: Any, **kwargs: Any) -> Response:
        if uri.startswith(TWILIO_API) and self.base_url != TWILIO_API:
            uri = self.base_url + uri[len(TWILIO_API) :]
        return super().request(method, uri, *args, **kwargs)


def make_client(base_url: str, account_sid: str, auth_token: str, timeout: float = 15.0) -> Client:
    """A real `twilio` SDK client whose requests go to `base_url`."""
    return Client(
        account_sid,
        auth_token,
        http_client=RebasedHttpClient(base_url, timeout),
    )


@lru_cache(maxsize=4)
def cached_gateway(
    base_url: str, account_sid: str, auth_token: str, timeout: float = 15.0
) -> TwilioGateway:
    """One gateway (and connection pool) per API base and credentials, reused across calls."""
    return TwilioGateway(make_client(base_url, account_sid, auth_token, timeout))


class GatewayError(Exception):
    """Twilio refused or could not take a request.

    `permanent` errors will fail the same way again (bad number, opted out); the others
    are worth retrying. `ambiguous` means Twilio may have accepted the message anyway
    (a timeout or 5xx after the request went out), so the caller must reconcile first.
    """

    def __init__(
        self,
        message: str,
        *,
        code: int | None,
        status: int | None,
        permanent: bool,
        ambiguous: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.permanent = permanent
        self.ambiguous = ambiguous


@dataclass(frozen=True)
class SentMessage:
    """What Twilio answered to a create."""

    sid: str
    status: str
    num_segments: int | None
    error_code: int | None
    error_message: str | None


@dataclass(frozen=True)
class RemoteMessage:
    """A message as listed by Twilio, used to reconcile interrupted sends."""

    sid: str
    to: str
    from_: str
    body: str
    status: str
    date_created: datetime | None


@dataclass(frozen=True)
class RemoteAccount:
    """The account the credentials belong to, as Twilio describes it."""

    sid: str
    friendly_name: str | None
    status: str | None
    type: str | None


class TwilioGateway:
    """Create and list messages, and fetch the account, through the official SDK."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def create_message(
        self,
        *,
        to: str,
        from_: str | None,
        messaging_service_sid: str | None,
        body: str | None,
        media_urls: list[str] | None,
        content_sid: str | None,
        content_variables: str | None,
        status_callback: str | None,
    ) -> SentMessage:
        """Submit one message; raises GatewayError classified as permanent or transient."""
        kwargs: dict[str, Any] = {"to": to}
        if messaging_service_sid:
            kwargs["messaging_service_sid"] = messaging_service_sid
        elif from_:
            kwargs["from_"] = from_
        if body:
            kwargs["body"] = body
        if media_urls:
            kwargs["media_url"] = media_urls
        if content_sid:
            kwargs["content_sid"] = content_sid
            if content_variables:
                kwargs["content_variables"] = content_variables
        if status_callback:
            kwargs["status_callback"] = status_callback
        with _translated_errors():
            msg = self.client.messages.create(**kwargs)
        segments = int(msg.num_segments) if msg.num_segments not in (None, "") else None
        return SentMessage(
            sid=str(msg.sid),
            status=str(msg.status),
            num_segments=segments,
            error_code=int(msg.error_code) if msg.error_code else None,
            error_message=msg.error_message,
        )

    def find_sent(self, *, to: str, since: datetime, limit: int = 50) -> list[RemoteMessage]:
        """Messages Twilio holds for `to` created on or after the day of `since`."""
        with _translated_errors():
            items = self.client.messages.list(to=to, date_sent_after=since, limit=limit)
        return [
            RemoteMessage(
                sid=str(m.sid),
                to=str(m.to),
                from_=str(m.from_),
                body=str(m.body or ""),
                status=str(m.status),
                date_created=m.date_created,
            )
            for m in items
        ]

    def fetch_account(self) -> RemoteAccount:
        """The account of the client's credentials; raises GatewayError like the others."""
        with _translated_errors():
            account = self.client.api.v2010.accounts(self.client.account_sid).fetch()
        return RemoteAccount(
            sid=str(account.sid),
            friendly_name=account.friendly_name,
            status=str(account.status) if account.status else None,
            type=str(account.type) if account.type else None,
        )


@contextmanager
def _translated_errors() -> Iterator[None]:
    """Turn the SDK's and requests' exceptions into classified GatewayErrors."""
    try:
        yield
    except TwilioRestException as exc:
        raise _classify_rest(exc) from exc
    except requests.Timeout as exc:
        # The request may have reached Twilio: a create must be reconciled first.
        raise GatewayError(
            "Twilio did not answer in time",
            code=None,
            status=None,
            permanent=False,
            ambiguous=True,
        ) from exc
    except requests.ConnectionError as exc:
        # A refused connection never reached Twilio; a reset one might have.
        refused = "refused" in str(exc).lower() or "name or service" in str(exc).lower()
        raise GatewayError(
            f"cannot reach Twilio: {exc.__class__.__name__}",
            code=None,
            status=None,
            permanent=False,
            ambiguous=not refused,
        ) from exc
    except requests.RequestException as exc:
        raise GatewayError(
            f"the request to Twilio failed: {exc.__class__.__name__}",
            code=None,
            status=None,
            permanent=False,
            ambiguous=True,
        ) from exc


def _classify_rest(exc: TwilioRestException) -> GatewayError:
    code = int(exc.code) if exc.code else None
    status = int(exc.status) if exc.status else None
    meaning = describe_error(code) if code else None
    text = meaning or (exc.msg or "Twilio refused the request")
    if status == 429 or code == 20429:
        return GatewayError(text, code=code or 20429, status=status, permanent=False)
    if status is not None and status >= 500:
        return GatewayError(text, code=code, status=status, permanent=False, ambiguous=True)
    permanent = is_permanent(code) if code else (status is not None and 400 <= status < 500)
    return GatewayError(text, code=code, status=status, permanent=permanent)
