"""The Auto-reply, AI and Assistants tabs and the chat's bot switch, over plain HTTP."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import wait_for
from tests.fakes import FakeOpenAI
from tests.fakes import openai_fake as openai_fake  # the fixture, for pytest to find
from tests.web.conftest import csrf_of

Panel = Callable[[str], httpx.Client]
Post = Callable[..., httpx.Response]

ROLES = ("viewer", "operator", "admin")
CUSTOMER = "+48600100300"
AI_FORM = {
    "model": "gpt-4o-mini",
    "temperature": "0.7",
    "system_prompt": "You answer for a bakery. Be brief.",
    "history_limit": "12",
    "max_reply_segments": "3",
    "fallback_message": "",
}
ASSISTANT_FORM = {
    "name": "Bakery",
    "first_message": "Hi, this is the bakery.",
    "system_prompt": "You take bread orders.",
    "model": "",
    "temperature": "",
    "session_timeout_minutes": "30",
    "end_keywords": "goodbye, bye",
}


def customer_texts(post: Post, body: str, sender: str = CUSTOMER) -> None:
    params = {"MessageSid": "SM" + secrets.token_hex(16), "From": sender, "To": "+15005550006"}
    answer = post("/twilio/inbound", {**params, "Body": body, "NumMedia": "0"})
    assert answer.status_code == 200


def as_htmx(client: httpx.Client) -> dict[str, str]:
    """Headers an htmx request from a panel page carries."""
    return {"X-CSRF-Token": csrf_of(client), "HX-Request": "true"}


def main_of(html: str) -> str:
    """The page's own content, without the header (language and sign-out forms)."""
    found = re.search(r"<main\b.*</main>", html, re.S)
    assert found, "the page has no <main>"
    return found.group(0)


def use_fake_openai(api: httpx.Client, fake: FakeOpenAI, **more: Any) -> None:
    """Point the AI settings at the fake server (an administrator's API call)."""
    answer = api.put("/api/ai/config", json={"base_url": fake.base_url, **more})
    assert answer.status_code == 200, answer.text


def make_assistant(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    answer = api.post("/api/assistants", json={"name": "Bakery", **fields})
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


@pytest.mark.parametrize("role", ROLES)
def test_automation_tabs_render_for_every_role(panel: Panel, api: httpx.Client, role: str) -> None:
    assistant = make_assistant(api, first_message="Hello from the bakery")
    client = panel(role)
    for path in ("/auto-reply", "/ai", "/assistants", f"/assistants/{assistant['id']}"):
        page = client.get(path)
        assert page.status_code == 200, path
        nav = re.findall(r'<li><a href="(/[a-z-]+)"', page.text)
        assert nav[:6] == [
            "/inbox", "/messages", "/contacts", "/auto-reply", "/ai", "/assistants"
        ], nav  # fmt: skip
        content = main_of(page.text)
        if role == "viewer":
            assert "<form" not in content and "hx-post" not in content, path
        else:
            assert "hx-post" in content, path
    current = client.get("/ai").text
    assert '<a href="/ai" aria-current="page">' in current
    assert "Hello from the bakery" in client.get(f"/assistants/{assistant['id']}").text


def test_viewer_reads_but_cannot_change_anything(
    panel: Panel, api: httpx.Client, twilio_post: Post
) -> None:
    customer_texts(twilio_post, "Hello")
    assistant = make_assistant(api)
    viewer = panel("viewer")
    page = viewer.get("/auto-reply")
    assert "Answer to HELP" in page.text and "OFF" in page.text
    headers = as_htmx(viewer)
    attempts = {
        "/auto-reply": {"enabled": "on", "message": "Hi"},
        "/auto-reply/rules": {"debounce_seconds": "0"},
        "/ai": {**AI_FORM, "enabled": "on"},
        "/ai/test": {"message": "Hi"},
        "/assistants": ASSISTANT_FORM,
        f"/assistants/{assistant['id']}": ASSISTANT_FORM,
        f"/assistants/{assistant['id']}/delete": {},
        f"/assistants/{assistant['id']}/test": {"message": "Hi"},
        "/assistants/numbers": {"number": "+48732100200", "assistant_id": str(assistant["id"])},
        f"/chat/{CUSTOMER}/bot": {},
    }
    for path, data in attempts.items():
        answer = viewer.post(path, data=data, headers=headers)
        assert answer.status_code == 403, path
        assert "Your role does not allow this." in answer.text, path
    assert api.get("/api/auto-reply").json()["enabled"] is False
    assert api.get("/api/automation/rules").json()["debounce_seconds"] == 5.0
    assert [a["name"] for a in api.get("/api/assistants").json()] == ["Bakery"]
    assert api.get(f"/api/conversations/{CUSTOMER}/automation").json()["enabled"] is True


def test_saving_the_auto_reply_switches_it_on_and_off(panel: Panel, api: httpx.Client) -> None:
    operator = panel("operator")
    headers = as_htmx(operator)
    answer = operator.post(
        "/auto-reply",
        data={"enabled": "on", "message": "Thank you! We answer within the hour."},
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    assert 'data-auto-reply-state="on"' in answer.text
    assert "Settings saved" in answer.text
    stored = api.get("/api/auto-reply").json()
    assert stored["enabled"] is True
    assert stored["message"] == "Thank you! We answer within the hour."
    assert stored["enabled_at"] is not None
    page = operator.get("/auto-reply").text
    assert "Thank you! We answer within the hour." in page
    assert re.search(r'name="enabled"[^>]*checked', page)

    # An unticked switch is not sent by the browser: that means off.
    answer = operator.post(
        "/auto-reply", data={"message": "Thank you! We answer within the hour."}, headers=headers
    )
    assert 'data-auto-reply-state="off"' in answer.text
    assert api.get("/api/auto-reply").json()["enabled"] is False


def test_auto_reply_without_text_is_refused_with_a_notice(panel: Panel, api: httpx.Client) -> None:
    operator = panel("operator")
    answer = operator.post(
        "/auto-reply", data={"enabled": "on", "message": "  "}, headers=as_htmx(operator)
    )
    assert answer.status_code == 422
    assert answer.headers["HX-Retarget"] == "#notices"
    assert "Write the text to send" in answer.text
    assert api.get("/api/auto-reply").json()["enabled"] is False


def test_auto_reply_and_ai_take_turns(
    panel: Panel, api: httpx.Client, openai_fake: FakeOpenAI
) -> None:
    assert api.put("/api/auto-reply", json={"enabled": True, "message": "Hi"}).status_code == 200
    use_fake_openai(api, openai_fake, enabled=True)
    operator = panel("operator")
    page = operator.get("/auto-reply").text
    assert "Suspended while AI replies are on" in page
    assert "switching this on switches them off" in page
    assert "The classic auto-reply is suspended" in operator.get("/ai").text

    answer = operator.post(
        "/auto-reply", data={"enabled": "on", "message": "Hi"}, headers=as_htmx(operator)
    )
    assert "AI replies were switched off" in answer.text
    assert api.get("/api/ai/config").json()["enabled"] is False
    assert api.get("/api/auto-reply").json()["enabled"] is True


def test_rules_are_saved_and_checked(panel: Panel, api: httpx.Client) -> None:
    operator = panel("operator")
    headers = as_htmx(operator)
    rules = {
        "help_message": "Write to us here; STOP unsubscribes.",
        "start_message": "Welcome back!",
        "takeover_minutes": "15",
        "loop_guard_per_hour": "4",
        "debounce_seconds": "2.5",
    }
    answer = operator.post("/auto-reply/rules", data=rules, headers=headers)
    assert answer.status_code == 200, answer.text
    assert "Rules saved" in answer.text
    assert api.get("/api/automation/rules").json() == {
        "help_message": "Write to us here; STOP unsubscribes.",
        "start_message": "Welcome back!",
        "takeover_minutes": 15,
        "loop_guard_per_hour": 4,
        "debounce_seconds": 2.5,
    }
    # An emptied text means "no answer"; it is not "keep the old one".
    operator.post("/auto-reply/rules", data={**rules, "start_message": ""}, headers=headers)
    assert api.get("/api/automation/rules").json()["start_message"] == ""

    refused = operator.post(
        "/auto-reply/rules", data={**rules, "loop_guard_per_hour": "0"}, headers=headers
    )
    assert refused.status_code == 422
    assert "loop_guard_per_hour" in refused.text
    assert api.get("/api/automation/rules").json()["loop_guard_per_hour"] == 4


def test_operator_changes_the_model_but_not_the_provider_or_key(
    panel: Panel, api: httpx.Client
) -> None:
    operator = panel("operator")
    page = operator.get("/ai").text
    for field in ("ai-api-key", "ai-base-url", "ai-provider"):
        assert re.search(rf'id="{field}"[^>]*\bdisabled\b', page, re.S), field
    assert "Only an administrator can change" in page
    headers = as_htmx(operator)

    answer = operator.post("/ai", data={**AI_FORM, "model": "gpt-4o"}, headers=headers)
    assert answer.status_code == 200, answer.text
    assert api.get("/api/ai/config").json()["model"] == "gpt-4o"

    # A hand-made request with the key (or the address) is refused by the server too.
    for extra in ({"api_key": "sk-operator-0123456789"}, {"base_url": "http://example.com/v1"}):
        refused = operator.post("/ai", data={**AI_FORM, **extra}, headers=headers)
        assert refused.status_code == 403
        assert "Only an administrator can change" in refused.text
    config = api.get("/api/ai/config").json()
    assert config["api_key_set"] is False and config["base_url"] is None


def test_admin_sets_and_clears_the_key_which_is_never_shown(
    panel: Panel, api: httpx.Client
) -> None:
    admin = panel("admin")
    headers = as_htmx(admin)
    secret = "sk-admin-" + secrets.token_hex(12)
    answer = admin.post("/ai", data={**AI_FORM, "api_key": secret}, headers=headers)
    assert answer.status_code == 200, answer.text
    assert secret not in answer.text
    assert 'data-key-state="panel"' in answer.text
    config = api.get("/api/ai/config").json()
    assert config["api_key_set"] is True and config["api_key_source"] == "panel"
    page = admin.get("/ai").text
    assert secret not in page
    assert 'name="clear_api_key"' in page

    # Saving again without typing a key keeps it; the checkbox removes it.
    admin.post("/ai", data=AI_FORM, headers=headers)
    assert api.get("/api/ai/config").json()["api_key_set"] is True
    admin.post("/ai", data={**AI_FORM, "clear_api_key": "on"}, headers=headers)
    assert api.get("/api/ai/config").json()["api_key_set"] is False


def test_ai_cannot_be_switched_on_without_a_provider(panel: Panel, api: httpx.Client) -> None:
    admin = panel("admin")
    answer = admin.post("/ai", data={**AI_FORM, "enabled": "on"}, headers=as_htmx(admin))
    assert answer.status_code == 422
    assert "need an OpenAI API key" in answer.text
    assert api.get("/api/ai/config").json()["enabled"] is False


def test_preview_errors_show_as_notices(
    panel: Panel, api: httpx.Client, openai_fake: FakeOpenAI
) -> None:
    operator = panel("operator")
    headers = as_htmx(operator)

    unconfigured = operator.post("/ai/test", data={"message": "Hi"}, headers=headers)
    assert unconfigured.status_code == 409
    assert "notice-error" in unconfigured.text
    assert "The AI provider is not configured." in unconfigured.text
    assert "OpenAI needs an API key" in unconfigured.text

    use_fake_openai(api, openai_fake)
    openai_fake.fail_next(401)
    failed = operator.post("/ai/test", data={"message": "Hi"}, headers=headers)
    assert failed.status_code == 502
    assert "The AI provider could not answer." in failed.text
    assert "rejected the API key" in failed.text

    empty = operator.post("/ai/test", data={"message": " "}, headers=headers)
    assert empty.status_code == 422
    assert "Type a message to test with" in empty.text

    bad_number = operator.post(
        "/ai/test", data={"message": "Hi", "participant": "not a number"}, headers=headers
    )
    assert bad_number.status_code == 422
    assert "notice-error" in bad_number.text


def test_preview_shows_the_answer_and_what_the_model_read_and_sends_nothing(
    panel: Panel, api: httpx.Client, openai_fake: FakeOpenAI, twilio_post: Post
) -> None:
    customer_texts(twilio_post, "Do you bake rye bread?")
    use_fake_openai(api, openai_fake, system_prompt="You answer for a bakery.")
    operator = panel("operator")
    answer = operator.post(
        "/ai/test",
        data={"participant": CUSTOMER, "message": "And on Sundays?"},
        headers=as_htmx(operator),
    )
    assert answer.status_code == 200, answer.text
    reply = re.search(r"data-preview-reply>(.*?)</p>", answer.text, re.S)
    # The new text joins the customer's unanswered message as one turn.
    assert reply is not None
    assert reply.group(1) == "Echo: Do you bake rye bread?\nAnd on Sundays?"
    assert "What the model read" in answer.text
    assert "You answer for a bakery." in answer.text
    assert "Do you bake rye bread?" in answer.text  # the conversation so far
    assert re.search(r"data-preview-segments>\s*1\s*<", answer.text)
    # The token table is refreshed out of band with this test's call.
    assert 'id="ai-usage"' in answer.text and 'hx-swap-oob="true"' in answer.text
    usage_row = r'<td>openai</td><td class="nowrap">gpt-4o-mini</td><td[^>]*>1</td>'
    assert re.search(usage_row, answer.text)
    stored = api.get("/api/messages").json()["items"]
    assert [m["direction"] for m in stored] == ["inbound"]  # nothing was sent


def test_conversation_preview_loads_bubbles_for_a_number(panel: Panel, twilio_post: Post) -> None:
    customer_texts(twilio_post, "Is the shop open today?")
    viewer = panel("viewer")
    fragment = viewer.get("/ai/conversation", params={"participant": CUSTOMER})
    assert fragment.status_code == 200
    assert 'class="bubble in"' in fragment.text
    assert "Is the shop open today?" in fragment.text
    page = viewer.get("/ai", params={"participant": CUSTOMER}).text
    assert "Is the shop open today?" in page
    wrong = viewer.get("/ai/conversation", params={"participant": "12"})
    assert wrong.status_code == 200 and "notice-error" in wrong.text
    unknown = viewer.get("/ai/conversation", params={"participant": "+48600999999"})
    assert "No messages with this number yet." in unknown.text


def test_assistant_create_edit_bind_unbind_delete(panel: Panel, api: httpx.Client) -> None:
    operator = panel("operator")
    headers = as_htmx(operator)
    page = operator.get("/assistants").text
    assert 'value="goodbye, bye, exit, koniec, do widzenia"' in page  # the defaults, shown
    assert re.search(r'name="session_timeout_minutes"[^>]*value="30"', page)

    created = operator.post("/assistants", data=ASSISTANT_FORM, headers=headers)
    assert created.status_code == 200, created.text
    assert "Assistant added." in created.text and 'data-assistant="Bakery"' in created.text
    (stored,) = api.get("/api/assistants").json()
    assert stored["end_keywords"] == ["goodbye", "bye"]
    assert stored["first_message"] == "Hi, this is the bakery."
    assert stored["model"] is None and stored["temperature"] is None
    assert stored["session_timeout_minutes"] == 30

    reserved = operator.post(
        "/assistants",
        data={**ASSISTANT_FORM, "name": "Other", "end_keywords": "bye, stop"},
        headers=headers,
    )
    assert reserved.status_code == 422
    assert "opt-out keywords" in reserved.text
    twin = operator.post("/assistants", data=ASSISTANT_FORM, headers=headers)
    assert twin.status_code == 409 and "already exists" in twin.text

    edited = operator.post(
        f"/assistants/{stored['id']}",
        data={
            **ASSISTANT_FORM,
            "name": "Bakery orders",
            "model": "gpt-4o",
            "temperature": "0.3",
            "session_timeout_minutes": "45",
        },
        headers=headers,
    )
    assert edited.status_code == 200, edited.text
    assert "Assistant saved." in edited.text
    changed = api.get(f"/api/assistants/{stored['id']}").json()
    assert (changed["name"], changed["model"], changed["temperature"]) == (
        "Bakery orders",
        "gpt-4o",
        0.3,
    )
    assert changed["session_timeout_minutes"] == 45

    bound = operator.post(
        "/assistants/numbers",
        data={"number": "whatsapp:+48732100200", "assistant_id": str(stored["id"])},
        headers=headers,
    )
    assert bound.status_code == 200, bound.text
    assert 'data-number="+48732100200"' in bound.text
    (number,) = api.get("/api/phone-numbers").json()
    assert (number["number"], number["assistant_name"]) == ("+48732100200", "Bakery orders")
    assert "+48732100200" in operator.get(f"/assistants/{stored['id']}").text
    wrong = operator.post(
        "/assistants/numbers",
        data={"number": "12", "assistant_id": str(stored["id"])},
        headers=headers,
    )
    assert wrong.status_code == 422

    unbound = operator.post(f"/assistants/numbers/{number['id']}/delete", headers=headers)
    assert unbound.status_code == 200 and "Number unbound." in unbound.text
    assert api.get("/api/phone-numbers").json() == []

    deleted = operator.post(f"/assistants/{stored['id']}/delete", headers=headers)
    assert deleted.status_code == 200 and "Assistant deleted" in deleted.text
    assert api.get("/api/assistants").json() == []
    assert operator.get(f"/assistants/{stored['id']}").status_code == 404


def test_assistant_test_box_shows_the_greeting_and_the_answer(
    panel: Panel, api: httpx.Client, openai_fake: FakeOpenAI
) -> None:
    use_fake_openai(api, openai_fake)
    assistant = make_assistant(api, first_message="Hi, this is the bakery.")
    operator = panel("operator")
    answer = operator.post(
        f"/assistants/{assistant['id']}/test",
        data={"message": "Do you have rye bread?"},
        headers=as_htmx(operator),
    )
    assert answer.status_code == 200, answer.text
    reply = re.search(r"data-preview-reply>(.*?)</p>", answer.text, re.S)
    assert reply is not None
    assert reply.group(1) == "Hi, this is the bakery.\n\nEcho: Do you have rye bread?"
    assert "A new session" in answer.text
    assert 'id="ai-usage"' not in answer.text  # no token table on this page


def test_chat_bot_switch_and_status_line(
    panel: Panel, api: httpx.Client, twilio_post: Post
) -> None:
    customer_texts(twilio_post, "Hello")
    operator = panel("operator")
    headers = as_htmx(operator)
    page = operator.get(f"/chat/{CUSTOMER}").text
    assert 'data-bot="idle"' in page and 'id="bot-enabled"' in page

    off = operator.post(f"/chat/{CUSTOMER}/bot", data={}, headers=headers)
    assert off.status_code == 200
    assert 'data-bot="off"' in off.text and "Bot off here." in off.text
    assert api.get(f"/api/conversations/{CUSTOMER}/automation").json()["enabled"] is False

    on = operator.post(f"/chat/{CUSTOMER}/bot", data={"enabled": "on"}, headers=headers)
    assert 'data-bot="idle"' in on.text
    assert api.get(f"/api/conversations/{CUSTOMER}/automation").json()["enabled"] is True

    api.put("/api/auto-reply", json={"enabled": True, "message": "Thanks!"})
    line = operator.get(f"/chat/{CUSTOMER}/bot").text
    assert 'data-bot="on"' in line and "Classic auto-reply" in line

    # A person answering pauses the bot.
    sent = operator.post(f"/chat/{CUSTOMER}/send", data={"body": "Hi, Anna here."}, headers=headers)
    assert sent.status_code == 200
    paused = operator.get(f"/chat/{CUSTOMER}/bot").text
    assert 'data-bot="paused"' in paused and "a person is answering" in paused

    viewer = panel("viewer")
    assert 'id="bot-enabled"' not in viewer.get(f"/chat/{CUSTOMER}").text
    assert 'data-bot="paused"' in viewer.get(f"/chat/{CUSTOMER}/bot").text

    customer_texts(twilio_post, "STOP")
    stopped = operator.get(f"/chat/{CUSTOMER}/bot").text
    assert 'data-bot="stopped"' in stopped and "Unsubscribed (STOP) on" in stopped


def test_chat_without_a_conversation_has_no_bot_line(panel: Panel) -> None:
    page = panel("operator").get("/chat/+48600100999")
    assert page.status_code == 200
    assert 'id="bot-state"' in page.text and "data-bot=" not in page.text


def test_chat_shows_why_the_ai_could_not_answer(
    panel: Panel, api: httpx.Client, twilio_post: Post, openai_fake: FakeOpenAI
) -> None:
    api.put("/api/automation/rules", json={"debounce_seconds": 0})
    use_fake_openai(api, openai_fake, enabled=True, fallback_message="A person will answer soon.")
    openai_fake.fail_next(401)
    customer_texts(twilio_post, "Are you open?")

    def finished() -> Any:
        runs = api.get("/api/automation/runs", params={"participant": CUSTOMER}).json()
        return runs and runs[0]["state"] == "done"

    wait_for(finished, what="the automation run")
    line = panel("viewer").get(f"/chat/{CUSTOMER}/bot").text
    assert "data-bot-failure" in line
    assert "AI could not answer:" in line and "rejected the API key" in line
    assert "The fallback text was sent instead." in line


def test_the_sandbox_phone_takes_numbers_the_way_people_write_them(
    panel: Callable[[str], httpx.Client], db: Any
) -> None:
    from sqlalchemy import select

    from relaydesk.messaging.models import Message
    from tests.web.conftest import csrf_of

    client = panel("operator")
    answer = client.post(
        "/sandbox-phone/send",
        data={"number": "+48 600 700 801", "body": "Dzień dobry"},
        headers={"X-CSRF-Token": csrf_of(client)},
    )
    assert answer.status_code == 200, answer.text
    assert db.scalar(select(Message.participant).where(Message.body == "Dzień dobry")) == (
        "+48600700801"
    )
    wrong = client.post(
        "/sandbox-phone/send",
        data={"number": "12ab", "body": "x"},
        headers={"X-CSRF-Token": csrf_of(client)},
    )
    assert wrong.status_code == 422


def test_ai_tab_says_what_offline_transcription_can_and_cannot_do(panel: Panel) -> None:
    viewer = panel("viewer")
    card = re.search(r'<section id="ai-voice-notes".*?</section>', viewer.get("/ai").text, re.S)
    assert card, "the AI tab has no voice-notes card"
    text = card.group(0)
    assert 'data-speech-provider="local"' in text and "<code>whisper-base</code>" in text
    assert 'data-speech-language="auto"' in text
    assert "What it cannot do:" in text and "TRANSCRIPTION_LANGUAGE=pl" in text

    polish = viewer.get("/ai", headers={"Accept-Language": "pl-PL,pl;q=0.9"}).text
    card = re.search(r'<section id="ai-voice-notes".*?</section>', polish, re.S)
    assert card and "Czego nie potrafi:" in card.group(0)
