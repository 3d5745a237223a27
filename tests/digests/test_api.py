"""The digest recipients API: CRUD with validation, roles, preview, send, news_config.json."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from relaydesk.core.models import AuditEntry
from tests.conftest import LiveServer
from tests.digests.fakes import FakeIndex, digests_to
from tests.digests.fakes import news_index as news_index  # a fixture
from tests.digests.fakes import settle_deliveries as settle_deliveries  # autouse


def create(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    answer = api.post("/api/news/recipients", json={"send_time": "08:00", **fields})
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def test_create_list_change_toggle_and_delete_a_recipient(api: httpx.Client, db: Any) -> None:
    created = create(api, phone="600 100 951", send_time="7:05")
    assert created["phone"] == "+48600100951"
    assert created["send_time"] == "07:05"
    assert created["timezone"] == "Europe/Warsaw"
    assert created["mode"] == "all_categories"
    assert created["prompt"] is None
    assert created["enabled"] is True
    assert created["last_sent_at"] is None and created["last_outcome"] is None
    assert datetime.fromisoformat(created["next_send_at"]) > datetime.fromisoformat(
        created["created_at"]
    )
    rid = created["id"]
    whatsapp = create(api, phone="whatsapp:+48600100952", timezone="America/New_York")
    assert whatsapp["phone"] == "whatsapp:+48600100952"
    assert [r["id"] for r in api.get("/api/news/recipients").json()] == [rid, whatsapp["id"]]

    changed = api.patch(
        f"/api/news/recipients/{rid}",
        json={"mode": "custom_prompt", "prompt": "  Co nowego w technologii?  "},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["prompt"] == "Co nowego w technologii?"
    assert changed.json()["send_time"] == "07:05"

    off = api.post(f"/api/news/recipients/{rid}/toggle").json()
    assert off["enabled"] is False and off["next_send_at"] is None
    on = api.post(f"/api/news/recipients/{rid}/toggle").json()
    assert on["enabled"] is True and on["next_send_at"] is not None

    assert api.delete(f"/api/news/recipients/{rid}").status_code == 204
    assert api.delete(f"/api/news/recipients/{rid}").status_code == 404
    assert api.post(f"/api/news/recipients/{rid}/toggle").status_code == 404
    assert [r["id"] for r in api.get("/api/news/recipients").json()] == [whatsapp["id"]]
    actions = db.scalars(
        select(AuditEntry.action)
        .where(AuditEntry.target == f"news_recipient:{rid}")
        .order_by(AuditEntry.id)
    ).all()
    assert actions == [
        "news.recipient.create",
        "news.recipient.update",
        "news.recipient.update",
        "news.recipient.update",
        "news.recipient.delete",
    ]


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"phone": "12"}, "phone", "not a valid phone number"),
        ({"phone": "+48600100953", "send_time": "25:00"}, "send_time", "HH:MM"),
        ({"phone": "+48600100953", "send_time": "8 rano"}, "send_time", "HH:MM"),
        ({"phone": "+48600100953", "timezone": "Mars/Olympus"}, "timezone", "IANA"),
        ({"phone": "+48600100953", "mode": "custom_prompt"}, "prompt", "needs its prompt"),
        ({"phone": "+48600100953", "mode": "custom_prompt", "prompt": "   "}, "prompt", "prompt"),
        ({"phone": "+48600100953", "mode": "weekly"}, "mode", "mode"),
        ({"phone": "+48600100953", "prompt": "x" * 2001}, "prompt", "2000"),
    ],
)
def test_bad_input_is_422_with_a_reason_and_creates_nothing(
    api: httpx.Client, fields: dict[str, Any], field: str, words: str
) -> None:
    answer = api.post("/api/news/recipients", json={"send_time": "08:00", **fields})
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert words in body["detail"]
    assert field in json.dumps(body)
    assert api.get("/api/news/recipients").json() == []


def test_patch_validates_the_merged_settings(api: httpx.Client) -> None:
    rid = create(api, phone="+48600100954")["id"]
    refused = api.patch(f"/api/news/recipients/{rid}", json={"mode": "custom_prompt"})
    assert refused.status_code == 422
    assert refused.json()["field"] == "prompt"
    assert api.patch(f"/api/news/recipients/{rid}", json={"timezone": "Nowhere"}).status_code == 422
    assert api.patch("/api/news/recipients/999999", json={"send_time": "09:00"}).status_code == 404
    [unchanged] = api.get("/api/news/recipients").json()
    assert unchanged["mode"] == "all_categories" and unchanged["timezone"] == "Europe/Warsaw"


def test_viewers_read_and_operators_change(
    server: LiveServer, make_token: Callable[[str], str], news_index: FakeIndex
) -> None:
    def client(role: str) -> httpx.Client:
        token = make_token(role)
        return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"})

    with client("viewer") as viewer, client("operator") as operator:
        payload = {"phone": "+48600100955", "send_time": "08:00"}
        assert viewer.post("/api/news/recipients", json=payload).status_code == 403
        rid = operator.post("/api/news/recipients", json=payload).json()["id"]
        assert viewer.get("/api/news/recipients").status_code == 200
        assert viewer.get("/api/news/config").status_code == 200
        for action in ("toggle", "test", "send"):
            assert viewer.post(f"/api/news/recipients/{rid}/{action}").status_code == 403
        assert viewer.delete(f"/api/news/recipients/{rid}").status_code == 403
        assert viewer.post("/api/news/config/import", json=[]).status_code == 403
        assert operator.post(f"/api/news/recipients/{rid}/test").status_code == 200
        assert httpx.get(server.url + "/api/news/recipients").status_code == 401


def test_test_returns_the_digest_and_sources_without_sending(
    api: httpx.Client, db: Any, news_index: FakeIndex
) -> None:
    rid = create(api, phone="+48600100956", mode="custom_prompt", prompt="Stopy procentowe?")["id"]
    news_index.llm_text = "RPP nie zmieniła stóp procentowych. Inflacja spada."
    answer = api.post(f"/api/news/recipients/{rid}/test")
    assert answer.status_code == 200, answer.text
    preview = answer.json()
    assert preview["text"] == "RPP nie zmieniła stóp procentowych. Inflacja spada."
    assert preview["segments"] == 1
    assert preview["model"] == "fake-llm"
    assert [s["title"] for s in preview["sources"]] == [
        "Stopy procentowe bez zmian",
        "Nowy smartfon",
        "Inflacja spada",
    ]
    assert preview["sources"][0]["url"] == "https://news.example/rates"
    assert news_index.calls[-1]["query"] == "Stopy procentowe?"
    assert digests_to(db, "+48600100956") == []
    assert api.get("/api/news/recipients").json()[0]["last_outcome"] is None

    news_index.empty = True
    nothing = api.post(f"/api/news/recipients/{rid}/test")
    assert nothing.status_code == 409
    assert nothing.json()["code"] == "no_news"
    assert api.post("/api/news/recipients/999999/test").status_code == 404


def test_without_an_index_the_test_says_what_to_do(api: httpx.Client) -> None:
    # The real retrieval, with no index built in this data directory.
    rid = create(api, phone="+48600100957")["id"]
    answer = api.post(f"/api/news/recipients/{rid}/test")
    assert answer.status_code == 409, answer.text
    assert answer.json()["code"] == "no_news"
    assert "index" in answer.json()["detail"]


def test_send_stores_a_news_message_and_records_it(
    api: httpx.Client, db: Any, news_index: FakeIndex
) -> None:
    rid = create(api, phone="+48600100958")["id"]
    answer = api.post(f"/api/news/recipients/{rid}/send")
    assert answer.status_code == 201, answer.text
    message = answer.json()
    assert message["source"] == "news"
    assert message["to"] == "+48600100958"
    assert message["body"].startswith("biznes: Stopy procentowe bez zmian")
    [stored] = digests_to(db, "+48600100958")
    assert stored.id == message["id"]
    shown = api.get("/api/news/recipients").json()[0]
    assert shown["last_outcome"] == "sent"
    assert shown["last_message_id"] == message["id"]
    assert shown["last_sent_at"] is not None
    assert shown["last_sent_on"] is None  # the scheduled digest is still owed
    actions = db.scalars(
        select(AuditEntry.action).where(AuditEntry.target == f"news_recipient:{rid}")
    ).all()
    assert "news.recipient.send" in actions


LEGACY = {
    "recipients": [
        {
            "id": "a1",
            "phone": "+48 600 100 961",
            "time": "08:00",
            "prompt_mode": "all",
            "enabled": True,
            "last_sent": "2025-12-13T10:44:53",
        },
        {
            "id": "a2",
            "number": "600100962",
            "hour": 19,
            "prompt": "Co z pogodą?",
            "enabled": "false",
        },
        {
            "id": "a3",
            "phone": "whatsapp:+48600100963",
            "send_time": "06:30:00",
            "mode": "custom",
            "custom_prompt": "Sport",
            "timezone": "Europe/London",
        },
        {"id": "a4", "phone": "123", "time": "08:00"},
        {"id": "a5", "phone": "+48600100964"},
        {"id": "a6", "phone": "+48600100965", "time": "08:00", "prompt_mode": "weekly"},
        "+48600100966",
    ]
}


def test_news_config_json_import_reads_the_old_format_and_reports_each_problem(
    api: httpx.Client, db: Any
) -> None:
    answer = api.post("/api/news/config/import", json=LEGACY)
    assert answer.status_code == 200, answer.text
    report = answer.json()
    created = {r["phone"]: r for r in report["created"]}
    assert set(created) == {"+48600100961", "+48600100962", "whatsapp:+48600100963"}
    first, second, third = (
        created["+48600100961"],
        created["+48600100962"],
        created["whatsapp:+48600100963"],
    )
    assert (first["send_time"], first["mode"], first["enabled"]) == (
        "08:00",
        "all_categories",
        True,
    )
    assert (second["send_time"], second["mode"], second["prompt"], second["enabled"]) == (
        "19:00",
        "custom_prompt",
        "Co z pogodą?",
        False,
    )
    assert (third["send_time"], third["timezone"], third["prompt"]) == (
        "06:30",
        "Europe/London",
        "Sport",
    )
    problems = {p["index"]: p["error"] for p in report["problems"]}
    assert set(problems) == {3, 4, 5, 6}
    assert "not a valid phone number" in problems[3]
    assert "no send time" in problems[4]
    assert "weekly" in problems[5]
    assert "not an object" in problems[6]
    assert report["duplicates"] == []

    # Importing the same file again adds nothing.
    again = api.post("/api/news/config/import", json=LEGACY).json()
    assert again["created"] == []
    assert len(again["duplicates"]) == 3
    assert len(api.get("/api/news/recipients").json()) == 3

    # The export is in the same format and imports back as duplicates only.
    exported = api.get("/api/news/config").json()
    assert {r["phone"] for r in exported["recipients"]} == set(created)
    entry = next(r for r in exported["recipients"] if r["phone"] == "+48600100962")
    assert entry["time"] == "19:00" and entry["prompt_mode"] == "custom_prompt"
    assert entry["enabled"] is False
    round_trip = api.post("/api/news/config/import", json=exported).json()
    assert round_trip["created"] == [] and len(round_trip["duplicates"]) == 3
    assert (
        db.scalar(select(AuditEntry.id).where(AuditEntry.action == "news.config.import"))
        is not None
    )


def test_news_config_json_import_as_a_file_upload(api: httpx.Client) -> None:
    document = json.dumps([{"phone": "+48600100971", "time": "9:15"}]).encode()
    answer = api.post(
        "/api/news/config/import",
        files={"file": ("news_config.json", document, "application/json")},
    )
    assert answer.status_code == 200, answer.text
    [created] = answer.json()["created"]
    assert (created["phone"], created["send_time"]) == ("+48600100971", "09:15")


def test_news_config_json_import_refuses_what_it_cannot_read(api: httpx.Client) -> None:
    too_big = b'{"recipients": [' + b" " * (1024 * 1024) + b"]}"
    answer = api.post(
        "/api/news/config/import", content=too_big, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 413
    assert "larger than" in answer.json()["detail"]
    broken = api.post(
        "/api/news/config/import",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert broken.status_code == 422
    assert "not valid JSON" in broken.json()["detail"]
    nothing = api.post("/api/news/config/import", json={"settings": {}})
    assert nothing.status_code == 422
    assert "No recipients found" in nothing.json()["detail"]
    no_file = api.post("/api/news/config/import", files={"other": (None, "x")})
    assert no_file.status_code == 422
    assert api.get("/api/news/recipients").json() == []


def test_a_digest_across_categories_is_asked_for_in_the_installations_language(
    api: httpx.Client, news_index: FakeIndex
) -> None:
    from relaydesk.digests.compose import DIGEST_INSTRUCTIONS

    rid = create(api, phone="+48600100957", mode="all_categories")["id"]
    news_index.llm_text = "Biznes: RPP nie zmieniła stóp. Technologie: nowy smartfon."
    assert api.post(f"/api/news/recipients/{rid}/test").status_code == 200
    # The tests run with DEFAULT_REGION=PL and no DEFAULT_LANGUAGE: Polish.
    assert news_index.calls[-1]["query"] == DIGEST_INSTRUCTIONS["pl"]
    assert news_index.calls[-1]["mode"] == "all_categories"
    assert "po polsku" in DIGEST_INSTRUCTIONS["pl"]
