"""Vendor fakes: small real HTTP servers on loopback.

FakeOpenAI speaks the part of the OpenAI REST API relaydesk uses (chat completions,
embeddings and the model list), checks the bearer key and the request shape, records
every request and answers deterministically.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

ROLES = ("system", "user", "assistant")
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
    users = [m["content"] for m in body["messages"] if m["role"] == "user"]
    return f"Echo: {users[-1] if users else ''}"


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
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            return f"Invalid value for 'messages[{i}].role'"
        if not isinstance(message.get("content"), str):
            return f"Invalid type for 'messages[{i}].content': expected a string"
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


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up is expected; anything else is a bug in the fake.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeOpenAI:
    """An OpenAI-compatible server on 127.0.0.1; `base_url` ends in /v1 like the real one."""

    def __init__(self, api_key: str | None = None, models: tuple[str, ...] = ()) -> None:
        self.api_key = api_key  # None: any key (or none) is accepted
        self.models = models  # if set, any other model gets 404; empty: every model exists
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []  # names lower-cased
        self._lock = threading.Lock()
        self._reply: Callable[[dict[str, Any]], str] = echo_last_user_message
        self._failures: list[int] = []
        self._httpd = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

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
        """Forget recorded requests, queued failures and a custom reply."""
        with self._lock:
            self.requests.clear()
            self.headers.clear()
            self._failures.clear()
            self._reply = echo_last_user_message

    def reply_with(self, fn: Callable[[dict[str, Any]], str]) -> None:
        """Answer chat completions with fn(request_json) from now on."""
        with self._lock:
            self._reply = fn

    def fail_next(self, status: int, times: int = 1) -> None:
        """Make the next `times` POST requests (chat or embeddings) fail with this status."""
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
                prompt = sum(_words(m["content"]) for m in body["messages"])
                completion = _words(answer)
                self._json(
                    200,
                    {
                        "id": f"chatcmpl-fake{len(fake.requests)}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body["model"],
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": answer},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {
                            "prompt_tokens": prompt,
                            "completion_tokens": completion,
                            "total_tokens": prompt + completion,
                        },
                    },
                )

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
