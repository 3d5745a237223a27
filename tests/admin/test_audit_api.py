"""Reading the audit log: every change is there, secrets never are, pages and filters."""

from __future__ import annotations

import json
from typing import Any

import httpx

from relaydesk.core import audit
from relaydesk.core.db import session_scope


def record(*actions: str, actor: str = "test") -> None:
    with session_scope() as session:
        for n, action in enumerate(actions):
            audit.record(session, actor, action, f"thing:{n}", {"n": n})


def walk(api: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    """Every entry, following `next` page by page."""
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        answer = api.get("/api/audit", params={**params, **({"cursor": cursor} if cursor else {})})
        assert answer.status_code == 200, answer.text
        page = answer.json()
        seen += page["items"]
        cursor = page["next"]
        if cursor is None:
            return seen


def test_pages_walk_the_whole_log_newest_first(api: httpx.Client) -> None:
    record(*[f"demo.step{i}" for i in range(7)])
    first = api.get("/api/audit", params={"limit": 3}).json()
    assert len(first["items"]) == 3
    assert set(first["items"][0]) == {"id", "at", "actor", "action", "target", "details"}
    entries = walk(api, limit=3)
    # The API token of the `api` fixture was created first, so it is the oldest entry.
    assert [e["action"] for e in entries] == [
        *[f"demo.step{i}" for i in reversed(range(7))],
        "token.create",
    ]
    ids = [e["id"] for e in entries]
    assert ids == sorted(ids, reverse=True)
    exact = api.get("/api/audit", params={"limit": 8}).json()
    assert len(exact["items"]) == 8
    assert exact["next"] is None


def test_action_filter_is_a_prefix_and_actor_is_exact(api: httpx.Client) -> None:
    record("user.create", "user.update", "usera.other", "token.create", actor="cli")
    record("user.password_reset", actor="user:1:ola@example.com")
    users = [e["action"] for e in walk(api, action="user.", limit=2)]
    assert users == ["user.password_reset", "user.update", "user.create"]
    # LIKE wildcards in the filter are taken literally.
    assert walk(api, action="user%") == []
    assert walk(api, action="_ser.") == []
    by_cli = walk(api, actor="cli")
    assert [e["action"] for e in by_cli] == [
        "token.create",
        "usera.other",
        "user.update",
        "user.create",
    ]
    assert walk(api, actor="cl") == []
    both = walk(api, actor="cli", action="token.")
    assert [(e["actor"], e["action"]) for e in both] == [("cli", "token.create")]


def test_every_change_is_audited_and_no_secret_is(api: httpx.Client, server: Any) -> None:
    made = api.post(
        "/api/users",
        json={"email": "ola@example.com", "password": "first-secret", "role": "viewer"},
    ).json()
    api.patch(f"/api/users/{made['id']}", json={"role": "operator", "password": "second-secret"})
    token = api.post("/api/tokens", json={"name": "crm", "role": "viewer"}).json()
    api.delete(f"/api/tokens/{token['id']}")
    api.patch(f"/api/users/{made['id']}", json={"is_active": False})
    entries = walk(api)
    assert [e["action"] for e in entries] == [
        "user.update",
        "token.revoke",
        "token.create",
        "user.password_reset",
        "user.update",
        "user.create",
        "token.create",
    ]
    me = api.get("/api/tokens").json()["items"][-1]
    assert {e["actor"] for e in entries[:-1]} == {f"token:{me['id']}:{me['name']}"}
    assert entries[0]["target"] == f"user:{made['id']}"
    assert entries[0]["details"]["fields"] == ["is_active"]
    assert entries[4]["details"]["fields"] == ["role"]
    text = json.dumps(entries)
    for secret in ("first-secret", "second-secret", token["token"], token["token"][3:]):
        assert secret not in text


def test_bad_paging_parameters_are_readable(api: httpx.Client) -> None:
    tampered = api.get("/api/audit", params={"cursor": "not-a-cursor"})
    assert tampered.status_code == 422
    assert "cursor" in tampered.json()["detail"]
    too_many = api.get("/api/audit", params={"limit": 1000})
    assert too_many.status_code == 422
    assert "limit" in too_many.json()["detail"]
