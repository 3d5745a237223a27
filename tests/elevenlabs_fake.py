"""A fake ElevenLabs API: a small real HTTP server on loopback.

Every request is checked against ElevenLabs' own OpenAPI document
(shared/specs/elevenlabs_openapi.json) and answered 422 in ElevenLabs' shape when it does
not fit. Endpoints are routes in `FakeElevenLabs.__init__`: adding one (for example the
Conversational AI `GET /v1/convai/conversations`) is one `add_route` call and a handler.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jsonschema  # type: ignore[import-untyped, unused-ignore]
import pytest
import referencing
import referencing.jsonschema

SPEC_PATH = Path(__file__).resolve().parents[2] / "shared" / "specs" / "elevenlabs_openapi.json"
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


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up is expected; anything else is a bug in the fake.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass
class _State:
    requests: list[Request] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)


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
        self._httpd = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}"

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
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and free the port (a second call does nothing)."""
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(timeout=10)
        self._httpd.server_close()

    def reset(self) -> None:
        """Forget recorded requests and queued failures."""
        with self._lock:
            self._state = _State()

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

    # Dispatch -------------------------------------------------------------------------

    def _answer(self, request: Request) -> Reply:
        with self._lock:
            self._state.requests.append(request)
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
        return route.handler(request, match.groupdict())

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
                self.end_headers()
                self.wfile.write(reply.body)

        return HTTPHandler


@pytest.fixture
def elevenlabs_fake() -> Iterator[FakeElevenLabs]:
    """A running FakeElevenLabs that accepts any key and voice; stopped after the test."""
    fake = FakeElevenLabs()
    fake.start()
    yield fake
    fake.stop()
