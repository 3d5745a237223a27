"""Bad input gets a clear 4xx in the API's one error shape, never a 5xx or a dropped
connection (the cases an outside fuzzing run of the OpenAPI document found)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from relaydesk.core import settings_store
from relaydesk.core.db import session_scope

HUGE = str(2**70)


def _error(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json"), answer.headers
    body: dict[str, Any] = answer.json()
    assert isinstance(body["detail"], str) and body["detail"]
    assert isinstance(body["code"], str)
    return body


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/messages/{id}"),
        ("DELETE", "/api/messages/{id}"),
        ("DELETE", "/api/scheduled-messages/{id}"),
        ("GET", "/api/users/{id}"),
        ("DELETE", "/api/tokens/{id}"),
        ("GET", "/api/reminders/{id}"),
        ("GET", "/api/multi-sms/batches/{id}"),
        ("POST", "/api/multi-sms/batches/{id}/pause"),
        ("GET", "/api/jobs/{id}"),
        ("DELETE", "/api/news/recipients/{id}"),
        ("GET", "/api/assistants/{id}"),
        ("GET", "/api/voicebot/archives/{id}/download"),
        ("GET", "/media/{id}"),
    ],
)
def test_ids_beyond_64_bits_are_a_422(api: httpx.Client, method: str, path: str) -> None:
    body = _error(api.request(method, path.format(id=HUGE)), 422)
    assert body["code"] == "invalid"


def test_numbers_beyond_64_bits_in_a_body_are_a_422(api: httpx.Client) -> None:
    answer = api.post("/api/phone-numbers", json={"number": "+48600100200", "assistant_id": 2**70})
    _error(answer, 422)


def test_null_for_a_digest_recipients_required_settings_is_a_422(api: httpx.Client) -> None:
    made = api.post(
        "/api/news/recipients",
        json={"phone": "+48600100200", "send_time": "08:00", "mode": "all_categories"},
    )
    assert made.status_code == 201, made.text
    rid = made.json()["id"]
    body = _error(api.patch(f"/api/news/recipients/{rid}", json={"enabled": None}), 422)
    assert "enabled" in body["detail"]
    _error(api.patch(f"/api/news/recipients/{rid}", json={"mode": None, "phone": None}), 422)
    # null still clears what may be cleared.
    reset = api.patch(f"/api/news/recipients/{rid}", json={"timezone": None})
    assert reset.status_code == 200, reset.text


def test_a_multipart_import_without_a_boundary_is_a_422(api: httpx.Client) -> None:
    answer = api.post(
        "/api/news/config/import",
        content=b'{"recipients": []}',
        headers={"Content-Type": "multipart/form-data"},
    )
    body = _error(answer, 422)
    assert "multipart" in body["detail"]


@pytest.mark.parametrize(
    ("path", "method", "payload"),
    [
        ("/api/ai/config", "PUT", {"api_key": "sk-żółw"}),
        ("/api/ai/config", "PUT", {"api_key": "sk-abc\r\nX-Injected: 1"}),
        ("/api/voicebot/settings", "POST", {"api_key": "klucz\u00a0api"}),
        ("/api/settings/twilio", "PUT", {"auth_token": "tokén"}),
    ],
)
def test_api_keys_a_header_cannot_carry_are_refused_when_saved(
    api: httpx.Client, path: str, method: str, payload: dict[str, str]
) -> None:
    body = _error(api.request(method, path, json=payload), 422)
    assert "ASCII" in body["detail"]


@pytest.fixture
def stored_bad_keys() -> Iterator[None]:
    """Keys saved before the check existed (written straight into the settings store)."""
    with session_scope() as session:
        keys = {"voicebot.api_key": "kłucz", "automation.ai.api_key": "sk-żółw"}
        settings_store.save(
            session, keys, actor="test", action="test.keys", target="test", secret_keys=keys
        )
    yield


def test_stored_keys_a_header_cannot_carry_say_so_when_used(
    api: httpx.Client, stored_bad_keys: None
) -> None:
    saved = api.post("/api/voicebot/settings", json={"agent_ids": ["agent_1"]})
    assert saved.status_code == 200, saved.text
    connection = _error(api.post("/api/voicebot/test-connection"), 409)
    assert "Enter it again" in connection["detail"]
    assert api.put("/api/ai/config", json={"provider": "openai"}).status_code == 200
    answer = api.post("/api/ai/test", json={"message": "Hej"})
    body = _error(answer, answer.status_code)
    assert 400 <= answer.status_code < 500
    assert "Enter it again" in body["detail"]


def test_a_chunked_body_over_the_limit_is_a_413(api: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"to": "+48600100200", "body": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    answer = api.post(
        "/api/send-message", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in {k.lower() for k in answer.request.headers}
    _error(answer, 413)


def test_a_body_that_is_not_utf8_is_a_400_in_the_same_shape(api: httpx.Client) -> None:
    answer = api.post(
        "/api/ai/test",
        content=b'{"message": "\xc3\x28"}',
        headers={"Content-Type": "application/json"},
    )
    assert _error(answer, 400)["code"] == "bad_request"


def test_unknown_paths_and_methods_answer_json(api: httpx.Client) -> None:
    assert _error(api.get("/api/no-such-thing"), 404)["code"] == "not_found"
    assert _error(api.patch("/api/messages"), 405)["code"] == "method_not_allowed"


def test_files_answer_a_token_client_in_json(api: httpx.Client, server: Any) -> None:
    _error(api.get("/media/987654"), 404)
    # Without credentials a program still hears JSON when it asks for it.
    _error(httpx.get(f"{server.url}/media/987654", headers={"Accept": "application/json"}), 401)
