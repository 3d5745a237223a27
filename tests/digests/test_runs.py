"""Scheduled digests on the live server's database: exactly once, skips, failures, DST."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from relaydesk.channels.twilio.segments import count_segments
from relaydesk.core.errors import ProviderFailed
from tests.conftest import wait_for
from tests.digests.fakes import FakeIndex, digests_to, set_state, stored, warsaw
from tests.digests.fakes import news_index as news_index  # a fixture
from tests.digests.fakes import settle_deliveries as settle_deliveries  # autouse

# Past every date the tests run on: the server's own minute tick (real time) never finds
# these recipients due, only the explicit `now` the tests pass.
SINCE = datetime(2030, 3, 1, tzinfo=UTC)


def make(api: httpx.Client, phone: str, send_time: str = "08:00", **fields: Any) -> int:
    answer = api.post(
        "/api/news/recipients", json={"phone": phone, "send_time": send_time, **fields}
    )
    assert answer.status_code == 201, answer.text
    recipient_id: int = answer.json()["id"]
    set_state(recipient_id, active_since=SINCE)
    return recipient_id


def test_a_due_digest_goes_out_once_and_a_restart_sends_nothing_more(
    api: httpx.Client, db: Any, news_index: FakeIndex
) -> None:
    from relaydesk.digests.service import run_due

    rid = make(api, "+48600100901")
    assert run_due(warsaw("2030-03-05 07:59")) == []
    [outcome] = run_due(warsaw("2030-03-05 08:00:30"))
    assert outcome.outcome == "sent"
    [message] = digests_to(db, "+48600100901")
    # No LLM configured: the headlines by category.
    assert message.body == (
        "biznes: Stopy procentowe bez zmian; Inflacja spada.\ntech: Nowy smartfon."
    )
    assert news_index.calls[0]["mode"] == "all_categories"
    row = stored(db, rid)
    assert (row.last_sent_on, row.last_outcome, row.last_message_id) == (
        "2030-03-05",
        "sent",
        message.id,
    )

    # A restarted worker (a fresh run from the stored state), later the same day.
    assert run_due(warsaw("2030-03-05 08:01")) == []
    assert run_due(warsaw("2030-03-05 23:59")) == []
    assert len(digests_to(db, "+48600100901")) == 1
    # The next day at its time: the next digest.
    assert run_due(warsaw("2030-03-06 07:59")) == []
    assert [o.outcome for o in run_due(warsaw("2030-03-06 08:00"))] == ["sent"]
    assert len(digests_to(db, "+48600100901")) == 2
    shown = api.get("/api/news/recipients").json()[0]
    assert shown["last_sent_on"] == "2030-03-06"
    assert shown["last_outcome"] == "sent"


def test_two_workers_running_at_once_send_one_digest(
    api: httpx.Client, db: Any, news_index: FakeIndex
) -> None:
    from relaydesk.digests.service import Outcome, run_due

    make(api, "+48600100902")
    make(api, "+48600100903", "07:30")
    now = warsaw("2030-03-05 09:00")
    start = threading.Barrier(3)
    results: list[list[Outcome]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        start.wait()
        try:
            results.append(run_due(now))
        except BaseException as exc:  # surfaced below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    sent = [o for outcomes in results for o in outcomes if o.outcome == "sent"]
    assert sorted(o.recipient_id for o in sent) == sorted({o.recipient_id for o in sent})
    assert len(sent) == 2
    assert len(digests_to(db, "+48600100902")) == 1
    assert len(digests_to(db, "+48600100903")) == 1
    assert run_due(now + timedelta(minutes=1)) == []


def test_an_opted_out_number_is_skipped_and_its_day_counts_as_handled(
    api: httpx.Client,
    db: Any,
    news_index: FakeIndex,
    twilio_post: Callable[..., httpx.Response],
) -> None:
    from relaydesk.digests.service import run_due
    from relaydesk.messaging.service import refusal

    rid = make(api, "+48600100904")
    params = {"MessageSid": "SM" + secrets.token_hex(16), "To": "+15005550006"}
    twilio_post("/twilio/inbound", {**params, "From": "+48600100904", "Body": "STOP"})
    wait_for(lambda: refusal(db, "+48600100904") is not None, what="the opt-out")

    [outcome] = run_due(warsaw("2030-03-05 08:00"))
    assert outcome.outcome == "skipped"
    assert digests_to(db, "+48600100904") == []
    row = stored(db, rid)
    assert row.last_outcome == "skipped"
    assert row.last_detail is not None and "unsubscribed" in row.last_detail
    assert row.last_sent_on == "2030-03-05"
    assert row.last_sent_at is None
    assert run_due(warsaw("2030-03-05 08:05")) == []
    # Sending by hand says why, before any digest is composed.
    calls = len(news_index.calls)
    refused = api.post(f"/api/news/recipients/{rid}/send")
    assert refused.status_code == 409
    assert refused.json()["code"] == "opted_out"
    assert len(news_index.calls) == calls


def test_without_indexed_news_nothing_is_sent(
    api: httpx.Client, db: Any, news_index: FakeIndex
) -> None:
    from relaydesk.digests.service import run_due

    rid = make(api, "+48600100905")
    news_index.empty = True
    [outcome] = run_due(warsaw("2030-03-05 08:00"))
    assert outcome.outcome == "skipped"
    assert digests_to(db, "+48600100905") == []
    row = stored(db, rid)
    assert row.last_outcome == "skipped"
    assert row.last_detail == "No passage of the index is similar enough"


def test_a_failing_index_is_retried_after_ten_minutes_not_every_tick(
    api: httpx.Client, db: Any, news_index: FakeIndex
) -> None:
    from relaydesk.digests.service import run_due

    rid = make(api, "+48600100906")
    news_index.error = ProviderFailed("The language model could not answer: timeout")
    at = warsaw("2030-03-05 08:00")
    [outcome] = run_due(at)
    assert outcome.outcome == "failed"
    row = stored(db, rid)
    assert row.last_outcome == "failed"
    assert row.last_detail == "The language model could not answer: timeout"
    assert row.last_sent_on is None
    calls = len(news_index.calls)
    assert run_due(at + timedelta(minutes=5)) == []
    assert len(news_index.calls) == calls

    news_index.error = None
    [retried] = run_due(at + timedelta(minutes=10))
    assert retried.outcome == "sent"
    assert len(digests_to(db, "+48600100906")) == 1
    assert stored(db, rid).last_sent_on == "2030-03-05"


def test_a_digest_in_the_spring_gap_goes_out_once_when_the_clocks_jump(
    api: httpx.Client, db: Any, news_index: FakeIndex
) -> None:
    from relaydesk.digests.service import run_due

    make(api, "+48600100907", "02:30")
    # 31 March 2030 in Warsaw: 02:00 → 03:00 at 01:00 UTC.
    assert run_due(datetime(2030, 3, 31, 0, 59, 59, tzinfo=UTC)) == []
    assert [o.outcome for o in run_due(datetime(2030, 3, 31, 1, 0, tzinfo=UTC))] == ["sent"]
    assert run_due(datetime(2030, 3, 31, 1, 30, tzinfo=UTC)) == []
    assert len(digests_to(db, "+48600100907")) == 1


def test_a_digest_in_the_autumn_fold_goes_out_once(
    api: httpx.Client, db: Any, news_index: FakeIndex
) -> None:
    from relaydesk.digests.service import run_due

    make(api, "+48600100908", "02:30")
    # 27 October 2030: 02:30 happens at 00:30 UTC (CEST) and again at 01:30 UTC (CET).
    assert [o.outcome for o in run_due(datetime(2030, 10, 27, 0, 30, tzinfo=UTC))] == ["sent"]
    assert run_due(datetime(2030, 10, 27, 1, 30, tzinfo=UTC)) == []
    assert len(digests_to(db, "+48600100908")) == 1


def test_a_long_answer_is_cut_to_the_segment_limit(
    api: httpx.Client, db: Any, news_index: FakeIndex
) -> None:
    from relaydesk.core.config import get_settings
    from relaydesk.digests.service import run_due

    make(api, "+48600100909", mode="custom_prompt", prompt="Co słychać w gospodarce?")
    news_index.llm_text = " ".join(f"Zdanie numer {n} o gospodarce i żółwiach." for n in range(60))
    run_due(warsaw("2030-03-05 08:00"))
    [message] = digests_to(db, "+48600100909")
    limit = get_settings().digest_max_segments
    assert count_segments(message.body).segments <= limit
    assert message.body.endswith(".")  # cut at a sentence, not mid-word
    assert news_index.calls[0]["query"] == "Co słychać w gospodarce?"
    assert news_index.calls[0]["mode"] == "answer"
    assert news_index.calls[0]["max_chars"] == limit * 153


def test_a_manual_send_does_not_use_up_the_scheduled_digest(
    api: httpx.Client, db: Any, news_index: FakeIndex
) -> None:
    from relaydesk.digests.service import run_due

    rid = make(api, "+48600100910")
    sent = api.post(f"/api/news/recipients/{rid}/send")
    assert sent.status_code == 201, sent.text
    assert sent.json()["source"] == "news"
    assert stored(db, rid).last_sent_on is None
    assert [o.outcome for o in run_due(warsaw("2030-03-05 08:00"))] == ["sent"]
    assert len(digests_to(db, "+48600100910")) == 2


def test_disabled_recipients_get_nothing(api: httpx.Client, db: Any, news_index: FakeIndex) -> None:
    from relaydesk.digests.service import run_due

    rid = make(api, "+48600100911")
    assert api.post(f"/api/news/recipients/{rid}/toggle").json()["enabled"] is False
    assert run_due(warsaw("2030-03-05 08:00")) == []
    assert api.post(f"/api/news/recipients/{rid}/toggle").json()["enabled"] is True
    set_state(rid, active_since=SINCE)  # resuming counts from now (real time)
    assert [o.outcome for o in run_due(warsaw("2030-03-05 08:01"))] == ["sent"]
    assert len(digests_to(db, "+48600100911")) == 1
