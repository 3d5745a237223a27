"""Managing users and API tokens through the REST API: roles, revocation, safeguards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from relaydesk.auth.models import ApiToken, User
from relaydesk.core.models import AuditEntry

ADMIN_ROUTES = [
    ("GET", "/api/users", None),
    ("POST", "/api/users", {"email": "x@example.com", "password": "long-enough", "role": "admin"}),
    ("GET", "/api/users/1", None),
    ("PATCH", "/api/users/1", {"role": "admin"}),
    ("GET", "/api/tokens", None),
    ("POST", "/api/tokens", {"name": "mine", "role": "admin"}),
    ("DELETE", "/api/tokens/1", None),
    ("GET", "/api/audit", None),
]


def client(url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


PASSWORD = "password-123"


def make_user(email: str, role: str = "operator") -> int:
    """A user made the way the CLI makes one; returns its id."""
    from relaydesk.auth import service as auth
    from relaydesk.core.db import session_scope

    with session_scope() as session:
        return auth.create_user(session, email, PASSWORD, role, "test").id


def user_token(user_id: int, role: str = "admin") -> str:
    """A token a user made for themselves in the panel."""
    from relaydesk.auth import service as auth
    from relaydesk.core.db import session_scope

    with session_scope() as session:
        _, plain = auth.create_token(session, f"user-{user_id}", role, "test", user_id=user_id)
    return plain


def audit(db: Any, action: str) -> list[AuditEntry]:
    return list(db.scalars(select(AuditEntry).where(AuditEntry.action == action)))


@pytest.mark.parametrize("role", ["operator", "viewer"])
def test_operator_and_viewer_tokens_get_403_on_every_admin_route(
    server: Any, make_token: Callable[[str], str], role: str
) -> None:
    with client(server.url, make_token(role)) as weak:
        for method, path, body in ADMIN_ROUTES:
            answer = weak.request(method, path, json=body)
            assert answer.status_code == 403, (method, path, answer.text)
            assert "admin role" in answer.json()["detail"]
    for method, path, body in ADMIN_ROUTES:
        assert httpx.request(method, server.url + path, json=body).status_code == 401


def test_a_new_token_is_shown_once_and_works_at_once(api: httpx.Client, server: Any) -> None:
    made = api.post("/api/tokens", json={"name": " crm ", "role": "viewer"})
    assert made.status_code == 201, made.text
    body = made.json()
    plain = body.pop("token")
    assert plain.startswith("rd_")
    assert plain.startswith(body["prefix"])
    assert body["name"] == "crm"
    assert body["role"] == "viewer"
    assert body["revoked_at"] is None
    assert body["user_id"] is None  # made with a token nobody owns
    with client(server.url, plain) as fresh:
        assert fresh.get("/api/messages").status_code == 200
        assert fresh.get("/api/tokens").status_code == 403
    listing = api.get("/api/tokens")
    assert listing.status_code == 200
    assert plain not in listing.text
    items = listing.json()["items"]
    assert items[0] == {**body, "last_used_at": items[0]["last_used_at"]}
    assert all(set(t) == set(body) for t in items)


def test_a_revoked_token_gets_401_on_its_next_call(
    api: httpx.Client, server: Any, db: Any, make_token: Callable[[str], str]
) -> None:
    plain = make_token("operator")
    token_id = db.scalar(select(ApiToken.id).where(ApiToken.prefix == plain[:10]))
    with client(server.url, plain) as doomed:
        assert doomed.get("/api/messages").status_code == 200
        assert api.delete(f"/api/tokens/{token_id}").status_code == 204
        refused = doomed.get("/api/messages")
        assert refused.status_code == 401
        assert "revoked" in refused.json()["detail"]
    # Revoking again changes nothing; the row stays, listed as revoked.
    assert api.delete(f"/api/tokens/{token_id}").status_code == 204
    listed = {t["id"]: t for t in api.get("/api/tokens").json()["items"]}
    assert listed[token_id]["revoked_at"] is not None
    assert len(audit(db, "token.revoke")) == 1
    missing = api.delete("/api/tokens/987654")
    assert missing.status_code == 404
    assert "987654" in missing.json()["detail"]


def test_users_are_created_listed_and_changed(api: httpx.Client, db: Any) -> None:
    made = api.post(
        "/api/users",
        json={"email": " Ola@Example.COM", "password": "długie-hasło", "role": "viewer"},
    )
    assert made.status_code == 201, made.text
    ola = made.json()
    assert set(ola) == {
        "id",
        "email",
        "name",
        "role",
        "is_active",
        "language",
        "created_at",
        "last_login_at",
    }
    assert (ola["email"], ola["role"], ola["is_active"]) == ("ola@example.com", "viewer", True)
    again = api.post(
        "/api/users", json={"email": "ola@example.com", "password": "12345678", "role": "admin"}
    )
    assert again.status_code == 409
    assert "already exists" in again.json()["detail"]
    api.post(
        "/api/users", json={"email": "ada@example.com", "password": "12345678", "role": "admin"}
    )
    assert [u["email"] for u in api.get("/api/users").json()["items"]] == [
        "ada@example.com",
        "ola@example.com",
    ]
    changed = api.patch(f"/api/users/{ola['id']}", json={"role": "operator"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["role"] == "operator"
    assert api.get(f"/api/users/{ola['id']}").json()["role"] == "operator"
    # Sending the values a user already has is not a change and is not audited.
    assert api.patch(f"/api/users/{ola['id']}", json={"role": "operator"}).status_code == 200
    [update] = audit(db, "user.update")
    assert update.target == f"user:{ola['id']}"
    assert update.details is not None
    assert update.details["fields"] == ["role"]
    assert update.actor.startswith("token:")
    assert api.patch("/api/users/987654", json={"role": "viewer"}).status_code == 404


def test_a_new_password_is_audited_without_the_password(api: httpx.Client, db: Any) -> None:
    from relaydesk.auth.service import authenticate_password
    from relaydesk.core.db import session_scope

    user_id = make_user("reset@example.com")
    answer = api.patch(f"/api/users/{user_id}", json={"password": "brand-new-secret"})
    assert answer.status_code == 200, answer.text
    [reset] = audit(db, "user.password_reset")
    assert reset.target == f"user:{user_id}"
    assert audit(db, "user.update") == []
    rows = db.scalars(select(AuditEntry)).all()
    assert not any("brand-new-secret" in repr(e.details) for e in rows)
    with session_scope() as session:
        assert authenticate_password(session, "reset@example.com", "brand-new-secret")
        assert authenticate_password(session, "reset@example.com", PASSWORD) is None


def test_the_last_active_admin_can_never_be_demoted_or_deactivated(api: httpx.Client) -> None:
    first = make_user("first@example.com", "admin")
    for change in (
        {"role": "operator"},
        {"is_active": False},
        {"role": "viewer", "is_active": False},
    ):
        refused = api.patch(f"/api/users/{first}", json=change)
        assert refused.status_code == 409, change
        assert "last active administrator" in refused.json()["detail"]
    # An inactive admin does not count: it cannot sign in to fix anything.
    second = make_user("second@example.com", "admin")
    assert api.patch(f"/api/users/{second}", json={"is_active": False}).status_code == 200
    assert api.patch(f"/api/users/{first}", json={"role": "operator"}).status_code == 409
    assert api.patch(f"/api/users/{second}", json={"is_active": True}).status_code == 200
    demoted = api.patch(f"/api/users/{first}", json={"role": "operator"})
    assert demoted.status_code == 200
    assert api.patch(f"/api/users/{second}", json={"role": "viewer"}).status_code == 409
    roles = {u["email"]: u["role"] for u in api.get("/api/users").json()["items"]}
    assert roles == {"first@example.com": "operator", "second@example.com": "admin"}


def test_an_admin_cannot_demote_or_deactivate_themselves(server: Any, db: Any) -> None:
    me = make_user("me@example.com", "admin")
    other = make_user("other@example.com", "admin")
    with client(server.url, user_token(me)) as mine:
        for change in ({"role": "operator"}, {"is_active": False}):
            refused = mine.patch(f"/api/users/{me}", json=change)
            assert refused.status_code == 409
            assert "your own administrator rights" in refused.json()["detail"]
        # Changing one's own password is allowed.
        assert mine.patch(f"/api/users/{me}", json={"password": "another-one"}).status_code == 200
        # Tokens made through the API belong to the user behind the caller.
        made = mine.post("/api/tokens", json={"name": "script", "role": "operator"}).json()
        assert made["user_id"] == me
        assert mine.patch(f"/api/users/{other}", json={"role": "viewer"}).status_code == 200
    assert db.get(User, other).role == "viewer"


@pytest.fixture
def disabled_users() -> Iterator[list[int]]:
    """Users the deactivation hooks were called for."""
    from relaydesk.auth.service import USER_DISABLED_HOOKS

    seen: list[int] = []

    def hook(session: Any, user_id: int) -> None:
        seen.append(user_id)

    USER_DISABLED_HOOKS.append(hook)
    yield seen
    USER_DISABLED_HOOKS.remove(hook)


def test_deactivating_a_user_revokes_their_tokens(
    api: httpx.Client,
    server: Any,
    db: Any,
    make_token: Callable[[str], str],
    disabled_users: list[int],
) -> None:
    from relaydesk.auth.service import authenticate_password
    from relaydesk.core.db import session_scope

    ola = make_user("ola@example.com", "operator")
    theirs = [user_token(ola, "operator"), user_token(ola, "viewer")]
    someone_elses = make_token("operator")
    answer = api.patch(f"/api/users/{ola}", json={"is_active": False})
    assert answer.status_code == 200
    assert answer.json()["is_active"] is False
    for plain in theirs:
        with client(server.url, plain) as revoked:
            assert revoked.get("/api/messages").status_code == 401
    with client(server.url, someone_elses) as kept:
        assert kept.get("/api/messages").status_code == 200
    assert disabled_users == [ola]
    revocations = audit(db, "token.revoke")
    assert len(revocations) == 2
    assert all(e.details and e.details["reason"] == "user deactivated" for e in revocations)
    with session_scope() as session:
        assert authenticate_password(session, "ola@example.com", PASSWORD) is None
    # Enabling the user again does not bring the tokens back.
    assert api.patch(f"/api/users/{ola}", json={"is_active": True}).status_code == 200
    with client(server.url, theirs[0]) as still_revoked:
        assert still_revoked.get("/api/messages").status_code == 401


def test_lowering_a_role_revokes_the_users_tokens_above_it(
    api: httpx.Client, server: Any, disabled_users: list[int]
) -> None:
    ada = make_user("ada@example.com", "admin")
    make_user("keeper@example.com", "admin")
    admin_token, viewer_token = user_token(ada, "admin"), user_token(ada, "viewer")
    assert api.patch(f"/api/users/{ada}", json={"role": "operator"}).status_code == 200
    with client(server.url, admin_token) as revoked:
        assert revoked.get("/api/messages").status_code == 401
    with client(server.url, viewer_token) as kept:
        assert kept.get("/api/messages").status_code == 200
    assert disabled_users == []


@pytest.mark.parametrize(
    ("method", "path", "body", "words"),
    [
        ("POST", "/api/users", {"email": "a@example.com", "role": "admin"}, "password"),
        ("POST", "/api/users", {"email": "a@b.c", "password": "x" * 8, "role": "root"}, "role"),
        ("POST", "/api/users", {"email": "nope", "password": "x" * 8, "role": "admin"}, "email"),
        ("POST", "/api/users", {"email": "a@b.c", "password": "short", "role": "admin"}, "8"),
        (
            "POST",
            "/api/users",
            {"email": "a@b.c", "password": "x" * 8, "role": "admin", "is_admin": True},
            "Unknown field 'is_admin'",
        ),
        ("PATCH", "/api/users/{id}", {"password": "short"}, "at least 8 characters"),
        ("PATCH", "/api/users/{id}", {"is_active": "maybe"}, "is_active"),
        ("POST", "/api/tokens", {"name": "  ", "role": "admin"}, "name"),
        ("POST", "/api/tokens", {"name": "n" * 101, "role": "admin"}, "name"),
        ("POST", "/api/tokens", {"name": "ok"}, "role"),
    ],
)
def test_validation_errors_are_readable(
    api: httpx.Client, method: str, path: str, body: dict[str, Any], words: str
) -> None:
    someone = make_user("someone@example.com")
    answer = api.request(method, path.format(id=someone), json=body)
    assert answer.status_code == 422, answer.text
    assert words in answer.json()["detail"]


def test_an_admin_makes_a_token_that_acts_as_a_user(
    api: httpx.Client, server: Any, twilio_post: Callable[..., httpx.Response], db: Any
) -> None:
    anna = api.post(
        "/api/users",
        json={
            "email": "anna@example.com",
            "password": PASSWORD,
            "role": "operator",
            "name": "Anna",
        },
    )
    assert anna.status_code == 201, anna.text
    assert anna.json()["name"] == "Anna"
    made = api.post(
        "/api/tokens", json={"name": "anna-crm", "role": "operator", "user_id": anna.json()["id"]}
    )
    assert made.status_code == 201, made.text
    assert made.json()["user_id"] == anna.json()["id"]
    twilio_post(
        "/twilio/inbound",
        {
            "MessageSid": "SM" + "7" * 32,
            "From": "+48600100790",
            "To": "+15005550006",
            "Body": "Hej",
            "NumMedia": "0",
        },
    )
    with client(server.url, made.json()["token"]) as as_anna:
        taken = as_anna.patch(
            "/api/conversations/+48600100790", json={"assignee_id": anna.json()["id"]}
        )
        assert taken.status_code == 200, taken.text
        assert taken.json()["events"][-1]["actor"] == "Anna"
        mine = as_anna.get("/api/conversations", params={"assignee": "me"}).json()["items"]
        assert [item["participant"] for item in mine] == ["+48600100790"]


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"role": "admin"}, "cannot have the role admin"),
        ({"user_id": 999_999_999}, "No user"),
        ({"user_id": 0}, "user_id"),
        ({"user_id": "me"}, "user_id"),
    ],
)
def test_a_token_cannot_act_above_its_user_or_as_nobody(
    api: httpx.Client, db: Any, fields: dict[str, Any], words: str
) -> None:
    operator = make_user("olga@example.com")
    payload = {"name": "olga-token", "role": "operator", "user_id": operator, **fields}
    answer = api.post("/api/tokens", json=payload)
    assert answer.status_code == 422, answer.text
    assert words in answer.text
    assert db.scalar(select(ApiToken.id).where(ApiToken.name == "olga-token")) is None


def test_a_token_cannot_act_as_a_locked_user(api: httpx.Client) -> None:
    gone = make_user("gone@example.com")
    assert api.patch(f"/api/users/{gone}", json={"is_active": False}).status_code == 200
    answer = api.post("/api/tokens", json={"name": "t", "role": "viewer", "user_id": gone})
    assert answer.status_code == 422
    assert "deactivated" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        ("  Anna   Nowak ", "Anna Nowak"),
        ("Anna\nNowak", "Anna Nowak"),  # one line: a line break is a space
        ("", None),
        ("Zoë 'O\"Brien'", "Zoë 'O\"Brien'"),
    ],
)
def test_a_users_name_is_one_clean_line(
    api: httpx.Client, db: Any, name: str, stored: str | None
) -> None:
    user = make_user("named@example.com")
    answer = api.patch(f"/api/users/{user}", json={"name": name})
    assert answer.status_code == 200, answer.text
    assert answer.json()["name"] == stored
    assert db.scalar(select(User.name).where(User.id == user)) == stored


@pytest.mark.parametrize("name", ["A\x00na", "A\x1bna", "anna@example.com", "x" * 101])
def test_a_bad_name_is_refused_and_changes_nothing(api: httpx.Client, db: Any, name: str) -> None:
    user = make_user("plain@example.com")
    api.patch(f"/api/users/{user}", json={"name": "Piotr"})
    answer = api.patch(f"/api/users/{user}", json={"name": name})
    assert answer.status_code == 422, answer.text
    assert db.scalar(select(User.name).where(User.id == user)) == "Piotr"
    renames = audit(db, "user.rename")
    assert [(e.details or {}).get("to") for e in renames] == ["Piotr"]
