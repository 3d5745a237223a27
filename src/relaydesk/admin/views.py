"""Administration pages: Twilio settings, users and API tokens, the audit log, the spool."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from relaydesk.auth import service as auth
from relaydesk.auth.models import ROLES
from relaydesk.auth.sessions import SignedIn
from relaydesk.channels.twilio import settings as twilio_settings
from relaydesk.channels.twilio.account import current_account
from relaydesk.channels.twilio.schemas import TwilioSettingsIn
from relaydesk.core import audit
from relaydesk.core.db import session_scope
from relaydesk.core.errors import Conflict
from relaydesk.core.i18n import N_
from relaydesk.deps import Id
from relaydesk.messaging import spool
from relaydesk.web.deps import PanelAdmin
from relaydesk.web.templating import render

router = APIRouter(include_in_schema=False)

TWILIO_FIELDS = (
    "mode",
    "account_sid",
    "auth_token",
    "default_from",
    "whatsapp_from",
    "messaging_service_sid",
    "public_base_url",
)


def _settings_context() -> dict[str, Any]:
    with session_scope(write=False) as session:
        return {"tab": "settings", "twilio": twilio_settings.twilio_settings_view(session)}


@router.get("/settings", response_class=HTMLResponse)
def settings_page(request: Request, user: PanelAdmin) -> Response:
    """Twilio connection settings, the webhook URLs and a connection test."""
    return render(request, "admin/settings.html", _settings_context(), user=user)


@router.post("/settings/twilio", response_class=HTMLResponse)
async def save_twilio(request: Request, user: PanelAdmin) -> Response:
    """Save the Twilio form; fields set in the environment are not part of it."""
    form = await request.form()
    changes: dict[str, Any] = {}
    for name in TWILIO_FIELDS:
        if name in form:
            changes[name] = str(form[name])
    if form.get("clear_auth_token") == "on":
        changes["clear_auth_token"] = True
    payload = TwilioSettingsIn.model_validate(changes)

    def save() -> None:
        with session_scope() as session:
            twilio_settings.update_twilio_settings(session, payload, user.actor)

    await run_in_threadpool(save)
    context = {**await run_in_threadpool(_settings_context), "saved": True}
    return render(request, "admin/_twilio_form.html", context, user=user)


@router.post("/settings/twilio/test", response_class=HTMLResponse)
async def test_twilio(request: Request, user: PanelAdmin) -> Response:
    """Try the Twilio credentials in effect and say what happened."""
    result = await run_in_threadpool(twilio_settings.test_connection)
    return render(request, "admin/_test_result.html", {"result": result}, user=user)


@router.post("/settings/sandbox-credentials", response_class=HTMLResponse)
def reveal_sandbox_token(request: Request, user: PanelAdmin) -> Response:
    """The sandbox's auth token for an admin who asked to see it (audited; never cached)."""
    account = current_account()
    if not account.sandbox:
        raise Conflict(N_("The sandbox is off: relaydesk is connected to live Twilio"), params={})
    with session_scope() as session:
        audit.record(session, user.actor, "settings.sandbox.reveal", target="sandbox")
    context = {"auth_token": account.auth_token}
    return render(request, "admin/_sandbox_token.html", context, user=user)


def _users_context(new_token: str | None = None) -> dict[str, Any]:
    with session_scope(write=False) as session:
        users = auth.list_users(session)
        tokens = auth.list_tokens(session)
        emails = {u.id: u.email for u in users}
        return {
            "tab": "users",
            "users": users,
            "tokens": tokens,
            "emails": emails,
            "roles": ROLES,
            "new_token": new_token,
        }


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request, user: PanelAdmin) -> Response:
    """Who can sign in, with which role, and the API tokens."""
    return render(request, "admin/users.html", _users_context(), user=user)


def _users_section(request: Request, user: SignedIn, notice: str) -> Response:
    context = {**_users_context(), "notice": notice}
    return render(request, "admin/_users.html", context, user=user)


@router.post("/users", response_class=HTMLResponse)
def create_user(
    request: Request,
    user: PanelAdmin,
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    role: Annotated[str, Form(max_length=16)] = "operator",
    name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Add a user."""
    with session_scope() as session:
        auth.create_user(session, email, password, role, user.actor, name or None)
    return _users_section(request, user, "user_created")


@router.post("/users/{user_id}", response_class=HTMLResponse)
def update_user(
    request: Request,
    user_id: Id,
    user: PanelAdmin,
    role: Annotated[str | None, Form(max_length=16)] = None,
    is_active: Annotated[str | None, Form(pattern="^(true|false)$")] = None,
    password: Annotated[str | None, Form(max_length=1024)] = None,
    name: Annotated[str | None, Form(max_length=200)] = None,
) -> Response:
    """Change a user's role or name, lock or unlock them, or set a new password."""
    with session_scope() as session:
        auth.update_user(
            session,
            user_id,
            role=role or None,
            is_active=None if is_active is None else is_active == "true",
            password=password or None,
            name=name,
            actor=user.principal,
        )
    return _users_section(request, user, "user_updated")


@router.post("/tokens", response_class=HTMLResponse)
def create_token(
    request: Request,
    user: PanelAdmin,
    name: Annotated[str, Form(max_length=100)] = "",
    role: Annotated[str, Form(max_length=16)] = "operator",
) -> Response:
    """Create an API token; its value is shown this once."""
    with session_scope() as session:
        _, plain = auth.create_token(session, name, role, user.actor, user_id=user.user_id)
    context = {**_users_context(new_token=plain), "notice": "token_created"}
    return render(request, "admin/_users.html", context, user=user)


@router.post("/tokens/{token_id}/revoke", response_class=HTMLResponse)
def revoke_token(request: Request, token_id: Id, user: PanelAdmin) -> Response:
    """Revoke an API token at once."""
    with session_scope() as session:
        auth.revoke_token(session, token_id, user.actor)
    return _users_section(request, user, "token_revoked")


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    user: PanelAdmin,
    action: Annotated[str | None, Query(max_length=100)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Who changed what, newest first."""
    with session_scope(write=False) as session:
        items, nxt = audit.list_audit(session, limit=50, cursor=cursor, action=action or None)
    context = {"tab": "audit", "items": items, "next": nxt, "action": action or "", **_spool()}
    return render(request, "admin/audit.html", context, user=user)


# The newest dead letters shown; "Retry all" and the CLI reach the rest.
DEAD_LETTERS_SHOWN = 100
DEAD_LETTER_ID = r"^[0-9a-f]{12}$"


def _spool(**extra: Any) -> dict[str, Any]:
    """The webhook spool's counts and newest dead letters (files on disk, no database)."""
    return {
        "spool_counts": spool.counts(),
        "dead_letters": spool.dead_letters()[:DEAD_LETTERS_SHOWN],
        **extra,
    }


@router.post("/audit/spool/retry", response_class=HTMLResponse)
def retry_dead_letters(
    request: Request,
    user: PanelAdmin,
    entry_id: Annotated[str | None, Form(alias="id", pattern=DEAD_LETTER_ID)] = None,
) -> Response:
    """Try one dead letter again (all of them without an id)."""
    outcome = spool.retry(None if entry_id is None else [entry_id], user.actor)
    return render(request, "admin/_spool.html", _spool(outcome=outcome), user=user)


@router.post("/audit/spool/drop", response_class=HTMLResponse)
def drop_dead_letter(
    request: Request,
    user: PanelAdmin,
    entry_id: Annotated[str, Form(alias="id", pattern=DEAD_LETTER_ID)],
) -> Response:
    """Delete one dead letter for good (recorded in the audit log)."""
    spool.drop([entry_id], user.actor)
    return render(request, "admin/_spool.html", _spool(dropped=True), user=user)
