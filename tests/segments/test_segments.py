"""Segments: each rule kind, opted-out members skipped with the reason, campaigns to a
segment (recipients, the limit, WhatsApp's window per recipient), roles and bad input."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from relaydesk.campaigns.models import Batch, Recipient
from tests.conftest import FrozenClock, Member, customer_writes, wait_for

Post = Callable[..., httpx.Response]
A, B, C, D, E = "+48600100701", "+48600100702", "+48600100703", "+48600100704", "+48600100705"


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    from relaydesk.core.config import get_settings

    monkeypatch.setattr(get_settings(), "campaign_rate_mps", 100.0)


@dataclass
class World:
    """Who is who: label ids by name."""

    labels: dict[str, int]


@pytest.fixture
def world(api: httpx.Client, twilio_post: Post, clock: FrozenClock) -> World:
    """Five customers:

    A sms: VIP + Warszawa; city Warszawa, visits 5, since 2024-01-10, plan Gold; open.
    B sms: VIP; city Kraków, visits 2, plan Silver; opted out (replied STOP).
    C whatsapp, wrote now: city Gdańsk.
    D sms: Warszawa; wrote 40 days ago; resolved.
    E whatsapp, wrote 2 days ago (the 24-hour window is closed).
    """
    attrs = api.put(
        "/api/contact-attributes",
        json={
            "attributes": [
                {"key": "city", "name": "City", "kind": "text"},
                {"key": "visits", "name": "Visits", "kind": "number"},
                {"key": "since", "name": "Customer since", "kind": "date"},
                {"key": "plan", "name": "Plan", "kind": "list", "options": ["Gold", "Silver"]},
            ]
        },
    )
    assert attrs.status_code == 200, attrs.text
    labels = {}
    for name in ("VIP", "Warszawa"):
        made = api.post("/api/labels", json={"name": name})
        assert made.status_code == 201, made.text
        labels[name] = made.json()["id"]
    now = clock.freeze()
    clock.move(timedelta(days=-40))
    customer_writes(twilio_post, D)
    clock.freeze(now - timedelta(days=2))
    customer_writes(twilio_post, f"whatsapp:{E}", to="whatsapp:+15005550006")
    clock.freeze(now)
    customer_writes(twilio_post, A)
    customer_writes(twilio_post, B)
    customer_writes(twilio_post, B, body="STOP")
    customer_writes(twilio_post, f"whatsapp:{C}", to="whatsapp:+15005550006")
    for number, names, values in (
        (
            A,
            ["VIP", "Warszawa"],
            {"city": "Warszawa", "visits": 5, "since": "2024-01-10", "plan": "Gold"},
        ),
        (B, ["VIP"], {"city": "Kraków", "visits": 2, "plan": "Silver"}),
        (C, [], {"city": "Gdańsk"}),
        (D, ["Warszawa"], {}),
    ):
        patched = api.patch(f"/api/contacts/{number}", json={"labels": names, "attributes": values})
        assert patched.status_code == 200, patched.text
    resolved = api.patch(f"/api/conversations/{D}", json={"status": "resolved"})
    assert resolved.status_code == 200, resolved.text
    return World(labels)


def wa(number: str) -> str:
    return f"whatsapp:{number}"


def members(api: httpx.Client, rules: dict[str, Any]) -> dict[str, int]:
    answer = api.post("/api/segments/preview", json=rules)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def saved_members(api: httpx.Client, rules: dict[str, Any]) -> set[str]:
    made = api.post("/api/segments", json={"name": "t", "rules": rules})
    assert made.status_code == 201, made.text
    page = api.get(f"/api/segments/{made.json()['id']}/contacts")
    assert page.status_code == 200, page.text
    return {item["number"] for item in page.json()["items"]}


def test_each_rule_kind_picks_the_right_contacts(api: httpx.Client, world: World) -> None:
    vip, warsaw = world.labels["VIP"], world.labels["Warszawa"]
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({}, {A, B, wa(C), D, wa(E)}),
        ({"channel": "whatsapp"}, {wa(C), wa(E)}),
        ({"channel": "sms", "opted_in_only": True}, {A, D}),
        ({"labels": [{"match": "any", "label_ids": [vip, warsaw]}]}, {A, B, D}),
        ({"labels": [{"match": "all", "label_ids": [vip, warsaw]}]}, {A}),
        ({"labels": [{"match": "none", "label_ids": [vip]}]}, {wa(C), D, wa(E)}),
        ({"attributes": [{"key": "city", "op": "equals", "value": "Kraków"}]}, {B}),
        ({"attributes": [{"key": "city", "op": "contains", "value": "ańs"}]}, {wa(C)}),
        ({"attributes": [{"key": "city", "op": "contains", "value": "WAR"}]}, {A}),
        ({"attributes": [{"key": "visits", "op": "gt", "value": 2}]}, {A}),
        ({"attributes": [{"key": "visits", "op": "lte", "value": "2"}]}, {B}),
        ({"attributes": [{"key": "since", "op": "lt", "value": "2024-02-01"}]}, {A}),
        ({"attributes": [{"key": "plan", "op": "one_of", "values": ["gold", "Silver"]}]}, {A, B}),
        ({"last_inbound_within_days": 7}, {A, B, wa(C), wa(E)}),
        ({"conversation_status": ["resolved"]}, {D}),
        (
            {
                "channel": "sms",
                "labels": [{"match": "any", "label_ids": [vip]}],
                "attributes": [{"key": "city", "op": "equals", "value": "Warszawa"}],
                "last_inbound_within_days": 1,
                "conversation_status": ["open"],
            },
            {A},
        ),
    ]
    for rules, expected in cases:
        assert saved_members(api, rules) == expected, rules
        counted = members(api, rules)
        assert counted["matching"] == len(expected), rules
        assert counted["recipients"] + counted["skipped"] == len(expected)


def test_opted_out_members_are_skipped_with_the_reason_and_counted(
    api: httpx.Client, world: World
) -> None:
    rules = {"labels": [{"match": "any", "label_ids": [world.labels["VIP"]]}]}
    counted = members(api, rules)
    assert (counted["matching"], counted["recipients"], counted["skipped"]) == (2, 1, 1)
    made = api.post("/api/segments", json={"name": "VIP", "rules": rules}).json()
    preview = api.post(
        "/api/multi-sms/preview", json={"segment_id": made["id"], "body": "Zażółć"}
    ).json()
    assert preview["valid"] == 1 and preview["total"] == 2
    (skipped,) = preview["skipped"]
    assert skipped["input"] == B
    assert "unsubscribed" in skipped["reason"] and "replied STOP" in skipped["reason"]
    # Opted-in only: the opted-out member is not a member at all.
    assert members(api, {**rules, "opted_in_only": True})["matching"] == 1


def test_a_campaign_to_a_segment_sends_to_its_members_and_records_the_segment(
    api: httpx.Client, world: World, db: Any, fast: None
) -> None:
    rules = {
        "channel": "sms",
        "labels": [{"match": "any", "label_ids": list(world.labels.values())}],
    }
    segment = api.post("/api/segments", json={"name": "Klienci VIP", "rules": rules}).json()
    made = api.post(
        "/api/multi-sms/batches", json={"segment_id": segment["id"], "body": "Promocja!"}
    )
    assert made.status_code == 201, made.text
    batch = made.json()
    assert (batch["segment_id"], batch["segment_name"]) == (segment["id"], "Klienci VIP")
    assert batch["total"] == 3 and batch["valid"] == 3
    bid = batch["id"]
    wait_for(
        lambda: api.get(f"/api/multi-sms/batches/{bid}").json()["counters"]["pending"] == 0,
        timeout=30,
        what="the campaign to send",
    )
    rows = {r["number"]: r for r in api.get(f"/api/multi-sms/batches/{bid}/recipients").json()}
    assert set(rows) == {A, B, D}
    assert rows[B]["status"] == "skipped" and "replied STOP" in rows[B]["reason"]
    assert rows[A]["message_id"] and rows[D]["message_id"]
    # The segment changing later changes nothing in a campaign already made.
    api.patch(f"/api/segments/{segment['id']}", json={"rules": {"channel": "whatsapp"}})
    api.delete(f"/api/segments/{segment['id']}")
    assert db.scalar(select(func.count()).select_from(Recipient)) == 3
    kept = api.get(f"/api/multi-sms/batches/{bid}").json()
    assert kept["segment_name"] == "Klienci VIP" and kept["segment_id"] is None


def test_the_whatsapp_window_applies_per_recipient(
    api: httpx.Client, world: World, fast: None
) -> None:
    segment = api.post(
        "/api/segments", json={"name": "WA", "rules": {"channel": "whatsapp"}}
    ).json()
    preview = api.post(
        "/api/multi-sms/preview", json={"segment_id": segment["id"], "body": "Hej"}
    ).json()
    assert (preview["whatsapp"], preview["whatsapp_window_open"]) == (2, 1)
    made = api.post("/api/multi-sms/batches", json={"segment_id": segment["id"], "body": "Hej"})
    assert made.status_code == 201, made.text
    bid = made.json()["id"]
    wait_for(
        lambda: api.get(f"/api/multi-sms/batches/{bid}").json()["counters"]["pending"] == 0,
        timeout=30,
        what="the campaign to send",
    )
    rows = {r["number"]: r for r in api.get(f"/api/multi-sms/batches/{bid}/recipients").json()}
    assert rows[f"whatsapp:{C}"]["message_id"] is not None, rows[f"whatsapp:{C}"]["reason"]
    closed = rows[f"whatsapp:{E}"]
    assert closed["status"] == "skipped" and "24-hour window" in closed["reason"]


def test_the_limit_applies_to_the_resolved_list(
    api: httpx.Client, world: World, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from relaydesk.core.config import get_settings

    monkeypatch.setattr(get_settings(), "campaign_max_recipients", 3)
    everyone = api.post("/api/segments", json={"name": "All", "rules": {}}).json()
    refused = api.post("/api/multi-sms/batches", json={"segment_id": everyone["id"], "body": "x"})
    assert refused.status_code == 422, refused.text
    assert "4 recipients" in refused.json()["detail"] and "at most 3" in refused.json()["detail"]
    preview = api.post("/api/multi-sms/preview", json={"segment_id": everyone["id"], "body": "x"})
    assert preview.json()["valid"] == 4 and preview.json()["limit"] == 3
    # Three reachable members (the opted-out one does not count): allowed.
    sms = api.post("/api/segments", json={"name": "SMS", "rules": {"channel": "sms"}}).json()
    made = api.post(
        "/api/multi-sms/batches",
        json={"segment_id": sms["id"], "body": "x", "send_at": "2099-01-01T00:00:00Z"},
    )
    assert made.status_code in (201, 422)
    assert db.scalar(select(func.count()).select_from(Batch)) <= 1


def test_refusals_store_nothing(api: httpx.Client, world: World, db: Any, team: Any) -> None:
    assert api.get("/api/segments/999999").status_code == 404
    assert api.get("/api/segments/999999/contacts").status_code == 404
    unknown = api.post("/api/multi-sms/batches", json={"segment_id": 999999, "body": "x"})
    assert unknown.status_code == 404
    assert api.post("/api/multi-sms/preview", json={"segment_id": 999999}).status_code == 404
    both = api.post(
        "/api/multi-sms/batches", json={"segment_id": 1, "numbers": "600100300", "body": "x"}
    )
    assert both.status_code == 422 and "not both" in both.json()["detail"]
    bad: list[dict[str, Any]] = [
        {"labels": [{"match": "any", "label_ids": [999999]}]},
        {"attributes": [{"key": "nope", "op": "equals", "value": "x"}]},
        {"attributes": [{"key": "visits", "op": "contains", "value": "1"}]},
        {"attributes": [{"key": "visits", "op": "gt", "value": "many"}]},
        {"attributes": [{"key": "since", "op": "gt", "value": "31.01.2024"}]},
        {"attributes": [{"key": "plan", "op": "one_of", "values": ["Platinum"]}]},
        {"attributes": [{"key": "city", "op": "equals"}]},
        {"channel": "fax"},
        {"last_inbound_within_days": 0},
        {"conversation_status": ["gone"]},
        {"surprise": True},
    ]
    for rules in bad:
        answer = api.post("/api/segments", json={"name": "x", "rules": rules})
        assert answer.status_code == 422, (rules, answer.text)
    for name in ("", "a\nb", "x" * 101, "\x00"):
        answer = api.post("/api/segments", json={"name": name, "rules": {}})
        assert answer.status_code == 422, name
    viewer: Member = team("Wiktor", "viewer")
    assert viewer.client.post("/api/segments", json={"name": "x", "rules": {}}).status_code == 403
    assert viewer.client.get("/api/segments").status_code == 200
    assert viewer.client.post("/api/segments/preview", json={}).status_code == 200
    from relaydesk.segments.models import Segment

    assert db.scalar(select(func.count()).select_from(Segment)) == 0


def test_quotes_and_odd_values_are_data_not_sql(api: httpx.Client, world: World) -> None:
    for value in ("' OR 1=1 --", '"; DROP TABLE contacts; --', "%", "_", "\\"):
        counted = members(api, {"attributes": [{"key": "city", "op": "contains", "value": value}]})
        assert counted["matching"] == 0, value
    assert members(api, {})["matching"] == 5  # still there


def test_a_value_stored_under_another_type_never_breaks_a_comparison(
    api: httpx.Client, world: World
) -> None:
    # City becomes a number: "Warszawa" stays stored but is not a number.
    api.put(
        "/api/contact-attributes",
        json={"attributes": [{"key": "city", "name": "City", "kind": "number"}]},
    )
    counted = members(api, {"attributes": [{"key": "city", "op": "gt", "value": 1}]})
    assert counted["matching"] == 0
