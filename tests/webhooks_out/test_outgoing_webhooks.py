"""Outgoing webhooks end to end: a real receiver on loopback verifies every signature.

The receiver checks signatures with the `standardwebhooks` package (independent code);
time moves through relaydesk's injected clock, never by sleeping.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from relaydesk.core import events
from relaydesk.core.config import get_settings
from relaydesk.core.models import AuditEntry
from relaydesk.core.tasks import enqueue
from relaydesk.webhooks_out.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tests.conftest import FrozenClock, Member, customer_writes, wait_for
from tests.fakes.webhook_receiver import Received, WebhookReceiver

standardwebhooks = pytest.importorskip("standardwebhooks")

DELIVER = "webhooks_out.deliver"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


def register(api: httpx.Client, url: str, *types: str) -> dict[str, Any]:
    answer = api.post(
        "/api/webhooks", json={"url": url, "events": list(types or ["message.received"])}
    )
    assert answer.status_code == 201, answer.text
    made: dict[str, Any] = answer.json()
    assert made["secret"].startswith("whsec_")
    return made


def verified(secret: str, got: Received) -> dict[str, Any]:
    """The event, once the receiver's own Standard Webhooks library accepts its signature."""
    payload: dict[str, Any] = standardwebhooks.Webhook(secret).verify(got.body, got.headers)
    assert payload == got.event
    assert got.headers["webhook-id"] == got.event["id"]
    return payload


def deliveries(db: Any, endpoint_id: int) -> list[WebhookDelivery]:
    return list(
        db.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint_id)
            .order_by(WebhookDelivery.id)
        )
    )


def attempts(db: Any, delivery_id: int) -> list[WebhookAttempt]:
    return list(
        db.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id == delivery_id)
            .order_by(WebhookAttempt.id)
        )
    )


def test_a_received_message_arrives_signed_and_the_secret_is_never_shown_again(
    api: httpx.Client,
    twilio_post: Callable[..., httpx.Response],
    receiver: WebhookReceiver,
    db: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    made = register(api, receiver.url, "message.received", "contact.opted_out")
    secret = made["secret"]

    customer_writes(twilio_post, "+48600700001", "Zażółć gęślą jaźń")
    got = wait_for(lambda: receiver.events("message.received"), what="the delivery")[0]
    event = verified(secret, got)
    assert event["id"].startswith("msg_")
    assert event["timestamp"]
    data = event["data"]
    assert data["body"] == "Zażółć gęślą jaźń"
    assert data["from"] == "+48600700001" and data["direction"] == "inbound"
    assert data["id"] > 0 and data["status"] == "received"
    # The data is the message as the API returns it.
    assert api.get(f"/api/messages/{data['id']}").json()["body"] == data["body"]
    # A forged body fails the receiver's check.
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(got.body.replace(b"Za", b"Xa"), got.headers)

    # STOP opts the contact out: contact.opted_out, after the message itself.
    customer_writes(twilio_post, "+48600700001", "STOP")
    opted = wait_for(lambda: receiver.events("contact.opted_out"), what="opted out")[0]
    assert verified(secret, opted)["data"]["phone"] == "+48600700001"
    assert opted.event["data"]["opted_out"] is True

    # The secret is write-only: not in the list, the endpoint, the audit log or the logs.
    listed = api.get("/api/webhooks").json()
    assert listed[0]["id"] == made["id"] and "secret" not in listed[0]
    one = api.get(f"/api/webhooks/{made['id']}").json()
    assert "secret" not in one and secret not in str(one)
    patched = api.patch(f"/api/webhooks/{made['id']}", json={"description": "CRM"}).json()
    assert "secret" not in patched
    for entry in db.scalars(select(AuditEntry)):
        assert secret not in str(entry.details)
    stored = db.scalar(select(WebhookEndpoint.secret).where(WebhookEndpoint.id == made["id"]))
    assert secret not in stored  # encrypted at rest
    assert all(secret not in record.getMessage() for record in caplog.records)

    # Rotating returns a new secret once; later deliveries are signed with it.
    rotated = api.patch(f"/api/webhooks/{made['id']}", json={"rotate_secret": True}).json()
    assert rotated["secret"] != secret
    customer_writes(twilio_post, "+48600700002", "po zmianie")
    later = wait_for(
        lambda: [r for r in receiver.events("message.received") if b"po zmianie" in r.body],
        what="the message after the rotation",
    )[0]
    verified(rotated["secret"], later)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(later.body, later.headers)


def test_500s_are_retried_with_growing_delays_and_4xx_fails_at_once(
    api: httpx.Client,
    twilio_post: Callable[..., httpx.Response],
    db: Any,
    clock: FrozenClock,
) -> None:
    answers = iter([500, 503, 200])
    with WebhookReceiver(lambda body: next(answers)) as receiver:
        made = register(api, receiver.url)
        start = clock.freeze()
        customer_writes(twilio_post, "+48600700010", "retry me")

        def tries(n: int) -> list[WebhookAttempt]:
            rows = deliveries(db, made["id"])
            return attempts(db, rows[0].id) if rows and len(attempts(db, rows[0].id)) >= n else []

        wait_for(lambda: tries(1), what="the first attempt")
        row = deliveries(db, made["id"])[0]
        assert row.state == "pending" and row.last_status == 500
        assert row.next_attempt_at == start + timedelta(seconds=5)

        clock.move(timedelta(seconds=4))
        enqueue(DELIVER)  # not due yet: nothing is sent
        time.sleep(0.3)  # a negative check: give a wrong delivery the chance to happen
        assert receiver.count == 1

        clock.move(timedelta(seconds=1))
        enqueue(DELIVER)
        wait_for(lambda: tries(2), what="the second attempt")
        row = deliveries(db, made["id"])[0]
        assert row.last_status == 503
        assert row.next_attempt_at == start + timedelta(seconds=5 + 30)  # a longer wait

        clock.move(timedelta(seconds=30))
        enqueue(DELIVER)
        wait_for(lambda: deliveries(db, made["id"])[0].state == "delivered", what="delivered")
        ids = {got.headers["webhook-id"] for got in receiver.received}
        assert len(receiver.received) == 3 and len(ids) == 1  # the same event each time
        listed = api.get(f"/api/webhooks/{made['id']}/deliveries").json()["items"]
        assert [a["status_code"] for a in listed[0]["history"]] == [500, 503, 200]
        assert all(a["latency_ms"] >= 0 for a in listed[0]["history"])

    with WebhookReceiver(lambda body: 404) as gone:
        lost = register(api, gone.url)
        customer_writes(twilio_post, "+48600700011", "nobody home")
        wait_for(
            lambda: deliveries(db, lost["id"]) and deliveries(db, lost["id"])[0].state == "failed",
            what="fail",
        )
        row = deliveries(db, lost["id"])[0]
        assert row.attempts == 1 and row.last_status == 404 and gone.count == 1


def test_an_endpoint_failing_for_24_hours_gives_up_and_is_disabled(
    api: httpx.Client,
    twilio_post: Callable[..., httpx.Response],
    db: Any,
    clock: FrozenClock,
) -> None:
    with WebhookReceiver(lambda body: 500) as receiver:
        made = register(api, receiver.url)
        clock.freeze()
        customer_writes(twilio_post, "+48600700020", "into the void")
        wait_for(lambda: receiver.count >= 1, what="the first attempt")
        clock.move(timedelta(hours=24, minutes=1))
        enqueue(DELIVER)
        wait_for(
            lambda: deliveries(db, made["id"])[0].state == "failed", what="the delivery to give up"
        )
        endpoint = api.get(f"/api/webhooks/{made['id']}").json()
        assert (
            endpoint["enabled"] is False and "no delivery succeeded" in endpoint["disabled_reason"]
        )
        assert db.scalar(select(AuditEntry).where(AuditEntry.action == "webhook.disabled"))
        # Disabled: new events are not written for it at all.
        customer_writes(twilio_post, "+48600700021", "later")
        time.sleep(0.3)
        assert len(deliveries(db, made["id"])) == 1
        # Enabled again by an admin: a fresh start.
        again = api.patch(f"/api/webhooks/{made['id']}", json={"enabled": True}).json()
        assert again["enabled"] is True and again["disabled_reason"] is None


def test_order_is_kept_per_conversation_and_other_conversations_go_on(
    api: httpx.Client,
    twilio_post: Callable[..., httpx.Response],
    db: Any,
    clock: FrozenClock,
) -> None:
    failed_once = threading.Event()

    def answer(body: bytes) -> int:
        if b"anna-1" in body and not failed_once.is_set():
            failed_once.set()
            return 500
        return 200

    with WebhookReceiver(answer) as receiver:
        register(api, receiver.url)
        clock.freeze()
        customer_writes(twilio_post, "+48600700031", "anna-1")
        wait_for(failed_once.is_set, what="anna's first message to fail")
        customer_writes(twilio_post, "+48600700031", "anna-2")
        customer_writes(twilio_post, "+48600700032", "bartek-1")
        wait_for(lambda: any(b"bartek-1" in r.body for r in receiver.received), what="bartek")
        enqueue(DELIVER)
        time.sleep(0.3)  # a negative check: anna-2 must not overtake anna-1
        assert not any(b"anna-2" in r.body for r in receiver.received)

        clock.move(timedelta(seconds=5))
        enqueue(DELIVER)
        wait_for(lambda: any(b"anna-2" in r.body for r in receiver.received), what="anna-2")
        anna = [r.event["data"]["body"] for r in receiver.received if b"anna" in r.body]
        assert anna == ["anna-1", "anna-1", "anna-2"]
        assert [r.status for r in receiver.received if b"anna" in r.body] == [500, 200, 200]


def test_replay_and_test_events_send_the_same_event_again(
    api: httpx.Client,
    twilio_post: Callable[..., httpx.Response],
    receiver: WebhookReceiver,
    db: Any,
) -> None:
    made = register(api, receiver.url)
    customer_writes(twilio_post, "+48600700040", "send me twice")
    first = wait_for(lambda: receiver.events("message.received"), what="the delivery")[0]
    wait_for(lambda: deliveries(db, made["id"])[0].state == "delivered", what="recorded")
    delivery = deliveries(db, made["id"])[0]

    counted = api.get("/metrics").text
    assert 'relaydesk_webhook_deliveries_total{outcome="delivered"}' in counted
    answer = api.post(f"/api/webhooks/{made['id']}/deliveries/{delivery.id}/replay")
    assert answer.status_code == 202, answer.text
    again = wait_for(lambda: receiver.events("message.received")[1:], what="the replay")[0]
    assert again.headers["webhook-id"] == first.headers["webhook-id"]
    assert again.body == first.body
    verified(made["secret"], again)

    assert api.post(f"/api/webhooks/{made['id']}/test").status_code == 202
    test = wait_for(lambda: receiver.events("webhook.test"), what="the test event")[0]
    verified(made["secret"], test)

    listed = api.get(f"/api/webhooks/{made['id']}/deliveries").json()
    assert len(listed["items"]) == 3 and listed["next"] is None
    # Pages: a cursor continues where the page ended.
    wait_for(lambda: all(d.state == "delivered" for d in deliveries(db, made["id"])), what="all")
    page = api.get(f"/api/webhooks/{made['id']}/deliveries", params={"cursor": "Mg"})
    assert page.status_code == 200 and all(i["id"] < 2 for i in page.json()["items"])
    assert (
        api.get(f"/api/webhooks/{made['id']}/deliveries", params={"cursor": "x|y"}).status_code
        == 422
    )
    # Another endpoint's delivery is not this one's.
    other = register(api, receiver.url)
    wrong = api.post(f"/api/webhooks/{other['id']}/deliveries/{delivery.id}/replay")
    assert wrong.status_code == 404


def test_a_hanging_endpoint_never_delays_inbound_storage_or_sends(
    api: httpx.Client, twilio_post: Callable[..., httpx.Response], db: Any
) -> None:
    with WebhookReceiver() as receiver:
        receiver.hold = threading.Event()  # every request hangs until the end of the test
        register(api, receiver.url, "message.received", "message.sent", "message.status")
        customer_writes(twilio_post, "+48600700050", "first")
        wait_for(lambda: receiver.count or receiver._server, what="a request to hang")
        for n in range(5):
            started = time.monotonic()
            customer_writes(twilio_post, "+48600700050", f"while hanging {n}")
            took = time.monotonic() - started
            assert took < 2.0, f"an inbound webhook took {took:.2f} s"
            found = api.get("/api/messages", params={"q": f"while hanging {n}"}).json()["items"]
            assert found and found[0]["body"] == f"while hanging {n}"
        started = time.monotonic()
        sent = api.post("/api/send-message", json={"to": "+48600700050", "body": "answer"})
        assert sent.status_code == 201, sent.text
        assert time.monotonic() - started < 2.0
        receiver.hold.set()
        wait_for(lambda: len(receiver.events("message.received")) >= 6, what="all, late")


def test_only_admins_manage_webhooks(
    api: httpx.Client, team: Callable[..., Member], receiver: WebhookReceiver
) -> None:
    made = register(api, receiver.url)
    for role in ("operator", "viewer"):
        member = team(role.title(), role)
        assert member.client.get("/api/webhooks").status_code == 403
        assert (
            member.client.post(
                "/api/webhooks", json={"url": receiver.url, "events": ["message.received"]}
            ).status_code
            == 403
        )
        assert (
            member.client.patch(f"/api/webhooks/{made['id']}", json={"enabled": False}).status_code
            == 403
        )
        assert member.client.delete(f"/api/webhooks/{made['id']}").status_code == 403
        assert member.client.post(f"/api/webhooks/{made['id']}/test").status_code == 403
        assert member.client.get(f"/api/webhooks/{made['id']}/deliveries").status_code == 403
    assert api.delete(f"/api/webhooks/{made['id']}").status_code == 204
    assert api.get(f"/api/webhooks/{made['id']}").status_code == 404


def test_bad_input_is_refused_and_nothing_is_stored(
    api: httpx.Client, receiver: WebhookReceiver, db: Any
) -> None:
    bad = [
        {"url": "ftp://example.com/x", "events": ["message.received"]},
        {"url": "javascript:alert(1)//", "events": ["message.received"]},
        {"url": receiver.url, "events": []},
        {"url": receiver.url, "events": ["message.nope"]},
        {"url": receiver.url, "events": ["message.received"], "secret": "whsec_short"},
        {"url": receiver.url, "events": ["message.received"], "secret": "x" * 40},
        {"url": receiver.url + "\x00", "events": ["message.received"]},
        {"url": receiver.url, "events": ["message.received"], "extra": 1},
    ]
    for payload in bad:
        answer = api.post("/api/webhooks", json=payload)
        assert answer.status_code == 422, (payload, answer.text)
    assert db.scalar(select(WebhookEndpoint.id)) is None
    # A secret of one's own is accepted and used as given.
    own = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    answer = api.post(
        "/api/webhooks", json={"url": receiver.url, "events": ["message.sent"], "secret": own}
    )
    assert answer.status_code == 201 and answer.json()["secret"] == own


def test_a_private_address_is_refused_without_the_setting(
    api: httpx.Client,
    twilio_post: Callable[..., httpx.Response],
    receiver: WebhookReceiver,
    db: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = register(api, receiver.url)  # saved while loopback is allowed
    monkeypatch.setattr(get_settings(), "webhooks_allow_private_networks", False)
    for url in (receiver.url, "http://10.0.0.7/hook", "http://[::1]:8080/x", "http://localhost/"):
        answer = api.post("/api/webhooks", json={"url": url, "events": ["message.received"]})
        assert answer.status_code == 422, answer.text
        assert "WEBHOOKS_ALLOW_PRIVATE_NETWORKS" in answer.json()["detail"]
    # At delivery it is checked again: nothing reaches the loopback receiver.
    customer_writes(twilio_post, "+48600700060", "not for you")
    wait_for(
        lambda: deliveries(db, made["id"]) and deliveries(db, made["id"])[0].attempts, what="try"
    )
    row = deliveries(db, made["id"])[0]
    assert receiver.count == 0
    assert "WEBHOOKS_ALLOW_PRIVATE_NETWORKS" in (row.last_error or "")


def test_a_rollback_emits_nothing_and_no_endpoint_means_no_rows(
    api: httpx.Client, receiver: WebhookReceiver, db: Any
) -> None:
    from relaydesk.channels.twilio.parsing import InboundRecord
    from relaydesk.core.db import get_sessionmaker
    from relaydesk.messaging import ingest

    def record(sid: str) -> InboundRecord:
        return ingest.read_inbound(
            {"MessageSid": sid, "From": "+48600700070", "To": "+15005550006", "Body": "x"}
        )

    def store(sid: str, commit: bool) -> None:
        session = get_sessionmaker()()
        try:
            assert ingest.store_inbound(session, [record(sid)])
            session.commit() if commit else session.rollback()
        finally:
            session.close()

    events.forget_subscribers()  # the previous test's endpoints were deleted behind its back
    store("SM" + "a" * 32, commit=True)  # no endpoint yet: nothing written
    assert db.scalar(select(WebhookDelivery.id)) is None
    made = register(api, receiver.url)
    store("SM" + "b" * 32, commit=False)
    assert deliveries(db, made["id"]) == []
    store("SM" + "c" * 32, commit=True)
    assert len(deliveries(db, made["id"])) == 1
    wait_for(lambda: receiver.events("message.received"), what="the committed one")


def test_conversation_and_consent_events(
    api: httpx.Client,
    twilio_post: Callable[..., httpx.Response],
    receiver: WebhookReceiver,
    team: Callable[..., Member],
) -> None:
    made = register(
        api,
        receiver.url,
        "conversation.status",
        "conversation.assigned",
        "contact.opted_in",
        "message.sent",
        "message.status",
    )
    customer_writes(twilio_post, "+48600700080", "hello")
    anna = team("Anna", "operator")
    assert (
        api.patch(
            "/api/conversations/+48600700080", json={"status": "resolved", "assignee_id": anna.id}
        ).status_code
        == 200
    )
    status = wait_for(lambda: receiver.events("conversation.status"), what="status")[0]
    data = verified(made["secret"], status)["data"]
    assert data["participant"] == "+48600700080" and data["status"] == "resolved"
    assert data["change"]["to"] == "resolved"
    assigned = wait_for(lambda: receiver.events("conversation.assigned"), what="assigned")[0]
    assert assigned.event["data"]["assignee_id"] == anna.id
    # The customer writes again: the conversation opens again.
    customer_writes(twilio_post, "+48600700080", "START")
    wait_for(lambda: len(receiver.events("conversation.status")) == 2, what="reopened")
    assert receiver.events("conversation.status")[1].event["data"]["status"] == "open"
    opted_in = wait_for(lambda: receiver.events("contact.opted_in"), what="opted in")[0]
    assert opted_in.event["data"]["phone"] == "+48600700080"

    sent = api.post("/api/send-message", json={"to": "+48600700080", "body": "answer"}).json()
    got = wait_for(
        lambda: [r for r in receiver.events("message.sent") if r.event["data"]["id"] == sent["id"]],
        what="sent",
    )[0]
    assert got.event["data"]["sid"] == sent["sid"] and got.event["data"]["body"] == "answer"
    wait_for(
        lambda: any(
            r.event["data"]["status"] == "delivered" for r in receiver.events("message.status")
        ),
        what="the delivered status",
    )


def test_a_closed_port_is_retried_and_a_redirect_is_not_followed(
    api: httpx.Client, twilio_post: Callable[..., httpx.Response], db: Any
) -> None:
    from tests.pgserver import free_port

    closed = register(api, f"http://127.0.0.1:{free_port()}/nobody")
    with WebhookReceiver(lambda body: 302) as moved:
        redirected = register(api, moved.url)
        customer_writes(twilio_post, "+48600700090", "where to?")
        wait_for(
            lambda: all(
                deliveries(db, e["id"]) and deliveries(db, e["id"])[0].attempts
                for e in (closed, redirected)
            ),
            what="both tried",
        )
        refused = deliveries(db, closed["id"])[0]
        assert refused.state == "pending" and refused.last_status is None
        assert "Connection" in (refused.last_error or "")  # retried later
        bounced = deliveries(db, redirected["id"])[0]
        assert bounced.state == "failed" and bounced.last_status == 302
        assert bounced.last_error == "redirect not followed" and moved.count == 1


def test_a_delivery_held_by_a_crashed_worker_is_sent_once_its_lease_ends(
    api: httpx.Client,
    twilio_post: Callable[..., httpx.Response],
    db: Any,
    clock: FrozenClock,
    receiver: WebhookReceiver,
) -> None:
    from sqlalchemy import update

    from relaydesk.core.db import session_scope
    from relaydesk.webhooks_out import sender

    made = register(api, receiver.url)
    now = clock.freeze()
    with session_scope() as session:
        # What a worker that died mid-delivery leaves: a pending row under its lease.
        events.emit(
            session, "message.received", [("+48600700099", {"id": 1})], endpoints=[made["id"]]
        )
        session.flush()
        session.execute(update(WebhookDelivery).values(locked_until=now + sender.LEASE))
    enqueue(DELIVER)
    time.sleep(0.3)  # a negative check: the lease holds it
    assert receiver.count == 0
    clock.move(sender.LEASE + timedelta(seconds=1))
    enqueue("webhooks_out.sweep")
    wait_for(lambda: receiver.count == 1, what="the delivery after the lease")
    wait_for(lambda: deliveries(db, made["id"])[0].state == "delivered", what="recorded")


def test_a_send_twilio_refuses_is_a_failed_message_status(
    api: httpx.Client, receiver: WebhookReceiver
) -> None:
    made = register(api, receiver.url, "message.status", "message.sent")
    # The emulator refuses this number (Twilio's magic "invalid number").
    refused = api.post("/api/send-message", json={"to": "+15005550001", "body": "a"})
    assert refused.status_code == 422, refused.text
    got = wait_for(lambda: receiver.events("message.status"), what="the failed status")[0]
    data = verified(made["secret"], got)["data"]
    assert data["status"] == "failed" and data["error_code"]
    assert receiver.events("message.sent") == []
