"""Where the Twilio emulator sends webhooks and status callbacks: a recording server.

Receiver records every POST (with twilio's own signature check at hand) and answers
TwiML on /twilio/inbound.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import pytest
from twilio.request_validator import RequestValidator

WAIT_SECONDS = 10.0


@dataclass
class Captured:
    """One request the emulator made to us."""

    url: str
    path: str
    headers: dict[str, str]
    params: dict[str, str]

    def signature_ok(self, auth_token: str) -> bool:
        """Check X-Twilio-Signature with twilio's own RequestValidator."""
        validator = RequestValidator(auth_token)
        return bool(validator.validate(self.url, self.params, self.headers["x-twilio-signature"]))


class Receiver:
    """A tiny HTTP server recording every POST; answers TwiML on /twilio/inbound."""

    def __init__(self) -> None:
        self.requests: list[Captured] = []
        self.inbound_answer = '<?xml version="1.0" encoding="UTF-8"?><Response />'
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length).decode()
                captured = Captured(
                    url=receiver.base_url + self.path,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    params=dict(parse_qsl(raw, keep_blank_values=True)),
                )
                with receiver._lock:
                    receiver.requests.append(captured)
                if self.path.startswith("/twilio/inbound"):
                    payload = receiver.inbound_answer.encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/xml")
                else:
                    payload = b""
                    self.send_response(204)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Shut the server down."""
        self._server.shutdown()
        self._server.server_close()

    def clear(self) -> None:
        """Forget what was captured."""
        with self._lock:
            self.requests.clear()
        self.inbound_answer = '<?xml version="1.0" encoding="UTF-8"?><Response />'

    def callbacks_for(self, sid: str) -> list[Captured]:
        """Status callbacks received so far for one message, in arrival order."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r.params.get("MessageSid") == sid and "MessageStatus" in r.params
            ]

    def wait_for(self, pick: Callable[[Receiver], list[Captured]], count: int) -> list[Captured]:
        """Poll until `pick` returns at least `count` requests (or fail after a generous wait)."""
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            found = pick(self)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        pytest.fail(f"expected {count} requests, got {len(pick(self))}: {self.requests}")
