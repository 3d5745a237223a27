"""What every panel request needs to know: who is signed in, the language, the mode."""

from __future__ import annotations

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from relaydesk.auth.sessions import ABSOLUTE_TIMEOUT, SignedIn, load_session
from relaydesk.channels.twilio.account import current_account
from relaydesk.core.db import get_sessionmaker
from relaydesk.core.i18n import pick_language

SESSION_COOKIE = "relaydesk_session"
# With HTTPS the cookie gets the __Host- prefix: Secure, Path=/, never shared with subdomains.
SECURE_SESSION_COOKIE = "__Host-relaydesk_session"
LANGUAGE_COOKIE = "relaydesk_lang"


def session_token(request: Request) -> str | None:
    """The session cookie's value, whichever of its two names it was set under."""
    return request.cookies.get(SECURE_SESSION_COOKIE) or request.cookies.get(SESSION_COOKIE)


def signed_in(request: Request) -> SignedIn | None:
    """The signed-in user of this request (looked up once per request)."""
    if "signed_in" not in request.state._state:
        token = session_token(request)
        user = None
        if token:
            session = get_sessionmaker()()
            try:
                user = load_session(session, token)
            finally:
                session.close()
        request.state.signed_in = user
    result: SignedIn | None = request.state.signed_in
    return result


async def signed_in_async(request: Request) -> SignedIn | None:
    """`signed_in` for async code: the database lookup runs in a worker thread.

    On SQLite a lookup can wait for a busy writer; on the event loop that wait would
    stall every other request and webhook of the process.
    """
    if "signed_in" in request.state._state:
        cached: SignedIn | None = request.state.signed_in
        return cached
    return await run_in_threadpool(signed_in, request)


def is_secure(request: Request) -> bool:
    """True when the browser reaches us over HTTPS (directly or through a proxy)."""
    public = current_account().public_base_url or ""
    return request.url.scheme == "https" or public.startswith("https://")


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    """Hand the browser its session: HttpOnly, SameSite=Lax, Secure over HTTPS."""
    secure = is_secure(request)
    response.set_cookie(
        SECURE_SESSION_COOKIE if secure else SESSION_COOKIE,
        token,
        max_age=int(ABSOLUTE_TIMEOUT.total_seconds()),
        httponly=True,
        secure=secure,
        samesite="lax",
        path="/",
    )


def clear_session_cookie(response: Response) -> None:
    """Remove the session cookie under both names."""
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(SECURE_SESSION_COOKIE, path="/", secure=True)


def request_language(request: Request, user: SignedIn | None = None) -> str:
    """The language to answer in: the user's choice, the cookie, then the browser's."""
    user = user or signed_in(request)
    return pick_language(
        user.language if user else None,
        request.cookies.get(LANGUAGE_COOKIE),
        request.headers.get("accept-language"),
    )


def environment_mode() -> str:
    """'sandbox' or 'live', for the header badge."""
    return current_account().mode
