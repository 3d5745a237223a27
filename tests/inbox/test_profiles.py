"""Contact profiles: name, note, custom attributes and labels of a customer, with what
they did (channels and consent, conversations, voice-bot calls, campaigns), in the API."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select

from relaydesk.core.db import get_sessionmaker, session_scope
from relaydesk.core.models import AuditEntry
from relaydesk.inbox import profiles
from relaydesk.voicebot.models import VoiceConversation
from tests.conftest import LiveServer, Member, customer_writes, wait_for

Post = Callable[..., httpx.Response]
CUSTOMER, OTHER = "+48600100900", "+48600100901"
OUR_NUMBER = "+15005550006"
URL = f"/api/contacts/{CUSTOMER}"
DEFINITIONS = [
    {"key": "city", "name": "City", "kind": "text"},
    {"key": "visits", "name": "Visits", "kind": "number"},
    {"key": "since", "name": "Customer since", "kind": "date"},
    {"key": "plan", "name": "Plan", "kind": "list", "options": ["Gold", "Silver"]},
]


def whatsapp_writes(post: Post, sender: str, name: str | None, body: str = "Cześć") -> None:
    """A WhatsApp message, with the ProfileName WhatsApp sends when the customer has one."""
    params = {
        "MessageSid": "SM" + secrets.token_hex(16),
        "From": f"whatsapp:{sender}",
        "To": f"whatsapp:{OUR_NUMBER}",
        "Body": body,
        "NumMedia": "0",
    }
    if name is not None:
        params["ProfileName"] = name
    answer = post("/twilio/inbound", params)
    assert answer.status_code == 200, answer.text


def profile(client: httpx.Client, participant: str = CUSTOMER) -> dict[str, Any]:
    answer = client.get(f"/api/contacts/{participant}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def patch(client: httpx.Client, payload: Any, participant: str = CUSTOMER) -> httpx.Response:
    if isinstance(payload, str):  # JSON that Python's encoder would not write (NaN, 1e400)
        return client.patch(
            f"/api/contacts/{participant}",
            content=payload,
            headers={"Content-Type": "application/json"},
        )
    return client.patch(f"/api/contacts/{participant}", json=payload)


def define(client: httpx.Client, definitions: list[dict[str, Any]]) -> httpx.Response:
    return client.put("/api/contact-attributes", json={"attributes": definitions})


def actions(db: Any, prefix: str) -> list[tuple[str, str | None, Any]]:
    return [
        tuple(row)
        for row in db.execute(
            select(AuditEntry.action, AuditEntry.target, AuditEntry.details)
            .where(AuditEntry.action.startswith(prefix))
            .order_by(AuditEntry.id)
        ).all()
    ]


def add_calls(number: str, count: int, start: datetime, prefix: str = "call") -> None:
    """Voice-bot calls as the ElevenLabs sync stores them, one hour apart."""
    with session_scope() as session:
        for n in range(count):
            session.add(
                VoiceConversation(
                    conversation_id=f"{prefix}_{n:03d}",
                    agent_id="agent_a",
                    agent_name="Recepcja",
                    status="done",
                    start_time=start + timedelta(hours=n),
                    duration_secs=30 + n,
                    direction="inbound",
                    call_successful="success" if n % 2 else "failure",
                    customer_number=number,
                    title=f"Call {n}",
                    summary="Klient pytał o dostawę.",
                )
            )


@pytest.fixture
def known(twilio_post: Post) -> None:
    """CUSTOMER wrote by SMS and, as Zofia, by WhatsApp; OTHER wrote by SMS."""
    customer_writes(twilio_post, CUSTOMER, to=OUR_NUMBER)
    whatsapp_writes(twilio_post, CUSTOMER, "Zofia")
    customer_writes(twilio_post, OTHER, to=OUR_NUMBER)


def test_a_profile_gathers_every_channel_with_consent_on_each(
    twilio_post: Post, api: httpx.Client, known: None
) -> None:
    customer_writes(twilio_post, CUSTOMER, "STOP", to=OUR_NUMBER)  # SMS only
    found = profile(api, "+48 600 100 900")  # as a person writes it
    assert found["participant"] == CUSTOMER
    assert (found["name"], found["profile_name"], found["name_source"]) == (
        "Zofia",
        "Zofia",
        "profile_name",
    )
    assert (found["note"], found["attributes"], found["labels"]) == ("", {}, [])
    channels = {c["channel"]: c for c in found["channels"]}
    assert set(channels) == {"sms", "whatsapp"}
    assert channels["sms"]["opted_out"] is True and channels["sms"]["opted_out_at"]
    assert channels["sms"]["address"] == CUSTOMER
    assert channels["whatsapp"]["opted_out"] is False
    assert channels["whatsapp"]["opted_out_at"] is None
    assert channels["whatsapp"]["address"] == f"whatsapp:{CUSTOMER}"
    assert all(c["first_seen_at"] for c in found["channels"])
    assert sorted(c["channel"] for c in found["conversations"]) == ["sms", "whatsapp"]
    assert {c["status"] for c in found["conversations"]} == {"open"}
    assert found["calls"] == {"total": 0, "items": []}
    assert found["campaigns"] == {"total": 0, "items": []}
    assert (found["updated_by"], found["updated_at"]) == (None, None)

    # Starting again (START) is per channel too.
    customer_writes(twilio_post, CUSTOMER, "START", to=OUR_NUMBER)
    sms = {c["channel"]: c for c in profile(api)["channels"]}["sms"]
    assert sms["opted_out"] is False and sms["opted_in_at"]


def test_a_customer_without_a_profile_name_has_no_name_until_one_is_written(
    twilio_post: Post, api: httpx.Client
) -> None:
    customer_writes(twilio_post, OTHER, to=OUR_NUMBER)
    found = profile(api, OTHER)
    assert (found["name"], found["profile_name"], found["name_source"]) == (None, None, None)
    named = patch(api, {"name": "Jan"}, OTHER).json()
    assert (named["name"], named["profile_name"], named["name_source"]) == ("Jan", None, "edited")


def test_an_edited_name_wins_and_clearing_it_gives_back_the_customers_own(
    api: httpx.Client, team: Callable[..., Member], known: None, db: Any
) -> None:
    olga = team("Olga")
    named = patch(olga.client, {"name": "  Zofia   Nowak "})
    assert named.status_code == 200, named.text
    found = named.json()
    assert (found["name"], found["profile_name"], found["name_source"]) == (
        "Zofia Nowak",
        "Zofia",
        "edited",
    )
    assert found["updated_by"] == "Olga" and found["updated_at"]
    assert profile(api)["name"] == "Zofia Nowak"
    assert patch(olga.client, {"name": "Zofia Nowak"}).status_code == 200  # no change
    for cleared in (None, "", "   "):
        back = patch(olga.client, {"name": cleared}).json()
        assert (back["name"], back["name_source"]) == ("Zofia", "profile_name")
    # Which fields changed is audited; what they hold is not.
    assert actions(db, "contact.") == [
        ("contact.update", CUSTOMER, {"changed": ["name"]}),
        ("contact.update", CUSTOMER, {"changed": ["name"]}),
    ]


def test_each_field_changes_alone_and_a_partial_edit_keeps_the_rest(
    api: httpx.Client, team: Callable[..., Member], known: None, db: Any
) -> None:
    assert define(api, DEFINITIONS).status_code == 200
    olga = team("Olga")
    note = "Prefers calls after 17:00.\r\nAllergic to\tpeanuts — ask before sending samples."
    first = patch(
        olga.client,
        {
            "name": "Zofia Nowak",
            "note": note,
            "attributes": {
                "city": " Kraków ",
                "visits": 3,
                "since": "2024-05-01",
                "plan": "gold",
            },
        },
    )
    assert first.status_code == 200, first.text
    found = first.json()
    assert found["note"] == note.replace("\r\n", "\n")
    # Typed values, a list's option as the admin wrote it; keys in the definitions' order.
    assert found["attributes"] == {
        "city": "Kraków",
        "visits": 3,
        "since": "2024-05-01",
        "plan": "Gold",
    }
    assert list(found["attributes"]) == ["city", "visits", "since", "plan"]
    assert [d["key"] for d in found["attribute_definitions"]] == ["city", "visits", "since", "plan"]

    # One attribute at a time; a decimal written with a comma; null and "" remove a value.
    assert (
        patch(olga.client, {"attributes": {"visits": "4,5"}}).json()["attributes"]["visits"] == 4.5
    )
    assert patch(olga.client, {"attributes": {"visits": 7.0}}).json()["attributes"]["visits"] == 7
    removed = patch(olga.client, {"attributes": {"city": None, "plan": ""}}).json()
    assert removed["attributes"] == {"visits": 7, "since": "2024-05-01"}
    assert removed["name"] == "Zofia Nowak" and removed["note"] == found["note"]
    cleared = patch(olga.client, {"note": None}).json()
    assert cleared["note"] == "" and cleared["attributes"] == removed["attributes"]
    assert patch(olga.client, {}).json() == cleared  # nothing given: nothing changes
    changed = [details["changed"] for _, _, details in actions(db, "contact.update")]
    assert changed == [
        [
            "name",
            "note",
            "attributes.city",
            "attributes.visits",
            "attributes.since",
            "attributes.plan",
        ],
        ["attributes.visits"],
        ["attributes.visits"],
        ["attributes.city", "attributes.plan"],
        ["note"],
    ]


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({"attributes": {"city": "nul\x00byte"}}, "one line"),
        ({"attributes": {"city": "two\nlines"}}, "one line"),
        ({"attributes": {"city": "bell\x07"}}, "one line"),
        ({"attributes": {"city": "x" * 501}}, "at most 500"),
        ({"attributes": {"city": 12}}, "takes text"),
        ({"attributes": {"visits": "abc"}}, "takes a number"),
        ({"attributes": {"visits": "1e5"}}, "takes a number"),
        ({"attributes": {"visits": "Infinity"}}, "takes a number"),
        ({"attributes": {"visits": "9" * 400}}, "between"),
        ({"attributes": {"visits": 10**16}}, "less than or equal"),
        ({"attributes": {"visits": 10**400}}, "less than or equal"),
        ({"attributes": {"visits": -1.5e300}}, "greater than or equal"),
        ('{"attributes": {"visits": 1e400}}', "finite"),
        ('{"attributes": {"visits": NaN}}', "finite"),
        ({"attributes": {"visits": True}}, "attributes.visits"),
        ({"attributes": {"since": "2024-02-30"}}, "YYYY-MM-DD"),
        ({"attributes": {"since": "01.05.2024"}}, "YYYY-MM-DD"),
        ({"attributes": {"since": "2024-5-1"}}, "YYYY-MM-DD"),
        ({"attributes": {"plan": "Bronze"}}, "one of: Gold, Silver"),
        ({"attributes": {"shoe_size": "42"}}, "No contact attribute has the key shoe_size"),
        ({"attributes": {"City": "Kraków"}}, "pattern"),
        ({"attributes": {"city": ["a"]}}, "attributes.city"),
        ({"name": "nul\x00"}, "one line"),
        ({"name": "two\nlines"}, "one line"),
        ({"name": "x" * 201}, "at most 200"),
        ({"note": "nul\x00byte"}, "control characters"),
        ({"note": "x" * 5001}, "at most 5000"),
        ({"labels": ["No such label"]}, "No label is named No such label"),
        ({"colour": "red"}, "Unknown field 'colour'"),
    ],
)
def test_bad_values_are_refused_naming_the_problem_and_change_nothing(
    api: httpx.Client, known: None, payload: dict[str, Any] | str, words: str
) -> None:
    define(api, DEFINITIONS)
    patch(
        api, {"name": "Zofia Nowak", "note": "Kept", "attributes": {"city": "Gdańsk", "visits": 2}}
    )
    before = profile(api)
    answer = patch(api, payload)
    assert answer.status_code == 422, answer.text
    assert words in answer.json()["detail"], answer.json()
    assert profile(api) == before


def test_attribute_definitions_are_replaced_whole_in_order_and_audited(
    api: httpx.Client, known: None, db: Any
) -> None:
    answer = define(api, DEFINITIONS)
    assert answer.status_code == 200, answer.text
    assert [(a["key"], a["kind"], a["options"]) for a in answer.json()] == [
        ("city", "text", []),
        ("visits", "number", []),
        ("since", "date", []),
        ("plan", "list", ["Gold", "Silver"]),
    ]
    assert api.get("/api/contact-attributes").json() == answer.json()
    patch(api, {"attributes": {"city": "Kraków", "plan": "Silver"}})

    # Reordered, one renamed, a list option dropped, one removed.
    again = [
        {"key": "plan", "name": "Plan", "kind": "list", "options": ["Gold", "Platinum"]},
        {"key": "city", "name": "Town", "kind": "text"},
        {"key": "visits", "name": "Visits", "kind": "number"},
    ]
    assert [a["key"] for a in define(api, again).json()] == ["plan", "city", "visits"]
    found = profile(api)
    # "Silver" is no option now and "since" no attribute: hidden, not erased.
    assert found["attributes"] == {"city": "Kraków"}
    assert [d["name"] for d in found["attribute_definitions"]] == ["Plan", "Town", "Visits"]
    define(api, DEFINITIONS)
    assert profile(api)["attributes"] == {"city": "Kraków", "plan": "Silver"}
    # The same definitions again change nothing and record nothing.
    define(api, DEFINITIONS)
    assert actions(db, "contact_attributes.") == [
        (
            "contact_attributes.update",
            "contact_attributes",
            {"added": ["city", "visits", "since", "plan"], "changed": [], "removed": []},
        ),
        (
            "contact_attributes.update",
            "contact_attributes",
            {"added": [], "changed": ["plan", "city", "visits"], "removed": ["since"]},
        ),
        (
            "contact_attributes.update",
            "contact_attributes",
            {"added": ["since"], "changed": ["city", "visits", "plan"], "removed": []},
        ),
    ]
    assert define(api, []).json() == []
    assert profile(api)["attributes"] == {}


def _attribute(**fields: Any) -> dict[str, Any]:
    return {"key": "city", "name": "City", "kind": "text", **fields}


@pytest.mark.parametrize(
    ("definitions", "words"),
    [
        ([_attribute(key="1city")], "is not a key"),
        ([_attribute(key="City")], "is not a key"),
        ([_attribute(key="my-city")], "is not a key"),
        ([_attribute(key="c" * 41)], "at most 40"),
        ([_attribute(key="name")], "name is reserved"),
        ([_attribute(key="phone")], "phone is reserved"),
        ([_attribute(), _attribute(name="Town")], "The key city is there twice"),
        ([_attribute(), _attribute(key="town", name="CITY")], "The name CITY is there twice"),
        ([_attribute(name="   ")], "1 to 60"),
        ([_attribute(name="x" * 61)], "at most 60"),
        ([_attribute(name="two\nlines")], "1 to 60"),
        ([_attribute(name="nul\x00")], "1 to 60"),
        ([_attribute(kind="colour")], "kind"),
        ([_attribute(kind="list")], "1 to 50 options"),
        ([_attribute(kind="list", options=["  "])], "1 to 50 options"),
        ([_attribute(kind="list", options=[f"o{n}" for n in range(51)])], "at most 50"),
        ([_attribute(kind="list", options=["x" * 101])], "at most 100"),
        ([_attribute(kind="list", options=["a\tb"])], "one line"),
        ([_attribute(kind="list", options=["Gold", "gold"])], "gold is there twice"),
        ([_attribute(options=["Gold"])], "only a list has options"),
        ([_attribute(key=f"a{n}", name=f"A{n}") for n in range(51)], "at most 50"),
        ([_attribute(extra=1)], "extra"),
    ],
)
def test_bad_definitions_are_refused_and_change_nothing(
    api: httpx.Client, definitions: list[dict[str, Any]], words: str
) -> None:
    define(api, [{"key": "kept", "name": "Kept", "kind": "text"}])
    answer = define(api, definitions)
    assert answer.status_code == 422, answer.text
    assert words in answer.json()["detail"], answer.json()
    assert [a["key"] for a in api.get("/api/contact-attributes").json()] == ["kept"]


def test_viewers_read_operators_edit_admins_define(
    team: Callable[..., Member], server: LiveServer, api: httpx.Client, known: None
) -> None:
    reader, olga = team("Reader", "viewer"), team("Olga")
    define(api, DEFINITIONS)
    assert profile(reader.client)["name"] == "Zofia"
    assert reader.client.get("/api/contact-attributes").status_code == 200
    assert patch(reader.client, {"note": "Mine"}).status_code == 403
    assert define(reader.client, []).status_code == 403
    assert define(olga.client, []).status_code == 403
    assert patch(olga.client, {"note": "Call after 5"}).status_code == 200
    for method, path in (
        ("GET", URL),
        ("PATCH", URL),
        ("GET", "/api/contact-attributes"),
        ("PUT", "/api/contact-attributes"),
    ):
        anonymous = httpx.request(method, server.url + path, json={}, timeout=30)
        assert anonymous.status_code == 401, (method, path)
    assert profile(api)["note"] == "Call after 5"
    assert len(profile(api)["attribute_definitions"]) == 4


def test_unknown_customers_are_404_and_junk_numbers_422(api: httpx.Client, known: None) -> None:
    assert api.get("/api/contacts/+48600999999").status_code == 404
    assert patch(api, {"note": "x"}, "+48600999999").status_code == 404
    for junk in ("not-a-number", "%00", "+48" + "9" * 60):
        assert api.get(f"/api/contacts/{junk}").status_code == 422
        assert patch(api, {"note": "x"}, junk).status_code == 422
    assert api.get("/api/contacts/%2B48%20600%20100%20900").status_code == 200


def test_labels_set_on_the_profile_are_the_conversations_labels(
    api: httpx.Client, team: Callable[..., Member], known: None, db: Any
) -> None:
    for name in ("VIP", "Invoice"):
        assert api.post("/api/labels", json={"name": name}).status_code == 201
    olga = team("Olga")
    labelled = patch(olga.client, {"labels": ["vip", "INVOICE"]})
    assert labelled.status_code == 200, labelled.text
    assert labelled.json()["labels"] == ["Invoice", "VIP"]
    thread = api.get(f"/api/conversations/{CUSTOMER}").json()
    assert thread["labels"] == ["Invoice", "VIP"]
    assert thread["events"][-1]["data"] == {"added": ["Invoice", "VIP"], "removed": []}
    assert thread["events"][-1]["actor"] == "Olga"
    items = {
        i["channel"]: i["labels"]
        for i in api.get("/api/conversations").json()["items"]
        if i["participant"] == CUSTOMER
    }
    assert items == {"sms": ["Invoice", "VIP"], "whatsapp": ["Invoice", "VIP"]}
    # Set in the conversation, seen in the profile.
    api.put(f"/api/conversations/{CUSTOMER}/labels", json={"labels": ["VIP"]})
    assert profile(api)["labels"] == ["VIP"]
    assert patch(olga.client, {"labels": []}).json()["labels"] == []
    assert [action for action, _, _ in actions(db, "conversation.labels")] == [
        "conversation.labels"
    ] * 3
    assert profile(api, OTHER)["labels"] == []


def test_another_customers_data_never_shows(
    api: httpx.Client, known: None, twilio_post: Post
) -> None:
    define(api, DEFINITIONS)
    api.post("/api/labels", json={"name": "VIP"})
    patch(
        api,
        {"name": "Zofia N.", "note": "Secret", "attributes": {"city": "Kraków"}, "labels": ["VIP"]},
    )
    add_calls(CUSTOMER, 2, datetime(2026, 1, 5, 9, tzinfo=UTC))
    whatsapp_writes(twilio_post, OTHER, "Olek")
    theirs = profile(api, OTHER)
    assert (theirs["name"], theirs["note"], theirs["attributes"], theirs["labels"]) == (
        "Olek",
        "",
        {},
        [],
    )
    assert theirs["calls"]["total"] == 0
    assert {c["address"] for c in theirs["channels"]} == {OTHER, f"whatsapp:{OTHER}"}
    assert all(c["our_address"] for c in theirs["conversations"])
    assert profile(api)["note"] == "Secret"


def test_voice_calls_and_campaigns_show_the_newest_ten_with_totals(
    api: httpx.Client, known: None
) -> None:
    start = datetime(2026, 1, 5, 9, tzinfo=UTC)
    add_calls(CUSTOMER, 12, start)
    add_calls(OTHER, 3, start, prefix="other")
    batch = api.post(
        "/api/multi-sms/batches",
        json={"numbers": f"{CUSTOMER}\n{OTHER}", "body": "Promocja -20%!"},
    )
    assert batch.status_code == 201, batch.text
    later = api.post(
        "/api/multi-sms/batches",
        json={
            "numbers": CUSTOMER,
            "body": "Jutro nowa kolekcja",
            "send_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        },
    )
    assert later.status_code == 201, later.text

    def delivered() -> bool:
        view = api.get(f"/api/multi-sms/batches/{batch.json()['id']}").json()
        return bool(view["status"] == "completed" and view["counters"]["delivered"] == 2)

    wait_for(delivered, timeout=30, what="the campaign to be delivered")
    found = profile(api)
    calls = found["calls"]
    assert calls["total"] == 12 and len(calls["items"]) == 10
    assert [c["conversation_id"] for c in calls["items"]] == [
        f"call_{n:03d}" for n in range(11, 1, -1)
    ]
    newest = calls["items"][0]
    assert (newest["duration_secs"], newest["call_successful"], newest["title"]) == (
        41,
        "success",
        "Call 11",
    )
    campaigns = found["campaigns"]
    assert campaigns["total"] == 2
    assert [(c["body"], c["status"], c["batch_status"]) for c in campaigns["items"]] == [
        ("Jutro nowa kolekcja", "pending", "pending"),
        ("Promocja -20%!", "delivered", "completed"),
    ]
    theirs = profile(api, OTHER)
    assert theirs["calls"]["total"] == 3
    assert [c["body"] for c in theirs["campaigns"]["items"]] == ["Promocja -20%!"]


def test_the_profile_reads_calls_and_campaigns_in_one_query_each(
    api: httpx.Client, known: None
) -> None:
    add_calls(CUSTOMER, 15, datetime(2026, 1, 5, 9, tzinfo=UTC))
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    session = get_sessionmaker()()
    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", seen)
    try:
        found = profiles.read_profile(session, CUSTOMER)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
        session.close()
    assert found.calls.total == 15 and len(found.calls.items) == 10
    assert sum("voicebot_conversations" in s for s in statements) == 1
    assert sum("multi_sms_recipients" in s for s in statements) == 1
    assert len(statements) <= 8, statements


def test_canned_answers_fill_the_profiles_name_and_attributes(
    api: httpx.Client, team: Callable[..., Member], known: None
) -> None:
    define(api, DEFINITIONS)
    anna = team("Anna")
    created = anna.client.post(
        "/api/canned-responses",
        json={
            "shortcut": "hi",
            "body": "Hi {{contact.name}} from {{ contact.city }}: {{contact.visits}} visits, "
            "plan {{contact.plan}}. {{contact.shoe_size}}",
        },
    )
    assert created.status_code == 201, created.text

    def render() -> dict[str, Any]:
        answer = anna.client.post(
            f"/api/canned-responses/{created.json()['id']}/render",
            json={"participant": CUSTOMER},
        )
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    # Before any edit: the name the customer gave; attributes without a value are missing.
    bare = render()
    assert bare["text"] == "Hi Zofia from :  visits, plan . {{contact.shoe_size}}"
    assert bare["missing"] == [
        "contact.city",
        "contact.visits",
        "contact.plan",
        "contact.shoe_size",
    ]
    patch(
        api, {"name": "Pani Zofia", "attributes": {"city": "Kraków", "visits": 3, "plan": "Gold"}}
    )
    filled = render()
    assert filled["text"] == "Hi Pani Zofia from Kraków: 3 visits, plan Gold. {{contact.shoe_size}}"
    assert filled["missing"] == ["contact.shoe_size"]
    assert filled["encoding"] == "UCS-2"  # ó
