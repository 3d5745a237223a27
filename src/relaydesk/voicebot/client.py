"""ElevenLabs Conversational AI over httpx: list conversations, read one, test the settings.

The one place that talks to ElevenLabs for the voice-bot analytics; tests point it at
the fake server on loopback. Network errors, 429 and 5xx answers are transient and
retried by core.vendor.retry (honouring Retry-After, with a cap on the total wait; these
are GETs, so nothing is ambiguous); 401/403/404 are permanent and become an
ElevenLabsError whose message a person can act on. The API key is never in a message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from relaydesk.core.credentials import PROBLEM as KEY_PROBLEM
from relaydesk.core.credentials import header_safe
from relaydesk.core.errors import NotConfigured, ProviderFailed
from relaydesk.core.i18n import N_
from relaydesk.core.vendor import (
    Backoff,
    Kind,
    VendorError,
    retry,
    retry_after_seconds,
    status_kind,
)
from relaydesk.voicebot.settings import VoicebotConfig

PAGE_SIZE = 100  # the API's maximum
MAX_ATTEMPTS = 8
MAX_TOTAL_WAIT = 120.0  # seconds of backoff a single request may spend before giving up
BACKOFF = Backoff(first=1.0, cap=30.0)
TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class ElevenLabsError(VendorError, ProviderFailed):
    """ElevenLabs refused or failed a request; `permanent` errors are not worth retrying.

    A VendorError for the retry helper, and a ProviderFailed (502, "elevenlabs_error")
    for the API and for the reason a sync run failed.
    """

    code = "elevenlabs_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        permanent: bool,
        retry_after: float | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        kind = Kind.PERMANENT if permanent else Kind.TRANSIENT
        template = message if params is not None else None
        if params is not None:
            message = message % params
        super().__init__(
            message, vendor="elevenlabs", kind=kind, status=status, retry_after=retry_after
        )
        # Like a RelaydeskError raised with a template: the panel translates it.
        self.template, self.params = template, dict(params or {})
        self.extra = {"vendor_status": status}


@dataclass(frozen=True)
class Page:
    """One page of the conversation list."""

    conversations: list[dict[str, Any]]
    next_cursor: str | None
    has_more: bool


class ElevenLabsClient:
    """A small client for the two Conversational AI endpoints the sync needs."""

    def __init__(
        self,
        api_key: str,
        base_url: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        max_total_wait: float = MAX_TOTAL_WAIT,
        timeout: httpx.Timeout | float = TIMEOUT,
    ) -> None:
        self._sleep = sleep
        self._max_total_wait = max_total_wait
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"xi-api-key": api_key, "accept": "application/json"},
            timeout=timeout,
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
        )
        self.requests = 0  # HTTP requests sent, retries included

    @classmethod
    def from_config(cls, config: VoicebotConfig, **options: Any) -> ElevenLabsClient:
        """A client for the stored settings (NotConfigured-style error when no key)."""
        if not config.api_key:
            raise ElevenLabsError(
                N_("No ElevenLabs API key is set: add it in the voice-bot settings"),
                permanent=True,
                params={},
            )
        if not header_safe(config.api_key):
            # Not ElevenLabs' refusal (502): the stored setting must be fixed here.
            raise NotConfigured(
                N_("The stored ElevenLabs API key cannot be sent: %(problem)s. Enter it again."),
                params={"problem": KEY_PROBLEM},
            )
        return cls(config.api_key, config.base_url, **options)

    def __enter__(self) -> ElevenLabsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def list_conversations(
        self,
        agent_id: str,
        *,
        after_unix: int | None = None,
        before_unix: int | None = None,
        cursor: str | None = None,
        page_size: int = PAGE_SIZE,
    ) -> Page:
        """One page of an agent's conversations that started in (after, before)."""
        params: dict[str, Any] = {"agent_id": agent_id, "page_size": page_size}
        if after_unix is not None:
            params["call_start_after_unix"] = after_unix
        if before_unix is not None:
            params["call_start_before_unix"] = before_unix
        if cursor:
            params["cursor"] = cursor
        body = self._get("/v1/convai/conversations", params, what=f"agent {agent_id}")
        conversations = body.get("conversations") if isinstance(body, dict) else None
        if not isinstance(conversations, list):
            raise ElevenLabsError(
                N_("ElevenLabs answered the conversation list without a 'conversations' list"),
                permanent=False,
                params={},
            )
        next_cursor = body.get("next_cursor")
        return Page(
            conversations=[c for c in conversations if isinstance(c, dict)],
            next_cursor=str(next_cursor) if next_cursor else None,
            has_more=bool(body.get("has_more")) and bool(next_cursor),
        )

    def get_conversation(self, conversation_id: str) -> dict[str, Any]:
        """A conversation's details: transcript, metadata, analysis."""
        body = self._get(
            f"/v1/convai/conversations/{conversation_id}",
            {},
            what=f"conversation {conversation_id}",
        )
        if not isinstance(body, dict):
            raise ElevenLabsError(
                N_("ElevenLabs answered a conversation with no object"),
                permanent=False,
                params={},
            )
        return body

    # Transport -------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, Any], *, what: str) -> Any:
        try:
            response = retry(
                lambda: self._send(path, params, what=what),
                attempts=MAX_ATTEMPTS,
                backoff=BACKOFF,
                sleep=self._sleep,
                max_total_wait=self._max_total_wait,
                label=f"ElevenLabs {what}",
            )
        except ElevenLabsError as exc:
            if exc.permanent:
                raise
            # A reason without values is itself a catalog entry: the panel translates it.
            reason = exc.template if exc.template and "%(" not in exc.template else exc.message
            raise ElevenLabsError(
                N_("%(reason)s; gave up after %(attempts)s attempts"),
                permanent=False,
                params={"reason": reason, "attempts": exc.attempts},
            ) from None
        try:
            return response.json()
        except ValueError:
            raise ElevenLabsError(
                N_("ElevenLabs answered with something that is not JSON"),
                status=response.status_code,
                permanent=False,
                params={},
            ) from None

    def _send(self, path: str, params: dict[str, Any], *, what: str) -> httpx.Response:
        """One GET; an answer of 400 or more, or none at all, raises an ElevenLabsError."""
        self.requests += 1
        try:
            response = self._http.get(path, params=params)
        except httpx.TransportError as exc:
            raise ElevenLabsError(
                N_("ElevenLabs could not be reached (%(error)s)"),
                permanent=False,
                params={"error": exc.__class__.__name__},
            ) from None
        if response.status_code >= 400:
            raise read_error(response, what)
        return response


def _vendor_message(response: httpx.Response) -> str:
    """ElevenLabs' own explanation ({"detail": {"message": ...}} or a string), trimmed."""
    try:
        body = response.json()
    except ValueError:
        return ""
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, dict):
        detail = detail.get("message") or detail.get("status")
    elif isinstance(detail, list) and detail and isinstance(detail[0], dict):
        detail = detail[0].get("msg")
    return str(detail)[:300] if detail else ""


def read_error(response: httpx.Response, what: str) -> ElevenLabsError:
    """An error answer as an ElevenLabsError: 429 and 5xx transient, the rest permanent."""
    status = response.status_code
    params: dict[str, Any] = {"status": status, "what": what}
    if status_kind(status) is Kind.TRANSIENT:
        if status == 429:
            text = N_("ElevenLabs is rate limiting the requests (429)")
        else:
            text = N_("ElevenLabs had a server error (%(status)s)")
        # A Retry-After of 0 says nothing about when: the backoff decides then.
        wait = retry_after_seconds(response.headers.get("retry-after")) or None
        return ElevenLabsError(
            text, status=status, permanent=False, retry_after=wait, params=params
        )
    said = _vendor_message(response)
    params["said"] = said
    # Each refusal with and without ElevenLabs' own words (which stay as they are).
    if status == 401:
        text = (
            N_(
                "ElevenLabs refused the API key (401): check the key in the voice-bot "
                "settings. ElevenLabs said: %(said)s"
            )
            if said
            else N_("ElevenLabs refused the API key (401): check the key in the voice-bot settings")
        )
    elif status == 403:
        text = (
            N_(
                "The ElevenLabs API key may not read Conversational AI conversations (403): "
                "give the key the ConvAI read permission. ElevenLabs said: %(said)s"
            )
            if said
            else N_(
                "The ElevenLabs API key may not read Conversational AI conversations (403): "
                "give the key the ConvAI read permission"
            )
        )
    elif status == 404:
        text = (
            N_(
                "ElevenLabs does not know %(what)s (404): check the agent ids in the "
                "settings. ElevenLabs said: %(said)s"
            )
            if said
            else N_("ElevenLabs does not know %(what)s (404): check the agent ids in the settings")
        )
    else:
        text = (
            N_(
                "ElevenLabs refused the request for %(what)s (%(status)s). "
                "ElevenLabs said: %(said)s"
            )
            if said
            else N_("ElevenLabs refused the request for %(what)s (%(status)s)")
        )
    return ElevenLabsError(text, status=status, permanent=True, params=params)


def test_connection(
    config: VoicebotConfig, *, sleep: Callable[[float], None] = time.sleep
) -> dict[str, Any]:
    """List one page per agent: {ok, detail, agents: [{agent_id, ok, detail}]}."""
    if not config.api_key:
        return {"ok": False, "detail": N_("No ElevenLabs API key is set"), "agents": []}
    if not config.agent_ids:
        return {"ok": False, "detail": N_("Add at least one agent id"), "agents": []}
    agents: list[dict[str, Any]] = []
    with ElevenLabsClient.from_config(config, sleep=sleep, max_total_wait=10.0) as client:
        for agent_id in config.agent_ids:
            try:
                page = client.list_conversations(agent_id, page_size=1)
            except ElevenLabsError as exc:
                agents.append({"agent_id": agent_id, "ok": False, "detail": exc.message})
                if exc.status in (401, 403):
                    break  # the key is wrong for every agent alike
                continue
            found = (
                N_("Reached; the agent has conversations")
                if page.conversations
                else N_("Reached; the agent has no conversations yet")
            )
            agents.append({"agent_id": agent_id, "ok": True, "detail": found})
    ok = len(agents) == len(config.agent_ids) and all(a["ok"] for a in agents)
    if ok:
        detail = N_("Connected to ElevenLabs; %(count)s agent(s) answered") % {"count": len(agents)}
    else:
        detail = next(a["detail"] for a in agents if not a["ok"])
    return {"ok": ok, "detail": detail, "agents": agents}


test_connection.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
