"""Canned answers: shared and personal, shortcuts that never clash, search, rendering."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from relaydesk.contacts import service as contacts
from relaydesk.core.db import session_scope
from relaydesk.core.models import AuditEntry
from relaydesk.inbox.models import CannedResponse
from tests.conftest import LiveServer, Member

CUSTOMER = "+48600100700"
URL = "/api/canned-responses"


def make(client: httpx.Client, shortcut: str, body: str = "Hi", shared: bool = False) -> Any:
    answer = client.post(URL, json={"shortcut": shortcut, "body": body, "shared": shared})
    assert answer.status_code == 201, answer.text
    return answer.json()


def shortcuts(client: httpx.Client, q: str | None = None) -> list[str]:
    answer = client.get(URL, params={"q": q} if q is not None else {})
    assert answer.status_code == 200, answer.text
    return [item["shortcut"] for item in answer.json()]


def render(client: httpx.Client, canned_id: int, participant: str = CUSTOMER) -> httpx.Response:
    return client.post(f"{URL}/{canned_id}/render", json={"participant": participant})


def name_contact(name: str | None, phone: str = CUSTOMER, channel: str = "whatsapp") -> None:
    """Give the customer a profile name (as WhatsApp's ProfileName would)."""
    with session_scope() as session:
        contacts.get_or_create(session, phone, channel).profile_name = name


def test_a_personal_answer_is_its_owners_alone(team: Callable[..., Member], db: Any) -> None:
    anna, piotr = team("Anna"), team("Piotr")
    mine = make(anna.client, "Hours", "We are open 9-17")
    assert (mine["shortcut"], mine["shared"], mine["owner_id"]) == ("hours", False, anna.id)
    assert shortcuts(anna.client) == ["hours"]
    assert shortcuts(piotr.client) == []
    # Someone else's own answer does not exist for Piotr.
    theirs = f"{URL}/{mine['id']}"
    assert piotr.client.patch(theirs, json={"body": "Mine now"}).status_code == 404
    assert piotr.client.delete(theirs).status_code == 404
    assert render(piotr.client, mine["id"]).status_code == 404
    assert db.scalar(select(CannedResponse.body)) == "We are open 9-17"
    # Everyone may have their own /hours.
    assert make(piotr.client, "hours", "Piotr's hours")["owner_id"] == piotr.id
    changed = anna.client.patch(theirs, json={"body": "Open 8-16"})
    assert changed.status_code == 200 and changed.json()["body"] == "Open 8-16"
    assert anna.client.delete(theirs).status_code == 204
    assert shortcuts(anna.client) == []
    assert shortcuts(piotr.client) == ["hours"]


def test_shared_answers_are_for_everyone_and_managed_by_admins(
    team: Callable[..., Member], db: Any
) -> None:
    ada, olga, vera = team("Ada", "admin"), team("Olga"), team("Vera", "viewer")
    refused = olga.client.post(URL, json={"shortcut": "hi", "body": "Hello", "shared": True})
    assert refused.status_code == 403 and "administrator" in refused.json()["detail"]
    assert db.scalar(select(CannedResponse.id)) is None

    shared = make(ada.client, "hi", "Hello", shared=True)
    assert (shared["shared"], shared["owner_id"]) == (True, None)
    assert shortcuts(olga.client) == shortcuts(vera.client) == ["hi"]
    path = f"{URL}/{shared['id']}"
    assert olga.client.patch(path, json={"body": "Yo"}).status_code == 403
    assert olga.client.delete(path).status_code == 403
    assert db.scalar(select(CannedResponse.body)) == "Hello"
    assert ada.client.patch(path, json={"body": "Good day"}).json()["body"] == "Good day"
    assert render(olga.client, shared["id"]).json()["text"] == "Good day"
    assert ada.client.delete(path).status_code == 204
    assert shortcuts(olga.client) == []


def test_a_token_acting_as_nobody_makes_only_shared_answers(
    api: httpx.Client, team: Callable[..., Member]
) -> None:
    personal = api.post(URL, json={"shortcut": "x", "body": "X"})
    assert personal.status_code == 422 and "nobody" in personal.json()["detail"]
    shared = make(api, "x", "X", shared=True)
    olga = team("Olga")
    olga_own = make(olga.client, "mine", "Olga's")
    assert shortcuts(api) == ["x"]  # it sees the shared ones only
    assert api.patch(f"{URL}/{olga_own['id']}", json={"body": "?"}).status_code == 404
    assert api.delete(f"{URL}/{shared['id']}").status_code == 204


def test_shortcuts_never_clash_with_what_their_users_see(
    team: Callable[..., Member], db: Any
) -> None:
    ada, olga = team("Ada", "admin"), team("Olga")
    make(ada.client, "hours", "Shared hours", shared=True)
    shadow = olga.client.post(URL, json={"shortcut": "HOURS", "body": "Mine"})
    assert shadow.status_code == 409
    assert shadow.json()["code"] == "shortcut_taken"
    assert "/hours is already a shared canned answer" in shadow.json()["detail"]

    make(olga.client, "prices", "My prices")
    again = olga.client.post(URL, json={"shortcut": "Prices", "body": "Again"})
    assert again.status_code == 409 and "You already have" in again.json()["detail"]
    over = ada.client.post(URL, json={"shortcut": "prices", "body": "All", "shared": True})
    assert over.status_code == 409 and "personal" in over.json()["detail"]

    # Renaming into a clash is refused the same way and changes nothing.
    own = make(olga.client, "later", "Later")
    renamed = olga.client.patch(f"{URL}/{own['id']}", json={"shortcut": "hours", "body": "New"})
    assert renamed.status_code == 409
    assert db.scalar(select(CannedResponse.body).where(CannedResponse.id == own["id"])) == "Later"
    assert sorted(shortcuts(olga.client)) == ["hours", "later", "prices"]


def test_the_same_shortcut_taken_at_once_is_made_once(team: Callable[..., Member], db: Any) -> None:
    ada = team("Ada", "admin")

    def post(n: int) -> int:
        body = {"shortcut": "race", "body": f"Try {n}", "shared": True}
        return ada.client.post(URL, json=body).status_code

    with ThreadPoolExecutor(6) as pool:
        codes = sorted(pool.map(post, range(6)))
    assert codes == [201, 409, 409, 409, 409, 409]
    assert len(db.scalars(select(CannedResponse.id)).all()) == 1


@pytest.mark.parametrize(
    ("shortcut", "ok"),
    [
        ("Dzień-Dobry_2", "dzień-dobry_2"),
        ("ŻÓŁW", "żółw"),
        ("a" * 30, "a" * 30),
        ("/hours", None),
        ("two words", None),
        ("a" * 31, None),
        ("", None),
        ("tab\there", None),
        ("nul\x00", None),
        ("quote'\"", None),
        ("new\nline", None),
    ],
)
def test_a_shortcut_is_letters_digits_dashes_and_underscores(
    team: Callable[..., Member], shortcut: str, ok: str | None
) -> None:
    olga = team("Olga")
    answer = olga.client.post(URL, json={"shortcut": shortcut, "body": "Hi"})
    if ok is None:
        assert answer.status_code == 422, answer.text
        assert shortcuts(olga.client) == []
    else:
        assert answer.status_code == 201, answer.text
        assert answer.json()["shortcut"] == ok


def test_the_text_is_kept_as_written_and_bad_text_is_refused(
    team: Callable[..., Member],
) -> None:
    olga = team("Olga")
    written = 'He said "yes" & it\'s <b>fine</b>\nLine two — ąę'
    assert make(olga.client, "q", written)["body"] == written
    for body in ("", "   \n ", "x" * 1601, "NUL \x00 here", None, 5):
        answer = olga.client.post(URL, json={"shortcut": "bad", "body": body})
        assert answer.status_code == 422, (body, answer.text)
    assert make(olga.client, "long", "x" * 1600)["body"] == "x" * 1600
    assert shortcuts(olga.client) == ["long", "q"]


def test_roles_and_anonymous_callers(team: Callable[..., Member], server: LiveServer) -> None:
    olga, vera = team("Olga"), team("Vera", "viewer")
    own = make(olga.client, "hi", "Hello")
    assert httpx.get(server.url + URL, timeout=30).status_code == 401
    assert httpx.post(server.url + URL, json={"shortcut": "a", "body": "b"}).status_code == 401
    assert vera.client.get(URL).status_code == 200
    assert vera.client.post(URL, json={"shortcut": "v", "body": "b"}).status_code == 403
    assert render(vera.client, own["id"]).status_code == 403
    assert vera.client.delete(f"{URL}/{own['id']}").status_code == 403
    bad_token = httpx.get(server.url + URL, headers={"Authorization": "Bearer rd_nope"})
    assert bad_token.status_code == 401


def test_unknown_and_huge_ids_are_404_and_422(team: Callable[..., Member]) -> None:
    olga = team("Olga")
    assert olga.client.patch(f"{URL}/999999", json={"body": "x"}).status_code == 404
    assert olga.client.delete(f"{URL}/999999").status_code == 404
    assert render(olga.client, 999999).status_code == 404
    assert olga.client.delete(f"{URL}/{2**63}").status_code == 422
    assert olga.client.delete(f"{URL}/0").status_code == 422
    assert olga.client.patch(f"{URL}/1", json={"shared": True}).status_code == 422


def test_search_matches_shortcut_and_text_in_any_case_shortcut_prefixes_first(
    team: Callable[..., Member],
) -> None:
    ada, olga = team("Ada", "admin"), team("Olga")
    make(ada.client, "address", "Our street is Długa 5", shared=True)
    make(ada.client, "hours", "We open at 9; see the ADDRESS on the door", shared=True)
    make(olga.client, "my-address", "Olga's desk")
    make(olga.client, "zażółć", "Gęślą JAŹŃ")
    assert shortcuts(olga.client, "addr") == ["address", "hours", "my-address"]
    assert shortcuts(olga.client, "/ADD") == ["address", "hours", "my-address"]
    assert shortcuts(olga.client, "DŁUGA") == ["address"]
    assert shortcuts(olga.client, "ZAŻ") == ["zażółć"]
    assert shortcuts(olga.client, "jaźń") == ["zażółć"]
    assert shortcuts(olga.client, "nothing") == []
    assert shortcuts(olga.client, "\x00") == []
    assert shortcuts(olga.client, "%") == []
    assert shortcuts(ada.client, "address") == ["address", "hours"]  # not Olga's own
    assert olga.client.get(URL, params={"q": "x" * 101}).status_code == 422


def test_search_answers_at_most_fifty(api: httpx.Client) -> None:
    with session_scope() as session:
        session.add_all(
            CannedResponse(shortcut=f"s{n:03}", body="b", owner_id=None, created_by="t")
            for n in range(60)
        )
    assert len(shortcuts(api)) == 50
    assert shortcuts(api, "s")[:2] == ["s000", "s001"]
    assert len(shortcuts(api, "s")) == 50


def test_rendering_fills_the_customer_and_the_agent_and_lists_what_is_missing(
    team: Callable[..., Member],
) -> None:
    anna = team("Anna")
    answer = make(
        anna.client,
        "hello",
        "Hi {{contact.name}} ({{ contact.phone }}), {{agent.name}} here. "
        "Your plan: {{contact.plan}}. {{ }}",
    )
    bare = render(anna.client, answer["id"])
    assert bare.status_code == 200, bare.text
    assert bare.json()["text"] == (
        f"Hi  ({CUSTOMER}), Anna here. Your plan: {{{{contact.plan}}}}. {{{{ }}}}"
    )
    assert bare.json()["missing"] == ["contact.name", "contact.plan"]

    name_contact("Zofia")
    named = render(anna.client, answer["id"], "+48 600 100 700").json()
    assert named["text"].startswith(f"Hi Zofia ({CUSTOMER}), Anna here.")
    assert named["missing"] == ["contact.plan"]
    assert (named["segments"], named["encoding"]) == (1, "GSM-7")


def test_a_customers_name_is_text_and_its_letters_set_the_encoding(
    team: Callable[..., Member],
) -> None:
    anna = team("Anna")
    answer = make(anna.client, "hi", "Dear {{contact.name}}, " + "x" * 140)
    name_contact("Łucja")
    polish = render(anna.client, answer["id"]).json()
    assert (polish["encoding"], polish["segments"]) == ("UCS-2", 3)  # 152 units: 67 a segment
    name_contact("{{agent.name}}")
    braces = render(anna.client, answer["id"]).json()
    assert braces["text"].startswith("Dear {{agent.name}}, ")  # never filled in twice
    assert (braces["encoding"], braces["segments"]) == ("GSM-7", 2)  # 165 septets: {} count 2
    assert braces["missing"] == []


def test_an_answer_of_variables_only_can_render_empty(api: httpx.Client) -> None:
    answer = make(api, "name", "{{contact.name}}{{agent.name}}", shared=True)
    empty = render(api, answer["id"]).json()  # nobody's token, no profile name
    assert empty == {
        "text": "",
        "segments": 0,
        "encoding": "GSM-7",
        "missing": ["contact.name", "agent.name"],
    }


def test_rendering_refuses_a_junk_number(team: Callable[..., Member]) -> None:
    anna = team("Anna")
    answer = make(anna.client, "hi", "Hi")
    for participant in ("not-a-number", "\x00", "+48" + "9" * 60):
        assert render(anna.client, answer["id"], participant).status_code == 422
    assert anna.client.post(f"{URL}/{answer['id']}/render", json={}).status_code == 422


def test_changes_are_audited_with_the_shortcut_only(team: Callable[..., Member], db: Any) -> None:
    anna = team("Anna")
    answer = make(anna.client, "secret", "Card 1234 5678")
    path = f"{URL}/{answer['id']}"
    anna.client.patch(path, json={"shortcut": "renamed", "body": "Card 0000"})
    anna.client.patch(path, json={})  # no change: no entry
    anna.client.patch(path, json={"body": "Card 0000"})  # the same text: no entry
    anna.client.delete(path)
    entries = db.execute(
        select(AuditEntry.action, AuditEntry.target, AuditEntry.details)
        .where(AuditEntry.action.startswith("canned_response."))
        .order_by(AuditEntry.id)
    ).all()
    target = f"canned_response:{answer['id']}"
    assert [tuple(e) for e in entries] == [
        ("canned_response.create", target, {"shortcut": "secret"}),
        ("canned_response.update", target, {"shortcut": "renamed", "from": "secret"}),
        ("canned_response.delete", target, {"shortcut": "renamed"}),
    ]
