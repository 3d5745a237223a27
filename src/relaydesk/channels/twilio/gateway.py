"""The only place relaydesk talks to Twilio's REST API (or the sandbox emulator)."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode, urlsplit

import certifi
import urllib3
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http import HttpClient
from twilio.http.response import Response
from twilio.rest import Client

from relaydesk.channels.twilio.errors import describe_error, is_permanent
from relaydesk.core.vendor import Kind, VendorError

log = logging.getLogger(__name__)

TWILIO_API = "https://api.twilio.com"
# Other Twilio domains the SDK calls, and where they live under an emulator's base:
# https://content.twilio.com/v1/Content → <base>/content/v1/Content.
REBASED_DOMAINS = {TWILIO_API: "", "https://content.twilio.com": "/content"}
POOL_SIZE = 256  # at least CAMPAIGN_CONCURRENCY's upper bound


class PooledHttpClient(HttpClient):  # type: ignore[misc]
    """The SDK's HTTP client, on a urllib3 connection pool, optionally rebased.

    The SDK builds each request for https://api.twilio.com (or content.twilio.com); with
    another `base_url` (the emulator) it is sent there instead (REBASED_DOMAINS). urllib3
    directly costs half the CPU per call of the SDK's requests-based client (which
    re-reads proxy, netrc and certificate settings from the environment on every call),
    and a campaign makes hundreds of calls a second.
    The environment is read once here: HTTPS_PROXY / NO_PROXY, REQUESTS_CA_BUNDLE or
    SSL_CERT_FILE (default: certifi's bundle, as requests uses).
    """

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(logging.getLogger("twilio.http_client"), False, timeout)
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        ca_certs = (
            os.environ.get("REQUESTS_CA_BUNDLE")
            or os.environ.get("SSL_CERT_FILE")
            or certifi.where()
        )
        options: dict[str, Any] = {"maxsize": POOL_SIZE, "block": False, "ca_certs": ca_certs}
        proxy = None
        if not urllib.request.proxy_bypass(parts.hostname or ""):
            proxy = urllib.request.getproxies().get(parts.scheme)
        self.pool: urllib3.PoolManager = (
            urllib3.ProxyManager(proxy, **options) if proxy else urllib3.PoolManager(**options)
        )

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        url = self.rebased(url)
        if params:
            url += ("&" if "?" in url else "?") + urlencode(_form(params), doseq=True)
        sent = dict(headers or {})
        if auth:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            sent["Authorization"] = f"Basic {token}"
        body: str | None = None
        if data is not None:
            if sent.get("Content-Type") in ("application/json", "application/scim+json"):
                body = json.dumps(data)
            else:
                body = urlencode(_form(data), doseq=True)
                sent["Content-Type"] = "application/x-www-form-urlencoded"
        wait = timeout if timeout is not None else self.timeout
        answer = self.pool.request(
            method.upper(),
            url,
            body=body,
            headers=sent,
            timeout=urllib3.Timeout(connect=wait, read=wait),
            redirect=allow_redirects,
            retries=False,
        )
        response = Response(answer.status, answer.data.decode("utf-8", "replace"), answer.headers)
        self._test_only_last_response = response  # the SDK's own hook for tests: kept
        return response

    def rebased(self, url: str) -> str:
        """`url` moved onto the emulator's base; unchanged against live Twilio."""
        if self.base_url == TWILIO_API:
            return url
        for origin, prefix in REBASED_DOMAINS.items():
            if url.startswith(origin + "/"):
                return self.base_url + prefix + url[len(origin) :]
        return url


def _form(values: dict[str, object]) -> dict[str, object]:
    """Form fields as requests would send them: None left out, lists repeated."""
    return {key: value for key, value in values.items() if value is not None}


def make_client(base_url: str, account_sid: str, auth_token: str, timeout: float = 15.0) -> Client:
    """A real `twilio` SDK client whose requests go to `base_url`."""
    return Client(
        account_sid,
        auth_token,
        http_client=PooledHttpClient(base_url, timeout),
    )


@lru_cache(maxsize=4)
def cached_gateway(
    base_url: str, account_sid: str, auth_token: str, timeout: float = 15.0
) -> TwilioGateway:
    """One gateway (and connection pool) per API base and credentials, reused across calls."""
    return TwilioGateway(make_client(base_url, account_sid, auth_token, timeout))


class GatewayError(VendorError):
    """Twilio refused or could not take a request.

    `permanent` errors will fail the same way again (bad number, opted out); transient
    ones are worth retrying. `ambiguous` means Twilio may have accepted the message
    anyway (a timeout or 5xx after the request went out), so the caller must reconcile
    before sending it again. The caller's queue retries (messaging.delivery), not this.
    """

    def __init__(
        self, message: str, *, kind: Kind, code: int | None = None, status: int | None = None
    ) -> None:
        super().__init__(message, vendor="twilio", kind=kind, status=status, vendor_code=code)

    @property
    def code(self) -> int | None:
        """Twilio's error code (21610, 20429…), None when Twilio gave none or was not reached."""
        return self.vendor_code if isinstance(self.vendor_code, int) else None


@dataclass(frozen=True)
class SentMessage:
    """What Twilio answered to a create."""

    sid: str
    status: str
    num_segments: int | None
    error_code: int | None
    error_message: str | None
    body: str = ""  # the text as Twilio has it (a template's, rendered)


@dataclass(frozen=True)
class RemoteMessage:
    """A message as listed by Twilio, used to reconcile interrupted sends."""

    sid: str
    to: str
    from_: str
    body: str
    status: str
    date_created: datetime | None
    error_code: int | None = None


@dataclass(frozen=True)
class ContentTemplate:
    """An approved Content API template (ContentSid) as a person would pick one."""

    sid: str
    friendly_name: str
    language: str
    variables: dict[str, str]
    body: str  # what the recipient reads: twilio/text's body, else the first type's
    types: list[str]

    def rendered(self, values: dict[str, str]) -> str:
        """The body as Twilio sends it: each {{key}} from `values`, else the template's own."""

        def fill(match: re.Match[str]) -> str:
            key = match.group(1)
            return values.get(key) or self.variables.get(key) or match.group(0)

        return _PLACEHOLDER.sub(fill, self.body)


_PLACEHOLDER = re.compile(r"\{\{\s*([\w.]+)\s*\}\}")


@dataclass(frozen=True)
class RemoteAccount:
    """The account the credentials belong to, as Twilio describes it."""

    sid: str
    friendly_name: str | None
    status: str | None
    type: str | None


class TwilioGateway:
    """Create and list messages, fetch the account and templates, through the official SDK."""

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
            body=str(msg.body or ""),
        )

    def find_sent(self, *, to: str, since: datetime, limit: int = 50) -> list[RemoteMessage]:
        """Messages Twilio holds for `to` created on or after the day of `since`."""
        with _translated_errors():
            items = self.client.messages.list(to=to, date_sent_after=since, limit=limit)
        return [_remote(m) for m in items]

    def fetch_message(self, sid: str) -> RemoteMessage:
        """One message as Twilio has it now (its current status); GatewayError if not."""
        with _translated_errors():
            found = self.client.messages(sid).fetch()
        return _remote(found)

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

    def fetch_template(self, sid: str) -> ContentTemplate:
        """One Content API template; GatewayError (status 404) when Twilio has none."""
        with _translated_errors():
            item = self.client.content.v1.contents(sid).fetch()
        return _template(item)

    def content_templates(self, limit: int = 1000) -> list[ContentTemplate]:
        """The account's Content API templates (all pages, up to `limit`)."""
        with _translated_errors():
            items = self.client.content.v1.contents.list(limit=limit, page_size=100)
        return [_template(item) for item in items]


def _remote(m: Any) -> RemoteMessage:
    code = m.error_code
    return RemoteMessage(
        sid=str(m.sid),
        to=str(m.to),
        from_=str(m.from_),
        body=str(m.body or ""),
        status=str(m.status),
        date_created=m.date_created,
        error_code=int(code) if code not in (None, "", 0, "0") else None,
    )


def _template(item: Any) -> ContentTemplate:
    types: dict[str, Any] = dict(item.types or {})
    chosen = types.get("twilio/text") or next(iter(types.values()), None)
    body = chosen.get("body") if isinstance(chosen, dict) else None
    return ContentTemplate(
        sid=str(item.sid),
        friendly_name=str(item.friendly_name or ""),
        language=str(item.language or ""),
        variables={str(k): str(v) for k, v in (item.variables or {}).items()},
        body=str(body or ""),
        types=list(types),
    )


@contextmanager
def _translated_errors() -> Iterator[None]:
    """Turn the SDK's and urllib3's exceptions into classified GatewayErrors."""
    try:
        yield
    except TwilioRestException as exc:
        raise read_error(exc) from exc
    except TwilioException as exc:
        raise read_error(_page_error(exc)) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise network_error(exc) from exc


def network_error(exc: urllib3.exceptions.HTTPError | OSError) -> GatewayError:
    """No answer from Twilio; ambiguous unless the request surely never left."""
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        # A refused connection (or an unknown host) never reached Twilio. (Tested
        # before TimeoutError: urllib3 makes a failed connection a kind of timeout.)
        return GatewayError(f"cannot reach Twilio: {exc.__class__.__name__}", kind=Kind.TRANSIENT)
    if isinstance(exc, urllib3.exceptions.ProtocolError):
        # A reset connection might have delivered the request.
        return GatewayError(f"cannot reach Twilio: {exc.__class__.__name__}", kind=Kind.AMBIGUOUS)
    if isinstance(exc, urllib3.exceptions.TimeoutError):
        # The request may have reached Twilio: a create must be reconciled first.
        return GatewayError("Twilio did not answer in time", kind=Kind.AMBIGUOUS)
    return GatewayError(
        f"the request to Twilio failed: {exc.__class__.__name__}", kind=Kind.AMBIGUOUS
    )


def _page_error(exc: TwilioException) -> TwilioRestException:
    """The SDK reports a refused list page as ("Unable to fetch page", response)."""
    response = exc.args[1] if len(exc.args) > 1 else None
    if not isinstance(response, Response):
        return TwilioRestException(0, "", msg=str(exc))
    try:
        body = json.loads(response.text)
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    return TwilioRestException(
        response.status_code, "", msg=body.get("message", str(exc)), code=body.get("code")
    )


def read_error(exc: TwilioRestException) -> GatewayError:
    """Twilio's refusal: its code's meaning for a person, and whether trying again may help.

    429 (or 20429) is transient; a 5xx ambiguous (the message may have been taken); any
    other refusal is permanent as its code says (4xx without a code: permanent).
    """
    code = int(exc.code) if exc.code else None
    status = int(exc.status) if exc.status else None
    meaning = describe_error(code) if code else None
    text = meaning or (exc.msg or "Twilio refused the request")
    if status == 429 or code == 20429:
        return GatewayError(text, kind=Kind.TRANSIENT, code=code or 20429, status=status)
    if status is not None and status >= 500:
        return GatewayError(text, kind=Kind.AMBIGUOUS, code=code, status=status)
    permanent = is_permanent(code) if code else (status is not None and 400 <= status < 500)
    kind = Kind.PERMANENT if permanent else Kind.TRANSIENT
    return GatewayError(text, kind=kind, code=code, status=status)
