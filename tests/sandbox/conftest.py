"""The emulator under uvicorn on loopback, a receiver for its callbacks, and spec validation."""

from __future__ import annotations

import copy
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import uvicorn
from twilio.rest import Client

from relaydesk.channels.sandbox.app import create_sandbox_app
from relaydesk.channels.sandbox.runtime import stop_emulator
from relaydesk.channels.twilio.gateway import make_client
from relaydesk.core.config import Settings, get_settings
from tests.fakes.twilio_callbacks import WAIT_SECONDS, Receiver

REPO = Path(__file__).resolve().parents[2]
SPEC_PATH = REPO.parent / "shared" / "specs" / "twilio_api_v2010.json"
MESSAGE_SCHEMA = "api.v2010.account.message"

# Knobs that must be neutral here whatever the environment (or tests/conftest.py) says.
SANDBOX_ENV = {
    "SANDBOX_STATUS_DELAY_MS": "0",
    "SANDBOX_LATENCY_MS": "0",
    "SANDBOX_SENDER_MPS": "0",
    "SANDBOX_API_RPS": "0",
}


@pytest.fixture(scope="package", autouse=True)
def sandbox_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Own DATA_DIR and zero delays for this package only; restored afterwards."""
    patch = pytest.MonkeyPatch()
    patch.setenv("DATA_DIR", str(tmp_path_factory.mktemp("sandbox-data")))
    if not os.environ.get("TWILIO_AUTH_TOKEN"):
        patch.setenv("TWILIO_AUTH_TOKEN", "sandbox-tests-" + "7" * 18)
    for name, value in SANDBOX_ENV.items():
        patch.setenv(name, value)
    # Another suite may have started the emulator on its own settings. The settings go
    # first: background work of the session's server that starts an emulator between
    # these two lines then starts it on this package's settings, not the old ones.
    get_settings.cache_clear()
    stop_emulator()
    yield get_settings()
    patch.undo()
    get_settings.cache_clear()
    stop_emulator()


# --- a receiver for status callbacks and inbound webhooks -------------------------------


@pytest.fixture(scope="package")
def receiver() -> Iterator[Receiver]:
    """One receiver for the package; cleared per test by `sandbox`."""
    server = Receiver()
    server.start()
    yield server
    server.stop()


# --- the emulator as a real HTTP server -------------------------------------------------


class SandboxServer:
    """`create_sandbox_app` under uvicorn in a thread, on a free loopback port."""

    def __init__(self, webhook_base: str) -> None:
        self.webhook_base = webhook_base
        self.base_url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> SandboxServer:
        """Start and wait until it accepts requests (lifespan done)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        # A fresh emulator on the current settings: the session's server may have started
        # one meanwhile (its background work calls the embedded emulator).
        stop_emulator()
        app = create_sandbox_app(webhook_base=self.webhook_base)
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + WAIT_SECONDS
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                pytest.fail("sandbox server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Graceful shutdown: the lifespan stops the dispatcher and closes the store."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(WAIT_SECONDS)
            assert not self._thread.is_alive(), "sandbox server did not stop"
        self._server = self._thread = None

    def client(self, prefix: str = "", token: str | None = None) -> Client:
        """A real twilio SDK client pointed at this emulator."""
        settings = get_settings()
        return make_client(
            self.base_url + prefix, settings.account_sid, token or settings.auth_token
        )

    def control(self) -> httpx.Client:
        """An HTTP client for /sandbox/* with the account's Basic credentials."""
        settings = get_settings()
        return httpx.Client(
            base_url=self.base_url, auth=(settings.account_sid, settings.auth_token), timeout=10
        )


@pytest.fixture
def sandbox(receiver: Receiver) -> Iterator[SandboxServer]:
    """A fresh emulator (state reset) whose inbound webhooks go to the receiver."""
    receiver.clear()
    server = SandboxServer(webhook_base=receiver.base_url).start()
    with server.control() as http:
        assert http.post("/sandbox/reset").status_code == 204
    yield server
    server.stop()


@pytest.fixture
def settings() -> Settings:
    """The settings the emulator runs with (values may come from tests/conftest.py)."""
    return get_settings()


# --- the Twilio OpenAPI spec --------------------------------------------------------------


def _load_spec() -> dict[str, Any]:
    if not SPEC_PATH.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"Twilio spec missing at {SPEC_PATH}")
        pytest.skip(f"Twilio spec not found at {SPEC_PATH}")
    return dict(json.loads(SPEC_PATH.read_text()))


def _nullable_to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 `nullable: true` → JSON Schema `type: [T, "null"]`."""
    if isinstance(node, dict):
        node = {k: _nullable_to_json_schema(v) for k, v in node.items()}
        if node.pop("nullable", False) and isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
        return node
    if isinstance(node, list):
        return [_nullable_to_json_schema(v) for v in node]
    return node


def _rfc2822(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return False
    # Twilio's exact spelling: "Thu, 24 Aug 2023 05:01:45 +0000".
    return format_datetime(parsed) == value and value.endswith("+0000")


class SpecValidator:
    """Validates emulator JSON against Twilio's own OpenAPI schemas."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self._components = _nullable_to_json_schema(copy.deepcopy(spec["components"]))
        get = spec["paths"]["/2010-04-01/Accounts/{AccountSid}/Messages.json"]["get"]
        list_schema = get["responses"]["200"]["content"]["application/json"]["schema"]
        self._list_schema = _nullable_to_json_schema(list_schema)
        self._formats = jsonschema.FormatChecker(formats=())
        self._formats.checks("date-time-rfc-2822")(_rfc2822)

    def _validate(self, instance: Any, schema: dict[str, Any]) -> None:
        document = {**schema, "components": self._components}
        jsonschema.Draft7Validator(document, format_checker=self._formats).validate(instance)

    def message(self, payload: dict[str, Any]) -> None:
        """Assert `payload` is a valid `api.v2010.account.message`."""
        self._validate(payload, {"$ref": f"#/components/schemas/{MESSAGE_SCHEMA}"})
        assert set(payload) >= set(self._components["schemas"][MESSAGE_SCHEMA]["properties"])

    def message_list(self, payload: dict[str, Any]) -> None:
        """Assert `payload` is a valid ListMessageResponse."""
        self._validate(payload, self._list_schema)


@pytest.fixture(scope="package")
def spec() -> SpecValidator:
    """Validator built from shared/specs/twilio_api_v2010.json (skips if absent, fails on CI)."""
    return SpecValidator(_load_spec())
