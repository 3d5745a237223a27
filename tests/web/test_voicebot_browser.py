"""The Voice bot tab in real headless Chromium: cards, charts, the calls table, a transcript."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.web.conftest import MakeUser, browser_sign_in
from tests.web.test_accessibility import LOW_CONTRAST, UNLABELLED

NewPage = Callable[..., Any]
CHARTS = ("daily", "duration", "cost", "direction", "evaluation")
TRANSCRIPT = [
    {"role": "agent", "message": "Dzień dobry, w czym mogę pomóc?", "time_in_call_secs": 0},
    {"role": "user", "message": "Chciałbym umówić wizytę na piątek.", "time_in_call_secs": 4},
    {"role": "agent", "message": None, "time_in_call_secs": 9},  # a tool call: no words
    {"role": "agent", "message": "Zapisałem wizytę na piątek o 10:00.", "time_in_call_secs": 12},
    {"role": "user", "message": "Dziękuję!", "time_in_call_secs": 75},
]


def call(
    conversation_id: str,
    start: datetime,
    *,
    outcome: str,
    direction: str,
    duration: int,
    cost: float,
    criterion: str,
    **extra: Any,
) -> dict[str, Any]:
    """One synced call as the sync would store it, with its evaluation result."""
    details = {
        "conversation_id": conversation_id,
        "transcript": extra.pop("transcript", []),
        "analysis": {
            "call_successful": outcome,
            "evaluation_criteria_results": {
                "goal_met": {
                    "criteria_id": "goal_met",
                    "result": criterion,
                    "rationale": f"Rationale of {conversation_id}",
                }
            },
            "data_collection_results": {
                "visit_day": {"data_collection_id": "visit_day", "value": "piątek"}
            },
        },
        "metadata": {"termination_reason": "Call ended by remote party"},
    }
    return {
        "conversation_id": conversation_id,
        "agent_id": "agent_sales",
        "agent_name": "Sales bot",
        "status": "done",
        "start_time": start,
        "duration_secs": duration,
        "direction": direction,
        "call_successful": outcome,
        "cost": cost,
        "agent_messages": sum(1 for t in details["transcript"] if t["role"] == "agent"),
        "message_count": len(details["transcript"]),
        "details": details,
        "evaluation": criterion,
        **extra,
    }


@pytest.fixture
def calls(server: Any) -> list[dict[str, Any]]:
    """Three calls of this UTC month over two days: 2 successful, 1 inbound transferred."""
    from relaydesk.core.db import session_scope
    from relaydesk.voicebot.models import VoiceConversation, VoiceEvaluation

    first = datetime.now(UTC).replace(day=1, hour=9, minute=0, second=0, microsecond=0)
    rows = [
        call(
            "conv_booking",
            first,
            outcome="success",
            direction="inbound",
            duration=95,
            cost=120.0,
            criterion="success",
            customer_number="+48600100801",
            agent_number="+48221234567",
            rating=5.0,
            title="Wizyta na piątek",
            summary="Klient umówił wizytę na piątek o 10:00.",
            transcript=TRANSCRIPT,
        ),
        call(
            "conv_dropped",
            first + timedelta(hours=1),
            outcome="failure",
            direction="outbound",
            duration=20,
            cost=40.0,
            criterion="failure",
            dropout=True,
            customer_number="+48600100802",
        ),
        call(
            "conv_transfer",
            first + timedelta(days=1, hours=2),
            outcome="success",
            direction="inbound",
            duration=400,
            cost=200.0,
            criterion="success",
            transferred=True,
        ),
    ]
    with session_scope() as session:
        for data in rows:
            fields = {k: v for k, v in data.items() if k != "evaluation"}
            row = VoiceConversation(**fields)
            session.add(row)
            session.flush()
            session.add(
                VoiceEvaluation(
                    conversation_pk=row.id,
                    start_time=row.start_time,
                    agent_id=row.agent_id,
                    criterion="goal_met",
                    result=data["evaluation"],
                )
            )
    return rows


def open_tab(new_page: NewPage, make_user: MakeUser, role: str, locale: str = "en-GB") -> Any:
    page = new_page(locale=locale)
    browser_sign_in(page, make_user(role))
    page.wait_for_url("**/inbox")
    page.click("nav.tabs a[href='/voicebot']")
    page.wait_for_url("**/voicebot")
    return page


def chart_sizes(page: Any) -> dict[str, list[int]]:
    """Each chart's Chart.js instance and canvas size, as the page has drawn them."""
    sizes: dict[str, list[int]] = page.evaluate(
        """(keys) => Object.fromEntries(keys.map((key) => {
            const canvas = document.getElementById('vb-chart-' + key);
            const chart = window.Chart && window.Chart.getChart(canvas);
            return [key, chart ? [canvas.width, canvas.height, chart.data.datasets.length] : []];
        }))""",
        list(CHARTS),
    )
    return sizes


def test_viewer_sees_the_months_cards_and_charts_and_reads_a_transcript(
    new_page: NewPage, make_user: MakeUser, calls: list[dict[str, Any]]
) -> None:
    from playwright.sync_api import expect

    page = open_tab(new_page, make_user, "viewer")
    expect(page.locator("h1")).to_have_text("Voice bot")
    kpis = page.locator("#vb-kpis")
    expect(kpis).to_have_attribute("data-total", "3")
    expect(kpis.locator("[data-kpi=total] [data-value]")).to_have_text("3")
    expect(kpis.locator("[data-kpi=conversion] [data-value]")).to_have_text("66.7%")
    expect(kpis.locator("[data-kpi=outcomes] [data-value]")).to_have_text("2 / 1")
    expect(kpis.locator("[data-kpi=direction] [data-value]")).to_have_text("2 / 1")
    expect(kpis.locator("[data-kpi=transfers] [data-value]")).to_have_text("1")
    expect(kpis.locator("[data-kpi=dropouts] [data-value]")).to_have_text("1")
    expect(kpis.locator("[data-kpi=cost] [data-value]")).to_have_text("360")
    expect(kpis.locator("[data-kpi=duration] [data-value]")).to_have_text("2:52")  # 515 s / 3
    expect(kpis.locator("[data-kpi=evaluation] [data-sub]")).to_have_text("goal_met: 66.7%")
    expect(kpis.locator("[data-kpi=rating] [data-value]")).to_have_text("5 / 5")
    expect(kpis.locator("[data-kpi=daily] [data-value]")).to_have_text("1.5")  # 3 calls, 2 days

    # Every card explains itself: a tooltip and a definition that the keyboard opens.
    transfers = kpis.locator("[data-kpi=transfers]")
    expect(transfers).to_have_attribute(
        "title", re.compile("^Conversations in which the bot called")
    )
    summary = transfers.locator("details.vb-def summary")
    summary.focus()
    page.keyboard.press("Enter")
    expect(transfers.locator("[data-definition]")).to_be_visible()
    expect(transfers.locator("[data-definition]")).to_contain_text("share of all conversations")

    # Each chart is a Chart.js chart drawn on a canvas of real size.
    page.wait_for_function(
        "() => ['daily','duration','cost','direction','evaluation'].every("
        "k => window.Chart && Chart.getChart(document.getElementById('vb-chart-' + k)))"
    )
    sizes = chart_sizes(page)
    for key in CHARTS:
        width, height, datasets = sizes[key]
        assert width > 0 and height > 0 and datasets >= 1, (key, sizes[key])
    assert sizes["daily"][2] == 2  # calls (bars) and conversion (line)
    for key in CHARTS:
        expect(page.locator(f".vb-chart[data-chart={key}] [data-empty]")).to_be_hidden()

    # The table: newest first, with the number, outcome and duration.
    rows = page.locator("#vb-calls tr[data-conversation]")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_have_attribute("data-conversation", "conv_transfer")
    booking = page.locator("#vb-calls tr[data-conversation=conv_booking]")
    expect(booking).to_contain_text("+48600100801")
    expect(booking).to_contain_text("Success")
    expect(booking).to_contain_text("1:35")
    expect(booking).to_contain_text("Wizyta na piątek")
    expect(page.locator("#vb-page-info")).to_have_text("Page 1 of 1 · 3 calls")

    # The call opens as a dialogue: bot and customer turns with their time in the call.
    booking.locator("button.vb-open").click()
    dialog = page.locator("#vb-detail")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#vb-detail-title")).to_have_text("Wizyta na piątek")
    turns = dialog.locator("[data-transcript] li.bubble")
    expect(turns).to_have_count(4)  # the tool call without words is left out
    expect(turns.nth(0)).to_have_attribute("data-role", "agent")
    expect(turns.nth(0)).to_contain_text("Dzień dobry, w czym mogę pomóc?")
    expect(turns.nth(1)).to_have_attribute("data-role", "user")
    expect(turns.nth(1)).to_contain_text("Customer · 0:04")
    expect(turns.nth(3)).to_contain_text("1:15")
    expect(dialog.locator("[data-evaluation]")).to_contain_text("Rationale of conv_booking")
    expect(dialog.locator("[data-collection]")).to_contain_text("piątek")
    expect(dialog.locator("[data-termination]")).to_have_text("Call ended by remote party")
    assert page.evaluate(UNLABELLED) == []
    page.screenshot(path="/tmp/voicebot_call.png")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert page.evaluate(UNLABELLED) == []
    assert page.evaluate(LOW_CONTRAST) == []
    page.screenshot(path="/tmp/voicebot_dashboard.png", full_page=True)


def test_filters_narrow_the_table_and_an_empty_period_says_so(
    new_page: NewPage, make_user: MakeUser, calls: list[dict[str, Any]]
) -> None:
    from playwright.sync_api import expect

    page = open_tab(new_page, make_user, "operator")
    expect(page.locator("#vb-kpis")).to_have_attribute("data-total", "3")
    page.select_option("#vb-outcome", "failure")
    rows = page.locator("#vb-calls tr[data-conversation]")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-conversation", "conv_dropped")
    expect(page.locator("#vb-export")).to_have_attribute("href", re.compile(r"outcome=failure"))

    # A period without calls: friendly sentences instead of empty axes.
    page.fill("#vb-from", "2020-01-01")
    page.fill("#vb-to", "2020-01-31")
    page.click("#vb-apply")
    expect(page.locator("#vb-kpis")).to_have_attribute("data-total", "0")
    for key in CHARTS:
        figure = page.locator(f".vb-chart[data-chart={key}]")
        expect(figure).to_have_attribute("data-state", "empty")
        expect(figure.locator("[data-empty]")).to_have_text("No calls in this period.")
    expect(page.locator("#vb-calls")).to_contain_text("No calls in this period.")
    expect(page.locator("#vb-period")).to_contain_text("1 Jan 2020")

    # Back to the whole month: the charts come back.
    page.click("#vb-clear-range")
    expect(page.locator("#vb-kpis")).to_have_attribute("data-total", "3")
    expect(page.locator(".vb-chart[data-chart=daily]")).to_have_attribute("data-state", "drawn")


def test_admin_saves_the_key_and_agents_and_fetching_becomes_possible(
    new_page: NewPage, make_user: MakeUser
) -> None:
    from playwright.sync_api import expect

    page = open_tab(new_page, make_user, "admin")
    expect(page.locator("#vb-fetch")).to_be_disabled()
    expect(page.locator("#vb-not-ready")).to_be_visible()
    expect(page.locator("#vb-key-state")).to_have_text("No API key set.")
    page.fill("#vb-agent-ids", "agent_sales\nagent_support")
    page.fill("#vb-api-key", "sk_test_abcdefgh12345678")
    page.click("#vb-save")
    expect(page.locator("#vb-settings-result")).to_have_text("Settings saved.")
    expect(page.locator("#vb-api-key")).to_have_value("")
    expect(page.locator("#vb-key-state")).to_have_text("••••5678 · saved in the panel")
    expect(page.locator("#vb-fetch")).to_be_enabled()
    expect(page.locator("#vb-not-ready")).to_be_hidden()
    expect(page.locator("#vb-agent option[value=agent_support]")).to_have_count(1)


@pytest.fixture
def fake_elevenlabs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The fake ElevenLabs on loopback, with two calls of this month for the sync to find."""
    from relaydesk.core.config import get_settings
    from tests.fakes.elevenlabs import FakeElevenLabs
    from tests.voicebot.fixtures import month_of_conversations

    now = datetime.now(UTC)
    fake = FakeElevenLabs()
    for found in month_of_conversations(2, year=now.year, month=now.month, days=1):
        fake.add_conversation(found.details, direction=found.direction)
    fake.start()
    monkeypatch.setattr(get_settings(), "elevenlabs_base_url", fake.base_url)
    yield fake
    fake.stop()


def test_admin_tests_the_connection_fetches_the_month_and_watches_it_finish(
    new_page: NewPage, make_user: MakeUser, fake_elevenlabs: Any
) -> None:
    from playwright.sync_api import expect

    from tests.voicebot.fixtures import AGENTS

    page = open_tab(new_page, make_user, "admin")
    expect(page.locator("#vb-kpis")).to_have_attribute("data-total", "0")
    page.fill("#vb-agent-ids", "\n".join(AGENTS))
    page.fill("#vb-api-key", "sk_test_fake_key_0001")
    page.click("#vb-test")
    result = page.locator("#vb-test-result")
    for agent in AGENTS:
        expect(result.locator(f"li[data-agent={agent}]")).to_contain_text("OK")
    expect(page.locator("#vb-settings-result")).to_contain_text("Connection works.")
    assert fake_elevenlabs.count_prefix("/v1/convai/conversations") >= len(AGENTS)

    page.click("#vb-save")
    expect(page.locator("#vb-settings-result")).to_have_text("Settings saved.")
    page.click("#vb-fetch")
    job = page.locator("#vb-job article.vb-job")
    expect(job).to_have_attribute("data-status", "done")
    expect(job.locator(".notice-success")).to_contain_text("2 new")
    # The finished sync redraws the page: cards, table and the sync log.
    expect(page.locator("#vb-kpis")).to_have_attribute("data-total", "2")
    expect(page.locator("#vb-calls tr[data-conversation]")).to_have_count(2)
    page.click("#vb-syncs summary")
    expect(page.locator("#vb-sync-logs tr").first).to_have_attribute("data-status", "done")
    expect(page.locator("#vb-sync-logs tr").first).to_contain_text("manual")
    expect(page.locator("#vb-fetch")).to_be_enabled()


def test_the_tab_shows_the_apis_english_notes_in_polish(
    new_page: NewPage, make_user: MakeUser
) -> None:
    from playwright.sync_api import expect

    page = open_tab(new_page, make_user, "admin", locale="pl-PL")
    page.click("#vb-test")  # no key saved and none typed: the API says so, in English
    expect(page.locator("#vb-settings-result")).to_contain_text(
        "Nie ustawiono klucza API ElevenLabs"
    )
