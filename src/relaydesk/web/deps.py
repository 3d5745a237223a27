"""Panel request dependencies: signed-in users by role, and CSRF checks."""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request

from relaydesk.auth.models import ROLE_RANK
from relaydesk.auth.sessions import SignedIn
from relaydesk.core.errors import Forbidden, RelaydeskError
from relaydesk.core.i18n import N_
from relaydesk.web.context import signed_in_async

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"


class LoginRequired(RelaydeskError):
    """No valid session: pages redirect to the login form."""

    status_code = 401
    code = "login_required"

    def __init__(self, next_url: str) -> None:
        super().__init__("Sign in to continue")
        self.next_url = next_url


def login_url(next_url: str) -> str:
    """The login page that brings the user back to `next_url` afterwards."""
    return f"/login?next={quote(next_url, safe='/')}"


def same_origin(request: Request) -> bool:
    """False when the browser says the request came from another site.

    The Host header is the one the browser used: a trusted proxy's X-Forwarded-Host has
    replaced it already, and anyone else's was dropped (relaydesk.core.proxies).
    """
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


def verify_csrf(request: Request, user: SignedIn, sent: str | None) -> None:
    """Refuse a state-changing request whose token is not this session's, or cross-site."""
    if request.method not in UNSAFE_METHODS:
        return
    if not sent or not secrets.compare_digest(sent, user.csrf_token):
        raise Forbidden(
            N_(
                "The form expired or did not come from this panel (CSRF check failed); "
                "reload the page and try again"
            ),
            params={},
            code="csrf",
        )
    if not same_origin(request):
        raise Forbidden(N_("The request came from another site"), params={}, code="csrf")


async def check_csrf(request: Request, user: SignedIn) -> None:
    """`verify_csrf` with the token from the X-CSRF-Token header or the form field."""
    if request.method not in UNSAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    verify_csrf(request, user, sent)


def require_user(role: str) -> object:
    """A dependency: a signed-in user with at least `role`, CSRF-checked when writing."""

    async def check(request: Request) -> SignedIn:
        user = await signed_in_async(request)
        if user is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise LoginRequired(target if request.method == "GET" else "/")
        await check_csrf(request, user)
        if ROLE_RANK[user.role] < ROLE_RANK[role]:
            raise Forbidden(
                N_("This needs the %(role)s role; you are signed in as %(current)s"),
                params={"role": role, "current": user.role},
            )
        return user

    return Depends(check)


PanelViewer = Annotated[SignedIn, require_user("viewer")]
PanelOperator = Annotated[SignedIn, require_user("operator")]
PanelAdmin = Annotated[SignedIn, require_user("admin")]
