"""A receiver of outgoing webhooks on loopback: records each POST, answers as told.

`answer(body)` picks the status of each request (200 by default); `hold` makes every
request wait until it is set (an endpoint that hangs). The bench reuses it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.loopback import LoopbackServer


@dataclass(frozen=True)
class Received:
    """One POST as it arrived."""

    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered
    at: float  # time.time() when it arrived

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


class WebhookReceiver:
    """A threaded HTTP server on 127.0.0.1 that takes webhook POSTs."""

    def __init__(self, answer: Callable[[bytes], int] | None = None, record: bool = True) -> None:
        self.received: list[Received] = []
        self.count = 0
        self.answer = answer or (lambda body: 200)
        self.hold: threading.Event | None = None
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver
            disable_nagle_algorithm = True  # headers and body not 40 ms apart

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                at = time.time()
                if receiver.hold is not None:
                    receiver.hold.wait(30)
                status = receiver.answer(body)
                with receiver._lock:
                    receiver.count += 1
                    if record:
                        receiver.received.append(
                            Received(
                                {k.lower(): v for k, v in self.headers.items()}, body, status, at
                            )
                        )
                reply = b'{"ok": true}' if status < 400 else b"receiver error"
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = LoopbackServer(Handler)
        self.url = f"http://127.0.0.1:{self._server.port}/hooks"

    def __enter__(self) -> WebhookReceiver:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.hold is not None:
            self.hold.set()
        self._server.stop()

    def events(self, event_type: str | None = None) -> list[Received]:
        """What arrived so far (of one type)."""
        with self._lock:
            seen = list(self.received)
        return [r for r in seen if event_type is None or r.event["type"] == event_type]
