"""The parts of the automation decision that need no database: keywords, pauses, the reply."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from relaydesk.automation import settings as cfg
from relaydesk.automation.answering import compose
from relaydesk.automation.assistants import ends_session
from relaydesk.automation.policy import stepped_back
from relaydesk.channels.twilio.segments import count_segments
from relaydesk.contacts.consent import opt_out_keyword
from relaydesk.messaging.models import Conversation
from tests.conftest import FrozenClock

NOON = datetime(2025, 3, 17, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "keyword"),
    [
        ("STOP", "STOP"),
        ("  stop. ", "STOP"),
        ("Unsubscribe!", "STOP"),
        ("start", "START"),
        ("help", "HELP"),
        ("info", "HELP"),
        ("Please stop sending", None),
        ("stopwatch", None),
        ("", None),
    ],
)
def test_only_a_whole_message_that_is_a_keyword_counts(body: str, keyword: str | None) -> None:
    assert opt_out_keyword(body, None) == keyword


def test_twilios_advanced_opt_out_type_wins_over_the_text() -> None:
    assert opt_out_keyword("Hello there", "HELP") == "HELP"
    assert opt_out_keyword("help", "STOP") == "STOP"
    assert opt_out_keyword("stop", "SOMETHING") == "STOP"


def conversation(*, enabled: bool = True, human_at: datetime | None = None) -> Conversation:
    return Conversation(automation_enabled=enabled, human_replied_at=human_at)


def test_a_conversation_with_the_bot_switched_off_gets_no_answer(clock: FrozenClock) -> None:
    clock.freeze(NOON)
    decision = stepped_back(conversation(enabled=False), cfg.Rules())
    assert decision is not None and decision.outcome == "bot_off"


def test_a_person_answering_pauses_the_bot_for_the_takeover_minutes(clock: FrozenClock) -> None:
    rules = cfg.Rules(takeover_minutes=30)
    clock.freeze(NOON)
    human = conversation(human_at=NOON - timedelta(minutes=10))
    paused = stepped_back(human, rules)
    assert paused is not None and paused.outcome == "paused"
    assert paused.detail is not None and "until 12:20 UTC" in paused.detail
    clock.move(timedelta(minutes=19, seconds=59))
    assert stepped_back(human, rules) is not None
    clock.move(timedelta(seconds=1))
    assert stepped_back(human, rules) is None


def test_a_conversation_nobody_took_over_is_answered(clock: FrozenClock) -> None:
    clock.freeze(NOON)
    assert stepped_back(conversation(), cfg.Rules()) is None


@pytest.mark.parametrize(
    ("body", "found"),
    [
        ("Thanks, the end", "the end"),
        ("THE   END", "the end"),
        ("See you at the weekend", None),  # "end" inside a word is not the keyword
        ("bye", "bye"),
        ("goodbye", None),
    ],
)
def test_an_assistant_session_ends_on_a_whole_keyword(body: str, found: str | None) -> None:
    assert ends_session(body, ["the end", "bye"]) == found


def test_the_reply_puts_the_greeting_first_and_fits_the_segment_budget() -> None:
    assert compose("Hi!", "We open at 8.", 1) == "Hi!\n\nWe open at 8."
    assert compose("  ", "  We open at 8. ", 1) == "We open at 8."
    assert compose("Hi!", "", 1) == "Hi!"
    long = " ".join(f"Sentence number {i} is here." for i in range(40))
    trimmed = compose("Hello.", long, 2)
    assert trimmed.startswith("Hello.\n\nSentence number 0")
    assert count_segments(trimmed).segments <= 2
    assert trimmed.endswith(".")
    # A budget below one segment still gives one.
    assert count_segments(compose("", long, 0)).segments == 1
