"""Contacts as CSV: an Excel-ready export, and an import that stores nothing before it is
confirmed (counts, reasons, attacks, roles)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from relaydesk.contacts.models import Contact, ContactProfile
from relaydesk.core import csvfile
from relaydesk.segments import contacts_csv
from tests.conftest import Member, customer_writes

Post = Callable[..., httpx.Response]
POLISH = "Zażółć gęślą jaźń"


@pytest.fixture
def defined(api: httpx.Client) -> dict[str, int]:
    """Attributes city (text), visits (number), since (date), plan (list); a label VIP."""
    answer = api.put(
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
    assert answer.status_code == 200, answer.text
    vip = api.post("/api/labels", json={"name": "VIP"})
    assert vip.status_code == 201, vip.text
    return {"VIP": vip.json()["id"]}


def rows_of(answer: httpx.Response) -> list[dict[str, str]]:
    assert answer.status_code == 200, answer.text
    assert answer.content.startswith("\ufeff".encode())  # UTF-8 with BOM
    text = answer.content.decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def upload(client: httpx.Client, path: str, data: bytes, **form: str) -> httpx.Response:
    return client.post(path, files={"file": ("contacts.csv", data, "text/csv")}, data=form)


def test_export_opens_with_the_right_characters_and_safe_cells(
    api: httpx.Client, defined: dict[str, int], twilio_post: Post
) -> None:
    customer_writes(twilio_post, "+48600100801")
    customer_writes(twilio_post, "whatsapp:+48600100801", to="whatsapp:+15005550006")
    customer_writes(twilio_post, "+48600100802")
    customer_writes(twilio_post, "+48600100802", body="STOP")
    api.patch(
        "/api/contacts/+48600100801",
        json={
            "name": POLISH,
            "labels": ["VIP"],
            "attributes": {"city": '=HYPERLINK("http://evil.example","x")', "visits": 3},
        },
    )
    api.patch("/api/contacts/+48600100802", json={"name": 'Anna "Ania", Nowak'})
    answer = api.get("/api/contacts.csv")
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert "attachment" in answer.headers["content-disposition"]
    rows = rows_of(answer)
    assert list(rows[0]) == [
        "number",
        "channels",
        "name",
        "labels",
        "city",
        "visits",
        "since",
        "plan",
        "opted_out_sms",
        "opted_out_whatsapp",
        "last_inbound",
    ]
    first, second = rows
    assert first["number"] == "'+48600100801"  # the plus kept as text, never a formula
    assert first["channels"] == "sms|whatsapp"
    assert first["name"] == POLISH
    assert first["labels"] == "VIP"
    assert first["city"] == '\'=HYPERLINK("http://evil.example","x")'
    assert first["visits"] == "3" and first["last_inbound"]
    assert first["opted_out_sms"] == "" and first["opted_out_whatsapp"] == ""
    assert second["name"] == 'Anna "Ania", Nowak'
    assert second["opted_out_sms"]  # when they replied STOP


def test_export_streams_in_chunks(
    api: httpx.Client, twilio_post: Post, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(contacts_csv, "CHUNK", 2)
    for i in range(5):
        customer_writes(twilio_post, f"+4860010090{i}")
    rows = rows_of(api.get("/api/contacts.csv"))
    assert [r["number"] for r in rows] == [f"'+4860010090{i}" for i in range(5)]


def test_import_previews_then_stores_only_when_confirmed(
    api: httpx.Client, defined: dict[str, int], db: Any, twilio_post: Post
) -> None:
    customer_writes(twilio_post, "+48600100811")  # exists, with a conversation
    text = (
        "\ufeffnumber;name;labels;city;visits;since;plan;channel;shoe_size\r\n"
        f"600 100 810;{POLISH};;Kraków;4,5;2024-01-31;gold;;42\r\n"
        "+48600100811;Jan;VIP;Gdańsk;;;;;\r\n"
        "600100810;Again;;;;;;;\r\n"  # a duplicate of the first row
        "not a number;X;;;;;;;\r\n"
        "+48600100812;Y;Nope;;;;;;\r\n"  # unknown label
        "+48600100813;Z;;;many;;;;\r\n"  # a number attribute with text
        "+48600100814;W;;;;31.01.2024;;;\r\n"  # a date written another way
        "+48600100815;V;;;;;Platinum;;\r\n"  # not one of the options
        '+48600100816;"Multi\nline";;;;;;;\r\n'  # a name of two lines
        "+48600100817;;VIP;;;;;whatsapp;\r\n"  # new, labels wait for a conversation
    ).encode()
    preview = upload(api, "/api/contacts/import/preview", text)
    assert preview.status_code == 200, preview.text
    counts = preview.json()
    assert (counts["rows"], counts["valid"], counts["duplicates"], counts["invalid"]) == (
        10,
        3,
        1,
        6,
    )
    assert (counts["new"], counts["existing"], counts["labels_waiting"]) == (2, 1, 1)
    assert counts["ignored_columns"] == ["shoe_size"]
    reasons = {r["number"]: r["reason"] for r in counts["invalid_rows"]}
    assert "No label is named Nope" in reasons["+48600100812"]
    assert "Visits takes a number" in reasons["+48600100813"]
    assert "YYYY-MM-DD" in reasons["+48600100814"]
    assert "Gold, Silver" in reasons["+48600100815"]
    assert "one line" in reasons["+48600100816"]
    assert "not a valid phone number" in reasons["not a number"]
    # Nothing is stored before the confirmation.
    assert db.scalar(select(func.count()).select_from(Contact)) == 1
    assert db.scalar(select(func.count()).select_from(ContactProfile)) == 0

    changed = upload(
        api,
        "/api/contacts/import",
        text + b"+48600100899;late;;;;;;;\r\n",
        previewed=counts["fingerprint"],
    )
    assert changed.status_code == 422 and "not the one previewed" in changed.text
    assert db.scalar(select(func.count()).select_from(Contact)) == 1

    done = upload(api, "/api/contacts/import", text, previewed=counts["fingerprint"])
    assert done.status_code == 200, done.text
    assert done.json()["new"] == 2
    first = api.get("/api/contacts/+48600100810").json()
    assert first["name"] == POLISH
    values = first["attributes"]
    assert values["city"] == "Kraków" and values["visits"] == 4.5
    assert values["since"] == "2024-01-31" and values["plan"] == "Gold"
    existing = api.get("/api/contacts/+48600100811").json()
    assert existing["name"] == "Jan" and existing["labels"] == ["VIP"]
    assert db.scalar(select(Contact.channel).where(Contact.phone == "+48600100817")) == "whatsapp"
    # Importing again changes nothing more and keeps labels (added, never taken off).
    again = upload(api, "/api/contacts/import", text).json()
    assert again["existing"] == 3 and again["profiles_changed"] == 0 and again["labelled"] == 0


def test_comma_delimiter_and_export_round_trip(
    api: httpx.Client, defined: dict[str, int], twilio_post: Post
) -> None:
    customer_writes(twilio_post, "+48600100820")
    api.patch("/api/contacts/+48600100820", json={"name": "-minus", "attributes": {"city": "Łódź"}})
    exported = api.get("/api/contacts.csv").content
    api.patch("/api/contacts/+48600100820", json={"name": "changed", "attributes": {"city": "X"}})
    preview = upload(api, "/api/contacts/import/preview", exported).json()
    assert (preview["valid"], preview["invalid"]) == (1, 0), preview
    upload(api, "/api/contacts/import", exported)
    profile = api.get("/api/contacts/+48600100820").json()
    assert profile["name"] == "-minus"  # the guarding apostrophe taken off again
    assert profile["attributes"]["city"] == "Łódź"
    plain = b"number,name\n+48600100821,Ala\n"
    assert upload(api, "/api/contacts/import/preview", plain).json()["valid"] == 1
    cp1250 = "number;name\n+48600100822;Łucja\n".encode("cp1250")
    assert upload(api, "/api/contacts/import/preview", cp1250).json()["valid"] == 1


def test_attacks_are_refused_and_store_nothing(
    api: httpx.Client, team: Callable[..., Member], db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = "/api/contacts/import/preview"
    nul = upload(api, path, b"number;name\n+48600100830;A\x00B\n")
    assert nul.status_code == 422 and "not a CSV" in nul.json()["detail"]
    png = upload(api, path, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert png.status_code == 422
    nonsense = upload(api, path, b"just some words\nand more\n")
    assert nonsense.status_code == 422 and "number" in nonsense.json()["detail"]
    empty = upload(api, path, b"")
    assert empty.status_code == 422
    huge = upload(api, path, b"number\n" + b"+48600100831\n" * 200_000)
    assert huge.status_code == 413
    monkeypatch.setattr(contacts_csv, "MAX_ROWS", 3)
    many = upload(api, path, b"number\n" + b"".join(b"+4860010084%d\n" % i for i in range(5)))
    assert many.status_code == 413 and "more than 3 rows" in many.json()["detail"]
    viewer = team("Wiola", "viewer")
    good = b"number;name\n+48600100850;Ok\n"
    assert upload(viewer.client, "/api/contacts/import", good).status_code == 403
    assert upload(viewer.client, path, good).status_code == 403
    assert viewer.client.get("/api/contacts.csv").status_code == 200
    anonymous = httpx.post(str(api.base_url) + "/api/contacts/import", files={"file": good})
    assert anonymous.status_code == 401
    assert db.scalar(select(func.count()).select_from(Contact)) == 0


def test_safe_cells_read_back() -> None:
    for text in ("=1+1", "+48600100200", "-x", "@a", "plain", "'quoted"):
        assert csvfile.unsafe(csvfile.safe(text)) == text
