"""REST routes for managing users and API tokens (administrators only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from relaydesk.auth import service
from relaydesk.auth.schemas import (
    TokenCreatedOut,
    TokenCreateIn,
    TokenList,
    TokenOut,
    UserCreateIn,
    UserList,
    UserOut,
    UserUpdateIn,
)
from relaydesk.deps import Admin, Id, SessionDep, WriteSessionDep

router = APIRouter(tags=["users and tokens"])
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "Last administrator, own rights, or email taken"}
}


@router.get("/api/users", response_model=UserList)
def list_users(principal: Admin, session: SessionDep) -> Any:
    """Every user, by email."""
    return {"items": service.list_users(session)}


@router.post("/api/users", status_code=201, response_model=UserOut, responses=_CONFLICT)
def create_user(payload: UserCreateIn, principal: Admin, session: WriteSessionDep) -> Any:
    """Create a panel user."""
    user = service.create_user(
        session, payload.email, payload.password, payload.role, principal.actor, payload.name
    )
    return user


@router.get("/api/users/{user_id}", response_model=UserOut)
def get_user(user_id: Id, principal: Admin, session: SessionDep) -> Any:
    """One user."""
    return service.get_user(session, user_id)


@router.patch("/api/users/{user_id}", response_model=UserOut, responses=_CONFLICT)
def update_user(
    user_id: Id, payload: UserUpdateIn, principal: Admin, session: WriteSessionDep
) -> Any:
    """Change a user's role, active flag or password; deactivating revokes their tokens."""
    user = service.update_user(
        session,
        user_id,
        role=payload.role,
        is_active=payload.is_active,
        password=payload.password,
        name=payload.name,
        actor=principal,
    )
    return user


@router.get("/api/tokens", response_model=TokenList)
def list_tokens(principal: Admin, session: SessionDep) -> Any:
    """API tokens, newest first, revoked ones included."""
    return {"items": service.list_tokens(session)}


@router.post("/api/tokens", status_code=201, response_model=TokenCreatedOut)
def create_token(payload: TokenCreateIn, principal: Admin, session: WriteSessionDep) -> Any:
    """Create an API token; the answer holds the token, which is never shown again."""
    acts_as = payload.user_id if "user_id" in payload.model_fields_set else principal.user_id
    token, plain = service.create_token(
        session, payload.name, payload.role, principal.actor, user_id=acts_as
    )
    return {**TokenOut.model_validate(token).model_dump(), "token": plain}


@router.delete("/api/tokens/{token_id}", status_code=204)
def revoke_token(token_id: Id, principal: Admin, session: WriteSessionDep) -> Response:
    """Revoke an API token at once; it stays listed as revoked."""
    service.revoke_token(session, token_id, principal.actor)
    return Response(status_code=204)
