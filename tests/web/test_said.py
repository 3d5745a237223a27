"""/said: the panel's scripts show the API's English notes in the person's language."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.web.conftest import csrf_of

POLISH = {"Accept-Language": "pl-PL,pl;q=0.9"}
NOTE = "OpenAI rejected the API key (401)"


def test_a_signed_in_person_gets_the_notes_in_their_language(
    panel: Callable[[str], httpx.Client],
) -> None:
    viewer = panel("viewer")
    headers = {"X-CSRF-Token": csrf_of(viewer), **POLISH}
    answer = viewer.post("/said", json={"texts": [NOTE, "Twilio said 12", ""]}, headers=headers)
    assert answer.status_code == 200, answer.text
    polish, unknown, empty = answer.json()["texts"]
    assert polish == "OpenAI odrzuciło klucz API (401)"
    assert (unknown, empty) == ("Twilio said 12", "")
    english = viewer.post(
        "/said", json={"texts": [NOTE]}, headers={"X-CSRF-Token": csrf_of(viewer)}
    )
    assert english.json()["texts"] == [NOTE]


def test_said_needs_a_session_its_csrf_token_and_bounded_input(
    panel: Callable[[str], httpx.Client], server: object
) -> None:
    url = f"{server.url}/said"  # type: ignore[attr-defined]
    anonymous = httpx.post(url, json={"texts": [NOTE]}, headers={"Accept": "application/json"})
    assert anonymous.status_code in (401, 303)
    viewer = panel("viewer")
    assert viewer.post("/said", json={"texts": [NOTE]}).status_code == 403  # no CSRF token
    headers = {"X-CSRF-Token": csrf_of(viewer)}
    for body in ({"texts": ["x"] * 101}, {"texts": ["x" * 4001]}, {"texts": "x"}, {"other": 1}):
        assert viewer.post("/said", json=body, headers=headers).status_code == 422, body
