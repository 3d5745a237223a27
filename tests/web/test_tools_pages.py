"""The Tools section of the AI tab and of assistants, the tool calls in the test box and in
the chat, over plain HTTP: admins change and try tools, everyone else only reads."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from html import unescape
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from relaydesk.automation.models import AssistantTool
from relaydesk.core.config import get_settings
from tests.automation.conftest import shop as shop  # the fixture: the shop on loopback
from tests.automation.test_acting import shop_assistant
from tests.conftest import wait_for
from tests.fakes import FakeOpenAI
from tests.fakes import openai_fake as openai_fake  # the fixture, for pytest to find
from tests.fakes.shop import API_KEY, ORDER_SCHEMA, Shop
from tests.web.test_automation_pages import (
    as_htmx,
    customer_texts,
    make_assistant,
    use_fake_openai,
)

Panel = Callable[[str], httpx.Client]
Post = Callable[..., httpx.Response]
CUSTOMER = "+48600100410"
SECRET = API_KEY  # the shop's key: it must never reach a page


def order_form(shop: Shop, **more: str) -> dict[str, str]:
    """The HTTP tool form as a browser sends it."""
    return {
        "name": "order_status",
        "description": "The status of an order by its number, e.g. A-123",
        "method": "GET",
        "url": f"{shop.base}/api/orders/{{order_id}}",
        "parameters": '{"type": "object", "properties": {"order_id": {"type": "string"}}, '
        '"required": ["order_id"]}',
        "secret_header_name": "X-Api-Key",
        "secret_header_value": SECRET,
        "enabled": "on",
        **more,
    }


def section(html: str) -> str:
    """The Tools section of a page or fragment."""
    found = re.search(r'<section id="tools".*?</section>', html, re.S)
    assert found, "no Tools section"
    return found.group(0)


def tool_row(db: Any, name: str = "order_status") -> AssistantTool:
    row: AssistantTool = wait_for(
        lambda: db.scalar(select(AssistantTool).where(AssistantTool.name == name)),
        what=f"the tool {name}",
    )
    return row


def test_an_admin_adds_edits_and_deletes_an_http_tool_of_the_ai(
    panel: Panel, api: httpx.Client, db: Any, shop: Shop
) -> None:
    admin = panel("admin")
    page = admin.get("/ai")
    assert page.status_code == 200
    tools = section(page.text)
    assert "No tools yet" in tools and "Add an HTTP tool" in tools
    assert tools.count('hx-vals=\'{"builtin"') == 3  # a button for each built-in tool
    assert "data-tools-provider" not in tools  # OpenAI is the provider

    added = admin.post("/ai/tools", data=order_form(shop), headers=as_htmx(admin))
    assert added.status_code == 200, added.text
    shown = section(added.text)
    assert "Tool added." in shown and 'data-tool="order_status"' in shown
    assert f"{shop.base}/api/orders/{{order_id}}" in shown and ">GET<" in shown
    assert "secret header X-Api-Key: set" in shown
    [listed] = api.get("/api/ai/tools").json()
    assert (listed["name"], listed["secret_header_name"], listed["enabled"]) == (
        "order_status",
        "X-Api-Key",
        True,
    )
    # The saved parameters come back as the builder's rows.
    assert 'value="order_id"' in shown and 'data-hand-edited="1"' not in shown
    stored = tool_row(db).secret_header_value

    # Saved again without the header's value: the stored value stays as it was.
    edit = order_form(shop, description="Where an order is", secret_header_value="")
    edit["confirm"] = "on"
    saved = admin.post(f"/ai/tools/{listed['id']}", data=edit, headers=as_htmx(admin))
    assert saved.status_code == 200, saved.text
    assert "Tool saved." in saved.text and "the customer confirms first" in section(saved.text)
    row = tool_row(db)
    assert row.description == "Where an order is" and row.confirm is True
    assert row.secret_header_value == stored

    removed = admin.post(
        f"/ai/tools/{listed['id']}",
        data={**edit, "remove_secret_header": "on"},
        headers=as_htmx(admin),
    )
    assert removed.status_code == 200
    assert "secret header X-Api-Key: set" not in section(removed.text)
    assert api.get("/api/ai/tools").json()[0]["secret_header_name"] is None

    gone = admin.post(f"/ai/tools/{listed['id']}/delete", headers=as_htmx(admin))
    assert gone.status_code == 200 and "Tool deleted." in gone.text
    assert "No tools yet" in gone.text
    assert api.get("/api/ai/tools").json() == []


def test_the_secret_header_value_never_appears_in_a_page(
    panel: Panel, api: httpx.Client, shop: Shop
) -> None:
    admin = panel("admin")
    assistant = make_assistant(api)
    answers = [
        admin.post("/ai/tools", data=order_form(shop), headers=as_htmx(admin)),
        admin.post(
            f"/assistants/{assistant['id']}/tools", data=order_form(shop), headers=as_htmx(admin)
        ),
    ]
    tool_id = api.get("/api/ai/tools").json()[0]["id"]
    # A refused change and a tried call answer with the section or a result, never the key.
    answers.append(
        admin.post(
            f"/ai/tools/{tool_id}",
            data=order_form(shop, parameters="{"),
            headers=as_htmx(admin),
        )
    )
    answers.append(
        admin.post(
            f"/ai/tools/{tool_id}/try",
            data={"arguments": '{"order_id": "A-123"}'},
            headers=as_htmx(admin),
        )
    )
    assert answers[-1].status_code == 200 and "w drodze" in answers[-1].text  # the key was sent
    for path in ("/ai", f"/assistants/{assistant['id']}", "/audit", "/api/ai/tools"):
        answers.append(admin.get(path) if not path.startswith("/api") else api.get(path))
    for answer in answers:
        assert answer.status_code in (200, 422), answer.request.url
        assert SECRET not in answer.text, answer.request.url
    page = section(admin.get("/ai").text)
    assert 'name="secret_header_value" type="password" value=""' in page
    assert "set — leave empty to keep it" in page and 'name="remove_secret_header"' in page


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_operators_and_viewers_read_the_tools_but_cannot_change_or_try_them(
    panel: Panel, api: httpx.Client, db: Any, shop: Shop, role: str
) -> None:
    assistant = make_assistant(api)
    ai_tool = api.post(
        "/api/ai/tools",
        json={
            "name": "order_status",
            "url": f"{shop.base}/api/orders/{{order_id}}",
            "parameters": ORDER_SCHEMA,
            "secret_header": {"name": "X-Api-Key", "value": SECRET},
        },
    ).json()
    api.post(f"/api/assistants/{assistant['id']}/tools", json={"builtin": "hand_over"})
    client = panel(role)
    for path, name in (("/ai", "order_status"), (f"/assistants/{assistant['id']}", "hand_over")):
        tools = section(client.get(path).text)
        assert f'data-tool="{name}"' in tools
        assert "<form" not in tools and "hx-post" not in tools, path
        assert "Only an administrator can add, change or try tools." in tools
        assert shop.base not in tools  # the API's address is the administrators' business
    headers = as_htmx(client)
    attempts = {
        "/ai/tools": order_form(shop, name="other"),
        f"/ai/tools/{ai_tool['id']}": order_form(shop, name="renamed"),
        f"/ai/tools/{ai_tool['id']}/delete": {},
        f"/ai/tools/{ai_tool['id']}/try": {"arguments": '{"order_id": "A-123"}'},
        f"/assistants/{assistant['id']}/tools": {"builtin": "search_knowledge"},
    }
    for path, data in attempts.items():
        answer = client.post(path, data=data, headers=headers)
        assert answer.status_code == 403, path
        assert "Your role does not allow this." in answer.text, path
    assert db.scalar(select(func.count(AssistantTool.id))) == 2
    assert shop.seen == []  # nothing was tried
    assert api.get("/api/ai/tools").json()[0]["name"] == "order_status"


def test_changing_tools_needs_the_pages_csrf_token(panel: Panel, db: Any, shop: Shop) -> None:
    admin = panel("admin")
    for headers in ({"HX-Request": "true"}, {"HX-Request": "true", "X-CSRF-Token": "forged"}):
        answer = admin.post("/ai/tools", data=order_form(shop), headers=headers)
        assert answer.status_code == 403
        assert "The page expired" in answer.text
        builtin = admin.post("/ai/tools", data={"builtin": "hand_over"}, headers=headers)
        assert builtin.status_code == 403
    assert db.scalar(select(func.count(AssistantTool.id))) == 0
    # The same request with the page's token goes through.
    assert admin.post("/ai/tools", data=order_form(shop), headers=as_htmx(admin)).status_code == 200


def test_refusals_show_as_notices_in_the_panels_language(
    panel: Panel, db: Any, shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = panel("admin")
    headers = as_htmx(admin)
    cases = [
        (order_form(shop, parameters="{ oops"), 422, "This is not valid JSON (line 1, column 3)"),
        (order_form(shop, parameters="[]"), 422, "must be a JSON Schema of type object"),
        (
            order_form(shop, url=f"{shop.base}/api/orders/{{number}}"),
            422,
            "The URL's placeholders must be parameters: number",
        ),
        (order_form(shop, name="order status"), 422, "(no spaces)"),
        (order_form(shop, secret_header_value=""), 422, "Enter the secret header's value too"),
        (order_form(shop, method="DELETE"), 422, "method"),
    ]
    for data, status, text in cases:
        answer = admin.post("/ai/tools", data=data, headers=headers)
        assert answer.status_code == status, (text, answer.text)
        assert "notice-error" in answer.text and text in unescape(answer.text), answer.text
        assert answer.headers["HX-Retarget"] == "#notices"  # the form keeps what was typed
    assert db.scalar(select(func.count(AssistantTool.id))) == 0

    assert admin.post("/ai/tools", data=order_form(shop), headers=headers).status_code == 200
    twice = admin.post("/ai/tools", data=order_form(shop), headers=headers)
    assert twice.status_code == 409
    assert "A tool named 'order_status' exists" in unescape(twice.text)

    # Outside the server's own network unless the setting allows it; in Polish for a Pole.
    monkeypatch.setattr(get_settings(), "tools_allow_private_networks", False)
    polish = admin.post(
        "/ai/tools",
        data=order_form(shop, name="other"),
        headers={**headers, "Accept-Language": "pl"},
    )
    assert polish.status_code == 422
    assert "Sprawdź wprowadzone dane." in polish.text
    assert "wskazuje na adres wewnętrzny 127.0.0.1" in polish.text
    assert "TOOLS_ALLOW_PRIVATE_NETWORKS=true" in polish.text
    assert db.scalar(select(func.count(AssistantTool.id))) == 1


def test_the_local_model_shows_that_tools_need_an_openai_compatible_provider(
    panel: Panel, api: httpx.Client
) -> None:
    assistant = make_assistant(api)
    admin = panel("admin")
    notice = "Tools need an OpenAI-compatible provider"
    assert notice not in admin.get("/ai").text
    assert api.put("/api/ai/config", json={"provider": "local"}).status_code == 200
    for client in (admin, panel("viewer")):
        for path in ("/ai", f"/assistants/{assistant['id']}"):
            tools = section(client.get(path).text)
            assert 'data-tools-provider="local"' in tools, path
            assert notice in tools and "The local model answers without them." in tools


def test_built_in_tools_are_added_by_a_button_and_tried_only_in_the_test_box(
    panel: Panel, api: httpx.Client, db: Any
) -> None:
    assistant = make_assistant(api)
    base = f"/assistants/{assistant['id']}/tools"
    admin = panel("admin")
    added = admin.post(base, data={"builtin": "hand_over"}, headers=as_htmx(admin))
    assert added.status_code == 200, added.text
    tools = section(added.text)
    assert 'data-tool="hand_over"' in tools and "built-in: Hand over to a person" in tools
    assert 'data-builtin="hand_over"' not in tools  # added once
    assert 'data-builtin="search_knowledge"' in tools
    assert "try it in the test box" in tools and 'name="arguments"' not in tools
    assert 'name="url"' not in tools.split("Add an HTTP tool")[0]  # no URL of its own
    assert 'data-tool="hand_over"' not in section(admin.get("/ai").text)  # the AI has none

    [tool] = api.get(f"/api/assistants/{assistant['id']}/tools").json()
    tried = admin.post(f"{base}/{tool['id']}/try", data={}, headers=as_htmx(admin))
    assert tried.status_code == 422 and "try it in the test box" in tried.text
    assert 'data-try="error"' in tried.text

    # Renamed, asked to confirm; an empty description is relaydesk's own again.
    saved = admin.post(
        f"{base}/{tool['id']}",
        data={"name": "call_a_person", "description": "", "confirm": "on", "enabled": "on"},
        headers=as_htmx(admin),
    )
    assert saved.status_code == 200, saved.text
    row = tool_row(db, "call_a_person")
    assert row.builtin == "hand_over" and row.confirm is True
    assert row.description.startswith("Pass the conversation to a person")
    unknown = admin.post(base, data={"builtin": "format_disk"}, headers=as_htmx(admin))
    assert unknown.status_code == 422 and "There is no built-in tool" in unknown.text


def test_try_it_shows_the_status_the_time_and_the_answer_escaped(
    panel: Panel, api: httpx.Client, shop: Shop
) -> None:
    assistant = make_assistant(api)
    admin = panel("admin")
    base = f"/assistants/{assistant['id']}/tools"
    assert admin.post(base, data=order_form(shop), headers=as_htmx(admin)).status_code == 200
    [tool] = api.get(f"/api/assistants/{assistant['id']}/tools").json()
    page = section(admin.get(f"/assistants/{assistant['id']}").text)
    assert "{\n  &#34;order_id&#34;: &#34;&#34;\n}" in page  # the example to fill in

    def try_it(arguments: str) -> httpx.Response:
        return admin.post(
            f"{base}/{tool['id']}/try", data={"arguments": arguments}, headers=as_htmx(admin)
        )

    found = try_it('{"order_id": "A-123"}')
    assert found.status_code == 200, found.text
    assert 'data-try="ok"' in found.text and "<dd data-try-status>200</dd>" in found.text
    assert re.search(r"<dd data-try-latency>\d+ ms</dd>", found.text)
    assert "w drodze, kurier DPD" in found.text
    assert shop.seen[-1][3]["x-api-key"] == API_KEY

    missing = try_it('{"order_id": "<b>X-1</b>"}')
    assert missing.status_code == 200
    assert 'data-try="failed"' in missing.text and "The call failed: HTTP 404" in missing.text
    assert "no order &lt;b&gt;X-1&lt;/b&gt;" in missing.text and "<b>X-1" not in missing.text

    for arguments, text in (
        ("{", "This is not valid JSON"),
        ("[1]", "The arguments must be a JSON object"),
    ):
        refused = try_it(arguments)
        assert refused.status_code == 422 and text in refused.text
    bad = try_it('{"order_id": 7}')
    assert "bad arguments" in bad.text and "<dd data-try-status>no answer</dd>" in bad.text


def test_the_test_box_lists_the_tool_calls_under_the_answer(
    panel: Panel, api: httpx.Client, openai_fake: FakeOpenAI, shop: Shop
) -> None:
    use_fake_openai(api, openai_fake)
    admin = panel("admin")
    assert admin.post("/ai/tools", data=order_form(shop), headers=as_htmx(admin)).status_code == 200
    booking = {
        "name": "book_slot",
        "method": "POST",
        "url": f"{shop.base}/api/bookings",
        "parameters": {"type": "object", "properties": {"day": {"type": "string"}}},
        "confirm": True,
    }
    assert api.post("/api/ai/tools", json=booking).status_code == 201

    def model(body: dict[str, Any]) -> Any:
        if not any(m["role"] == "tool" for m in body["messages"]):
            return {
                "tool_calls": [
                    {"name": "order_status", "arguments": {"order_id": "A-123"}},
                    {"name": "book_slot", "arguments": {"day": "Friday"}},
                ]
            }
        return "Your order is on its way."

    openai_fake.reply_with(model)
    preview = admin.post("/ai/test", data={"message": "Where is A-123?"}, headers=as_htmx(admin))
    assert preview.status_code == 200, preview.text
    calls = re.search(r'<details class="tool-calls" open>.*?</details>', preview.text, re.S)
    assert calls, preview.text
    shown = calls.group(0)
    assert "Tools used: 2" in shown
    order = re.search(r'data-tool-call="order_status" data-state="called">.*?</li>', shown, re.S)
    assert order and "<code>order_id</code>: A-123" in order.group(0)
    assert "<dd>200</dd>" in order.group(0) and "w drodze" in order.group(0)
    booked = re.search(r'data-tool-call="book_slot" data-state="dry_run">.*?</li>', shown, re.S)
    assert booked and "would call (test box: not called)" in booked.group(0)
    assert shop.bookings == {}  # a confirm tool is only described in the test box


def test_the_chat_shows_the_tools_an_answer_used_and_the_hand_over(
    panel: Panel, api: httpx.Client, openai_fake: FakeOpenAI, shop: Shop, twilio_post: Post
) -> None:
    api.put("/api/automation/rules", json={"debounce_seconds": 0})
    use_fake_openai(api, openai_fake, enabled=True, api_key="sk-test-" + secrets.token_hex(4))
    admin = panel("admin")
    assert admin.post("/ai/tools", data=order_form(shop), headers=as_htmx(admin)).status_code == 200
    builtin = admin.post("/ai/tools", data={"builtin": "hand_over"}, headers=as_htmx(admin))
    assert builtin.status_code == 200
    openai_fake.reply_with(shop_assistant)
    customer_texts(twilio_post, "Gdzie jest A-123?", sender=CUSTOMER)

    def answered() -> Any:
        runs = api.get("/api/automation/runs", params={"participant": CUSTOMER}).json()
        return runs and runs[0]["state"] == "done" and runs[0]

    run = wait_for(answered, what="the answer")
    assert run["outcome"] == "ai", run
    viewer = panel("viewer")
    thread = viewer.get(f"/chat/{CUSTOMER}/thread").text
    # Each bubble, up to the next one.
    [answer] = [b for b in re.split(r'(?=<li class="bubble )', thread) if "bubble out" in b]
    assert "Sprawdziłam" in answer
    calls = re.search(r'<details class="tool-calls">.*?</details>', answer, re.S)
    assert calls, answer
    assert "Tools used: 1" in calls.group(0) and 'data-tool-call="order_status"' in calls.group(0)
    assert "<code>order_id</code>: A-123" in calls.group(0) and "<dd>200</dd>" in calls.group(0)
    assert thread.count('class="tool-calls"') == 1  # the customer's message has none

    # The model hands the next message over: the thread says so, with its reason.
    def hands_over(body: dict[str, Any]) -> Any:
        if any(m["role"] == "tool" for m in body["messages"]):
            return "Kolega zaraz odpisze."
        reason = "Chce zwrot <pieniędzy>"
        return {"tool_calls": [{"name": "hand_over", "arguments": {"reason": reason}}]}

    openai_fake.reply_with(hands_over)
    customer_texts(twilio_post, "Chcę zwrotu!", sender=CUSTOMER)
    wait_for(
        lambda: "handed_over" in viewer.get(f"/chat/{CUSTOMER}/thread").text, what="the hand-over"
    )
    thread = viewer.get(f"/chat/{CUSTOMER}/thread").text
    event = re.search(r'<li class="thread-event" data-event="handed_over">.*?</li>', thread, re.S)
    assert event, thread
    assert (
        "The assistant handed the conversation over: Chce zwrot &lt;pieniędzy&gt;" in event.group(0)
    )
    polish = viewer.get(f"/chat/{CUSTOMER}/thread", headers={"Accept-Language": "pl"}).text
    assert "Użyte narzędzia: 1" in polish and "Asystent przekazał rozmowę" in polish


def test_an_assistants_tools_are_its_own(panel: Panel, api: httpx.Client, shop: Shop) -> None:
    first, second = make_assistant(api), make_assistant(api, name="Florist")
    admin = panel("admin")
    added = admin.post(
        f"/assistants/{first['id']}/tools", data=order_form(shop), headers=as_htmx(admin)
    )
    assert added.status_code == 200
    assert 'data-tool="order_status"' in section(admin.get(f"/assistants/{first['id']}").text)
    assert 'data-tool="order_status"' not in section(admin.get(f"/assistants/{second['id']}").text)
    assert 'data-tool="order_status"' not in section(admin.get("/ai").text)
    [tool] = api.get(f"/api/assistants/{first['id']}/tools").json()
    # Another assistant's address cannot reach it.
    stray = admin.post(
        f"/assistants/{second['id']}/tools/{tool['id']}/delete", headers=as_htmx(admin)
    )
    assert stray.status_code == 404
    assert api.get(f"/api/assistants/{first['id']}/tools").json() != []


def test_a_schema_the_rows_cannot_show_is_edited_as_json_only(
    panel: Panel, api: httpx.Client, shop: Shop
) -> None:
    schema = {
        "type": "object",
        "properties": {"size": {"type": "string", "enum": ["S", "M", "L"]}},
        "required": ["size"],
    }
    made = api.post(
        "/api/ai/tools",
        json={"name": "sizes", "url": f"{shop.base}/api/sizes", "parameters": schema},
    )
    assert made.status_code == 201, made.text
    page = section(panel("admin").get("/ai").text)
    assert 'data-param-builder data-hand-edited="1"' in page
    assert "&#34;enum&#34;" in page
    assert re.search(r"data-param-hand-note>", page)  # the note is shown, not hidden
