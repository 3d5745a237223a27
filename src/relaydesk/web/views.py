"""Panel frame: sign in and out, language, the front page, static files and headers."""

from __future__ import annotations

import math
import secrets
from typing import Annotated

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import update
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relaydesk.auth import service as auth
from relaydesk.auth import sessions
from relaydesk.auth.models import User
from relaydesk.channels.sandbox.views import router as sandbox_router
from relaydesk.core import domains
from relaydesk.core.config import get_settings
from relaydesk.core.db import session_scope
from relaydesk.core.i18n import LANGUAGES, translate_stored, translations
from relaydesk.deps import CurrentPrincipal
from relaydesk.web.context import (
    LANGUAGE_COOKIE,
    clear_session_cookie,
    is_secure,
    request_language,
    session_token,
    set_session_cookie,
    signed_in,
    signed_in_async,
)
from relaydesk.web.deps import PanelViewer, check_csrf, same_origin
from relaydesk.web.live import router as live_router
from relaydesk.web.templating import STATIC_DIR, render

router = APIRouter(include_in_schema=False)

LOGIN_CSRF_COOKIE = "relaydesk_login_csrf"
HOME = "/inbox"  # the team inbox is where a day starts


def safe_next(target: str | None) -> str:
    """Only same-site paths are followed after sign-in (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return HOME
    return target


def client_ip(request: Request) -> str:
    """The caller's address (uvicorn applies X-Forwarded-For from trusted proxies)."""
    return request.client.host if request.client else "unknown"


@router.get("/")
def home(request: Request) -> Response:
    """The front page is the inbox."""
    return RedirectResponse(HOME if signed_in(request) else "/login", status_code=303)


def _login_page(
    request: Request, next_url: str, error: str | None = None, email: str = "", status: int = 200
) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(
        request,
        "login.html",
        {"next": next_url, "error": error, "email": email, "login_csrf": token},
        status_code=status,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        secure=is_secure(request),
        samesite="strict",
        path="/login",
    )
    return response


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    """The sign-in form."""
    if signed_in(request):
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_page(request, safe_next(next))


@router.post("/login")
def login(
    request: Request,
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    login_csrf: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = HOME,
) -> Response:
    """Check the password, start a session, go where the user was going."""
    _ = translations(request_language(request)).gettext
    target = safe_next(next)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not (
        login_csrf and expected and secrets.compare_digest(login_csrf, expected)
    ) or not same_origin(request):
        return _login_page(
            request, target, _("The form expired; please sign in again."), email, status=403
        )
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in email):
        # No account has such an address (and PostgreSQL cannot even compare a NUL).
        return _login_page(request, target, _("Wrong email or password."), "", status=401)
    ip = client_ip(request)
    with session_scope() as session:
        # Checked before the password: while it waits, an address learns nothing, not
        # even whether a guess was right.
        throttle = sessions.login_throttle(session, email, ip)
        if throttle is not None:
            minutes = math.ceil(throttle.seconds / 60)
            page = _login_page(
                request,
                target,
                _("Too many failed attempts. Try again in %(minutes)d min.") % {"minutes": minutes},
                email,
                status=429,
            )
            page.headers["Retry-After"] = str(throttle.seconds)
            return page
        user = auth.authenticate_password(session, email, password)
        if user is None:
            sessions.record_failure(session, email, ip)
            return _login_page(request, target, _("Wrong email or password."), email, status=401)
        sessions.clear_failures(session, user.email, ip)
        token = sessions.start_session(session, user, ip, request.headers.get("user-agent"))
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, request, token)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, user: PanelViewer) -> Response:
    """End this browser's session."""
    with session_scope() as session:
        sessions.end_session(session, session_token(request))
    response = RedirectResponse("/login", status_code=303)
    clear_session_cookie(response)
    return response


def _remember_language(user_id: int, language: str) -> None:
    with session_scope() as session:
        session.execute(update(User).where(User.id == user_id).values(language=language))


class StoredTexts(BaseModel):
    """English notes the API answered, for the panel's scripts to show translated."""

    model_config = ConfigDict(extra="forbid")

    texts: list[Annotated[str, Field(max_length=4000)]] = Field(max_length=100)


@router.post("/said")
def said(request: Request, user: PanelViewer, payload: StoredTexts) -> JSONResponse:
    """The texts in the signed-in person's language (core.i18n.translate_stored), in order.

    The API answers in English; the panel's own scripts (the Voice bot tab) show its job
    progress, failures and connection-test results through this, as templates do with said().
    """
    language = request_language(request, user)
    return JSONResponse({"texts": [translate_stored(language, text) for text in payload.texts]})


@router.post("/language")
async def choose_language(request: Request) -> Response:
    """Remember the chosen language (for the user, and in a cookie for the login page)."""
    form = await request.form()
    language = str(form.get("language", ""))
    target = safe_next(str(form.get("next", "")) or None)
    user = await signed_in_async(request)
    if user is not None:
        await check_csrf(request, user)
    if language not in LANGUAGES:
        return RedirectResponse(target, status_code=303)
    if user is not None:
        await run_in_threadpool(_remember_language, user.user_id, language)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        LANGUAGE_COOKIE, language, max_age=365 * 86400, samesite="lax", secure=is_secure(request)
    )
    return response


@router.get("/docs")
def api_docs(request: Request, user: PanelViewer) -> Response:
    """The REST API's reference (Swagger UI served from this server)."""
    return render(request, "docs.html", {"tab": "docs"}, user=user)


@router.get("/openapi.json")
def openapi_document(request: Request, principal: CurrentPrincipal) -> JSONResponse:
    """The OpenAPI description, for signed-in users and API tokens."""
    return JSONResponse(request.app.openapi())


# Scripts come only from this server; inline styles are allowed for htmx's swaps.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)


class SecurityHeaders:
    """Adds browser-hardening headers to every answer (a CSP to HTML pages)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                ]
                content_type = dict(headers).get(b"content-type", b"")
                if content_type.startswith(b"text/html"):
                    extra += [
                        (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
                        (b"x-frame-options", b"DENY"),
                        (b"cache-control", b"no-store"),
                    ]
                headers += [(k, v) for k, v in extra if k not in names]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def install_panel(app: FastAPI) -> None:
    """Mount the panel's pages, static files and headers on the application."""
    app.include_router(router)
    app.include_router(live_router)
    for module in domains.load("views"):
        app.include_router(module.router)
    if get_settings().embedded_sandbox:
        app.include_router(sandbox_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(SecurityHeaders)
