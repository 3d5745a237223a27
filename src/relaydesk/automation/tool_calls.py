"""Calling a tool: one HTTP request to the business's API, bounded and recorded.

Arguments the model chose fill the URL's `{placeholders}` (URL-encoded, so an argument
cannot change the path or the host), the rest go in the query (GET) or as a JSON body
(POST). The secret header is decrypted only here. A POST carries an `Idempotency-Key`
derived from the automation run and the call, so a retry after a crash asks the shop
for the same change, not a second one. Every connection's peer is checked (the network
guard) unless TOOLS_ALLOW_PRIVATE_NETWORKS is set; redirects are not followed; the
answer is read up to MAX_BYTES. Whatever happens, the caller gets a `ToolResult` the
model can be told about: nothing here raises for the shop's failures.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from jsonschema import Draft202012Validator

from relaydesk.automation.models import AssistantTool
from relaydesk.automation.tools import PLACEHOLDER, SETTING
from relaydesk.core.config import get_settings
from relaydesk.core.crypto import SecretUnreadable, decrypt
from relaydesk.core.netguard import BlockedAddress, GuardedTransport, check_public_url

TIMEOUT = 10.0  # seconds for the whole call
MAX_BYTES = 64 * 1024  # of the answer read and given to the model
EXCERPT = 500  # characters of the answer kept with the run
USER_AGENT = "relaydesk-tools/1"


@dataclass(frozen=True)
class ToolResult:
    """What came back: for the model (`content`) and for the record (the rest)."""

    status: int | None  # the HTTP status, None when no answer came
    latency_ms: int
    content: str  # what the model reads: the answer's text, or what went wrong
    error: str | None = None  # why the call failed (timeout, refused, bad arguments …)
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def excerpt(self) -> str:
        return self.content[:EXCERPT]


def canonical(arguments: dict[str, Any]) -> str:
    """The arguments as one text, the same whatever order the model wrote them in."""
    return json.dumps(arguments, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def idempotency_key(scope: str, name: str, arguments: dict[str, Any], nth: int = 0) -> str:
    """The same key for the same call in the same scope, whoever makes it again.

    `scope` is the automation run ("run:12") or a confirmed call ("confirmation:3");
    `nth` counts earlier calls of the same tool with the same arguments in that scope.
    A model asked again after a crash gives its calls new ids, so the key is derived
    from what is called, not from the model's id for the call.
    """
    text = f"relaydesk:{scope}:{name}:{canonical(arguments)}:{nth}"
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def check_arguments(tool: AssistantTool, arguments: dict[str, Any]) -> str | None:
    """Why `arguments` do not fit the tool's schema (None when they do)."""
    problems = sorted(
        Draft202012Validator(tool.parameters).iter_errors(arguments), key=lambda e: e.path
    )
    return f"bad arguments: {problems[0].message[:200]}" if problems else None


def build_request(tool: AssistantTool, arguments: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The URL and the query or body for these arguments (placeholders used up)."""
    rest = dict(arguments)

    def fill(match: Any) -> str:
        value = rest.pop(match.group(1), "")
        return quote(str(value), safe="")

    url = PLACEHOLDER.sub(fill, tool.url or "")
    return url, rest


_clients: dict[bool, httpx.Client] = {}
_clients_lock = threading.Lock()


def _client(*, guarded: bool) -> httpx.Client:
    """One pooled client per kind, shared by every call: a client per call would build a
    TLS context each time, which costs more CPU than the rest of the call. A pooled
    connection was checked by the network guard when it was opened."""
    with _clients_lock:
        client = _clients.get(guarded)
        if client is None:
            limits = httpx.Limits(max_connections=32, max_keepalive_connections=8)
            transport = (
                GuardedTransport(setting=SETTING, limits=limits)
                if guarded
                else httpx.HTTPTransport(limits=limits)
            )
            client = httpx.Client(transport=transport, timeout=TIMEOUT, follow_redirects=False)
            _clients[guarded] = client
        return client


def _failed(started: float, error: str, status: int | None = None) -> ToolResult:
    latency = int((time.monotonic() - started) * 1000)
    return ToolResult(status, latency, f"The tool failed: {error}", error=error)


def call(tool: AssistantTool, arguments: dict[str, Any], *, key: str | None = None) -> ToolResult:
    """Call `tool` with the model's `arguments` (checked against its schema first)."""
    started = time.monotonic()
    problem = check_arguments(tool, arguments)
    if problem:
        return _failed(started, problem)
    assert tool.url is not None and tool.method is not None
    url, rest = build_request(tool, arguments)
    allowed = get_settings().tools_allow_private_networks
    if not allowed:
        try:
            check_public_url(url, setting=SETTING)
        except BlockedAddress as exc:
            return _failed(started, str(exc))
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json, text/plain;q=0.9"}
    if tool.secret_header_name and tool.secret_header_value:
        try:
            headers[tool.secret_header_name] = decrypt(tool.secret_header_value)
        except SecretUnreadable:
            return _failed(started, "its secret header cannot be read (SECRET_KEY changed?)")
    if tool.method == "POST" and key:
        headers["Idempotency-Key"] = key
    try:
        with (
            _client(guarded=not allowed).stream(
                tool.method,
                url,
                headers=headers,
                params=rest if tool.method == "GET" else None,
                json=rest if tool.method == "POST" else None,
            ) as answer,
        ):
            body = bytearray()
            truncated = False
            for piece in answer.iter_bytes():
                body += piece
                if len(body) > MAX_BYTES:
                    truncated = True
                    del body[MAX_BYTES:]
                    break
            status = answer.status_code
    except httpx.TimeoutException:
        return _failed(started, f"no answer within {TIMEOUT:g} s")
    except httpx.HTTPError as exc:
        return _failed(started, f"could not connect ({type(exc).__name__})")
    latency = int((time.monotonic() - started) * 1000)
    text = body.decode("utf-8", errors="replace")
    if truncated:
        text += f"\n[the answer was cut at {MAX_BYTES // 1024} KB]"
    if not 200 <= status < 300:
        error = f"HTTP {status}"
        content = f"The tool answered HTTP {status}: {text[:2000]}"
        return ToolResult(status, latency, content, error=error, truncated=truncated)
    return ToolResult(status, latency, text, truncated=truncated)


def as_model_text(result: ToolResult) -> str:
    """The tool message content the model reads (JSON: status and the answer)."""
    return json.dumps(
        {"ok": result.ok, "status": result.status, "result": result.content}, ensure_ascii=False
    )


MAX_TRY_CHARS = 4000  # of the answer shown by "try it"


def try_tool(assistant_id: int | None, tool_id: int, arguments: dict[str, Any]) -> ToolResult:
    """Call a tool now with example arguments (the panel's and the API's "try it").

    A confirm tool is called for real too: an admin asked for it. The built-in tools
    that act on a conversation can only be tried in the test box.
    """
    from relaydesk.automation import acting, builtins, tools
    from relaydesk.core.db import session_scope
    from relaydesk.core.errors import Invalid
    from relaydesk.core.i18n import N_

    with session_scope(write=False) as session:
        tool = tools.get(session, assistant_id, tool_id)
        index = None
        if tool.builtin == builtins.SEARCH:
            index = _knowledge_index(session, assistant_id)
        session.expunge(tool)
    if tool.builtin in (builtins.HAND_OVER, builtins.SCHEDULE):
        raise Invalid(
            N_("This built-in tool acts on a conversation: try it in the test box"),
            params={},
        )
    scene = builtins.Scene(0, None, None, index, dry_run=True)
    key = hashlib.sha256(os.urandom(16)).hexdigest()[:40]
    return acting.carry_out(tool, arguments, scene, key)


def _knowledge_index(session: Any, assistant_id: int | None) -> str | None:
    from relaydesk.automation import assistants
    from relaydesk.automation import settings as cfg

    if assistant_id is not None:
        return assistants.get(session, assistant_id).knowledge_index
    return cfg.read_ai(session)[0].knowledge_index
