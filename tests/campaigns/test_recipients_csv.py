"""A campaign's per-recipient report as CSV: every recipient, Excel-ready, formula-safe."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from relaydesk.campaigns import export
from tests.conftest import wait_for
from tests.web.conftest import PASSWORD, sign_in

Post = Callable[..., httpx.Response]


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    from relaydesk.core.config import get_settings

    monkeypatch.setattr(get_settings(), "campaign_rate_mps", 100.0)


def rows_of(answer: httpx.Response) -> list[dict[str, str]]:
    assert answer.status_code == 200, answer.text
    assert answer.content.startswith("\ufeff".encode())  # UTF-8 with BOM
    text = answer.content.decode("utf-8-sig")
    assert "\r\n" in text
    return list(csv.DictReader(io.StringIO(text)))


def test_every_recipient_with_status_error_and_times_in_chunks(
    api: httpx.Client, fast: None, twilio_post: Post, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "CHUNK", 2)  # five recipients: three chunks
    twilio_post(
        "/twilio/inbound",
        {
            "MessageSid": "SM" + "8" * 32,
            "From": "+48600100612",
            "To": "+15005550006",
            "Body": "STOP",
        },
    )
    numbers = "600 100 610\n+48600100611\n600100612\n+15005550001\n(600) 100-613"
    batch = api.post("/api/multi-sms/batches", json={"numbers": numbers, "body": "Zażółć!"})
    assert batch.status_code == 201, batch.text
    bid = batch.json()["id"]

    def outcomes() -> tuple[int, int]:
        counters = api.get(f"/api/multi-sms/batches/{bid}").json()["counters"]
        return counters["delivered"], counters["failed"]

    # The refusal is recorded after the sends Twilio accepted: under load, their
    # callbacks can come first, so both are waited for.
    wait_for(lambda: outcomes() == (3, 1), timeout=30, what="the campaign's outcomes")

    answer = api.get(f"/api/multi-sms/batches/{bid}/recipients.csv")
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert (
        answer.headers["content-disposition"]
        == f'attachment; filename="campaign-{bid}-recipients.csv"'
    )
    rows = rows_of(answer)
    assert list(rows[0]) == list(export.COLUMNS)
    assert len(rows) == 5
    by_number = {row["number"]: row for row in rows}
    # Numbers keep their plus as text: a leading apostrophe, never a formula.
    assert set(by_number) == {
        "'+48600100610",
        "'+48600100611",
        "'+48600100612",
        "'+15005550001",
        "'+48600100613",
    }
    assert by_number["'+48600100611"]["input"] == "'+48600100611"
    assert by_number["'+48600100610"]["input"] == "600 100 610"
    assert by_number["'+48600100610"]["status"] == "delivered"
    assert by_number["'+48600100610"]["message_sid"].startswith("SM")
    assert by_number["'+48600100610"]["queued_at"] and by_number["'+48600100610"]["updated_at"]
    skipped = by_number["'+48600100612"]
    assert skipped["status"] == "skipped" and "unsubscribed" in skipped["reason"]
    assert skipped["message_sid"] == ""
    failed = by_number["'+15005550001"]
    assert failed["status"] == "failed" and failed["error_code"] == "21211"
    assert failed["error_meaning"]
    # The same as the JSON list, row for row.
    listed = api.get(f"/api/multi-sms/batches/{bid}/recipients").json()
    assert [int(row["recipient_id"]) for row in rows] == [r["id"] for r in listed]
    assert [row["status"] for row in rows] == [r["status"] for r in listed]


def test_cells_that_could_start_a_formula_are_text() -> None:
    assert (
        export.safe('=HYPERLINK("http://evil.example","x")')
        == '\'=HYPERLINK("http://evil.example","x")'
    )
    for start in ("=", "+", "-", "@", "\t", "\r"):
        assert export.safe(f"{start}1+1") == f"'{start}1+1"
    assert export.safe("600 100 610") == "600 100 610"
    assert export.safe(None) == "" and export.safe(21211) == "21211"
    line = export._line(['a "quoted", value', "two\nlines", "zażółć"])
    assert next(csv.reader(io.StringIO(line))) == ['a "quoted", value', "two\nlines", "zażółć"]


def test_unknown_campaigns_roles_and_the_panels_link(
    api: httpx.Client, make_token: Callable[[str], str]
) -> None:
    from relaydesk.auth import service as auth
    from relaydesk.core.db import session_scope

    with session_scope() as session:
        auth.create_user(session, "csv-viewer@example.com", PASSWORD, "viewer", "test")
    assert api.get("/api/multi-sms/batches/999999/recipients.csv").status_code == 404
    assert api.get("/api/multi-sms/batches/abc/recipients.csv").status_code == 422
    assert httpx.get(f"{api.base_url}/api/multi-sms/batches/1/recipients.csv").status_code == 401
    batch = api.post("/api/multi-sms/batches", json={"numbers": "600100620", "body": "Hej"})
    bid = batch.json()["id"]
    viewer = httpx.Client(
        base_url=str(api.base_url), headers={"Authorization": f"Bearer {make_token('viewer')}"}
    )
    assert len(rows_of(viewer.get(f"/api/multi-sms/batches/{bid}/recipients.csv"))) == 1
    # The panel's link downloads with the signed-in browser's cookie.
    with httpx.Client(base_url=str(api.base_url)) as browser:
        sign_in(browser, "csv-viewer@example.com")
        page = browser.get("/multi-sms/batches").text
        assert f'href="/api/multi-sms/batches/{bid}/recipients.csv"' in page
        rows: list[dict[str, Any]] = rows_of(
            browser.get(f"/api/multi-sms/batches/{bid}/recipients.csv")
        )
        assert rows[0]["number"] == "'+48600100620"
