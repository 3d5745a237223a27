"""Search: words in any Polish form and without diacritics, numbers in part, from the
index and from what it has not read yet, newest first, for signed-in people only."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import event, func, select, update

from relaydesk.contacts.models import Contact
from relaydesk.core import clock as core_clock
from relaydesk.core.db import get_engine, session_scope
from relaydesk.messaging import search
from relaydesk.messaging.models import Message, search_contacts, search_messages
from tests.conftest import FrozenClock, LiveServer, customer_writes, wait_for

Post = Callable[..., httpx.Response]
ANIA, PIOTR, OLA = "+48600123456", "+48600777888", "+48501222333"


def index_everything(clock: FrozenClock) -> None:
    """Let the indexer read everything stored so far (rows old enough on PostgreSQL)."""
    # Never back in time: a change stamped by the frozen clock must be behind the horizon.
    clock.freeze(max(clock.at, core_clock.system_now()))
    clock.move(search.SETTLE + timedelta(seconds=1))

    def caught_up() -> bool:
        search.catch_up(budget=30)
        with session_scope(write=False) as session:
            return search.status(session).behind == 0

    wait_for(caught_up, what="the search index to catch up")


def indexed_rows() -> int:
    with session_scope(write=False) as session:
        return session.scalar(select(func.count()).select_from(search_messages)) or 0


def hits(api: httpx.Client, q: str, kind: str = "messages", **params: Any) -> dict[str, Any]:
    answer = api.get("/api/search", params={"q": q, "type": kind, **params})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def marked_words(hit: dict[str, Any]) -> list[str]:
    return [hit["snippet"][start:end] for start, end in hit["highlights"]]


@pytest.fixture
def history(twilio_post: Post) -> None:
    customer_writes(twilio_post, ANIA, "Dzień dobry, gdzie jest moje zamówienie nr 4411?")
    customer_writes(twilio_post, PIOTR, "Czy dostawa w sobotę jest możliwa?")
    customer_writes(twilio_post, OLA, "ŻÓŁW przyjechał cały, dziękuję za zamówieniu")
    customer_writes(twilio_post, PIOTR, "Nothing to see here")


@pytest.mark.parametrize("indexed", [False, True], ids=["not-yet-indexed", "indexed"])
def test_a_polish_word_is_found_in_another_form_and_without_diacritics(
    api: httpx.Client, history: None, clock: FrozenClock, indexed: bool
) -> None:
    if indexed:
        index_everything(clock)
        assert indexed_rows() == 4
    found = hits(api, "zamówienia")["items"]
    assert [h["participant"] for h in found] == [OLA, ANIA]  # newest first
    assert marked_words(found[1]) == ["zamówienie"]
    assert marked_words(found[0]) == ["zamówieniu"]
    # Typed without Polish letters, in capitals, another ending.
    assert {h["participant"] for h in hits(api, "ZAMOWIENIEM")["items"]} == {OLA, ANIA}
    assert [h["participant"] for h in hits(api, "zolw")["items"]] == [OLA]
    assert marked_words(hits(api, "żółwia")["items"][0]) == ["ŻÓŁW"]
    # Every word must occur.
    assert [h["participant"] for h in hits(api, "dostawy sobota")["items"]] == [PIOTR]
    assert hits(api, "dostawy zamówienie")["items"] == []
    assert hits(api, "xylofon")["items"] == []


def test_a_number_is_found_typed_with_spaces_dashes_or_in_part(
    api: httpx.Client, history: None, clock: FrozenClock
) -> None:
    for indexed in (False, True):
        if indexed:
            index_everything(clock)
            with session_scope(write=False) as session:
                assert session.scalar(select(func.count()).select_from(search_contacts)) == 3
        for typed in ("600 123", "+48 600-123-456", "0048 600 123 456", "600123456", "(600) 123"):
            contacts = hits(api, typed, "contacts")["items"]
            assert [c["participant"] for c in contacts] == [ANIA], (typed, indexed)
            assert contacts[0]["highlights"], typed
            conversations = hits(api, typed, "conversations")["items"]
            assert [c["participant"] for c in conversations] == [ANIA], (typed, indexed)
        assert hits(api, "600 999", "contacts")["items"] == []
        # A number in a message's text is found among messages.
        assert [h["participant"] for h in hits(api, "4411")["items"]] == [ANIA]


def test_contacts_are_found_by_name_note_and_attribute(
    api: httpx.Client, history: None, clock: FrozenClock
) -> None:
    answer = api.patch(
        f"/api/contacts/{PIOTR}",
        json={"name": "Piotr Wiśniewski", "note": "Woli kontakt po 17:00, hurtownia"},
    )
    assert answer.status_code == 200, answer.text
    for indexed in (False, True):
        if indexed:
            index_everything(clock)
        assert [c["participant"] for c in hits(api, "wisniewski", "contacts")["items"]] == [PIOTR]
        assert [c["participant"] for c in hits(api, "hurtowni", "contacts")["items"]] == [PIOTR]
        found = hits(api, "Wiśniewskiego", "contacts")["items"][0]
        assert found["name"] == "Piotr Wiśniewski"
    # A changed name: the old one is no longer found, from the index either.
    assert api.patch(f"/api/contacts/{PIOTR}", json={"name": "Piotr Nowak"}).status_code == 200
    assert hits(api, "wisniewski", "contacts")["items"] == []
    index_everything(clock)
    assert hits(api, "wisniewski", "contacts")["items"] == []
    assert [c["participant"] for c in hits(api, "nowak", "contacts")["items"]] == [PIOTR]


def test_a_transcript_added_later_is_found_at_once_and_once_indexed_again(
    api: httpx.Client, history: None, clock: FrozenClock, db: Any
) -> None:
    index_everything(clock)
    first, second = db.scalars(
        select(Message.id).where(Message.participant == PIOTR).order_by(Message.id)
    ).all()

    def transcribe(message_id: int, words: str) -> None:
        with session_scope() as session:
            session.execute(
                update(Message)
                .where(Message.id == message_id)
                .values(num_media=1, media=[{"content_type": "audio/ogg", "transcript": words}])
            )

    transcribe(first, "Proszę o fakturę VAT")
    transcribe(second, "Fakturę już mam")
    # Before the indexer reads the change again: the panel shows the transcript, so a
    # search finds it, newest first, on pages and through the history filter.
    for indexed in (False, True):
        found = hits(api, "faktury")["items"]
        assert [h["id"] for h in found] == [second, first], indexed
        assert marked_words(found[1]) == ["fakturę"]
        paged = hits(api, "faktury", limit=1)
        assert [h["id"] for h in paged["items"]] == [second], indexed
        rest = hits(api, "faktury", limit=1, cursor=paged["next"])["items"]
        assert [h["id"] for h in rest] == [first], indexed
        listed = api.get("/api/messages", params={"q": "faktury"}).json()["items"]
        assert [m["id"] for m in listed] == [second, first], indexed
        index_everything(clock)

    # A text that changes again is no longer found by its old words, indexed or not.
    transcribe(second, "Dziękuję")
    for indexed in (False, True):
        assert [h["id"] for h in hits(api, "faktury")["items"]] == [first], indexed
        index_everything(clock)


def test_pages_of_results_hold_every_match_once(
    api: httpx.Client, twilio_post: Post, clock: FrozenClock
) -> None:
    senders = [f"+4860055{i:04d}" for i in range(5)]
    for round_ in range(5):
        for sender in senders:
            customer_writes(twilio_post, sender, f"Reklamacja numer {round_}")
    customer_writes(twilio_post, "+48600559999", "Bez związku")
    for indexed in (False, True):
        if indexed:
            index_everything(clock)
        seen: list[int] = []
        cursor = None
        while True:
            extra: dict[str, Any] = {"limit": 7, **({"cursor": cursor} if cursor else {})}
            page = hits(api, "reklamacji", **extra)
            seen += [h["id"] for h in page["items"]]
            cursor = page["next"]
            if not cursor:
                break
        assert len(seen) == 25 and len(set(seen)) == 25 and seen == sorted(seen, reverse=True)
        conversations: list[str] = []
        cursor = None
        while True:
            extra = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = hits(api, "reklamacja", "conversations", **extra)
            conversations += [c["participant"] for c in page["items"]]
            cursor = page["next"]
            if not cursor:
                break
        assert sorted(conversations) == sorted(senders), indexed


def test_the_message_history_filter_q_uses_the_search(
    api: httpx.Client, history: None, clock: FrozenClock
) -> None:
    for indexed in (False, True):
        if indexed:
            index_everything(clock)
        answer = api.get("/api/messages", params={"q": "zamówienia"})
        assert answer.status_code == 200
        assert [m["participant"] for m in answer.json()["items"]] == [OLA, ANIA]
        inbound = api.get("/api/messages", params={"q": "zamowienie", "direction": "outbound"})
        assert inbound.json()["items"] == []
        # The customer's number in part finds their messages (as the old filter did).
        by_number = api.get("/api/messages", params={"q": "600 777"}).json()["items"]
        assert {m["participant"] for m in by_number} == {PIOTR} and len(by_number) == 2
        # Shorter than the index can look for: still read from the rows.
        short = api.get("/api/messages", params={"q": "dz"}).json()["items"]
        assert {m["participant"] for m in short} == {ANIA, OLA}
        # Pages: one at a time, the older page goes on where the first ended.
        first = api.get("/api/messages", params={"q": "zamówienia", "limit": 1}).json()
        assert [m["participant"] for m in first["items"]] == [OLA]
        second = api.get(
            "/api/messages", params={"q": "zamówienia", "limit": 1, "cursor": first["next"]}
        ).json()
        assert [m["participant"] for m in second["items"]] == [ANIA] and second["next"] is None


def test_nobody_searches_without_signing_in(server: LiveServer, history: None) -> None:
    with httpx.Client(base_url=server.url) as anonymous:
        assert anonymous.get("/api/search", params={"q": "zamówienie"}).status_code == 401
        bad = anonymous.get(
            "/api/search",
            params={"q": "zamówienie"},
            headers={"Authorization": "Bearer " + secrets.token_urlsafe(32)},
        )
        assert bad.status_code == 401
        page = anonymous.get("/search", params={"q": "zamówienie"}, follow_redirects=False)
        assert page.status_code in (302, 303, 401)
        assert "zamówienie" not in page.text


def test_a_viewer_searches_but_hostile_queries_are_refused_cleanly(
    server: LiveServer, make_token: Callable[[str], str], history: None
) -> None:
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {make_token('viewer')}"}
    ) as viewer:
        assert [h["participant"] for h in hits(viewer, "dostawa")["items"]] == [PIOTR]
        for q in ("ab", "%%%", "__", "\x00\x00", " ", '"" OR ""'):
            answer = viewer.get("/api/search", params={"q": q})
            assert answer.status_code == 422, (q, answer.text)
            assert "at least 3" in answer.json()["detail"]
        # The query language of the index is not the user's: quotes, operators, NUL.
        for q in ('zamówienie" OR "a', "zam* NEAR(a b)", "zamówienie\x00", "dostawa'; DROP"):
            assert viewer.get("/api/search", params={"q": q}).status_code == 200, q
        assert hits(viewer, 'dostawa" OR "zam')["items"] == []
        refused: tuple[dict[str, Any], ...] = (
            {"q": "x" * 201},
            {"q": "dostawa", "limit": 10**12},
            {"q": "dostawa", "type": "users"},
            {"q": "dostawa", "cursor": "not-ours"},
            {"q": "dostawa", "cursor": "OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5"},
        )
        for params in refused:
            answer = viewer.get("/api/search", params=params)
            assert answer.status_code == 422, (params, answer.text)


def test_rebuild_reads_the_history_into_an_emptied_index(
    api: httpx.Client, history: None, clock: FrozenClock
) -> None:
    from relaydesk.cli import main

    index_everything(clock)
    with session_scope() as session:
        session.execute(update(search_messages).values(text="stale"))
    assert hits(api, "dostawa")["items"] == []  # the index answers for what it has read
    result = CliRunner().invoke(main, ["search", "rebuild"])
    assert result.exit_code == 0, result.output
    assert "search index rebuilt" in result.output
    assert indexed_rows() == 4
    assert [h["participant"] for h in hits(api, "dostawa")["items"]] == [PIOTR]
    status = CliRunner().invoke(main, ["search", "status"])
    assert "still to read:   0" in status.output


def whole_pass() -> search.Pass:
    """One complete pass of the indexer (the server's own may be at it a moment)."""
    return wait_for(
        lambda: (done := search.catch_up(budget=3)).steps and done,
        what="a whole pass of the indexer",
    )


class TickingClock:
    """A clock that moves on by a millisecond each time it is read, as time does."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        self.at += timedelta(milliseconds=1)
        return self.at


def test_the_indexer_reads_each_change_once_and_never_splits_an_instant(
    server: LiveServer, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ingest touches contacts all the time, and one transaction stamps many rows alike.

    Twelve contacts changed at one instant must all be read although a chunk holds five
    (a chunk that ended inside the instant skipped the rest), and a pass must end when
    only changes younger than the settle window are left (it read them again and again
    while the clock moved, and burned a core during ingest)."""
    monkeypatch.setattr(search, "CHUNK", 5)
    now = clock.freeze()
    one_instant = now - timedelta(seconds=60)
    numbers = [f"+4860010{i:04d}" for i in range(22)]
    with session_scope() as session:
        session.add_all(
            Contact(
                phone=number,
                channel="sms",
                profile_name=f"Klient {i}",
                updated_at=one_instant if i < 12 else now - timedelta(seconds=50 - i),
            )
            for i, number in enumerate(numbers[:15])
        )
        session.add_all(
            Contact(phone=number, channel="sms", profile_name=f"Nowy {i}", updated_at=now)
            for i, number in enumerate(numbers[15:])
        )
    core_clock.set_source(TickingClock(now))
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", seen)
    try:
        done = whole_pass()
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert not done.behind
    reads = sum("FROM contacts" in s and "updated_at" in s for s in statements)
    assert reads <= 6, reads  # chunks of 5 for 15 changes, never a loop
    with session_scope(write=False) as session:
        indexed = set(session.scalars(select(search_contacts.c.text)))
    assert {f"klient {i}" for i in range(15)} <= {t.split(" 48")[0] for t in indexed}
    assert not any(t.startswith("nowy") for t in indexed)  # younger than the window
    clock.freeze(now + search.SETTLE + timedelta(seconds=1))
    whole_pass()
    with session_scope(write=False) as session:
        assert session.scalar(select(func.count()).select_from(search_contacts)) == 22


def test_two_indexers_never_write_the_same_chunk_twice(history: None, clock: FrozenClock) -> None:
    """Reading happens outside the write lock, so two processes may read the same chunk:
    the one that commits second finds the position moved and writes nothing."""
    clock.freeze(max(clock.at, core_clock.system_now()) + search.SETTLE + timedelta(seconds=1))
    with search._running:  # the server's own indexer (this process) stays out
        with session_scope() as session:
            search.reset(session)
        with session_scope(write=False) as session:
            first = search._new_messages(session, clock.at)
            second = search._new_messages(session, clock.at)
        assert first is not None and second is not None and len(first.documents) == 4
        with session_scope() as session:
            assert search._commit(session, first)
        with session_scope() as session:
            assert not search._commit(session, second)
    assert indexed_rows() == 4
    with session_scope(write=False) as session:
        assert search.status(session).behind == 0
