"""Request dependencies as Annotated aliases: sessions and the authenticated caller."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.orm import Session

from relaydesk.auth.models import ROLE_RANK
from relaydesk.auth.service import Principal, authenticate_token
from relaydesk.core.db import get_sessionmaker, session_scope
from relaydesk.core.errors import Forbidden, Unauthorized
from relaydesk.core.i18n import N_
from relaydesk.web.context import signed_in
from relaydesk.web.deps import CSRF_HEADER, verify_csrf


def _read_session() -> Iterator[Session]:
    session = get_sessionmaker()()
    try:
        yield session
    finally:
        session.close()


def _write_session() -> Iterator[Session]:
    with session_scope() as session:
        session.info["boundary"] = "request"
        yield session


# scope="function": the session ends when the route returns, before the response is sent.
# A write route's work is committed (or its failure turned into a 5xx) before the client
# hears 2xx; routes and services never commit themselves. FastAPI's default scope, the
# request, would commit only after the response had gone out.
SessionDep = Annotated[Session, Depends(_read_session, scope="function")]
WriteSessionDep = Annotated[Session, Depends(_write_session, scope="function")]


# Row ids are 64-bit: a larger number in a path is a 422, never a database error.
MAX_ID = 2**63 - 1
Id = Annotated[int, Path(ge=1, le=MAX_ID, description="a row id")]


def current_principal(request: Request) -> Principal:
    """The caller named by `Authorization: Bearer <token>`, or the panel's signed-in user."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if not header:
        user = _panel_user(request)
        if user is not None:
            return user
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized(N_("Send an API token as 'Authorization: Bearer <token>'"), params={})
    session = get_sessionmaker()()
    try:
        principal = authenticate_token(session, value.strip())
    finally:
        session.close()
    if principal is None:
        raise Unauthorized(N_("The API token is unknown or was revoked"), params={})
    return principal


def _panel_user(request: Request) -> Principal | None:
    """The panel's session, for the panel's own calls to the API (CSRF header required)."""
    user = signed_in(request)
    if user is None:
        return None
    verify_csrf(request, user, request.headers.get(CSRF_HEADER))
    return user.principal


def require(role: str) -> object:
    """A dependency that lets through callers with at least `role`."""

    def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if ROLE_RANK[principal.role] < ROLE_RANK[role]:
            raise Forbidden(
                N_("This needs the %(role)s role; your token is %(current)s"),
                params={"role": role, "current": principal.role},
            )
        return principal

    return Depends(check)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
Viewer = Annotated[Principal, require("viewer")]
Operator = Annotated[Principal, require("operator")]
Admin = Annotated[Principal, require("admin")]
