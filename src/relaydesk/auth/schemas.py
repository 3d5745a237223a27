"""API shapes of users and API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["admin", "operator", "viewer"]


class UserOut(BaseModel):
    """A panel user as the API shows it (never the password hash)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    name: str | None = Field(
        description="how colleagues see this person; null: the e-mail's local part"
    )
    role: str
    is_active: bool
    language: str | None
    created_at: datetime
    last_login_at: datetime | None


class UserList(BaseModel):
    """Every user, by email."""

    items: list[UserOut]


class UserCreateIn(BaseModel):
    """A new user."""

    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=254)
    password: str = Field(max_length=1024)
    role: Role
    name: str | None = Field(default=None, max_length=200)


class UserUpdateIn(BaseModel):
    """Changes to a user; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    is_active: bool | None = None
    password: str | None = Field(default=None, max_length=1024)
    name: str | None = Field(default=None, max_length=200, description='"" clears it')


class TokenOut(BaseModel):
    """An API token without its secret."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    prefix: str
    role: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    user_id: int | None


class TokenList(BaseModel):
    """API tokens, newest first, revoked ones included."""

    items: list[TokenOut]


class TokenCreateIn(BaseModel):
    """A new API token."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=100)
    role: Role
    user_id: int | None = Field(
        default=None,
        ge=1,
        le=2**63 - 1,
        description="the user the token acts as (default: the administrator creating it)",
    )


class TokenCreatedOut(TokenOut):
    """A new API token with its secret, which is never shown again."""

    token: str
