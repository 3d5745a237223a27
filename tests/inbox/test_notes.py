"""Private notes in a conversation and @mentions: stored, never sent, and who is called in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from relaydesk.auth.models import User
from relaydesk.core.config import get_settings
from relaydesk.core.db import session_scope
from relaydesk.core.models import AuditEntry
from relaydesk.inbox.models import ConversationNote, Mention
from relaydesk.inbox.notes import mentioned
from relaydesk.messaging.models import Message
from tests.conftest import LiveServer, Member, customer_writes, wait_for

Post = Callable[..., httpx.Response]
CUSTOMER = "+48600100750"
OTHER = "+48600100751"


def receive(post: Post, sender: str = CUSTOMER, body: str = "Dzień dobry") -> None:
    customer_writes(post, sender, body)


def note(member: Member, body: str, participant: str = CUSTOMER) -> dict[str, Any]:
    answer = member.client.post(f"/api/conversations/{participant}/notes", json={"body": body})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def mentions(member: Member, **params: Any) -> dict[str, Any]:
    answer = member.client.get("/api/mentions", params=params)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def at_twilio(client: httpx.Client) -> list[dict[str, Any]]:
    """Every message the emulator (Twilio) was handed."""
    settings = get_settings()
    answer = client.get(
        f"/sandbox/twilio/2010-04-01/Accounts/{settings.account_sid}/Messages.json",
        auth=(settings.account_sid, settings.auth_token),
    )
    assert answer.status_code == 200, answer.text
    return list(answer.json()["messages"])


# The mention parser on its own (no server).


def test_the_longest_name_after_the_at_wins_and_case_does_not_matter() -> None:
    handles = sorted(
        [("Anna", 1), ("Anna Nowak", 2), ("anna-x", 1), ("Piotr", 3)],
        key=lambda h: len(h[0]),
        reverse=True,
    )
    assert mentioned("@anna nowak, look", handles) == [2]
    assert mentioned("@ANNA: and @Anna again", handles) == [1]
    assert mentioned("@Anna-x or @anna", handles) == [1]
    assert mentioned("(@piotr) then @Anna Nowak.", handles) == [3, 2]
    # Not a name's end, inside an e-mail address, nobody known.
    assert mentioned("@Annabelle, write to piotr@Anna.pl, @Zofia, @", handles) == []


def test_two_people_with_the_same_name_are_both_mentioned() -> None:
    assert mentioned("@Anna please", [("Anna", 1), ("Anna", 5)]) == [1, 5]


# Through the API.


def test_a_note_is_stored_as_written_listed_oldest_first_and_never_sent(
    twilio_post: Post, team: Callable[..., Member], db: Any, api: httpx.Client
) -> None:
    anna, vera = team("Anna"), team("Vera", "viewer")
    receive(twilio_post)
    tricky = "Klient mówi: \"nie dziś\"\n\t-- it's <b>urgent</b> 🙂 ' OR 1=1; --"
    first = note(anna, "Called him, no answer")
    second = note(anna, tricky)

    listed = vera.client.get(f"/api/conversations/{CUSTOMER}/notes")
    assert listed.status_code == 200, listed.text
    assert [n["body"] for n in listed.json()] == ["Called him, no answer", tricky]
    assert [n["id"] for n in listed.json()] == [first["id"], second["id"]]
    assert set(first) == {
        "id",
        "kind",
        "participant",
        "author",
        "author_id",
        "body",
        "created_at",
        "mentions",
    }
    assert (first["kind"], first["author"], first["author_id"]) == ("note", "Anna", anna.id)
    assert first["participant"] == CUSTOMER and first["mentions"] == []
    assert first["created_at"] <= second["created_at"]

    # No message row, nothing at Twilio: a real reply afterwards is the only thing sent.
    assert db.scalar(select(func.count(Message.id))) == 1
    sent = anna.client.post("/api/send-message", json={"to": CUSTOMER, "body": "Oddzwonię"})
    assert sent.status_code == 201, sent.text
    handed = wait_for(lambda: at_twilio(api), what="the reply at the emulator")
    assert [m["body"] for m in handed] == ["Oddzwonię"]
    assert db.scalar(select(func.count(Message.id))) == 2
    assert "Called him" not in str(api.get(f"/api/conversations/{CUSTOMER}").json()["items"])

    entries = db.execute(
        select(AuditEntry.action, AuditEntry.target, AuditEntry.details).where(
            AuditEntry.action == "conversation.note"
        )
    ).all()
    assert [(action, target) for action, target, _ in entries] == [
        ("conversation.note", CUSTOMER),
        ("conversation.note", CUSTOMER),
    ]
    assert all("body" not in details and "Called" not in str(details) for *_, details in entries)


def test_mentions_name_colleagues_once_and_never_yourself_or_strangers(
    twilio_post: Post, team: Callable[..., Member], db: Any
) -> None:
    anna = team("Anna")
    anna_nowak = team("Anna Nowak")
    piotr = team("Piotr", local="pkowal")
    vera = team("Vera", "viewer")
    locked = team("Zofia")
    with session_scope() as session:
        session.get_one(User, locked.id).is_active = False
    receive(twilio_post)

    written = note(
        anna,
        "@anna nowak and @PIOTR, see this. @Piotr again, @pkowal too; @Anna (me), "
        "@Zofia (locked), @Nobody, mail anna@example.com. cc @vera",
    )
    assert written["mentions"] == ["Anna Nowak", "Piotr", "Vera"]
    rows = db.execute(select(Mention.user_id, Mention.participant).order_by(Mention.id)).all()
    assert rows == [(anna_nowak.id, CUSTOMER), (piotr.id, CUSTOMER), (vera.id, CUSTOMER)]

    # Nobody to mention: a note all the same, and no mention.
    plain = note(piotr, "@Piotr note to self, and @Someone")
    assert plain["mentions"] == []
    assert db.scalar(select(func.count(Mention.id))) == 3
    assert [
        n["mentions"] for n in anna.client.get(f"/api/conversations/{CUSTOMER}/notes").json()
    ] == [
        ["Anna Nowak", "Piotr", "Vera"],
        [],
    ]


def test_each_user_sees_only_their_own_mentions_newest_first_and_marks_them_read(
    twilio_post: Post, team: Callable[..., Member]
) -> None:
    anna, piotr, vera = team("Anna"), team("Piotr"), team("Vera", "viewer")
    receive(twilio_post)
    receive(twilio_post, OTHER)
    note(anna, "@Piotr please call back")
    note(anna, "@Piotr @Vera invoice question", OTHER)
    note(piotr, "@Anna done")

    mine = mentions(piotr)
    assert mine["unread"] == 2
    assert [(m["participant"], m["note"]["body"]) for m in mine["items"]] == [
        (OTHER, "@Piotr @Vera invoice question"),
        (CUSTOMER, "@Piotr please call back"),
    ]
    top = mine["items"][0]
    assert (top["author"], top["author_id"], top["read_at"]) == ("Anna", anna.id, None)
    assert top["note"]["mentions"] == ["Piotr", "Vera"]
    assert [m["note"]["body"] for m in mentions(vera)["items"]] == ["@Piotr @Vera invoice question"]
    assert [m["note"]["author"] for m in mentions(anna)["items"]] == ["Piotr"]

    # Another user's mention: 404 for Vera, and nothing changes.
    piotrs_ids = [m["id"] for m in mine["items"]]
    refused = vera.client.post("/api/mentions/read", json={"ids": piotrs_ids})
    assert refused.status_code == 404, refused.text
    assert mentions(piotr)["unread"] == 2
    mixed = piotr.client.post("/api/mentions/read", json={"ids": [piotrs_ids[0], 2**63 - 1]})
    assert mixed.status_code == 404
    assert mentions(piotr)["unread"] == 2

    # Piotr reads one by id, then the rest of a conversation.
    read = piotr.client.post("/api/mentions/read", json={"ids": [piotrs_ids[0]]})
    assert read.status_code == 200, read.text
    assert read.json() == {"marked": 1, "unread": 1}
    assert [m["participant"] for m in mentions(piotr, unread="true")["items"]] == [CUSTOMER]
    again = piotr.client.post("/api/mentions/read", json={"ids": [piotrs_ids[0]]})
    assert again.json() == {"marked": 0, "unread": 1}
    by_number = piotr.client.post("/api/mentions/read", json={"participant": "+48 600 100 750"})
    assert by_number.json() == {"marked": 1, "unread": 0}
    assert mentions(piotr, unread="true")["items"] == []
    assert all(m["read_at"] for m in mentions(piotr)["items"])
    # Vera's stays unread.
    assert mentions(vera)["unread"] == 1


def test_mentions_page_with_a_cursor(twilio_post: Post, team: Callable[..., Member]) -> None:
    anna, piotr = team("Anna"), team("Piotr")
    receive(twilio_post)
    for n in range(5):
        note(anna, f"@Piotr number {n}")
    first = mentions(piotr, limit=2)
    assert [m["note"]["body"][-1] for m in first["items"]] == ["4", "3"]
    second = mentions(piotr, limit=2, cursor=first["next"])
    third = mentions(piotr, limit=2, cursor=second["next"])
    assert [m["note"]["body"][-1] for m in second["items"] + third["items"]] == ["2", "1", "0"]
    assert third["next"] is None
    assert piotr.client.get("/api/mentions", params={"cursor": "nope!"}).status_code == 422


def test_a_token_that_acts_as_nobody_cannot_write_notes_or_have_mentions(
    twilio_post: Post, server: LiveServer, make_token: Callable[[str], str], db: Any
) -> None:
    receive(twilio_post)
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {make_token('admin')}"}
    ) as nobody:
        refused = nobody.post(f"/api/conversations/{CUSTOMER}/notes", json={"body": "hi"})
        assert refused.status_code == 422
        assert "needs an author" in refused.json()["detail"]
        assert nobody.get(f"/api/conversations/{CUSTOMER}/notes").json() == []
        assert nobody.get("/api/mentions").status_code == 422
        assert nobody.post("/api/mentions/read", json={"ids": [1]}).status_code == 422
    assert db.scalar(select(func.count(ConversationNote.id))) == 0
    assert db.scalar(select(func.count(AuditEntry.id)).where(AuditEntry.action.like("conv%"))) == 0


def test_roles_viewers_read_operators_write_strangers_are_refused(
    twilio_post: Post, team: Callable[..., Member], server: LiveServer
) -> None:
    vera = team("Vera", "viewer")
    receive(twilio_post)
    paths = [
        ("get", f"/api/conversations/{CUSTOMER}/notes", None),
        ("post", f"/api/conversations/{CUSTOMER}/notes", {"body": "x"}),
        ("get", "/api/mentions", None),
        ("post", "/api/mentions/read", {"participant": CUSTOMER}),
    ]
    for method, path, body in paths:
        assert httpx.request(method, server.url + path, json=body).status_code == 401, path
        bad = {"Authorization": "Bearer rd_nope"}
        assert httpx.request(method, server.url + path, json=body, headers=bad).status_code == 401
    denied = vera.client.post(f"/api/conversations/{CUSTOMER}/notes", json={"body": "x"})
    assert denied.status_code == 403
    assert vera.client.get(f"/api/conversations/{CUSTOMER}/notes").json() == []
    assert vera.client.post("/api/mentions/read", json={"participant": CUSTOMER}).json() == {
        "marked": 0,
        "unread": 0,
    }


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"body": ""}, 422),
        ({"body": "   \n\t "}, 422),
        ({"body": "x" * 4001}, 422),
        ({"body": "nul\u0000byte"}, 422),
        ({"body": "bell\u0007"}, 422),
        ({"body": None}, 422),
        ({}, 422),
        ({"body": "hi", "author": "Someone else"}, 422),
    ],
)
def test_a_bad_note_is_refused_and_nothing_is_stored(
    twilio_post: Post, team: Callable[..., Member], db: Any, body: dict[str, Any], status: int
) -> None:
    anna = team("Anna")
    receive(twilio_post)
    answer = anna.client.post(f"/api/conversations/{CUSTOMER}/notes", json=body)
    assert answer.status_code == status, answer.text
    assert answer.json()["detail"]
    assert db.scalar(select(func.count(ConversationNote.id))) == 0


def test_a_note_of_4000_characters_fits_and_unknown_or_junk_numbers_do_not(
    twilio_post: Post, team: Callable[..., Member], db: Any
) -> None:
    anna = team("Anna")
    receive(twilio_post)
    long = "ą" * 3999 + "!"
    assert note(anna, long)["body"] == long
    unknown = anna.client.post("/api/conversations/+48600999999/notes", json={"body": "x"})
    assert unknown.status_code == 404
    assert anna.client.get("/api/conversations/+48600999999/notes").status_code == 404
    for junk in ("not-a-number", "%00", "1" * 60):
        assert anna.client.post(
            f"/api/conversations/{junk}/notes", json={"body": "x"}
        ).status_code in (404, 422)
        assert anna.client.get(f"/api/conversations/{junk}/notes").status_code in (404, 422)
    assert db.scalar(select(func.count(ConversationNote.id))) == 1


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"ids": [1], "participant": CUSTOMER},
        {"ids": []},
        {"ids": [0]},
        {"ids": [2**63]},
        {"ids": ["1; DROP TABLE mentions"]},
        {"ids": list(range(1, 1002))},
        {"participant": "nul\u0000"},
        {"participant": "x" * 65},
        {"participant": CUSTOMER, "user_id": 1},
    ],
)
def test_marking_read_needs_ids_or_a_number(
    team: Callable[..., Member], payload: dict[str, Any]
) -> None:
    anna = team("Anna")
    answer = anna.client.post("/api/mentions/read", json=payload)
    assert answer.status_code == 422, answer.text


def test_a_deleted_author_keeps_their_name_on_the_note(
    twilio_post: Post, team: Callable[..., Member]
) -> None:
    anna, piotr = team("Anna"), team("Piotr")
    receive(twilio_post)
    note(anna, "@Piotr over to you")
    with session_scope() as session:
        session.delete(session.get_one(User, anna.id))
    [kept] = piotr.client.get(f"/api/conversations/{CUSTOMER}/notes").json()
    assert (kept["author"], kept["author_id"], kept["mentions"]) == ("Anna", None, ["Piotr"])
    assert mentions(piotr)["items"][0]["author"] == "Anna"
