"""The inbox's team tools over plain HTTP: notes and mentions, labels, canned answers."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import func, select

from relaydesk.core.db import session_scope
from relaydesk.inbox import canned, labels
from relaydesk.inbox.models import ConversationNote, Mention
from relaydesk.messaging.models import Message
from tests.web.test_inbox_pages import FIRST, SECOND, Member, receive
from tests.web.test_inbox_pages import member as member  # the fixture, shared

Post = Callable[..., httpx.Response]
MakeMember = Callable[..., Member]


def post(who: Member, path: str, data: dict[str, Any] | None = None) -> httpx.Response:
    return who.client.post(path, data=data or {}, headers=who.htmx())


def add_label(name: str, colour: str = "#2ca02c") -> int:
    with session_scope() as session:
        return labels.create_label(session, name, colour, "test").id


def test_a_note_is_in_the_thread_never_a_message_and_mentions_a_colleague(
    member: MakeMember, twilio_post: Post, db: Any
) -> None:
    anna, piotr = member("Anna"), member("Piotr")
    receive(twilio_post, FIRST, "Dzień dobry")
    messages = db.scalar(select(func.count(Message.id)))

    added = post(anna, f"/inbox/{FIRST}/notes", {"body": "@Piotr please call them back"})
    assert added.status_code == 204, added.text
    assert added.headers["HX-Trigger"] == "rd:changed"
    assert db.scalar(select(func.count(Message.id))) == messages  # nothing to send, ever
    assert db.scalar(select(ConversationNote.body)) == "@Piotr please call them back"
    assert db.scalar(select(Mention.user_id)) == piotr.id

    pane = anna.client.get(f"/inbox/{FIRST}/pane").text
    card = re.search(r'<li class="thread-note".*?</li>', pane, re.S)
    assert card, "no note card in the thread"
    assert "Private note · Anna" in card.group(0)
    assert "bubble" not in card.group(0)
    assert pane.index("Dzień dobry") < pane.index("Private note · Anna")
    # The full chat page shows it too (messaging knows nothing of notes).
    assert "Private note · Anna" in anna.client.get(f"/chat/{FIRST}").text

    # Piotr's badge counts it; the list says who, where and how it starts.
    page = piotr.client.get("/inbox").text
    assert 'data-mentions="1"' in page
    assert 'data-mentions="0"' in anna.client.get("/inbox/mentions/badge").text
    listed = piotr.client.get("/inbox/mentions").text
    assert "Anna" in listed and FIRST in listed and "please call them back" in listed
    mention_id = db.scalar(select(Mention.id))
    opened = post(piotr, f"/inbox/mentions/{mention_id}/open")
    assert opened.status_code == 303
    assert opened.headers["location"] == "/inbox?c=%2B48600100801"
    assert 'data-mentions="0"' in piotr.client.get("/inbox/mentions/badge").text
    # Someone else's mention is not Anna's to open.
    assert post(anna, f"/inbox/mentions/{mention_id}/open").status_code == 404


def test_a_viewer_cannot_write_notes_and_sees_no_note_form(
    member: MakeMember, twilio_post: Post, db: Any
) -> None:
    vera = member("Vera", "viewer")
    receive(twilio_post, FIRST)
    page = vera.client.get("/inbox", params={"c": FIRST}).text
    assert 'id="note-form"' not in page and "data-compose-mode" not in page
    assert post(vera, f"/inbox/{FIRST}/notes", {"body": "hello"}).status_code == 403
    assert db.scalar(select(func.count(ConversationNote.id))) == 0
    anna = member("Anna")
    assert 'id="note-form"' in anna.client.get("/inbox", params={"c": FIRST}).text
    empty = post(anna, f"/inbox/{FIRST}/notes", {"body": "  "})
    assert empty.status_code == 422 and "A note cannot be empty" in empty.text


def test_labels_show_as_chips_are_set_in_the_state_bar_and_filter_the_list(
    member: MakeMember, twilio_post: Post
) -> None:
    anna = member("Anna")
    receive(twilio_post, FIRST)
    receive(twilio_post, SECOND)
    add_label("VIP", "#d62728")
    add_label("Invoice")

    state = anna.client.get(f"/inbox/{FIRST}/state").text
    assert 'name="label" value="VIP"' in state
    changed = post(anna, f"/inbox/{FIRST}/labels", {"label": ["VIP", "Invoice"]})
    assert changed.status_code == 200, changed.text
    assert changed.headers["HX-Trigger"] == "rd:changed"
    assert re.search(r'value="VIP" checked', changed.text)

    rows = anna.client.get("/inbox/list").text
    assert re.search(r'data-label="VIP" style="--chip: #d62728">VIP<', rows)
    assert anna.rows(label="vip") == [FIRST]
    assert anna.rows(label="Nothing") == []
    page = anna.client.get("/inbox", params={"label": "VIP", "owner": "mine"}).text
    assert 'hx-get="/inbox/list?owner=mine&amp;label=VIP"' in page
    assert re.search(r'<option value="VIP" selected>', page)
    assert 'href="/inbox?owner=mine&amp;status=pending&amp;label=VIP"' in page

    # Unticking all takes them off; the thread says so.
    assert post(anna, f"/inbox/{FIRST}/labels").status_code == 200
    assert anna.rows(label="VIP") == []
    thread = anna.client.get(f"/chat/{FIRST}/thread").text
    assert "Anna added the labels: Invoice, VIP" in thread
    assert "Anna removed the labels: Invoice, VIP" in thread


def test_only_admins_manage_labels_and_viewers_cannot_label(
    member: MakeMember, twilio_post: Post, db: Any
) -> None:
    anna, ada, vera = member("Anna"), member("Ada", "admin"), member("Vera", "viewer")
    receive(twilio_post, FIRST)
    assert "Manage labels" not in anna.client.get("/inbox").text
    assert "Manage labels" in ada.client.get("/inbox").text
    assert anna.client.get("/inbox/labels/manage").status_code == 403
    assert post(anna, "/inbox/labels", {"name": "VIP"}).status_code == 403

    created = post(ada, "/inbox/labels", {"name": "VIP", "colour": "#1f77b4"})
    assert created.status_code == 200 and 'data-label-row="VIP"' in created.text
    label_id = db.scalar(select(labels.Label.id))
    renamed = post(ada, f"/inbox/labels/{label_id}", {"name": "Gold", "colour": "#ff7f0e"})
    assert 'data-label-row="Gold"' in renamed.text and 'value="#ff7f0e"' in renamed.text
    clash = post(ada, "/inbox/labels", {"name": "gold"})
    assert clash.status_code == 409 and "exists already" in clash.text

    assert post(vera, f"/inbox/{FIRST}/labels", {"label": ["Gold"]}).status_code == 403
    assert post(anna, f"/inbox/{FIRST}/labels", {"label": ["Gold"]}).status_code == 200
    deleted = post(ada, f"/inbox/labels/{label_id}/delete")
    assert deleted.status_code == 200 and "No labels yet." in deleted.text
    assert anna.rows(label="Gold") == []


def test_canned_answers_are_offered_filled_in_for_the_customer(
    member: MakeMember, twilio_post: Post
) -> None:
    anna, ada, piotr = member("Anna"), member("Ada", "admin"), member("Piotr")
    receive(twilio_post, FIRST, "Hej", profile="Jan")
    made = post(
        ada,
        "/inbox/canned",
        {
            "shortcut": "hours",
            "body": "Hi {{contact.name}}, we open at 9. {{agent.name}}",
            "shared": "true",
        },
    )
    assert made.status_code == 200 and 'data-canned-row="hours"' in made.text
    assert (
        post(anna, "/inbox/canned", {"shortcut": "/thanks", "body": "Thanks!"}).status_code == 200
    )
    # An operator cannot share one.
    refused = post(anna, "/inbox/canned", {"shortcut": "x", "body": "y", "shared": "true"})
    assert refused.status_code == 403

    offered = anna.client.get(f"/inbox/{FIRST}/canned", params={"q": "ho"}).text
    assert 'role="listbox"' in offered
    assert 'data-text="Hi Jan, we open at 9. Anna"' in offered
    assert "/thanks" not in offered
    everything = anna.client.get(f"/inbox/{FIRST}/canned").text
    assert "/hours" in everything and "/thanks" in everything
    # Anna's own are hers: Piotr neither sees nor deletes them.
    assert "/thanks" not in piotr.client.get(f"/inbox/{FIRST}/canned").text
    with session_scope() as session:
        mine = canned.search(session, anna.id, "thanks")[0].id
        shared = canned.search(session, anna.id, "hours")[0].id
    assert post(piotr, f"/inbox/canned/{mine}/delete").status_code == 404
    assert post(anna, f"/inbox/canned/{shared}/delete").status_code == 403
    manage = anna.client.get("/inbox/canned/manage").text
    assert f'hx-post="/inbox/canned/{mine}/delete"' in manage
    assert f'hx-post="/inbox/canned/{shared}/delete"' not in manage
    assert (
        "No canned answer matches."
        in anna.client.get(f"/inbox/{FIRST}/canned", params={"q": "zzz"}).text
    )
    assert member("Vera", "viewer").client.get(f"/inbox/{FIRST}/canned").status_code == 403
