"""The Multi-SMS tab over plain HTTP: live count, confirmation, history, recipients, roles."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import wait_for
from tests.web.conftest import csrf_of

Panel = Callable[[str], httpx.Client]

ROLES = ("viewer", "operator", "admin")
# Mixed separators, spaces inside a number, 00 and + prefixes, a local number, a word.
MESSY = "+48 600 100 200, 0048600100200; 600100201\n\nnot-a-number\n+48600100202\t"
LONG_TEXT = "Sale! " + "x" * 170  # 176 GSM-7 characters: 2 segments
LATER = datetime.now(UTC).date() + timedelta(days=30)  # a day to schedule campaigns for
SCHEDULED = f"{LATER:%Y-%m-%d}T09:00:00+00:00"


@pytest.fixture(autouse=True)
def fast_campaigns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Campaigns go out at 50 messages/s (the server runs in this process)."""
    from relaydesk.core.config import get_settings

    monkeypatch.setattr(get_settings(), "campaign_rate_mps", 50.0)


def as_htmx(client: httpx.Client) -> dict[str, str]:
    """Headers an htmx request from a panel page carries."""
    return {"X-CSRF-Token": csrf_of(client), "HX-Request": "true"}


def hidden_fields(fragment: str) -> dict[str, str]:
    """The hidden inputs of the confirmation step, as the browser would send them."""
    return {
        name: html.unescape(value)
        for name, value in re.findall(
            r'type="hidden" (?:id="[^"]*" )?name="(\w+)" value="([^"]*)"', fragment
        )
    }


def create_by_api(api: httpx.Client, numbers: str, **more: Any) -> dict[str, Any]:
    answer = api.post("/api/multi-sms/batches", json={"numbers": numbers, "body": "Hi", **more})
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def batch_of(api: httpx.Client, batch_id: int) -> dict[str, Any]:
    found: dict[str, Any] = api.get(f"/api/multi-sms/batches/{batch_id}").json()
    return found


@pytest.mark.parametrize("role", ROLES)
def test_multi_sms_tab_renders_for_every_role(panel: Panel, api: httpx.Client, role: str) -> None:
    create_by_api(api, "+48600100200", send_at=SCHEDULED)
    client = panel(role)
    page = client.get("/multi-sms")
    assert page.status_code == 200
    nav = re.findall(r'<li><a href="(/[a-z-]+)"', page.text)
    assert nav.index("/multi-sms") > nav.index("/assistants")
    assert 'aria-current="page">Multi-SMS<' in page.text
    assert "Sending history" in page.text
    assert 'data-status="pending"' in page.text
    if role == "viewer":
        assert 'id="campaign-numbers"' not in page.text
        assert "data-action=" not in page.text
    else:
        assert 'id="campaign-numbers"' in page.text
        assert "Start sending" in page.text
        assert 'data-action="pause"' in page.text and 'data-action="cancel"' in page.text


def test_viewer_cannot_preview_create_or_pause(panel: Panel, api: httpx.Client) -> None:
    batch = create_by_api(api, "+48600100200", send_at=SCHEDULED)
    viewer = panel("viewer")
    headers = as_htmx(viewer)
    form = {"numbers": "+48600100201", "body": "Hi"}
    for path in ("/multi-sms/preview", "/multi-sms/confirm", "/multi-sms/batches"):
        assert viewer.post(path, data=form, headers=headers).status_code == 403, path
    answer = viewer.post(f"/multi-sms/batches/{batch['id']}/pause", headers=headers)
    assert answer.status_code == 403
    assert batch_of(api, batch["id"])["status"] == "pending"
    assert len(api.get("/api/multi-sms/batches").json()) == 1


def test_live_count_shows_valid_duplicates_invalid_and_segments(panel: Panel) -> None:
    client = panel("operator")
    answer = client.post(
        "/multi-sms/preview", data={"numbers": MESSY, "body": LONG_TEXT}, headers=as_htmx(client)
    )
    assert answer.status_code == 200
    text = answer.text
    assert re.search(r"data-count-valid>3<", text)
    assert re.search(r"data-count-duplicates>1<", text)
    assert re.search(r"data-count-invalid>1<", text)
    assert re.search(r"data-count-segments>2<", text)
    assert re.search(r"data-count-total-segments>6<", text)
    assert "<code>not-a-number</code>" in text
    assert "it may contain only digits" in html.unescape(text)
    assert "over-limit" not in text
    assert "campaign-confirm" not in text  # no summary was shown, nothing to take away


def test_live_count_warns_over_the_limit(panel: Panel, monkeypatch: pytest.MonkeyPatch) -> None:
    from relaydesk.core.config import get_settings

    monkeypatch.setattr(get_settings(), "campaign_max_recipients", 2)
    client = panel("operator")
    answer = client.post(
        "/multi-sms/preview", data={"numbers": MESSY, "body": "Hi"}, headers=as_htmx(client)
    )
    assert 'data-count="over-limit"' in answer.text
    assert "at most 2 recipients" in answer.text


def test_live_count_in_polish_translates_the_reasons(panel: Panel) -> None:
    client = panel("operator")
    answer = client.post(
        "/multi-sms/preview",
        data={"numbers": "abc, +48600100200", "body": "Hej"},
        headers={**as_htmx(client), "Accept-Language": "pl"},
    )
    # The user has no saved language: the browser's (Polish) applies.
    assert "Poprawne" in answer.text
    assert "it may contain only" not in answer.text


def test_confirmation_summarises_then_only_confirm_creates(panel: Panel, api: httpx.Client) -> None:
    client = panel("operator")
    headers = as_htmx(client)
    form = {"numbers": MESSY, "body": LONG_TEXT, "send_at": "", "send_at_local": ""}
    summary = client.post("/multi-sms/confirm", data=form, headers=headers)
    assert summary.status_code == 200, summary.text
    question = html.unescape(summary.text)
    assert "Send 3 messages, 6 segments in total, from +15005550006?" in question
    assert "Sending starts right away." in question
    assert api.get("/api/multi-sms/batches").json() == []  # the summary created nothing

    # Editing the form afterwards takes the summary away; the same content keeps it.
    fields = hidden_fields(summary.text)
    same = client.post(
        "/multi-sms/preview", data={**form, "summary_of": fields["summary_of"]}, headers=headers
    )
    assert 'id="campaign-confirm"' not in same.text
    edited = client.post(
        "/multi-sms/preview",
        data={**form, "numbers": MESSY + ", 600100203", "summary_of": fields["summary_of"]},
        headers=headers,
    )
    assert '<div id="campaign-confirm" hx-swap-oob="innerHTML"></div>' in edited.text

    created = client.post("/multi-sms/batches", data=fields, headers=headers)
    assert created.status_code == 200, created.text
    assert created.headers["HX-Trigger"] == "rd:changed"
    assert 'id="campaign-form"' in created.text and 'hx-swap-oob="outerHTML"' in created.text
    batches = api.get("/api/multi-sms/batches").json()
    assert len(batches) == 1
    batch = batches[0]
    assert f'data-created="{batch["id"]}"' in created.text
    assert (batch["valid"], batch["duplicates"], len(batch["invalid"])) == (3, 1, 1)
    assert batch["body"] == LONG_TEXT and batch["created_by"].endswith("@example.com")
    wait_for(lambda: batch_of(api, batch["id"])["status"] == "completed", what="completion")
    history = client.get("/multi-sms/batches", headers=headers).text
    assert f'data-batch="{batch["id"]}" data-status="completed"' in history
    assert 'data-counter="sent">3<' in history
    assert "every 2s" not in history  # nothing left to poll for


def test_scheduled_campaign_keeps_the_time_the_summary_showed(
    panel: Panel, api: httpx.Client
) -> None:
    client = panel("operator")
    headers = as_htmx(client)
    # app.js sends the picked local time as UTC ("send_at") next to the local text.
    form = {
        "numbers": "+48600100200",
        "body": "Hi",
        "send_at_local": f"{LATER:%Y-%m-%d}T09:00",
        "send_at": f"{LATER:%Y-%m-%d}T08:00:00.000Z",
    }
    summary = client.post("/multi-sms/confirm", data=form, headers=headers)
    assert f'<time datetime="{LATER:%Y-%m-%d}T08:00:00+00:00"' in summary.text
    fields = hidden_fields(summary.text)
    created = client.post("/multi-sms/batches", data=fields, headers=headers)
    assert "sending starts at" in created.text
    batch = api.get("/api/multi-sms/batches").json()[0]
    assert batch["status"] == "pending"
    assert batch["send_at"].startswith(f"{LATER:%Y-%m-%d}T08:00:00")
    # Changing only the time after the summary takes the summary away too.
    moved = client.post(
        "/multi-sms/preview",
        data={
            **form,
            "send_at_local": f"{LATER:%Y-%m-%d}T10:00",
            "summary_of": fields["summary_of"],
        },
        headers=headers,
    )
    assert 'id="campaign-confirm" hx-swap-oob' in moved.text


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ({"numbers": "abc, def", "body": "Hi"}, "The list has no valid phone number"),
        ({"numbers": "+48600100200", "body": "   "}, "Write the message to send"),
        (
            {"numbers": "+48600100200", "body": "Hi", "send_at": "2001-01-01T09:00:00.000Z"},
            "send_at is in the past",
        ),
        ({"numbers": "+48600100200", "body": "Hi", "send_at": "soon"}, "not a date and time"),
    ],
)
def test_errors_are_readable_notices(
    panel: Panel, api: httpx.Client, form: dict[str, str], expected: str
) -> None:
    client = panel("operator")
    for path in ("/multi-sms/confirm", "/multi-sms/batches"):
        answer = client.post(path, data=form, headers=as_htmx(client))
        assert answer.status_code == 422, (path, answer.text)
        assert answer.headers["HX-Retarget"] == "#notices"
        assert 'class="notice notice-error"' in answer.text
        assert expected in answer.text
    assert api.get("/api/multi-sms/batches").json() == []


def test_over_the_limit_is_refused_with_a_notice(
    panel: Panel, api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from relaydesk.core.config import get_settings

    monkeypatch.setattr(get_settings(), "campaign_max_recipients", 2)
    client = panel("operator")
    answer = client.post(
        "/multi-sms/confirm", data={"numbers": MESSY, "body": "Hi"}, headers=as_htmx(client)
    )
    assert answer.status_code == 422
    assert "at most 2 (CAMPAIGN_MAX_RECIPIENTS)" in answer.text
    assert api.get("/api/multi-sms/batches").json() == []


def test_pause_resume_and_cancel_buttons(panel: Panel, api: httpx.Client) -> None:
    batch = create_by_api(api, "+48600100200, +48600100201", send_at=SCHEDULED)
    client = panel("operator")
    headers = as_htmx(client)
    base = f"/multi-sms/batches/{batch['id']}"

    paused = client.post(f"{base}/pause", headers=headers)
    assert paused.status_code == 200
    assert f"Campaign #{batch['id']} paused." in paused.text
    assert 'data-action="resume"' in paused.text and 'data-action="pause"' not in paused.text
    assert batch_of(api, batch["id"])["status"] == "paused"

    canceled = client.post(f"{base}/cancel", headers=headers)
    assert 'data-status="canceled"' in canceled.text
    assert "data-action=" not in canceled.text  # a finished campaign has no buttons
    assert 'data-counter="skipped">2<' in canceled.text
    assert batch_of(api, batch["id"])["status"] == "canceled"

    again = client.post(f"{base}/resume", headers=headers)
    assert again.status_code == 409
    assert again.headers["HX-Retarget"] == "#notices"
    assert "A canceled campaign cannot be resumed" in again.text


def test_cancel_asks_for_confirmation(panel: Panel, api: httpx.Client) -> None:
    create_by_api(api, "+48600100200", send_at=SCHEDULED)
    page = panel("operator").get("/multi-sms").text
    cancel = re.search(r'<button[^>]*data-action="cancel"[^>]*>', page, re.S)
    assert cancel and "hx-confirm=" in cancel.group(0)


def test_recipients_show_twilios_error_code_and_its_meaning(
    panel: Panel, api: httpx.Client
) -> None:
    # +15005550001 is Twilio's magic "invalid number": the API refuses it with 21211.
    batch = create_by_api(api, "+15005550001, +48600100200")
    wait_for(lambda: batch_of(api, batch["id"])["status"] == "completed", what="completion")
    client = panel("viewer")
    fragment = client.get(f"/multi-sms/batches/{batch['id']}/recipients").text
    failed = re.search(
        r'<tr data-recipient="\+15005550001" data-status="failed">.*?</tr>', fragment, re.S
    )
    assert failed, fragment
    assert 'data-error-code="21211"' in failed.group(0)
    assert "is not a valid phone number" in html.unescape(failed.group(0))
    assert 'data-recipient="+48600100200" data-status="delivered"' in fragment
    history = client.get("/multi-sms").text
    assert 'data-counter="failed">1<' in history
    assert 'data-counter="delivered">1<' in history


def test_recipients_show_why_an_opted_out_number_was_skipped(
    panel: Panel, api: httpx.Client, twilio_post: Callable[..., httpx.Response]
) -> None:
    stop = {"MessageSid": "SM" + "0" * 32, "From": "+48600100200", "To": "+15005550006"}
    assert twilio_post("/twilio/inbound", {**stop, "Body": "STOP"}).status_code == 200
    batch = create_by_api(api, "+48600100200, +48600100201")
    wait_for(lambda: batch_of(api, batch["id"])["status"] == "completed", what="completion")
    client = panel("operator")
    fragment = html.unescape(client.get(f"/multi-sms/batches/{batch['id']}/recipients").text)
    skipped = re.search(
        r'<tr data-recipient="\+48600100200" data-status="skipped">.*?</tr>', fragment, re.S
    )
    assert skipped, fragment
    assert "unsubscribed" in skipped.group(0)
    assert 'data-counter="skipped">1<' in client.get("/multi-sms").text
