"""Business hours: the out-of-office answer once per closed period, its place among the
automatic answers, the API's roles and checks, and the state in the panel's header.

What reached "Twilio" is read from the emulator's own Messages list, through the real
twilio SDK; the clock is relaydesk's injectable one, moved across openings and closings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from relaydesk.channels.twilio.account import current_account
from relaydesk.channels.twilio.gateway import make_client
from relaydesk.core.db import session_scope
from relaydesk.messaging.models import Conversation
from tests.automation.conftest import OUR_NUMBER, answers, finished
from tests.conftest import FrozenClock, wait_for
from tests.fakes import FakeOpenAI
from tests.web.conftest import csrf_of

Inbound = Callable[..., str]
OUT_OF_OFFICE = "Jesteśmy zamknięci, odpiszemy rano."
AUTO_REPLY = "Dziękujemy, zaraz odpiszemy."
OFFICE = [[["09:00", "17:00"]]] * 5 + [[], []]
# Monday 2026-03-16 in Warsaw (CET, UTC+1): 09:00–17:00 there is 08:00–16:00 UTC.
MONDAY = datetime(2026, 3, 16, tzinfo=UTC)
MONDAY_EVENING = MONDAY + timedelta(hours=19)  # 20:00 in Warsaw: closed
TUESDAY_NOON = MONDAY + timedelta(days=1, hours=11)
TUESDAY_EVENING = MONDAY + timedelta(days=1, hours=19)


def business_hours(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    """Replace the business hours (Warsaw office hours, on, unless given)."""
    payload = {
        "enabled": True,
        "timezone": "Europe/Warsaw",
        "days": OFFICE,
        "message": OUT_OF_OFFICE,
        **fields,
    }
    answer = api.put("/api/business-hours", json=payload)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def auto_reply(api: httpx.Client) -> None:
    answer = api.put("/api/auto-reply", json={"enabled": True, "message": AUTO_REPLY})
    assert answer.status_code == 200, answer.text


def at_twilio(to: str) -> list[str]:
    """The bodies the emulator accepted for `to`, oldest first (its Messages list)."""
    account = current_account()
    client = make_client(account.api_base, account.account_sid, account.auth_token)
    newest_first = client.messages.list(to=to, page_size=100)
    return [str(m.body) for m in reversed(newest_first) if m.direction != "inbound"]


def arrives(to: str, bodies: list[str]) -> None:
    wait_for(lambda: at_twilio(to) == bodies, what=f"{bodies} at the emulator for {to}")


@pytest.fixture
def closed(clock: FrozenClock, api: httpx.Client, rules: Callable[..., Any]) -> Iterator[None]:
    """Monday evening in Warsaw, with office hours on and no debounce."""
    clock.freeze(MONDAY_EVENING)
    rules()
    business_hours(api)
    yield


def test_the_out_of_office_answer_goes_once_per_closed_period(
    closed: None, clock: FrozenClock, api: httpx.Client, db: Any, inbound: Inbound
) -> None:
    auto_reply(api)  # on during the hours; outside them the out-of-office answer replaces it
    customer = "+48600700001"
    first = finished(db, inbound(customer, "Dzień dobry, jest ktoś?"))
    assert first.outcome == "out_of_office" and first.reply_message_id is not None
    arrives(customer, [OUT_OF_OFFICE])

    clock.move(timedelta(hours=3))  # still the same night
    second = finished(db, inbound(customer, "Halo, pilne pytanie o zamówienie"))
    assert second.outcome == "out_of_office" and second.reply_message_id is None
    assert second.detail == "the out-of-office answer was already sent in this closed period"
    period = db.scalar(select(Conversation.ooo_period_start))
    assert period == MONDAY + timedelta(hours=16)  # Monday's closing, 17:00 in Warsaw

    clock.freeze(TUESDAY_NOON)  # open: the classic auto-reply answers
    assert finished(db, inbound(customer, "Czy już otwarte?")).outcome == "auto_reply"
    clock.freeze(TUESDAY_EVENING)  # closed again: a new period, a new answer
    assert finished(db, inbound(customer, "Jeszcze jedno")).outcome == "out_of_office"
    arrives(customer, [OUT_OF_OFFICE, AUTO_REPLY, OUT_OF_OFFICE])
    assert [m.body for m in answers(db, customer)] == [OUT_OF_OFFICE, AUTO_REPLY, OUT_OF_OFFICE]
    assert all(m.source == "auto_reply" for m in answers(db, customer))


def test_each_conversation_gets_its_own_answer(closed: None, db: Any, inbound: Inbound) -> None:
    for customer in ("+48600700011", "+48600700012"):
        assert finished(db, inbound(customer, "Dzień dobry")).outcome == "out_of_office"
        arrives(customer, [OUT_OF_OFFICE])


def test_runs_racing_in_one_period_send_one_answer(closed: None, db: Any, inbound: Inbound) -> None:
    from relaydesk.automation import pipeline
    from relaydesk.automation.answering import Answer
    from relaydesk.automation.models import AutomationRun

    customer = "+48600700021"
    finished(db, inbound(customer, "Pierwsza wiadomość"))
    arrives(customer, [OUT_OF_OFFICE])
    # A second run decided before the first stored its answer, so its decision still
    # carries the period: the claim on the conversation refuses it.
    later = finished(db, inbound(customer, "Druga wiadomość"))
    with session_scope() as session:
        row = session.get(AutomationRun, later.id)
        assert row is not None
        row.state, row.claim_token = "working", "racer"
    stale = Answer(
        "out_of_office",
        "auto_reply",
        OUT_OF_OFFICE,
        ooo_period=db.scalar(select(Conversation.ooo_period_start)),
    )
    assert pipeline._finish(later.id, "racer", stale) == "out_of_office"
    assert len(answers(db, customer)) == 1
    assert db.get(AutomationRun, later.id).reply_message_id is None
    assert at_twilio(customer) == [OUT_OF_OFFICE]


def test_bots_answer_around_the_clock_and_no_out_of_office_goes_with_them(
    closed: None, db: Any, inbound: Inbound, ai_on: Callable[..., Any], openai_fake: FakeOpenAI
) -> None:
    ai_on(enabled=True)
    customer = "+48600700031"
    run = finished(db, inbound(customer, "Macie jutro chleb?"))
    assert run.outcome == "ai"
    arrives(customer, ["Echo: Macie jutro chleb?"])
    assert [m.source for m in answers(db, customer)] == ["ai"]


def test_a_numbers_assistant_answers_outside_the_hours_too(
    closed: None, api: httpx.Client, db: Any, inbound: Inbound, ai_on: Callable[..., Any]
) -> None:
    ai_on(enabled=False)
    made = api.post("/api/assistants", json={"name": "Nocny dyżur"})
    assert made.status_code == 201, made.text
    bound = api.post(
        "/api/phone-numbers", json={"number": OUR_NUMBER, "assistant_id": made.json()["id"]}
    )
    assert bound.status_code == 201, bound.text
    customer = "+48600700032"
    assert finished(db, inbound(customer, "Czy jest dyżur?")).outcome == "assistant"
    arrives(customer, ["Echo: Czy jest dyżur?"])


def test_an_unsubscribed_customer_gets_nothing(closed: None, db: Any, inbound: Inbound) -> None:
    customer = "+48600700041"
    inbound(customer, "STOP")
    assert finished(db, inbound(customer, "A jednak pytanie")).outcome == "opted_out"
    assert answers(db, customer) == []
    assert at_twilio(customer) == []


def test_off_or_with_no_message_the_classic_auto_reply_answers(
    closed: None, api: httpx.Client, db: Any, inbound: Inbound
) -> None:
    auto_reply(api)
    business_hours(api, message="")  # hours shown in the header, no out-of-office answer
    customer = "+48600700051"
    assert finished(db, inbound(customer, "Dzień dobry")).outcome == "auto_reply"
    business_hours(api, enabled=False)
    assert finished(db, inbound(customer, "Jeszcze raz")).outcome == "auto_reply"
    arrives(customer, [AUTO_REPLY, AUTO_REPLY])


def test_with_only_business_hours_on_a_message_still_gets_its_answer(
    closed: None, api: httpx.Client, db: Any, inbound: Inbound
) -> None:
    # No auto-reply, no AI, no assistant: the business hours alone make a run.
    customer = "+48600700061"
    assert finished(db, inbound(customer, "Halo")).outcome == "out_of_office"
    arrives(customer, [OUT_OF_OFFICE])


def test_the_api_shows_the_schedule_and_whether_it_is_open(
    clock: FrozenClock, api: httpx.Client, make_token: Callable[[str], str], server: Any
) -> None:
    clock.freeze(MONDAY_EVENING)
    default = api.get("/api/business-hours").json()
    assert default["enabled"] is False and default["days"][0] == [["09:00", "17:00"]]
    stored = business_hours(api, holidays=["2026-03-17", "2026-03-17"])
    assert stored["holidays"] == ["2026-03-17"]
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {make_token('viewer')}"}
    ) as viewer:
        seen = viewer.get("/api/business-hours").json()
    assert seen["open_now"] is False and seen["closes_at"] is None
    # Tuesday is a holiday: it opens on Wednesday at 09:00 in Warsaw.
    assert seen["opens_at"] == "2026-03-18T08:00:00Z"
    clock.freeze(TUESDAY_NOON - timedelta(days=1))
    now = api.get("/api/business-hours").json()
    assert now["open_now"] is True and now["closes_at"] == "2026-03-16T16:00:00Z"


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_admins_change_business_hours(
    role: str, server: Any, make_token: Callable[[str], str], api: httpx.Client
) -> None:
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {make_token(role)}"}
    ) as client:
        assert client.get("/api/business-hours").status_code == 200
        refused = client.put(
            "/api/business-hours",
            json={"enabled": True, "timezone": "UTC", "days": OFFICE},
        )
    assert refused.status_code == 403
    assert api.get("/api/business-hours").json()["enabled"] is False


def test_a_change_is_audited(api: httpx.Client) -> None:
    business_hours(api)
    business_hours(api)  # the same again: nothing changed, nothing audited
    audit = api.get("/api/audit", params={"action": "inbox.business_hours"}).json()["items"]
    assert [(e["action"], e["target"]) for e in audit] == [
        ("inbox.business_hours.update", "business_hours")
    ]


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"timezone": "Europe/Gdansk"}, "not a time zone"),
        ({"days": [[["09:00", "13:00"], ["12:00", "17:00"]], *OFFICE[1:]]}, "overlap"),
        ({"days": [[["09:00", "25:00"]], *OFFICE[1:]]}, "'25:00' is not a time"),
        ({"days": [[["17:00", "09:00"]], *OFFICE[1:]]}, "opens after it closes"),
        ({"message": "Zamknięte\x00"}, "NUL"),
        ({"holidays": ["2026-13-01"]}, "not a date"),
    ],
)
def test_a_bad_schedule_gets_a_422_saying_what_is_wrong(
    api: httpx.Client, fields: dict[str, Any], words: str
) -> None:
    payload = {"enabled": True, "timezone": "UTC", "days": OFFICE, **fields}
    refused = api.put("/api/business-hours", json=payload)
    assert refused.status_code == 422, refused.text
    assert words in refused.json()["detail"]
    assert api.get("/api/business-hours").json()["enabled"] is False  # nothing stored


@pytest.mark.parametrize(
    "fields",
    [
        {"days": OFFICE[:6]},
        {"days": [[["09:00", "10:00"]] * 5, *OFFICE[1:]]},
        {"holidays": ["2026-01-01"] * 367},
        {"message": "x" * 1601},
        {"timezone": "E" * 65},
    ],
)
def test_oversized_input_is_refused_before_it_is_read(
    api: httpx.Client, fields: dict[str, Any]
) -> None:
    payload = {"enabled": True, "timezone": "UTC", "days": OFFICE, **fields}
    assert api.put("/api/business-hours", json=payload).status_code == 422


def test_the_header_shows_open_or_closed_in_the_business_time_zone(
    clock: FrozenClock, api: httpx.Client, panel: Callable[[str], httpx.Client]
) -> None:
    def page_at(at: datetime, path: str = "/inbox", lang: str = "en") -> str:
        clock.freeze(at)
        viewer = panel("viewer")  # signed in now (a session idle for hours has expired)
        viewer.cookies.set("relaydesk_lang", lang)
        return viewer.get(path).text

    assert "hours-badge" not in page_at(MONDAY_EVENING)  # off: nothing in the header
    business_hours(api)
    closed = page_at(MONDAY_EVENING, "/messages")
    assert 'data-hours-state="closed"' in closed
    assert "Closed · opens Tue 09:00" in closed
    assert "Open · closes 17:00" in page_at(TUESDAY_NOON)
    # Weekday names in the viewer's language (babel's), times in the business's zone.
    assert "pon. 09:00" in page_at(MONDAY_EVENING + timedelta(days=4), lang="pl")


def test_admins_edit_the_page_and_everyone_else_reads_it(
    api: httpx.Client, panel: Callable[[str], httpx.Client]
) -> None:
    viewer = panel("viewer")
    page = viewer.get("/inbox/hours")
    assert page.status_code == 200
    assert 'hx-post="/inbox/hours"' not in page.text
    assert "around the clock" in page.text  # the precedence, explained on the page
    assert 'href="/inbox/hours"' in viewer.get("/inbox").text

    admin = panel("admin")
    form = {
        "csrf_token": csrf_of(admin),
        "enabled": "on",
        "timezone": "Europe/Warsaw",
        "open-0-0": "08:00",
        "close-0-0": "12:00",
        "open-0-1": "13:00",
        "close-0-1": "00:00",  # midnight
        "open-5-0": "10:00",
        "close-5-0": "14:00",
        "holidays": "2026-12-25\r\n2026-12-26, 2026-12-25",
        "message": "Wrócimy jutro.",
    }
    saved = admin.post("/inbox/hours", data=form, headers={"HX-Request": "true"})
    assert saved.status_code == 200, saved.text
    assert "notice-success" in saved.text
    stored = api.get("/api/business-hours").json()
    assert stored["enabled"] is True
    assert stored["days"][0] == [["08:00", "12:00"], ["13:00", "24:00"]]
    assert stored["days"][1] == [] and stored["days"][5] == [["10:00", "14:00"]]
    assert stored["holidays"] == ["2026-12-25", "2026-12-26"]
    assert stored["message"] == "Wrócimy jutro."

    refused = admin.post(
        "/inbox/hours",
        data={**form, "close-0-0": "", "message": "x"},
        headers={"HX-Request": "true"},
    )
    assert refused.status_code == 422
    assert "opening and a closing time" in refused.text
    assert api.get("/api/business-hours").json()["message"] == "Wrócimy jutro."
    denied = viewer.post(
        "/inbox/hours", data={**form, "csrf_token": csrf_of(viewer)}, headers={"HX-Request": "true"}
    )
    assert denied.status_code == 403
