"""The /api/voicebot routes: who may call them, settings, the conversation browser, months."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from relaydesk.voicebot.api import router
from tests.voicebot.test_kpis import conversation, insert

KEY = "sk_live_0123456789abcdefWXYZ"


def routes() -> list[tuple[str, str]]:
    """Every (method, path) of the router, path parameters filled in."""
    found = []
    for route in router.routes:
        path = getattr(route, "path", "")
        path = path.replace("{conversation_id}", "conv_00001").replace("{archive_id}", "1")
        for method in sorted(getattr(route, "methods", set())):
            found.append((method, path))
    return found


@pytest.mark.parametrize(("method", "path"), routes())
def test_every_route_needs_a_token(server: Any, method: str, path: str) -> None:
    answer = httpx.request(method, server.url + path, params={"month": "2025-03"}, timeout=30)
    assert answer.status_code == 401, answer.text
    assert answer.headers["www-authenticate"] == "Bearer"


def client(server: Any, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def test_roles_viewer_reads_operator_exports_admin_configures(
    server: Any, make_token: Callable[[str], str]
) -> None:
    insert([conversation(1, datetime(2025, 3, 3, tzinfo=UTC))])
    with client(server, make_token("viewer")) as viewer:
        assert viewer.get("/api/voicebot/kpis", params={"month": "2025-03"}).status_code == 200
        assert viewer.get("/api/voicebot/conversations").status_code == 200
        assert viewer.get("/api/voicebot/months").status_code == 200
        assert viewer.get("/api/voicebot/archives").status_code == 200
        assert viewer.get("/api/voicebot/settings").status_code == 403
        assert viewer.post("/api/voicebot/settings", json={"agent_ids": ["a"]}).status_code == 403
        assert viewer.post("/api/voicebot/sync", json={}).status_code == 403
        assert viewer.get("/api/voicebot/export-csv").status_code == 403
        assert viewer.post("/api/voicebot/archive", params={"month": "2025-03"}).status_code == 403
    with client(server, make_token("operator")) as operator:
        assert operator.get("/api/voicebot/export-csv").status_code == 200
        assert operator.post("/api/voicebot/settings", json={"api_key": KEY}).status_code == 403
        assert operator.post("/api/voicebot/test-connection").status_code == 403


def test_settings_round_trip_never_returns_the_key(api: httpx.Client) -> None:
    saved = api.post(
        "/api/voicebot/settings", json={"agent_ids": "agent_a, agent_b", "api_key": KEY}
    )
    assert saved.status_code == 200, saved.text
    body = saved.json()
    assert body["agent_ids"] == ["agent_a", "agent_b"]
    assert body["api_key_set"] is True and body["api_key_masked"] == "••••WXYZ"
    assert body["api_key_source"] == "panel"
    shown = api.get("/api/voicebot/settings")
    assert shown.json() == body
    assert KEY not in saved.text and KEY not in shown.text and KEY[:-4] not in shown.text

    kept = api.post("/api/voicebot/settings", json={"agent_ids": ["agent_c"]}).json()
    assert kept["agent_ids"] == ["agent_c"] and kept["api_key_masked"] == "••••WXYZ"
    cleared = api.post("/api/voicebot/settings", json={"api_key": None}).json()
    assert cleared["api_key_set"] is False and cleared["agent_ids"] == ["agent_c"]


@pytest.mark.parametrize(
    "body",
    [{"agent_ids": ["bad id!"]}, {"api_key": "short"}, {"unknown": 1}, {"agent_ids": 5}],
)
def test_bad_settings_are_refused(api: httpx.Client, body: dict[str, Any]) -> None:
    answer = api.post("/api/voicebot/settings", json=body)
    assert answer.status_code == 422, answer.text


def test_test_connection_without_a_key_says_so(api: httpx.Client) -> None:
    answer = api.post("/api/voicebot/test-connection")
    assert answer.status_code == 200, answer.text
    assert answer.json()["ok"] is False and "key" in answer.json()["detail"]


def test_sync_refuses_a_reversed_range_and_runs_only_when_configured(api: httpx.Client) -> None:
    reversed_range = api.post("/api/voicebot/sync", json={"from": "2025-03-10", "to": "2025-03-01"})
    assert reversed_range.status_code == 422
    for path in ("/api/voicebot/sync", "/api/voicebot/refetch-details"):
        answer = api.post(path)
        assert answer.status_code == 409, answer.text  # no key and no agents yet
    assert api.get("/api/voicebot/sync-logs").json() == []


def test_conversations_are_paged_newest_first(api: httpx.Client) -> None:
    start = datetime(2025, 3, 1, 8, tzinfo=UTC)
    insert(
        [
            conversation(
                n,
                start + timedelta(hours=n * 5),
                call_successful="failure" if n % 3 == 0 else "success",
            )
            for n in range(23)
        ]
        + [conversation(500, datetime(2025, 2, 27, tzinfo=UTC))]
    )
    seen: list[str] = []
    for page in (1, 2, 3):
        answer = api.get(
            "/api/voicebot/conversations", params={"month": "2025-03", "page": page, "per_page": 10}
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["total"], body["page"], body["per_page"]) == (23, page, 10)
        seen += [item["conversation_id"] for item in body["items"]]
    assert seen == [f"conv_{n:05d}" for n in range(22, -1, -1)]
    failed = api.get(
        "/api/voicebot/conversations", params={"month": "2025-03", "outcome": "failure"}
    ).json()
    assert failed["total"] == 8
    assert {i["call_successful"] for i in failed["items"]} == {"failure"}
    too_many = api.get("/api/voicebot/conversations", params={"per_page": 101})
    assert too_many.status_code == 422
    assert api.get("/api/voicebot/conversations", params={"outcome": "maybe"}).status_code == 422


def test_a_conversation_opens_with_transcript_and_a_link_to_the_chat(
    api: httpx.Client,
) -> None:
    from relaydesk.contacts.models import Contact
    from relaydesk.core.db import session_scope

    details = {
        "transcript": [
            {"role": "agent", "message": "Dzień dobry, w czym mogę pomóc?", "time_in_call_secs": 0},
            {"role": "user", "message": "Chcę przełożyć wizytę.", "time_in_call_secs": 4},
        ],
        "analysis": {
            "evaluation_criteria_results": {
                "goal_reached": {
                    "criteria_id": "goal_reached",
                    "result": "success",
                    "rationale": "Wizyta przełożona.",
                }
            },
            "data_collection_results": {
                "visit_date": {
                    "data_collection_id": "visit_date",
                    "value": "2025-03-20",
                    "rationale": "Klient podał datę.",
                }
            },
        },
        "metadata": {"termination_reason": "Call ended by remote party"},
    }
    insert(
        [
            conversation(1, datetime(2025, 3, 3, tzinfo=UTC), details=details),
            conversation(2, datetime(2025, 3, 4, tzinfo=UTC), customer_number="+48500000000"),
        ]
    )
    with session_scope() as session:
        for channel in ("sms", "whatsapp"):  # two contacts, still one row per call
            session.add(Contact(phone="+48600100200", channel=channel))

    answer = api.get("/api/voicebot/conversations/conv_00001")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["chat_url"] == "/chat/%2B48600100200"
    assert [t["role"] for t in body["transcript"]] == ["agent", "user"]
    assert body["transcript"][1]["message"] == "Chcę przełożyć wizytę."
    assert body["evaluation"] == [
        {"criterion": "goal_reached", "result": "success", "rationale": "Wizyta przełożona."}
    ]
    assert body["data_collection"] == [
        {"id": "visit_date", "value": "2025-03-20", "rationale": "Klient podał datę."}
    ]
    assert body["termination_reason"] == "Call ended by remote party"

    listed = api.get("/api/voicebot/conversations", params={"month": "2025-03"}).json()
    assert listed["total"] == 2
    assert [i["chat_url"] for i in listed["items"]] == [None, "/chat/%2B48600100200"]
    bare = api.get("/api/voicebot/conversations/conv_00002").json()
    assert bare["transcript"] == [] and bare["evaluation"] == [] and bare["chat_url"] is None
    assert api.get("/api/voicebot/conversations/conv_nope").status_code == 404


def test_months_and_agents_list_what_has_data(api: httpx.Client) -> None:
    insert(
        [
            conversation(1, datetime(2025, 1, 31, 23, 59, tzinfo=UTC)),
            conversation(2, datetime(2025, 3, 1, tzinfo=UTC), agent_id="agent_b"),
            conversation(3, datetime(2025, 3, 31, 23, 59, 59, tzinfo=UTC)),
        ]
    )
    months = api.get("/api/voicebot/months")
    assert months.json() == [
        {"month": "2025-03", "conversations": 2},
        {"month": "2025-01", "conversations": 1},
    ]
    agents = api.get("/api/voicebot/agents").json()
    assert [(a["agent_id"], a["conversations"]) for a in agents] == [
        ("agent_a", 2),
        ("agent_b", 1),
    ]
