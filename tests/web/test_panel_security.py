"""Panel sign-in, sessions, CSRF and roles, checked over plain HTTP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from relaydesk.auth.models import User, WebSession
from relaydesk.core.models import AuditEntry, Setting
from tests.conftest import LiveServer
from tests.web.conftest import PASSWORD, MakeUser, csrf_of, login_form_token, sign_in

Panel = Callable[[str], httpx.Client]


def client_for(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30, follow_redirects=False)


def test_pages_redirect_to_login_when_signed_out(server: LiveServer) -> None:
    with client_for(server) as client:
        for path in ("/messages", "/chat/+48600100200", "/settings", "/users", "/audit", "/docs"):
            answer = client.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/login?next=")
        assert client.get("/").headers["location"] == "/login"
        # htmx fragments ask the browser to go to the login page instead of swapping HTML in
        fragment = client.get("/messages/rows", headers={"HX-Request": "true"})
        assert fragment.status_code == 401
        assert fragment.headers["HX-Redirect"].startswith("/login")


def test_session_cookie_is_httponly_and_samesite(server: LiveServer, make_user: MakeUser) -> None:
    with client_for(server) as client:
        answer = sign_in(client, make_user("viewer"))
        assert answer.status_code == 303
        cookie = answer.headers["set-cookie"].lower()
        assert "relaydesk_session=" in cookie
        assert "httponly" in cookie
        assert "samesite=lax" in cookie
        assert client.get("/messages").status_code == 200


def test_https_sessions_use_a_secure_host_only_cookie() -> None:
    from starlette.requests import Request
    from starlette.responses import Response

    from relaydesk.web.context import set_session_cookie

    scope = {
        "type": "http",
        "scheme": "https",
        "server": ("relaydesk.example", 443),
        "headers": [(b"host", b"relaydesk.example")],
        "path": "/",
        "query_string": b"",
    }
    response = Response()
    set_session_cookie(response, Request(scope), "token-value")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-relaydesk_session=token-value")
    assert "Secure" in cookie and "HttpOnly" in cookie and "Path=/" in cookie


def test_wrong_password_is_refused_without_a_session(
    server: LiveServer, make_user: MakeUser, db: Any
) -> None:
    email = make_user("operator")
    with client_for(server) as client:
        answer = sign_in(client, email, "not the password")
        assert answer.status_code == 401
        assert "Wrong email or password" in answer.text
        assert "relaydesk_session" not in answer.headers.get("set-cookie", "")
        assert client.get("/messages").status_code == 303
    assert db.scalar(select(WebSession.id)) is None


def test_login_is_rate_limited_per_email(server: LiveServer, make_user: MakeUser) -> None:
    email = make_user("operator")
    with client_for(server) as client:
        for _ in range(5):
            assert sign_in(client, email, "guess").status_code == 401
        # Even the right password waits now: the guesser cannot tell it was right.
        locked = sign_in(client, email, PASSWORD)
        assert locked.status_code == 429
        assert "Too many failed attempts" in locked.text
        assert client.get("/messages").status_code == 303


def test_login_form_needs_its_own_token(server: LiveServer, make_user: MakeUser) -> None:
    email = make_user("operator")
    with client_for(server) as client:
        login_form_token(client)
        answer = client.post(
            "/login", data={"email": email, "password": PASSWORD, "login_csrf": "forged"}
        )
        assert answer.status_code == 403
        assert client.get("/messages").status_code == 303


def test_login_never_redirects_off_site(server: LiveServer, make_user: MakeUser) -> None:
    email = make_user("operator")
    with client_for(server) as client:
        token = login_form_token(client)
        answer = client.post(
            "/login",
            data={
                "email": email,
                "password": PASSWORD,
                "login_csrf": token,
                "next": "//evil.example/phish",
            },
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == "/inbox"


def test_logout_ends_the_session_on_the_server(server: LiveServer, make_user: MakeUser) -> None:
    with client_for(server) as client:
        sign_in(client, make_user("operator"))
        stolen = dict(client.cookies)
        token = csrf_of(client)
        assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    with client_for(server) as replay:
        replay.cookies.update(stolen)
        assert replay.get("/messages").status_code == 303


def test_locked_user_is_signed_out_everywhere(panel: Panel, api: httpx.Client, db: Any) -> None:
    client = panel("operator")
    assert client.get("/messages").status_code == 200
    user_id = db.scalar(select(User.id).where(User.role == "operator"))
    assert api.patch(f"/api/users/{user_id}", json={"is_active": False}).status_code == 200
    assert client.get("/messages").status_code == 303


def test_panel_forms_refuse_missing_or_wrong_csrf_token(panel: Panel) -> None:
    client = panel("operator")
    form = {"to": "+48600100200", "body": "hello"}
    missing = client.post("/messages/send", data=form)
    assert missing.status_code == 403
    assert "CSRF" in missing.text
    wrong = client.post("/messages/send", data={**form, "csrf_token": "x" * 40})
    assert wrong.status_code == 403
    token = csrf_of(client)
    other_site = client.post(
        "/messages/send",
        data={**form, "csrf_token": token},
        headers={"Origin": "https://evil.example"},
    )
    assert other_site.status_code == 403
    ok = client.post("/messages/send", data={**form, "csrf_token": token})
    assert ok.status_code == 200
    assert "Sent to +48600100200" in ok.text


def test_api_called_with_the_panel_cookie_needs_the_csrf_header(panel: Panel) -> None:
    client = panel("operator")
    payload = {"to": "+48600100201", "body": "cookie call"}
    refused = client.post("/api/send-message", json=payload)
    assert refused.status_code == 403
    assert refused.json()["code"] == "csrf"
    assert client.get("/api/messages").status_code == 200  # reads need no token
    allowed = client.post(
        "/api/send-message", json=payload, headers={"X-CSRF-Token": csrf_of(client)}
    )
    assert allowed.status_code == 201
    assert allowed.json()["source"] == "api"


def test_viewer_reads_but_cannot_send_or_delete(panel: Panel, twilio_post: Any, db: Any) -> None:
    from relaydesk.messaging.models import Message

    twilio_post(
        "/twilio/inbound",
        {"MessageSid": "SM" + "a" * 32, "From": "+48600100300", "To": "+15005550006", "Body": "hi"},
    )
    client = panel("viewer")
    page = client.get("/messages")
    assert page.status_code == 200
    assert 'id="send-body"' not in page.text  # no send form
    assert "/delete" not in page.text
    token = csrf_of(client)
    send = client.post(
        "/messages/send", data={"to": "+48600100300", "body": "x", "csrf_token": token}
    )
    assert send.status_code == 403
    message_id = db.scalar(select(Message.id))
    delete = client.post(f"/messages/{message_id}/delete", data={"csrf_token": token})
    assert delete.status_code == 403
    assert db.scalar(select(Message.id)) == message_id


def test_admin_pages_are_for_admins_only(panel: Panel) -> None:
    for role in ("viewer", "operator"):
        client = panel(role)
        for path in ("/settings", "/users", "/audit"):
            assert client.get(path).status_code == 403, (role, path)
    admin = panel("admin")
    for path in ("/settings", "/users", "/audit"):
        assert admin.get(path).status_code == 200


def test_saved_auth_token_is_never_shown_again(
    panel: Panel, db: Any, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    from relaydesk.channels.twilio import account
    from relaydesk.core.config import get_settings

    # The test environment sets TWILIO_AUTH_TOKEN, which would win over the panel.
    monkeypatch.setattr(get_settings(), "twilio_auth_token", None)
    request.addfinalizer(account.invalidate)  # no cached panel values outlive the test
    admin = panel("admin")
    token = csrf_of(admin)
    secret = "0123456789abcdef0123456789abcdef"
    saved = admin.post(
        "/settings/twilio",
        data={"csrf_token": token, "account_sid": "AC" + "1" * 32, "auth_token": secret},
    )
    assert saved.status_code == 200, saved.text
    page = admin.get("/settings")
    assert secret not in page.text
    assert "••••cdef" in page.text
    stored = db.scalar(select(Setting.value).where(Setting.is_secret.is_(True)))
    assert stored and secret not in str(stored)
    details = [str(d) for d in db.scalars(select(AuditEntry.details))]
    assert details and not any(secret in d for d in details)


def test_pages_carry_security_headers(panel: Panel) -> None:
    page = panel("viewer").get("/messages")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"


def test_panel_form_errors_are_shown_as_notices(panel: Panel) -> None:
    client = panel("operator")
    token = csrf_of(client)
    bad = client.post(
        "/messages/send",
        data={"to": "not a number", "body": "hello", "csrf_token": token},
        headers={"HX-Request": "true"},
    )
    assert bad.status_code == 422
    assert bad.headers["HX-Retarget"] == "#notices"
    assert 'class="notice notice-error"' in bad.text
    too_long = client.post(
        "/messages/send",
        data={"to": "+48600100200", "body": "x" * 10_000, "csrf_token": token},
        headers={"HX-Request": "true"},
    )
    assert too_long.status_code == 422
    assert "notice-error" in too_long.text


def test_api_description_needs_a_token_or_a_session(
    server: LiveServer, panel: Panel, make_token: Callable[[str], str]
) -> None:
    with client_for(server) as anonymous:
        assert anonymous.get("/openapi.json").status_code == 401
    token = make_token("viewer")
    described = httpx.get(
        f"{server.url}/openapi.json", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert described.status_code == 200
    assert "/api/send-message" in described.json()["paths"]
    viewer = panel("viewer")
    assert viewer.get("/openapi.json").status_code == 200
    docs = viewer.get("/docs")
    assert docs.status_code == 200
    assert "/static/vendor/swagger-ui-bundle.js" in docs.text


def test_long_conversations_page_back_to_older_messages(
    panel: Panel, twilio_post: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from relaydesk.messaging import views

    monkeypatch.setattr(views, "THREAD_PAGE", 3)
    for n in range(5):
        twilio_post(
            "/twilio/inbound",
            {
                "MessageSid": f"SM{n:032d}",
                "From": "+48600100900",
                "To": "+15005550006",
                "Body": f"m{n}",
            },
        )
    client = panel("viewer")
    latest = client.get("/chat/+48600100900")
    assert latest.text.count('<li class="bubble') == 3
    assert ">m4<" in latest.text and ">m1<" not in latest.text
    older_link = latest.text.split('href="/chat/%2B48600100900?before=')[1].split('"')[0]
    older = client.get(f"/chat/+48600100900?before={older_link}")
    assert older.text.count('<li class="bubble') == 2
    assert ">m0<" in older.text and ">m1<" in older.text
    assert "Latest messages" in older.text


def test_a_refused_message_shows_twilios_error_and_its_meaning(
    panel: Panel, api: httpx.Client
) -> None:
    refused = api.post("/api/send-message", json={"to": "+15005550001", "body": "x"})
    assert refused.status_code == 422
    rows = panel("viewer").get("/messages/rows").text
    assert 'data-status="failed"' in rows
    assert 'data-tooltip="Twilio error 21211: ' in rows
    assert ">21211</span>" in rows


def test_live_stream_ends_when_the_user_is_locked(
    server: LiveServer,
    make_user: MakeUser,
    api: httpx.Client,
    db: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from relaydesk.web import live

    monkeypatch.setattr(live, "HEARTBEAT_SECONDS", 0.2)
    email = make_user("viewer")
    with client_for(server) as client:
        sign_in(client, email)
        user_id = db.scalar(select(User.id).where(User.email == email))
        keep_alives = 0
        with client.stream("GET", "/live", timeout=30) as stream:
            for line in stream.iter_lines():
                if not line.startswith(": keep-alive"):
                    continue
                keep_alives += 1
                if keep_alives == 1:
                    locked = api.patch(f"/api/users/{user_id}", json={"is_active": False})
                    assert locked.status_code == 200
                assert keep_alives < 100, "the stream outlived the user's lock"
        # The server ended the stream by itself soon after the lock.
        assert keep_alives <= 2
