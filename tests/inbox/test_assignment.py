"""Round-robin: a customer nobody owns goes to the next operator online, never a locked one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from relaydesk.auth import sessions
from relaydesk.auth.models import User
from relaydesk.core.db import session_scope
from relaydesk.core.models import AuditEntry
from relaydesk.messaging.models import Conversation
from tests.conftest import FrozenClock, Member, customer_writes

Post = Callable[..., httpx.Response]


def sign_in(member: Member) -> str:
    """Open a panel session for the member, as the login form does (they are online)."""
    with session_scope() as session:
        user = session.get(User, member.id)
        assert user is not None
        return sessions.start_session(session, user, "127.0.0.1", "test")


def owner(client: httpx.Client, participant: str) -> tuple[int | None, list[dict[str, Any]]]:
    answer = client.get(f"/api/conversations/{participant}")
    assert answer.status_code == 200, answer.text
    state = answer.json()
    return state["assignee_id"], [e for e in state["events"] if e["kind"] == "assigned"]


def switch(client: httpx.Client, on: bool) -> httpx.Response:
    return client.put("/api/assignment", json={"round_robin": on})


def test_off_by_default_a_new_customer_stays_unassigned(
    twilio_post: Post, team: Callable[..., Member]
) -> None:
    anna = team("Anna")
    sign_in(anna)
    assert anna.client.get("/api/assignment").json()["round_robin"] is False
    customer_writes(twilio_post, "+48600200001")
    assert owner(anna.client, "+48600200001") == (None, [])


def test_turns_go_round_the_operators_online_and_skip_locked_viewers_and_offline(
    twilio_post: Post, team: Callable[..., Member], clock: FrozenClock, db: Any
) -> None:
    admin = team("Ewa", role="admin")
    anna, piotr = team("Anna"), team("Piotr")
    locked, viewer, away, stale = team("Locked"), team("Vera", "viewer"), team("Away"), team("Old")
    clock.freeze()
    sign_in(stale)  # then idle for ten minutes: no longer online
    clock.move(timedelta(minutes=10))
    for member in (anna, piotr, locked, viewer):
        sign_in(member)
    with session_scope() as session:
        session.execute(update(User).where(User.id == locked.id).values(is_active=False))
    assert switch(admin.client, True).json()["round_robin"] is True
    assert admin.client.get("/api/assignment").json()["online"] == ["Anna", "Piotr"]

    customers = [f"+4860020010{i}" for i in range(4)]
    for number in customers:
        customer_writes(twilio_post, number)
    owners = [owner(admin.client, number)[0] for number in customers]
    assert owners == [anna.id, piotr.id, anna.id, piotr.id]
    assert not {locked.id, viewer.id, away.id, stale.id} & set(owners)

    # The event reads as an automatic assignment; the audit log has it too.
    _, events = owner(admin.client, customers[0])
    assert [(e["actor"], e["data"]["to"], e["data"]["auto"]) for e in events] == [
        ("round-robin", "Anna", True)
    ]
    audited = db.scalars(
        select(AuditEntry.target).where(
            AuditEntry.action == "conversation.assigned", AuditEntry.actor == "round-robin"
        )
    ).all()
    assert sorted(audited) == sorted(customers)

    # The same customer writing again keeps their owner; no second event.
    customer_writes(twilio_post, customers[0], "Jeszcze jedno")
    assert owner(admin.client, customers[0]) == (anna.id, events)


def test_a_customer_with_an_owner_keeps_them_even_when_the_owner_is_offline(
    twilio_post: Post, team: Callable[..., Member]
) -> None:
    admin, anna, away = team("Ewa", role="admin"), team("Anna"), team("Away")
    sign_in(anna)
    customer_writes(twilio_post, "+48600200201")
    patched = admin.client.patch(
        "/api/conversations/+48600200201", json={"assignee_id": away.id, "status": "resolved"}
    )
    assert patched.status_code == 200, patched.text
    assert switch(admin.client, True).status_code == 200

    customer_writes(twilio_post, "+48600200201", "Halo?")
    state = admin.client.get("/api/conversations/+48600200201").json()
    assert (state["status"], state["assignee_id"]) == ("open", away.id)


def test_a_reopened_unowned_conversation_is_given_out_and_nobody_online_leaves_it(
    twilio_post: Post, team: Callable[..., Member]
) -> None:
    admin, anna = team("Ewa", role="admin"), team("Anna")
    assert switch(admin.client, True).status_code == 200
    customer_writes(twilio_post, "+48600200301")
    assert owner(admin.client, "+48600200301") == (None, [])  # nobody online

    token = sign_in(anna)
    admin.client.patch("/api/conversations/+48600200301", json={"status": "resolved"})
    customer_writes(twilio_post, "+48600200301", "Wracam")
    assert owner(admin.client, "+48600200301")[0] == anna.id

    # Signing out takes Anna offline at once.
    with session_scope() as session:
        sessions.end_session(session, token)
    customer_writes(twilio_post, "+48600200302")
    assert owner(admin.client, "+48600200302") == (None, [])
    with session_scope(write=False) as session:
        rows = session.scalars(
            select(Conversation.assignee_id).where(Conversation.participant == "+48600200302")
        ).all()
    assert rows == [None]


def test_only_admins_switch_it_and_bad_bodies_are_refused(
    team: Callable[..., Member], api: httpx.Client
) -> None:
    operator, viewer = team("Anna"), team("Vera", "viewer")
    assert viewer.client.get("/api/assignment").status_code == 200
    assert switch(operator.client, True).status_code == 403
    assert switch(viewer.client, True).status_code == 403
    assert api.put("/api/assignment", json={"round_robin": "maybe"}).status_code == 422
    assert api.put("/api/assignment", json={"round_robin": True, "x": 1}).status_code == 422
    assert api.get("/api/assignment").json()["round_robin"] is False
    assert httpx.get(f"{api.base_url}/api/assignment").status_code == 401
