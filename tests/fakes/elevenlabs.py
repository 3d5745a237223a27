"""A fake ElevenLabs API: a small real HTTP server on loopback.

Every request is checked against ElevenLabs' own OpenAPI document
(shared/specs/elevenlabs_openapi.json) and answered 422 in ElevenLabs' shape when it does
not fit. Endpoints are routes in `FakeElevenLabs.__init__`: adding one (for example the
Conversational AI `GET /v1/convai/conversations`) is one `add_route` call and a handler.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jsonschema  # type: ignore[import-untyped, unused-ignore]
import pytest
import referencing
import referencing.jsonschema

from tests.fakes.loopback import LoopbackServer

SPEC_PATH = Path(__file__).resolve().parents[3] / "shared" / "specs" / "elevenlabs_openapi.json"
_SPEC_URI = "urn:elevenlabs-openapi"
_ERRORS = {
    401: ("invalid_api_key", "Invalid API key"),
    429: ("too_many_concurrent_requests", "Too many concurrent requests for your plan"),
    500: ("internal_server_error", "Something went wrong on our side"),
}


@dataclass(frozen=True)
class Request:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: Any  # parsed JSON, or None
    raw: bytes


@dataclass(frozen=True)
class Reply:
    """What a route answers."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, status: int, payload: Any) -> Reply:
        """A JSON answer."""
        return cls(status, json.dumps(payload).encode())


def error_reply(status: int, kind: str, message: str) -> Reply:
    """An error in ElevenLabs' shape: {"detail": {"status": ..., "message": ...}}."""
    return Reply.json(status, {"detail": {"status": kind, "message": message}})


@functools.cache
def sample_mp3() -> bytes:
    """A short real MP3 of speech, made once with espeak-ng and ffmpeg."""
    wav = subprocess.run(
        ["espeak-ng", "-v", "en", "--stdout", "--stdin"],
        input=b"Hello from the fake ElevenLabs.",
        capture_output=True,
        check=True,
    ).stdout
    mp3 = ["-ac", "1", "-c:a", "libmp3lame", "-b:a", "64k", "-f", "mp3", "pipe:1"]
    return subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", "pipe:0", *mp3],
        input=wav,
        capture_output=True,
        check=True,
    ).stdout


class OpenAPIDocument:
    """Finds the operation of a request in an OpenAPI 3.1 document and checks the request."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        resource = referencing.Resource.from_contents(
            document, default_specification=referencing.jsonschema.DRAFT202012
        )
        self._registry: referencing.Registry[Any] = referencing.Registry().with_resource(
            _SPEC_URI, resource
        )
        # Literal paths before templated ones: /v1/voices/settings beats /v1/voices/{id}.
        self._paths = sorted(
            ((_template_regex(p), p) for p in document["paths"]), key=lambda t: t[1].count("{")
        )

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        """The path template and operation object serving `method path`, if any."""
        for regex, template in self._paths:
            if regex.fullmatch(path):
                found = self.document["paths"][template].get(method.lower())
                if found is not None:
                    return template, found
        return None

    def errors(self, operation: dict[str, Any], request: Request) -> list[dict[str, Any]]:
        """What is wrong with the request, as FastAPI's validation error items."""
        problems: list[dict[str, Any]] = []
        for param in operation.get("parameters", []):
            where = param["in"]
            values = request.query if where == "query" else request.headers
            if where not in ("query", "header"):
                continue  # path parameters matched the template already
            name = param["name"] if where == "query" else param["name"].lower()
            if name not in values:
                if param.get("required"):
                    problems.append(_problem([where, param["name"]], "Field required"))
                continue
            message = self._check_parameter(param["schema"], values[name])
            if message is not None:
                problems.append(_problem([where, param["name"]], message))
        body_spec = operation.get("requestBody")
        if body_spec is None:
            return problems
        schema = body_spec["content"].get("application/json", {}).get("schema")
        if schema is None:
            return problems
        if request.body is None:
            if body_spec.get("required"):
                problems.append(_problem(["body"], "Field required (a JSON body)"))
            return problems
        for error in self._validator(schema).iter_errors(request.body):
            problems.append(_problem(["body", *error.absolute_path], error.message))
        return problems

    def response_errors(self, operation: dict[str, Any], status: int, payload: Any) -> list[str]:
        """What is wrong with a JSON answer, per the operation's response schema."""
        spec = operation.get("responses", {}).get(str(status))
        if spec is None:
            return [f"status {status} is not documented"]
        schema = spec.get("content", {}).get("application/json", {}).get("schema")
        if schema is None:
            return []
        return [
            f"{'/'.join(str(p) for p in error.absolute_path)}: {error.message}"
            for error in self._validator(schema).iter_errors(payload)
        ]

    def _check_parameter(self, schema: dict[str, Any], value: str) -> str | None:
        validator = self._validator(schema)
        if validator.is_valid(value):
            return None
        try:  # query and header values are strings; "true" or "3" may mean a JSON value
            if validator.is_valid(json.loads(value)):
                return None
        except ValueError:
            pass
        return str(next(iter(validator.iter_errors(value))).message)

    def _validator(self, schema: dict[str, Any]) -> jsonschema.protocols.Validator:
        # $refs in the schema point into the whole document ("#/components/schemas/...").
        if "$ref" in schema and schema["$ref"].startswith("#"):
            schema = {**schema, "$ref": _SPEC_URI + schema["$ref"]}
        else:
            schema = {"$id": _SPEC_URI + "-inline", **_rebase(schema)}
        return jsonschema.Draft202012Validator(schema, registry=self._registry)


def _rebase(node: Any) -> Any:
    """Point local $refs of an inline schema at the stored document."""
    if isinstance(node, dict):
        return {
            k: (_SPEC_URI + v if k == "$ref" and v.startswith("#") else _rebase(v))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rebase(v) for v in node]
    return node


def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}/]+\})", template)
    return re.compile(
        "".join(f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts if p)
    )


def _problem(loc: list[Any], message: str) -> dict[str, Any]:
    return {"loc": loc, "msg": message, "type": "value_error"}


@functools.cache
def elevenlabs_spec() -> OpenAPIDocument:
    """ElevenLabs' OpenAPI document, read once."""
    return OpenAPIDocument(json.loads(SPEC_PATH.read_text()))


Handler = Callable[[Request, dict[str, str]], Reply]


@dataclass
class _Route:
    method: str
    regex: re.Pattern[str]
    handler: Handler


@dataclass
class _State:
    requests: list[Request] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)
    rate_limits: list[str] = field(default_factory=list)  # Retry-After of each queued 429
    per_path: Counter[str] = field(default_factory=Counter)


class FakeElevenLabs:
    """ElevenLabs on 127.0.0.1: `base_url` has no /v1, like https://api.elevenlabs.io."""

    def __init__(self, api_key: str | None = None, voices: tuple[str, ...] = ()) -> None:
        self.api_key = api_key  # None: any xi-api-key (or none) is accepted
        self.voices = voices  # if set, other voice ids get 404; empty: every voice exists
        self.spec = elevenlabs_spec()
        self._state = _State()
        self._lock = threading.Lock()
        self._routes: list[_Route] = []
        self.add_route("POST", "/v1/text-to-speech/{voice_id}", self._text_to_speech)
        # Conversational AI: conversations added with add_conversation (details objects).
        self.conversations: dict[str, dict[str, Any]] = {}
        self.directions: dict[str, str] = {}
        self.latency = 0.0  # seconds every request waits before it is answered (benchmarks)
        self.validate_responses = True
        self.response_problems: list[str] = []  # answers that broke the spec (should stay [])
        self.add_route("GET", "/v1/convai/conversations", self._list_conversations)
        self.add_route("GET", "/v1/convai/conversations/{conversation_id}", self._get_conversation)
        self._server = LoopbackServer(self._handler_class())
        self.base_url = f"http://127.0.0.1:{self._server.port}"

    @property
    def requests(self) -> list[Request]:
        """Every request received so far, valid or not."""
        with self._lock:
            return list(self._state.requests)

    def add_route(self, method: str, template: str, handler: Handler) -> None:
        """Serve `method template` (OpenAPI path syntax) with handler(request, path_params)."""
        self._routes.append(_Route(method, _template_regex(template), handler))

    def start(self) -> None:
        """Serve requests in a background thread."""
        self._server.start()

    def stop(self) -> None:
        """Stop serving and free the port (a second call does nothing)."""
        self._server.stop()

    def reset(self) -> None:
        """Forget recorded requests, counters and queued failures (not the conversations)."""
        with self._lock:
            self._state = _State()

    def count(self, path: str) -> int:
        """How many requests reached `path` exactly (valid or not)."""
        with self._lock:
            return self._state.per_path[path]

    def count_prefix(self, prefix: str) -> int:
        """How many requests reached paths starting with `prefix`."""
        with self._lock:
            return sum(n for p, n in self._state.per_path.items() if p.startswith(prefix))

    def rate_limit_next(self, times: int = 1, retry_after: float | str = 1) -> None:
        """Answer the next `times` valid requests 429 with this Retry-After header."""
        with self._lock:
            self._state.rate_limits.extend([str(retry_after)] * times)

    def add_conversation(self, details: dict[str, Any], *, direction: str | None = None) -> None:
        """Serve a conversation (a GetConversationResponseModel); same id: replaced.

        `direction` is what the list says when the details have no phone_call to tell.
        """
        with self._lock:
            self.conversations[str(details["conversation_id"])] = details
            if direction is not None:
                self.directions[str(details["conversation_id"])] = direction

    def remove_conversation(self, conversation_id: str) -> None:
        """Forget a conversation (its details answer 404 from now on)."""
        with self._lock:
            self.conversations.pop(conversation_id, None)

    def fail_next(self, status: int, times: int = 1) -> None:
        """Answer the next `times` valid requests with this error status (401, 429, 500...)."""
        with self._lock:
            self._state.failures.extend([status] * times)

    # Routes ---------------------------------------------------------------------------

    def _text_to_speech(self, request: Request, params: dict[str, str]) -> Reply:
        voice_id = params["voice_id"]
        if self.voices and voice_id not in self.voices:
            return error_reply(
                404, "voice_not_found", f"A voice with voice_id {voice_id} does not exist."
            )
        fmt = request.query.get("output_format", "mp3_44100_128")
        if not fmt.startswith("mp3_"):
            return error_reply(400, "unsupported_format", f"The fake only makes MP3, not {fmt}")
        return Reply(200, sample_mp3(), "audio/mpeg")

    def _list_conversations(self, request: Request, params: dict[str, str]) -> Reply:
        query = request.query
        after = int(query["call_start_after_unix"]) if "call_start_after_unix" in query else None
        before = int(query["call_start_before_unix"]) if "call_start_before_unix" in query else None
        with self._lock:
            items = list(self.conversations.values())
        chosen = [
            d
            for d in items
            if (not query.get("agent_id") or d["agent_id"] == query["agent_id"])
            and (after is None or _start(d) >= after)
            and (before is None or _start(d) < before)
        ]
        chosen.sort(key=_order_key)  # newest first, like ElevenLabs
        if query.get("cursor"):
            try:
                mark = json.loads(base64.urlsafe_b64decode(query["cursor"].encode()))
            except ValueError:
                return error_reply(400, "invalid_cursor", "The cursor is not valid")
            chosen = [d for d in chosen if _order_key(d) > (mark[0], mark[1])]
        size = int(query.get("page_size", 30))
        page, more = chosen[:size], len(chosen) > size
        cursor = None
        if more:
            key = _order_key(page[-1])
            cursor = base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode()
        include = query.get("summary_mode") == "include"
        body = {
            "conversations": [
                summary_of(d, self.directions.get(d["conversation_id"]), include_summary=include)
                for d in page
            ],
            "has_more": more,
            "next_cursor": cursor,
        }
        return Reply.json(200, body)

    def _get_conversation(self, request: Request, params: dict[str, str]) -> Reply:
        with self._lock:
            details = self.conversations.get(params["conversation_id"])
        if details is None:
            return error_reply(
                404,
                "conversation_not_found",
                f"Conversation {params['conversation_id']} was not found",
            )
        return Reply.json(200, details)

    # Dispatch -------------------------------------------------------------------------

    def _answer(self, request: Request) -> Reply:
        with self._lock:
            self._state.requests.append(request)
            self._state.per_path[request.path] += 1
        if self.latency:
            time.sleep(self.latency)
        for route in self._routes:
            match = route.regex.fullmatch(request.path)
            if match is not None and route.method == request.method:
                break
        else:
            return Reply.json(404, {"detail": "Not Found"})
        found = self.spec.operation(request.method, request.path)
        if found is None:
            raise AssertionError(f"{request.method} {request.path} is not in the OpenAPI spec")
        problems = self.spec.errors(found[1], request)
        if problems:
            return Reply.json(422, {"detail": problems})
        if self.api_key is not None and request.headers.get("xi-api-key") != self.api_key:
            return error_reply(401, *_ERRORS[401])
        with self._lock:
            failure = self._state.failures.pop(0) if self._state.failures else None
        if failure is not None:
            kind, message = _ERRORS.get(failure, ("simulated_failure", "Simulated failure"))
            return error_reply(failure, kind, message)
        with self._lock:
            retry_after = self._state.rate_limits.pop(0) if self._state.rate_limits else None
        if retry_after is not None:
            reply = error_reply(429, *_ERRORS[429])
            return Reply(429, reply.body, headers=(("Retry-After", retry_after),))
        reply = route.handler(request, match.groupdict())
        if self.validate_responses and reply.content_type == "application/json":
            problems = self.spec.response_errors(found[1], reply.status, json.loads(reply.body))
            if problems and reply.status < 400:
                with self._lock:
                    self.response_problems.extend(f"{request.path}: {p}" for p in problems)
        return reply

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class HTTPHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_DELETE(self) -> None:
                self._serve("DELETE")

            def _serve(self, method: str) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                url = urlsplit(self.path)
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    self._send(
                        Reply.json(422, {"detail": [_problem(["body"], "JSON decode error")]})
                    )
                    return
                request = Request(
                    method=method,
                    path=url.path,
                    query=dict(parse_qsl(url.query)),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    raw=raw,
                )
                self._send(fake._answer(request))

            def _send(self, reply: Reply) -> None:
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                for name, value in reply.headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(reply.body)

        return HTTPHandler


def _start(details: dict[str, Any]) -> int:
    return int(details["metadata"]["start_time_unix_secs"])


def _order_key(details: dict[str, Any]) -> tuple[int, str]:
    """Sort key of the list: newest first, then by id (the cursor is the last key seen)."""
    return (-_start(details), str(details["conversation_id"]))


def summary_of(
    details: dict[str, Any], direction: str | None = None, *, include_summary: bool = False
) -> dict[str, Any]:
    """The list entry (ConversationSummaryResponseModel) ElevenLabs shows for a conversation."""
    metadata = details["metadata"]
    analysis = details.get("analysis") or {}
    phone_call = metadata.get("phone_call") or {}
    summary: dict[str, Any] = {
        "agent_id": details["agent_id"],
        "agent_name": details.get("agent_name"),
        "conversation_id": details["conversation_id"],
        "start_time_unix_secs": metadata["start_time_unix_secs"],
        "call_duration_secs": metadata["call_duration_secs"],
        "message_count": len(details.get("transcript") or []),
        "status": details["status"],
        "call_successful": analysis.get("call_successful", "unknown"),
        "call_summary_title": analysis.get("call_summary_title"),
        "direction": phone_call.get("direction", direction),
    }
    if include_summary:
        summary["transcript_summary"] = analysis.get("transcript_summary")
    return summary


@pytest.fixture
def elevenlabs_fake() -> Iterator[FakeElevenLabs]:
    """A running FakeElevenLabs that accepts any key and voice; stopped after the test."""
    fake = FakeElevenLabs()
    fake.start()
    yield fake
    fake.stop()
