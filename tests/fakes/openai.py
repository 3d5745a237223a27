"""The OpenAI fake: a small real HTTP server on loopback.

FakeOpenAI speaks the part of the OpenAI REST API relaydesk uses (chat completions, also
with image parts, embeddings, audio transcriptions and the model list), checks the bearer
key and the request shape, records every request and answers deterministically.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from tests.fakes.loopback import LoopbackServer

ROLES = ("system", "user", "assistant", "tool")
DEFAULT_MODELS = ("gpt-4o-mini", "gpt-4o")
EMBEDDING_SIZES = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
OTHER_EMBEDDING_SIZE = 768  # any other model name (Ollama's nomic-embed-text has 768)
MAX_EMBEDDING_INPUTS = 2048
_STATUS_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


def _words(text: str) -> int:
    return len(text.split())


def echo_last_user_message(body: dict[str, Any]) -> str:
    """The default answer: "Echo: " and the content of the last user message."""
    users = [content_text(m["content"]) for m in body["messages"] if m["role"] == "user"]
    return f"Echo: {users[-1] if users else ''}"


def content_text(content: str | list[dict[str, Any]] | None) -> str:
    """A message's text: the string itself, or its text parts joined (images left out)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return " ".join(part["text"] for part in content if part.get("type") == "text")


def _content_parts_error(i: int, parts: Any) -> str | None:
    """What is wrong with a user message's list of text and image_url parts, or None."""
    if not isinstance(parts, list) or not parts:
        return f"Invalid type for 'messages[{i}].content': expected a string or parts"
    for j, part in enumerate(parts):
        where = f"'messages[{i}].content[{j}]'"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            continue
        image = part.get("image_url") if kind == "image_url" else None
        if isinstance(image, dict) and isinstance(image.get("url"), str):
            if not image["url"].startswith(("data:image/", "https://", "http://")):
                return f"Invalid image URL in {where}"
            continue
        return f"Invalid content part {where}: expected text or image_url"
    return None


def _validation_error(body: Any) -> str | None:
    """What is wrong with a chat completion request body, or None."""
    if not isinstance(body, dict):
        return "The request body must be a JSON object."
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return "you must provide a model parameter"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty array"
    called: set[str] = set()  # tool_call ids the assistant asked for so far
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            return f"Invalid value for 'messages[{i}].role'"
        content = message.get("content")
        asked = message.get("tool_calls") if message["role"] == "assistant" else None
        if asked:
            problem = _tool_calls_error(i, asked)
            if problem is not None:
                return problem
            called |= {call["id"] for call in asked}
        if message["role"] == "tool" and message.get("tool_call_id") not in called:
            return (
                "Invalid parameter: messages with role 'tool' must be a response to a "
                "preceeding message with 'tool_calls'."
            )
        if message["role"] == "user" and isinstance(content, list):
            problem = _content_parts_error(i, content)
            if problem is not None:
                return problem
        elif not isinstance(content, str) and not (asked and content is None):
            return f"Invalid type for 'messages[{i}].content': expected a string"
    return _tools_error(body.get("tools"))


def _tool_calls_error(i: int, calls: Any) -> str | None:
    """What is wrong with an assistant message's tool_calls, or None."""
    if not isinstance(calls, list):
        return f"Invalid type for 'messages[{i}].tool_calls': expected an array"
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if (
            not isinstance(function, dict)
            or call.get("type") != "function"
            or not isinstance(call.get("id"), str)
            or not isinstance(function.get("name"), str)
            or not isinstance(function.get("arguments"), str)
        ):
            return f"Invalid value for 'messages[{i}].tool_calls'"
    return None


def _tools_error(tools: Any) -> str | None:
    """What is wrong with a request's tools (function definitions), or None."""
    if tools is None:
        return None
    if not isinstance(tools, list) or not tools:
        return "Invalid 'tools': expected a non-empty array"
    for j, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        if tool.get("type") != "function" or not isinstance(name, str):
            return f"Invalid value for 'tools[{j}]'"
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
            return f"Invalid 'tools[{j}].function.name': string does not match pattern."
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            return f"Invalid type for 'tools[{j}].function.parameters': expected an object"
    return None


def fake_embedding(text: str, size: int) -> list[float]:
    """A hashed bag of words of unit length: texts sharing words have similar vectors."""
    vector = [0.0] * size
    for word in re.findall(r"\w+", text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        vector[int.from_bytes(digest[:4], "little") % size] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(x * x for x in vector))
    if norm == 0:
        vector[0], norm = 1.0, 1.0
    return [x / norm for x in vector]


def embedding_size(model: str) -> int:
    """The vector length the fake gives `model` when no `dimensions` is asked for."""
    return EMBEDDING_SIZES.get(model, OTHER_EMBEDDING_SIZE)


def _embedding_error(body: Any) -> str | None:
    """What is wrong with an embeddings request body, or None."""
    if not isinstance(body, dict):
        return "The request body must be a JSON object."
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return "you must provide a model parameter"
    texts = body.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts:
        return "'input' must be a non-empty string or array of strings"
    if len(texts) > MAX_EMBEDDING_INPUTS:
        return f"'input' must have at most {MAX_EMBEDDING_INPUTS} items"
    if not all(isinstance(t, str) and t for t in texts):
        return "'$.input' is invalid: every item must be a non-empty string"
    if body.get("encoding_format", "float") not in ("float", "base64"):
        return "'encoding_format' must be 'float' or 'base64'"
    dimensions = body.get("dimensions")
    if dimensions is not None:
        if not model.startswith("text-embedding-3"):
            return "This model does not support specifying dimensions."
        if not isinstance(dimensions, int) or not 1 <= dimensions <= embedding_size(model):
            return f"'dimensions' must be between 1 and {embedding_size(model)}"
    return None


TRANSCRIPTION_FORMATS = ("json", "text")


def parse_multipart(content_type: str, body: bytes) -> dict[str, dict[str, Any]]:
    """The fields of a multipart/form-data body: name -> value, filename, content_type."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.startswith("multipart/form-data") or match is None:
        raise ValueError("expected multipart/form-data with a boundary")
    delimiter = b"\r\n--" + match.group(1).encode()
    sections = (b"\r\n" + body).split(delimiter)
    if len(sections) < 3 or not sections[-1].startswith(b"--"):
        raise ValueError("the multipart body is not closed by its boundary")
    fields: dict[str, dict[str, Any]] = {}
    for section in sections[1:-1]:
        head, sep, value = section.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("a multipart section has no blank line after its headers")
        headers = {}
        for line in head.decode("utf-8").split("\r\n")[1:]:  # [0]: rest of delimiter line
            name, _, text = line.partition(":")
            headers[name.strip().lower()] = text.strip()
        params = dict(re.findall(r'(\w+)="([^"]*)"', headers.get("content-disposition", "")))
        if "name" not in params:
            raise ValueError("a multipart section has no name")
        fields[params["name"]] = {
            "value": value,
            "filename": params.get("filename"),
            "content_type": headers.get("content-type"),
        }
    return fields


def _transcription_error(fields: dict[str, dict[str, Any]]) -> str | None:
    """What is wrong with an audio transcription form, or None."""
    if not fields.get("model", {}).get("value"):
        return "you must provide a model parameter"
    file = fields.get("file")
    if file is None or file["filename"] is None or not file["value"]:
        return "you must provide a file"
    response_format = fields.get("response_format", {}).get("value", b"json").decode()
    if response_format not in TRANSCRIPTION_FORMATS:
        return f"response_format '{response_format}' is not supported by the fake"
    return None


class FakeOpenAI:
    """An OpenAI-compatible server on 127.0.0.1; `base_url` ends in /v1 like the real one."""

    def __init__(self, api_key: str | None = None, models: tuple[str, ...] = ()) -> None:
        self.api_key = api_key  # None: any key (or none) is accepted
        self.models = models  # if set, any other model gets 404; empty: every model exists
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []  # names lower-cased
        # Each transcription form: field name -> text, and "file" -> the uploaded bytes.
        self.transcriptions: list[dict[str, Any]] = []
        self.transcript = "This is a transcript."
        self._lock = threading.Lock()
        # A reply is the answer's text, or {"tool_calls": [{"name", "arguments"}]}.
        self._reply: Callable[[dict[str, Any]], Any] = echo_last_user_message
        self._failures: list[int] = []
        self._server = LoopbackServer(self._handler_class())
        self.base_url = f"http://127.0.0.1:{self._server.port}/v1"

    def start(self) -> None:
        """Serve requests in a background thread."""
        self._server.start()

    def stop(self) -> None:
        """Stop serving and free the port (a second call does nothing)."""
        self._server.stop()

    def reset(self) -> None:
        """Forget recorded requests, queued failures and a custom reply."""
        with self._lock:
            self.requests.clear()
            self.headers.clear()
            self._failures.clear()
            self._reply = echo_last_user_message
            self.transcriptions.clear()
            self.transcript = "This is a transcript."

    def transcribe_with(self, text: str) -> None:
        """Answer audio transcriptions with this text from now on."""
        with self._lock:
            self.transcript = text

    def reply_with(self, fn: Callable[[dict[str, Any]], Any]) -> None:
        """Answer chat completions with fn(request_json) from now on: a text, or
        {"tool_calls": [{"name": ..., "arguments": {...}}]} to call the request's tools."""
        with self._lock:
            self._reply = fn

    def fail_next(self, status: int, times: int = 1) -> None:
        """Make the next `times` POST requests (any endpoint) fail with this status."""
        with self._lock:
            self._failures.extend([status] * times)

    # The handler reads and changes this object's state under its lock.
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like the SDK's connection pool expects
            # Headers and body are written separately: with Nagle's algorithm on, the body
            # would wait ~40 ms for the client's delayed ACK on a kept-alive connection.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.rstrip("/") != "/v1/models":
                    self._error(404, f"Unknown request URL: GET {self.path}")
                    return
                if self._authorized():
                    data = [
                        {"id": m, "object": "model", "created": 0, "owned_by": "fake"}
                        for m in fake.models or DEFAULT_MODELS
                    ]
                    self._json(200, {"object": "list", "data": data})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                path = self.path.rstrip("/")
                if path == "/v1/audio/transcriptions":
                    self._transcription(raw)
                    return
                if path not in ("/v1/chat/completions", "/v1/embeddings"):
                    self._error(404, f"Unknown request URL: POST {self.path}")
                    return
                try:
                    body = json.loads(raw or b"null")
                except ValueError:
                    body = None
                with fake._lock:
                    if isinstance(body, dict):
                        fake.requests.append(body)
                    fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                if not self._authorized():
                    return
                with fake._lock:
                    failure = fake._failures.pop(0) if fake._failures else None
                    reply = fake._reply
                if failure is not None:
                    self._error(failure, f"Simulated failure {failure}")
                    return
                if path == "/v1/embeddings":
                    self._embeddings(body)
                    return
                problem = _validation_error(body)
                if problem is not None:
                    self._error(400, problem)
                    return
                if fake.models and body["model"] not in fake.models:
                    self._error(404, f"The model `{body['model']}` does not exist")
                    return
                answer = reply(body)
                prompt = sum(_words(content_text(m.get("content"))) for m in body["messages"])
                if isinstance(answer, dict):  # the model calls tools
                    calls = [
                        {
                            "id": f"call_{len(fake.requests)}_{n}",
                            "type": "function",
                            "function": {
                                "name": call["name"],
                                "arguments": json.dumps(call["arguments"], ensure_ascii=False),
                            },
                        }
                        for n, call in enumerate(answer["tool_calls"])
                    ]
                    message: dict[str, Any] = {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": calls,
                    }
                    finish, completion = "tool_calls", 10 * len(calls)
                else:
                    message = {"role": "assistant", "content": answer}
                    finish, completion = "stop", _words(answer)
                self._json(
                    200,
                    {
                        "id": f"chatcmpl-fake{len(fake.requests)}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body["model"],
                        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                        "usage": {
                            "prompt_tokens": prompt,
                            "completion_tokens": completion,
                            "total_tokens": prompt + completion,
                        },
                    },
                )

            def _transcription(self, raw: bytes) -> None:
                try:
                    form = parse_multipart(self.headers.get("Content-Type", ""), raw)
                except ValueError as exc:
                    self._error(400, f"Could not parse multipart form: {exc}")
                    return
                record: dict[str, Any] = {
                    name: field["value"].decode("utf-8", errors="replace")
                    for name, field in form.items()
                    if field["filename"] is None
                }
                if "file" in form:
                    record["file"] = form["file"]["value"]
                    record["filename"] = form["file"]["filename"]
                    record["file_content_type"] = form["file"]["content_type"]
                with fake._lock:
                    fake.transcriptions.append(record)
                    fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                if not self._authorized():
                    return
                with fake._lock:
                    failure = fake._failures.pop(0) if fake._failures else None
                    text = fake.transcript
                if failure is not None:
                    self._error(failure, f"Simulated failure {failure}")
                    return
                problem = _transcription_error(form)
                if problem is not None:
                    self._error(400, problem)
                    return
                if fake.models and record["model"] not in fake.models:
                    self._error(404, f"The model `{record['model']}` does not exist")
                    return
                if record.get("response_format") == "text":
                    data = text.encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                self._json(200, {"text": text})

            def _embeddings(self, body: Any) -> None:
                problem = _embedding_error(body)
                if problem is not None:
                    self._error(400, problem)
                    return
                model = body["model"]
                if fake.models and model not in fake.models:
                    self._error(404, f"The model `{model}` does not exist")
                    return
                texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
                size = body.get("dimensions") or embedding_size(model)
                data = []
                for i, text in enumerate(texts):
                    vector: Any = fake_embedding(text, size)
                    if body.get("encoding_format") == "base64":
                        vector = base64.b64encode(struct.pack(f"<{size}f", *vector)).decode()
                    data.append({"object": "embedding", "index": i, "embedding": vector})
                tokens = sum(_words(t) for t in texts)
                self._json(
                    200,
                    {
                        "object": "list",
                        "data": data,
                        "model": model,
                        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                    },
                )

            def _authorized(self) -> bool:
                if fake.api_key is None:
                    return True
                if self.headers.get("Authorization") == f"Bearer {fake.api_key}":
                    return True
                self._error(401, "Incorrect API key provided.")
                return False

            def _error(self, status: int, message: str) -> None:
                kind, code = _STATUS_TYPES.get(status, ("server_error", None))
                self._json(status, {"error": {"message": message, "type": kind, "code": code}})

            def _json(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


@pytest.fixture
def openai_fake() -> Iterator[FakeOpenAI]:
    """A running FakeOpenAI that accepts any key; stopped after the test."""
    fake = FakeOpenAI()
    fake.start()
    yield fake
    fake.stop()
