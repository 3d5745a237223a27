"""A shop's API on loopback, for assistants' tools: orders to look up, slots to book.

GET /api/orders/<number> answers the order's status when the X-Api-Key header is right
(401 otherwise); POST /api/bookings books a slot and remembers each Idempotency-Key (a
repeated key books nothing new; with `hold_bookings` it answers only once `release` is
set, and `booking_arrived` tells that one came); /api/slow holds its answer until
`release` is set;
/api/big answers 5 MB; /api/boom answers 500; /api/moved redirects.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.loopback import LoopbackServer

API_KEY = "sk_shop_0123456789"
# The parameters of a tool that asks for an order's status by its number.
ORDER_SCHEMA = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}},
    "required": ["order_id"],
}
ORDERS = {"A-123": "w drodze, kurier DPD, dostawa jutro 10-14", "A-124": "dostarczone"}


class Shop:
    """The shop's server; `seen` lists (method, path, query, headers, body) of each call."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, list[str]], dict[str, str], Any]] = []
        self.bookings: Counter[str] = Counter()  # Idempotency-Key -> times asked
        self.release = threading.Event()
        self.hold_bookings = False
        self.booking_arrived = threading.Event()
        shop = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(
                self, status: int, payload: Any, headers: dict[str, str] | None = None
            ) -> None:
                body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _record(self, body: Any = None) -> tuple[str, dict[str, list[str]]]:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                headers = {k.lower(): v for k, v in self.headers.items()}
                shop.seen.append((self.command, parts.path, query, headers, body))
                return parts.path, query

            def do_GET(self) -> None:
                path, _ = self._record()
                if path.startswith("/api/orders/"):
                    if self.headers.get("X-Api-Key") != API_KEY:
                        self._answer(401, {"error": "bad key"})
                        return
                    number = unquote(path.removeprefix("/api/orders/"))
                    if number not in ORDERS:
                        self._answer(404, {"error": f"no order {number}"})
                        return
                    self._answer(200, {"order": number, "status": ORDERS[number]})
                elif path == "/api/slow":
                    shop.release.wait(30)
                    self._answer(200, {"late": True})
                elif path == "/api/big":
                    self._answer(200, b"x" * (5 * 1024 * 1024))
                elif path == "/api/boom":
                    self._answer(500, {"error": "database down"})
                elif path == "/api/moved":
                    self._answer(302, {}, {"Location": "http://127.0.0.1:1/elsewhere"})
                else:
                    self._answer(404, {"error": "no such path"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                path, _ = self._record(body)
                if path != "/api/bookings":
                    self._answer(404, {"error": "no such path"})
                    return
                key = self.headers.get("Idempotency-Key") or ""
                shop.bookings[key] += 1
                shop.booking_arrived.set()
                if shop.hold_bookings:
                    shop.release.wait(30)
                self._answer(201, {"booked": body, "first_time": shop.bookings[key] == 1})

            def log_message(self, *args: Any) -> None:
                pass

        self._server = LoopbackServer(Handler)
        self.base = f"http://127.0.0.1:{self._server.port}"

    def __enter__(self) -> Shop:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._server.stop()
