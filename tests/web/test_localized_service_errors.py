"""Service refusals of messaging, contacts, campaigns, reminders, automation, auth and the
voice bot: English in the API, in the reader's language in the panel."""

from __future__ import annotations

import html
from collections.abc import Callable

import httpx
import pytest

from relaydesk.core.errors import RelaydeskError
from relaydesk.core.i18n import localized
from tests.web.conftest import csrf_of

POLISH = {"Accept-Language": "pl-PL,pl;q=0.9"}


def polish_panel(panel: Callable[[str], httpx.Client], role: str) -> httpx.Client:
    client = panel(role)
    client.headers.update(POLISH)
    client.headers.update({"X-CSRF-Token": csrf_of(client), "HX-Request": "true"})
    return client


def polish(exc: RelaydeskError) -> str:
    assert exc.template is not None, f"{exc.message!r} was raised without a template"
    return localized("pl", exc.template, exc.params)


def test_a_bad_number_is_explained_in_polish_down_to_its_reason() -> None:
    from relaydesk.contacts.service import participant_number

    with pytest.raises(RelaydeskError) as caught:
        participant_number("12ab")
    assert caught.value.message == (
        "'12ab' is not a valid phone number: "
        "it may contain only digits, spaces, brackets, dashes and '+'"
    )
    assert polish(caught.value) == (
        "'12ab' nie jest poprawnym numerem telefonu: "
        "może zawierać tylko cyfry, spacje, nawiasy, myślniki i '+'"
    )


def test_refusals_of_each_domain_keep_their_english_and_have_polish() -> None:
    import httpx as http

    from relaydesk.auth.service import normalize_email
    from relaydesk.automation.assistants import clean_keywords
    from relaydesk.campaigns.service import validate
    from relaydesk.voicebot.client import read_error
    from relaydesk.voicebot.kpis import period_of

    cases: list[tuple[Callable[[], object], str, str]] = [
        (
            lambda: normalize_email("nobody"),
            "'nobody' is not an email address",
            "'nobody' nie jest adresem e-mail",
        ),
        (
            lambda: validate("+48600100200", "   ", None),
            "Write the message to send",
            "Wpisz wiadomość do wysłania",
        ),
        (
            lambda: period_of("2026-13x", None, None),
            "'2026-13x' is not a month; use YYYY-MM",
            "'2026-13x' nie jest miesiącem; użyj formatu YYYY-MM",
        ),
        (
            lambda: clean_keywords(["a" * 50]),
            f"End keyword '{'a' * 40}…' is too long",
            f"Słowo kończące '{'a' * 40}…' jest za długie",
        ),
    ]
    for call, english, in_polish in cases:
        with pytest.raises(RelaydeskError) as caught:
            call()
        assert caught.value.message == english
        assert caught.value.to_dict()["detail"] == english
        assert polish(caught.value) == in_polish

    # ElevenLabs' own words stay as they are; the sentence around them is translated.
    refused = read_error(
        http.Response(401, json={"detail": {"message": "invalid_api_key"}}), "agent a1"
    )
    assert refused.message == (
        "ElevenLabs refused the API key (401): check the key in the voice-bot settings. "
        "ElevenLabs said: invalid_api_key"
    )
    assert polish(refused) == (
        "ElevenLabs odrzucił klucz API (401): sprawdź klucz w ustawieniach voicebota. "
        "ElevenLabs odpowiedział: invalid_api_key"
    )


def test_the_panel_refuses_a_reminder_to_a_bad_number_in_polish(
    panel: Callable[[str], httpx.Client], api: httpx.Client
) -> None:
    operator = polish_panel(panel, "operator")
    form = {"to": "12ab", "body": "Wizyta jutro", "interval_minutes": "60"}
    refused = operator.post("/reminders", data=form)
    assert refused.status_code == 422
    text = html.unescape(refused.text)
    assert "'12ab' nie jest poprawnym numerem telefonu: może zawierać tylko cyfry" in text
    assert "is not a valid phone number" not in text

    by_api = api.post(
        "/api/reminders", json={"to": "12ab", "body": "Wizyta jutro", "interval_minutes": 60}
    )
    assert by_api.status_code == 422
    assert by_api.json()["detail"].startswith("'12ab' is not a valid phone number: it may contain")


def test_the_panel_refuses_a_bad_email_and_an_empty_campaign_in_polish(
    panel: Callable[[str], httpx.Client], api: httpx.Client
) -> None:
    admin = polish_panel(panel, "admin")
    refused = admin.post(
        "/users", data={"email": "nobody", "password": "long enough 1", "role": "viewer"}
    )
    assert refused.status_code == 422
    assert "'nobody' nie jest adresem e-mail" in html.unescape(refused.text)
    by_api = api.post(
        "/api/users", json={"email": "nobody", "password": "long enough 1", "role": "viewer"}
    )
    assert by_api.status_code == 422
    assert by_api.json()["detail"] == "'nobody' is not an email address"

    campaign = admin.post("/multi-sms/confirm", data={"numbers": "+48600100200", "body": " "})
    assert campaign.status_code == 422
    assert "Wpisz wiadomość do wysłania" in campaign.text


def test_the_ai_test_box_says_in_polish_what_is_missing(
    panel: Callable[[str], httpx.Client],
) -> None:
    operator = polish_panel(panel, "operator")
    answer = operator.post("/ai/test", data={"message": "  "})
    assert answer.status_code == 422
    assert "Wpisz wiadomość do testu" in answer.text
    assert "Type a message to test with" not in answer.text
    bind = operator.post("/assistants/numbers", data={"number": "+48600100200"})
    assert bind.status_code == 422
    assert "Wybierz asystenta" in bind.text
