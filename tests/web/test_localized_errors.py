"""Refusals in the person's language: the panel translates, the API keeps English."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from relaydesk.core.errors import Invalid, OptedOut
from relaydesk.core.i18n import localized
from tests.web.conftest import csrf_of

POLISH = {"Accept-Language": "pl-PL,pl;q=0.9"}


def polish_panel(panel: Callable[[str], httpx.Client], role: str) -> httpx.Client:
    client = panel(role)
    client.headers.update(POLISH)
    client.headers.update({"X-CSRF-Token": csrf_of(client), "HX-Request": "true"})
    return client


def test_a_template_error_is_english_for_the_api_and_translated_for_a_person() -> None:
    from relaydesk.contacts.consent import opt_out_reason

    template, params = opt_out_reason("replied STOP")
    error = OptedOut(
        template, params={"number": "+48600100200", "when": "2026-12-01 10:00", **params}
    )
    assert error.message == (
        "+48600100200 unsubscribed on 2026-12-01 10:00 UTC (replied STOP); "
        "nothing can be sent until they text START"
    )
    assert error.to_dict()["detail"] == error.message
    assert localized("pl", template, error.params) == (
        "+48600100200 wypisał się 2026-12-01 10:00 UTC (odpisał STOP); "
        "nic nie może zostać wysłane, dopóki nie odpisze START"
    )
    # A list of catalog entries is translated item by item; other values stay as given.
    missing = Invalid(
        "Live mode needs %(missing)s; set them first or stay in sandbox mode",
        params={"missing": ["an Account SID", "an auth token"]},
    )
    assert missing.message.startswith("Live mode needs an Account SID, an auth token;")
    assert localized("pl", missing.template or "", missing.params).startswith(
        "Tryb Live wymaga: Account SID, token uwierzytelniający (auth token);"
    )
    # Without params a message is plain text: a literal % stays.
    assert Invalid("100% sure").message == "100% sure"


def test_the_panel_says_in_polish_why_an_opted_out_customer_gets_nothing(
    panel: Callable[[str], httpx.Client],
    api: httpx.Client,
    twilio_post: Callable[..., httpx.Response],
) -> None:
    customer = "+48600300401"
    stop = twilio_post(
        "/twilio/inbound",
        {"MessageSid": "SM" + "7" * 32, "From": customer, "To": "+15005550006", "Body": "STOP"},
    )
    assert stop.status_code == 200
    operator = polish_panel(panel, "operator")
    refused = operator.post("/messages/send", data={"to": customer, "body": "Promocja!"})
    assert refused.status_code == 409
    assert f"{customer} wypisał się" in refused.text
    assert "(odpisał STOP); nic nie może zostać wysłane, dopóki nie odpisze START" in refused.text
    assert "unsubscribed on" not in refused.text

    by_api = api.post("/api/send-message", json={"to": customer, "body": "Promocja!"})
    assert by_api.status_code == 409
    assert "unsubscribed on" in by_api.json()["detail"]
    assert "(replied STOP)" in by_api.json()["detail"]


def test_the_panel_says_in_polish_that_the_whatsapp_window_is_closed(
    panel: Callable[[str], httpx.Client],
) -> None:
    operator = polish_panel(panel, "operator")
    refused = operator.post(
        "/messages/send", data={"to": "whatsapp:+48600300402", "body": "Dzień dobry"}
    )
    assert refused.status_code == 422
    assert "24-godzinne okno WhatsApp z tym klientem jest zamknięte" in refused.text
    assert "klient nigdy nie pisał na ten numer" in refused.text


def test_the_twilio_form_says_in_polish_what_live_mode_needs(
    panel: Callable[[str], httpx.Client], api: httpx.Client
) -> None:
    admin = polish_panel(panel, "admin")
    refused = admin.post("/settings/twilio", data={"mode": "live"})
    assert refused.status_code == 422
    assert "Tryb Live wymaga: Account SID, numer nadawcy (default_from)" in refused.text
    form = admin.get("/settings")
    assert "Tryb Live wymaga: Account SID, numer nadawcy (default_from)" in form.text
    assert "an Account SID" not in form.text
    english = api.put("/api/settings/twilio", json={"mode": "live"}).json()["detail"]
    assert english.startswith("Live mode needs an Account SID, a sender number")
