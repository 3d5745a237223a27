"""Syncing from the fake ElevenLabs: idempotent, paginated, rate-limit proof, resumable."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from relaydesk.core.config import get_settings
from relaydesk.core.db import session_scope, utcnow
from relaydesk.core.errors import Conflict, NotConfigured
from relaydesk.jobs.models import Job
from relaydesk.voicebot import service, settings, sync
from relaydesk.voicebot.client import ElevenLabsClient, ElevenLabsError, test_connection
from relaydesk.voicebot.models import VoiceConversation, VoiceEvaluation, VoiceSyncRun
from tests.conftest import wait_for
from tests.fakes.elevenlabs import FakeElevenLabs
from tests.voicebot.fixtures import AGENTS, Call, month_of_conversations

KEY = "xi-test-key-0123456789"
DETAILS = "/v1/convai/conversations/"
LIST = "/v1/convai/conversations"
MARCH = (date(2026, 3, 1), date(2026, 3, 31))


@pytest.fixture
def fake(server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeElevenLabs]:
    """A fake ElevenLabs the stored settings point at, with both fixture agents."""
    eleven = FakeElevenLabs(api_key=KEY)
    eleven.start()
    monkeypatch.setattr(get_settings(), "elevenlabs_base_url", eleven.base_url)
    monkeypatch.setattr(get_settings(), "elevenlabs_api_key", None)
    with session_scope() as session:
        settings.save(session, agent_ids=list(AGENTS), api_key=KEY, actor="test")
    yield eleven
    eleven.stop()
    assert eleven.response_problems == []


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The backoff's sleeps, recorded instead of slept."""
    waits: list[float] = []
    monkeypatch.setattr(sync, "sleep", waits.append)
    return waits


def serve(fake: FakeElevenLabs, calls: list[Call]) -> None:
    for call in calls:
        fake.add_conversation(call.details, direction=call.direction)


def run_sync(date_from: date | None = MARCH[0], date_to: date | None = MARCH[1]) -> Job:
    """Start a sync the way the API does and wait for its job to end."""
    with session_scope() as session:
        job_id = service.start(
            session, trigger="manual", date_from=date_from, date_to=date_to, actor="test"
        ).id
    return finished(job_id)


def finished(job_id: int) -> Job:
    def ended() -> Job | None:
        with session_scope(write=False) as session:
            job = session.get(Job, job_id)
            assert job is not None
            session.expunge(job)
            return job if job.status in ("done", "failed") else None

    job: Job = wait_for(ended, timeout=60, what=f"job {job_id}")
    return job


def details_requests(fake: FakeElevenLabs) -> int:
    return fake.count_prefix(DETAILS)


def stored(db: Any) -> dict[str, VoiceConversation]:
    return {c.conversation_id: c for c in db.scalars(select(VoiceConversation))}


def test_second_sync_stores_no_duplicates_and_fetches_no_details(
    fake: FakeElevenLabs, db: Any, slept: list[float]
) -> None:
    calls = month_of_conversations(40)
    serve(fake, calls)

    first = run_sync()
    assert first.status == "done", first.error
    assert details_requests(fake) == 40
    fake.reset()
    second = run_sync()

    assert second.status == "done", second.error
    assert details_requests(fake) == 0
    assert db.scalar(select(func.count()).select_from(VoiceConversation)) == 40
    assert set(stored(db)) == {c.conversation_id for c in calls}
    with session_scope(write=False) as session:
        log = service.logs(session)
    assert [(r.status, r.listed, r.fetched, r.created) for r in log] == [
        ("done", 40, 0, 0),
        ("done", 40, 40, 40),
    ]
    assert first.result is not None and first.result["fetched"] == 40
    criteria = sum(len(c.details["analysis"]["evaluation_criteria_results"]) for c in calls)
    assert db.scalar(select(func.count()).select_from(VoiceEvaluation)) == criteria


def test_pages_are_followed_with_the_cursor_and_the_range_is_sent(
    fake: FakeElevenLabs, db: Any
) -> None:
    serve(fake, month_of_conversations(250))  # 125 per agent: two pages each

    assert run_sync().status == "done"

    lists = [r for r in fake.requests if r.path == LIST]
    assert len(lists) == 4
    assert sum(1 for r in lists if r.query.get("cursor")) == 2
    assert {r.query["page_size"] for r in lists} == {"100"}
    assert {r.query["call_start_after_unix"] for r in lists} == {"1772323200"}  # 2026-03-01
    assert {r.query["call_start_before_unix"] for r in lists} == {"1775001600"}  # 2026-04-01
    assert len(stored(db)) == 250


def test_only_conversations_in_the_range_are_synced(fake: FakeElevenLabs, db: Any) -> None:
    calls = month_of_conversations(28)  # one a day
    serve(fake, calls)

    assert run_sync(date(2026, 3, 10), date(2026, 3, 12)).status == "done"

    days = sorted({c.start_time.day for c in stored(db).values()})
    assert days == [10, 11, 12]


def test_rate_limited_requests_wait_as_told_and_then_succeed(
    fake: FakeElevenLabs, db: Any, slept: list[float]
) -> None:
    serve(fake, month_of_conversations(6))
    fake.rate_limit_next(2, retry_after=7)

    job = run_sync()

    assert job.status == "done", job.error
    assert slept == [7.0, 7.0]
    assert len(stored(db)) == 6


def test_conversation_whose_details_changed_is_fetched_again_and_updated(
    fake: FakeElevenLabs, db: Any
) -> None:
    calls = month_of_conversations(10)
    serve(fake, calls)
    assert run_sync().status == "done"
    changed = calls[4]
    outcome = (
        "failure" if changed.details["analysis"]["call_successful"] == "success" else "success"
    )
    changed.details["analysis"]["call_successful"] = outcome
    changed.details["analysis"]["call_summary_title"] = "Zmieniony tytuł"
    fake.add_conversation(changed.details, direction=changed.direction)
    fake.reset()

    assert run_sync().status == "done"

    assert fake.count(DETAILS + changed.conversation_id) == 1
    assert details_requests(fake) == 1
    row = stored(db)[changed.conversation_id]
    assert (row.call_successful, row.title) == (outcome, "Zmieniony tytuł")
    with session_scope(write=False) as session:
        assert service.logs(session)[0].updated == 1


def test_conversations_without_phone_data_get_numbers_when_details_are_refetched(
    fake: FakeElevenLabs, db: Any
) -> None:
    calls = month_of_conversations(20)
    serve(fake, calls)
    assert run_sync().status == "done"
    missing = [c for c in calls if c.phone_kind == "none"]
    assert missing
    assert {cid for cid, row in stored(db).items() if row.customer_number is None} == {
        c.conversation_id for c in missing
    }
    for call in missing:  # ElevenLabs now has the phone call metadata
        call.details["metadata"]["phone_call"] = {
            "direction": call.direction,
            "phone_number_id": "pn_1",
            "agent_number": "+48223456789",
            "external_number": call.customer,
            "type": "twilio",
            "stream_sid": "MZ1",
            "call_sid": "CA1",
        }
        fake.add_conversation(call.details, direction=call.direction)
    fake.reset()

    with session_scope() as session:
        job_id = service.start_refetch(session, "test").id
    job = finished(job_id)

    assert job.status == "done", job.error
    assert details_requests(fake) == len(missing)
    rows = stored(db)
    assert all(rows[c.conversation_id].customer_number == c.customer for c in missing)
    assert all(rows[c.conversation_id].phone_source == "phone_call" for c in missing)
    assert job.result is not None and job.result["numbers_found"] == len(missing)


def test_interrupted_sync_resumes_from_its_cursor(fake: FakeElevenLabs, db: Any) -> None:
    calls = month_of_conversations(250)
    serve(fake, calls)
    after, before = 1772323200, 1775001600
    first_page = httpx.get(
        fake.base_url + LIST,
        params={
            "agent_id": AGENTS[0],
            "page_size": 100,
            "call_start_after_unix": after,
            "call_start_before_unix": before,
        },
        headers={"xi-api-key": KEY},
    ).json()
    cursor = first_page["next_cursor"]
    seen = {c["conversation_id"] for c in first_page["conversations"]}
    # A worker killed after the first page of the first agent leaves this behind.
    with session_scope() as session:
        run = VoiceSyncRun(
            trigger="manual",
            status="running",
            range_from=datetime(2026, 3, 1, tzinfo=UTC),
            range_to=datetime(2026, 4, 1, tzinfo=UTC),
            agent_ids=list(AGENTS),
            cursors={AGENTS[0]: {"cursor": cursor, "done": False}},
            listed=100,
            started_at=utcnow() - timedelta(hours=1),
            heartbeat_at=utcnow() - timedelta(hours=1),
        )
        session.add(run)
        session.flush()
        run_id = run.id
    fake.reset()

    job = run_sync()

    assert job.status == "done", job.error
    lists = [r for r in fake.requests if r.path == LIST]
    assert lists[0].query["agent_id"] == AGENTS[0]
    assert lists[0].query["cursor"] == cursor
    assert all(r.query.get("cursor") for r in lists if r.query["agent_id"] == AGENTS[0])
    expected = {c.conversation_id for c in calls} - seen
    assert set(stored(db)) == expected
    assert job.result is not None and job.result["resumed_run_id"] == run_id
    with session_scope(write=False) as session:
        resumed = session.get(VoiceSyncRun, run_id)
        assert resumed is not None
        assert (resumed.status, resumed.listed, resumed.job_id) == ("done", 250, job.id)


def test_refused_key_fails_the_run_with_a_readable_error(fake: FakeElevenLabs, db: Any) -> None:
    serve(fake, month_of_conversations(3))
    fake.fail_next(401)

    job = run_sync()

    assert job.status == "failed"
    assert job.error is not None and "refused the API key" in job.error
    with session_scope(write=False) as session:
        [log] = service.logs(session)
    assert log.status == "failed"
    assert "refused the API key (401)" in (log.error or "")
    assert KEY not in (log.error or "")
    assert log.finished_at is not None


def test_sync_needs_settings_and_runs_one_at_a_time(fake: FakeElevenLabs) -> None:
    with session_scope() as session:
        settings.save(session, agent_ids=[], api_key=False, actor="test")
    with session_scope() as session, pytest.raises(NotConfigured):
        service.start(session, actor="test")
    with session_scope() as session:
        settings.save(session, agent_ids=list(AGENTS), api_key=False, actor="test")
    with session_scope() as session:
        service.start(session, date_from=MARCH[0], date_to=MARCH[1], actor="test")
        with pytest.raises(Conflict):
            service.start(session, actor="test")
        with pytest.raises(Conflict):
            service.start_refetch(session, "test")
        session.rollback()  # nothing is queued


def test_customer_number_joins_the_messaging_contact(fake: FakeElevenLabs, db: Any) -> None:
    from relaydesk.contacts import service as contacts

    calls = [c for c in month_of_conversations(20) if c.phone_kind == "sip_trunking"]
    serve(fake, calls)
    with session_scope() as session:
        contact = contacts.get_or_create(
            session, contacts.participant_number(calls[0].customer[3:]), "sms"
        )
        phone = contact.phone

    assert run_sync().status == "done"

    # SIP trunks send the number without '+'; the row matches the contact anyway.
    assert calls[0].details["metadata"]["phone_call"]["external_number"][0] != "+"
    row = stored(db)[calls[0].conversation_id]
    assert row.customer_number == phone


def test_connection_test_reports_each_agent(fake: FakeElevenLabs) -> None:
    serve(fake, month_of_conversations(4))
    config = settings.VoicebotConfig(agent_ids=list(AGENTS), api_key=KEY, base_url=fake.base_url)
    wrong = settings.VoicebotConfig(
        agent_ids=list(AGENTS), api_key="xi-wrong-key-000", base_url=fake.base_url
    )

    good = test_connection(config)
    bad = test_connection(wrong)

    assert good["ok"] is True
    assert [a["agent_id"] for a in good["agents"]] == list(AGENTS)
    assert bad["ok"] is False
    assert "refused the API key" in bad["detail"]
    assert "xi-wrong-key-000" not in str(bad)


def test_client_retries_server_errors_and_gives_up_within_its_wait_budget(
    fake: FakeElevenLabs,
) -> None:
    waits: list[float] = []
    client = ElevenLabsClient(KEY, fake.base_url, sleep=waits.append, max_total_wait=5)
    fake.fail_next(500, times=2)

    assert client.list_conversations(AGENTS[0]).conversations == []
    assert waits == [1.0, 2.0]
    fake.rate_limit_next(3, retry_after=4)
    with pytest.raises(ElevenLabsError, match="rate limiting") as caught:
        client.list_conversations(AGENTS[0])
    assert caught.value.permanent is False
    with pytest.raises(ElevenLabsError, match="404") as missing:
        client.get_conversation("conv_nope")
    assert missing.value.permanent is True
    client.close()
