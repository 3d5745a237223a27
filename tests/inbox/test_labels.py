"""Labels: admins keep the list, operators label conversations, everyone filters by them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select

from relaydesk.auth import service as auth
from relaydesk.core.db import get_sessionmaker, session_scope
from relaydesk.core.models import AuditEntry
from relaydesk.inbox.labels import PALETTE
from relaydesk.messaging import queries
from relaydesk.messaging.models import ConversationLabel, Label
from tests.conftest import LiveServer, Member, customer_writes
from tests.web.conftest import PASSWORD, sign_in

Post = Callable[..., httpx.Response]
CUSTOMER = "+48600100800"
OUR_NUMBER = "+15005550006"


def receive(post: Post, sender: str = CUSTOMER, to: str = OUR_NUMBER) -> None:
    customer_writes(post, sender, to=to)


def thread(client: httpx.Client, participant: str = CUSTOMER) -> dict[str, Any]:
    answer = client.get(f"/api/conversations/{participant}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def listed(client: httpx.Client, **filters: Any) -> list[str]:
    answer = client.get("/api/conversations", params=filters)
    assert answer.status_code == 200, answer.text
    return [item["participant"] for item in answer.json()["items"]]


def make_label(client: httpx.Client, name: str, **more: Any) -> dict[str, Any]:
    answer = client.post("/api/labels", json={"name": name, **more})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def put_labels(client: httpx.Client, names: list[str], participant: str = CUSTOMER) -> Any:
    return client.put(f"/api/conversations/{participant}/labels", json={"labels": names})


def all_labels(client: httpx.Client) -> dict[str, dict[str, Any]]:
    answer = client.get("/api/labels")
    assert answer.status_code == 200, answer.text
    return {label["name"]: label for label in answer.json()}


def actions(db: Any, prefix: str) -> list[str]:
    return list(
        db.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.action.startswith(prefix))
            .order_by(AuditEntry.id)
        ).all()
    )


def test_admins_create_rename_recolour_and_delete_labels_each_audited(
    team: Callable[..., Member], db: Any
) -> None:
    ada = team("Ada", "admin")
    vip = make_label(ada.client, "  VIP  ", colour="#AABBCC")
    assert (vip["name"], vip["colour"], vip["conversations"]) == ("VIP", "#aabbcc", 0)

    renamed = ada.client.patch(f"/api/labels/{vip['id']}", json={"name": "Very important"})
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["name"], renamed.json()["colour"]) == ("Very important", "#aabbcc")
    recoloured = ada.client.patch(f"/api/labels/{vip['id']}", json={"colour": "#112233"})
    assert recoloured.json()["colour"] == "#112233"
    # Nothing to change: nothing recorded.
    assert ada.client.patch(f"/api/labels/{vip['id']}", json={}).status_code == 200
    assert list(all_labels(ada.client)) == ["Very important"]

    assert ada.client.delete(f"/api/labels/{vip['id']}").status_code == 204
    assert all_labels(ada.client) == {}
    assert ada.client.delete(f"/api/labels/{vip['id']}").status_code == 404
    assert actions(db, "label.") == [
        "label.create",
        "label.update",
        "label.update",
        "label.delete",
    ]


def test_names_are_unique_ignoring_case_with_a_reason(api: httpx.Client) -> None:
    make_label(api, "Invoice")
    clash = api.post("/api/labels", json={"name": "INVOICE"})
    assert clash.status_code == 409
    assert "Invoice exists already" in clash.json()["detail"]
    other = make_label(api, "Refund")
    renamed = api.patch(f"/api/labels/{other['id']}", json={"name": "invoice"})
    assert renamed.status_code == 409
    # A label may change the case of its own name.
    recased = api.patch(f"/api/labels/{other['id']}", json={"name": "REFUND"})
    assert recased.status_code == 200 and recased.json()["name"] == "REFUND"
    assert sorted(all_labels(api)) == ["Invoice", "REFUND"]


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({"name": ""}, "at least 1"),
        ({"name": "   "}, "needs a name"),
        ({"name": "x" * 51}, "at most 50"),
        ({"name": "two\nlines"}, "one line"),
        ({"name": "nul\x00byte"}, "one line"),
        ({"name": "tab\there"}, "one line"),
        ({"name": "\u202eevil"}, "one line"),
        ('{"name": "lone \\ud800 surrogate"}', "valid string"),
        ({"name": "ok", "colour": "red"}, "colour"),
        ({"name": "ok", "colour": "#12345g"}, "colour"),
        ({"name": "ok", "extra": 1}, "extra"),
    ],
)
def test_bad_names_and_colours_are_refused_and_change_nothing(
    api: httpx.Client, payload: dict[str, Any] | str, words: str
) -> None:
    if isinstance(payload, str):  # JSON that Python's encoder would refuse to write
        answer = api.post(
            "/api/labels", content=payload, headers={"Content-Type": "application/json"}
        )
    else:
        answer = api.post("/api/labels", json=payload)
    assert answer.status_code == 422, answer.text
    assert words in answer.text
    assert all_labels(api) == {}


def test_quotes_and_unicode_in_names_are_kept_as_written(api: httpx.Client) -> None:
    names = ['O\'Brien "VIP"', "Zażółć gęślą", "<b>bold</b>", "👨‍👩‍👧 family"]
    for name in names:
        make_label(api, name)
    assert sorted(all_labels(api)) == sorted(names)


def test_new_labels_get_different_colours_from_a_palette(api: httpx.Client) -> None:
    colours = [make_label(api, f"label {n}")["colour"] for n in range(len(PALETTE) + 1)]
    assert colours[: len(PALETTE)] == list(PALETTE)
    assert colours[-1] in PALETTE


def test_operators_label_a_conversation_each_change_an_event_and_audited(
    twilio_post: Post, api: httpx.Client, team: Callable[..., Member], db: Any
) -> None:
    anna = team("Anna")
    for name in ("VIP", "invoice", "Refund"):
        make_label(api, name)
    receive(twilio_post)

    first = put_labels(anna.client, ["vip", "INVOICE", "Vip"])
    assert first.status_code == 200, first.text
    assert [label["name"] for label in first.json()["labels"]] == ["invoice", "VIP"]
    assert first.json()["participant"] == CUSTOMER
    changed = put_labels(anna.client, ["Refund", "VIP"])
    assert [label["name"] for label in changed.json()["labels"]] == ["Refund", "VIP"]
    # The same labels again change nothing and record nothing.
    assert put_labels(anna.client, ["VIP", "refund"]).status_code == 200

    state = thread(api)
    assert state["labels"] == ["Refund", "VIP"]
    events = [(e["kind"], e["actor"], e["data"]) for e in state["events"]]
    assert events == [
        ("labels", "Anna", {"added": ["invoice", "VIP"], "removed": []}),
        ("labels", "Anna", {"added": ["Refund"], "removed": ["invoice"]}),
    ]
    assert actions(db, "conversation.labels") == ["conversation.labels"] * 2
    item = api.get("/api/conversations").json()["items"][0]
    assert item["labels"] == ["Refund", "VIP"]

    assert [label["name"] for label in put_labels(anna.client, []).json()["labels"]] == []
    assert thread(api)["labels"] == []
    assert thread(api)["events"][-1]["data"] == {"added": [], "removed": ["Refund", "VIP"]}


def test_a_customers_labels_are_on_every_conversation_of_theirs(
    twilio_post: Post, api: httpx.Client, db: Any
) -> None:
    make_label(api, "VIP")
    receive(twilio_post)
    receive(twilio_post, f"whatsapp:{CUSTOMER}", f"whatsapp:{OUR_NUMBER}")
    assert put_labels(api, ["VIP"]).status_code == 200
    items = api.get("/api/conversations").json()["items"]
    assert len(items) == 2
    assert [item["labels"] for item in items] == [["VIP"], ["VIP"]]
    assert len(db.scalars(select(ConversationLabel)).all()) == 2
    assert all_labels(api)["VIP"]["conversations"] == 1  # one customer


def test_unknown_labels_or_too_many_are_refused_naming_them_and_change_nothing(
    twilio_post: Post, api: httpx.Client
) -> None:
    make_label(api, "VIP")
    receive(twilio_post)
    put_labels(api, ["VIP"])
    unknown = put_labels(api, ["VIP", "nope", "Ghost", "NOPE"])
    assert unknown.status_code == 422
    assert unknown.json()["detail"] == "No label is named nope, Ghost"
    assert unknown.json()["field"] == "labels"
    too_many = put_labels(api, [f"l{n}" for n in range(21)])
    assert too_many.status_code == 422
    for bad in (["bad\x00"], ["two\nlines"], [""], ["x" * 201]):
        assert put_labels(api, bad).status_code == 422
    assert put_labels(api, {"VIP": 1}).status_code == 422  # type: ignore[arg-type]
    state = thread(api)
    assert (state["labels"], len(state["events"])) == (["VIP"], 1)


def test_conversations_are_filtered_by_a_label_ignoring_case(
    twilio_post: Post, api: httpx.Client
) -> None:
    make_label(api, "VIP")
    make_label(api, "Invoice")
    first, second, third = "+48600100801", "+48600100802", "+48600100803"
    for number in (first, second, third):
        receive(twilio_post, number)
    put_labels(api, ["VIP"], first)
    put_labels(api, ["VIP", "Invoice"], second)
    api.patch(f"/api/conversations/{second}", json={"status": "resolved"})

    assert sorted(listed(api, label="vip")) == [first, second]
    assert listed(api, label=" Invoice ") == [second]
    assert listed(api, label="VIP", status="open") == [first]
    assert sorted(listed(api, label="")) == [first, second, third]
    for unknown in ("nobody", "vip\x00", "\u202e", "x" * 100):
        assert listed(api, label=unknown) == []
    assert api.get("/api/conversations", params={"label": "x" * 101}).status_code == 422
    # Pages of a filtered list.
    page = api.get("/api/conversations", params={"label": "VIP", "limit": 1}).json()
    rest = api.get(
        "/api/conversations", params={"label": "VIP", "limit": 1, "cursor": page["next"]}
    ).json()
    assert [i["participant"] for i in page["items"] + rest["items"]] == [second, first]
    assert rest["next"] is None


def test_the_list_reads_every_rows_labels_in_one_query(
    twilio_post: Post, api: httpx.Client
) -> None:
    make_label(api, "VIP")
    make_label(api, "Invoice")
    numbers = [f"+4860010090{n}" for n in range(6)]
    for number in numbers:
        receive(twilio_post, number)
        put_labels(api, ["VIP", "Invoice"] if number.endswith(("0", "2")) else ["VIP"], number)

    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    session = get_sessionmaker()()
    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", seen)
    try:
        items, _ = queries.list_conversations(session, limit=50)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
        session.close()
    labelled = {item["participant"]: item["labels"] for item in items}
    assert labelled[numbers[0]] == ["Invoice", "VIP"] and labelled[numbers[1]] == ["VIP"]
    assert sum("conversation_labels" in s for s in statements) == 1


def test_deleting_a_label_takes_it_off_every_conversation_with_an_event(
    twilio_post: Post, team: Callable[..., Member], db: Any
) -> None:
    ada = team("Ada", "admin")
    vip, other = make_label(ada.client, "VIP"), make_label(ada.client, "Other")
    first, second = "+48600100811", "+48600100812"
    for number in (first, second):
        receive(twilio_post, number)
        put_labels(ada.client, ["VIP", "Other"], number)
    assert all_labels(ada.client)["VIP"]["conversations"] == 2

    assert ada.client.delete(f"/api/labels/{vip['id']}").status_code == 204
    for number in (first, second):
        state = thread(ada.client, number)
        assert state["labels"] == ["Other"]
        assert state["events"][-1]["data"] == {"added": [], "removed": ["VIP"]}
        assert state["events"][-1]["actor"] == "Ada"
    assert listed(ada.client, label="VIP") == []
    assert sorted(listed(ada.client, label="other")) == [first, second]
    assert db.scalar(select(Label.id).where(Label.id == vip["id"])) is None
    assert all_labels(ada.client)["Other"]["conversations"] == 2
    assert other["id"] != vip["id"]


def test_renaming_a_label_renames_it_on_conversations(twilio_post: Post, api: httpx.Client) -> None:
    vip = make_label(api, "VIP")
    receive(twilio_post)
    put_labels(api, ["VIP"])
    api.patch(f"/api/labels/{vip['id']}", json={"name": "Gold"})
    assert thread(api)["labels"] == ["Gold"]
    assert listed(api, label="gold") == [CUSTOMER]
    assert listed(api, label="vip") == []


def test_viewers_read_operators_label_admins_manage(
    twilio_post: Post, team: Callable[..., Member], server: LiveServer, api: httpx.Client
) -> None:
    reader, olga = team("Reader", "viewer"), team("Olga")
    vip = make_label(api, "VIP")
    receive(twilio_post)

    assert list(all_labels(reader.client)) == ["VIP"]
    assert reader.client.get("/api/conversations", params={"label": "VIP"}).status_code == 200
    assert put_labels(reader.client, ["VIP"]).status_code == 403
    for client in (reader.client, olga.client):
        assert client.post("/api/labels", json={"name": "Mine"}).status_code == 403
        assert client.patch(f"/api/labels/{vip['id']}", json={"name": "X"}).status_code == 403
        assert client.delete(f"/api/labels/{vip['id']}").status_code == 403
    assert put_labels(olga.client, ["VIP"]).status_code == 200

    for method, path in (
        ("GET", "/api/labels"),
        ("POST", "/api/labels"),
        ("PATCH", f"/api/labels/{vip['id']}"),
        ("DELETE", f"/api/labels/{vip['id']}"),
        ("PUT", f"/api/conversations/{CUSTOMER}/labels"),
    ):
        anonymous = httpx.request(method, server.url + path, json={"labels": []}, timeout=30)
        assert anonymous.status_code == 401, (method, path)

    assert list(all_labels(api)) == ["VIP"]
    assert thread(api)["labels"] == ["VIP"]


def test_unknown_label_ids_numbers_and_customers(api: httpx.Client) -> None:
    make_label(api, "VIP")
    assert api.patch("/api/labels/999999", json={"name": "X"}).status_code == 404
    assert api.delete("/api/labels/999999").status_code == 404
    for huge in ("9" * 30, "0", "-1", "abc"):
        assert api.delete(f"/api/labels/{huge}").status_code == 422
    assert put_labels(api, ["VIP"], "+48600999999").status_code == 404
    assert put_labels(api, ["VIP"], "not-a-number").status_code == 422


def test_the_message_history_filters_by_label_in_the_api_and_the_panel(
    twilio_post: Callable[..., httpx.Response], api: httpx.Client
) -> None:
    customer_writes(twilio_post, "+48600300001", "Reklamacja paczki")
    customer_writes(twilio_post, "+48600300002", "Pytanie o cenę")
    assert api.post("/api/labels", json={"name": "Reklamacja"}).status_code == 201
    assert (
        api.put(
            "/api/conversations/+48600300001/labels", json={"labels": ["reklamacja"]}
        ).status_code
        == 200
    )

    def bodies(**params: str) -> list[str]:
        answer = api.get("/api/messages", params=params)
        assert answer.status_code == 200, answer.text
        return [m["body"] for m in answer.json()["items"]]

    assert bodies(label="REKLAMACJA") == ["Reklamacja paczki"]
    assert bodies(label="no such label") == []
    assert bodies(label="bad\x00name") == []
    assert sorted(bodies()) == ["Pytanie o cenę", "Reklamacja paczki"]
    assert api.get("/api/messages", params={"label": "x" * 101}).status_code == 422

    with session_scope() as session:
        auth.create_user(session, "viewer-labels@example.com", PASSWORD, "viewer", "t")
    with httpx.Client(base_url=str(api.base_url)) as browser:
        sign_in(browser, "viewer-labels@example.com")
        page = browser.get("/messages", params={"label": "Reklamacja"})
        assert page.status_code == 200
        assert '<option value="Reklamacja" selected>' in page.text
        rows = browser.get("/messages/rows", params={"label": "Reklamacja"}).text
        assert "Reklamacja paczki" in rows and "Pytanie o cenę" not in rows
