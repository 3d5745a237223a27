"""Users, passwords and API tokens."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from relaydesk.admin import service as audit
from relaydesk.auth.models import ROLES, ApiToken, User
from relaydesk.db import utcnow
from relaydesk.errors import Conflict, Invalid

TOKEN_PREFIX = "rd_"  # noqa: S105 (a prefix, not a secret)
_hasher = PasswordHasher()


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user or an API token, with a role."""

    kind: str  # "token" | "user"
    id: int
    role: str
    name: str

    @property
    def actor(self) -> str:
        """How the audit log names this principal."""
        return f"{self.kind}:{self.id}:{self.name}"


def hash_password(password: str) -> str:
    """An argon2id hash of `password`."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when `password` matches the stored hash."""
    try:
        return bool(_hasher.verify(password_hash, password))
    except (VerificationError, InvalidHashError):
        return False


def create_user(session: Session, email: str, password: str, role: str, actor: str) -> User:
    """Create a user; the email must be new and the password at least 8 characters."""
    email = email.strip().lower()
    if "@" not in email or len(email) > 254:
        raise Invalid(f"'{email}' is not an email address")
    if role not in ROLES:
        raise Invalid(f"role must be one of {', '.join(ROLES)}")
    if len(password) < 8:
        raise Invalid("the password must be at least 8 characters long")
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict(f"a user with email {email} already exists")
    user = User(email=email, password_hash=hash_password(password), role=role, created_at=utcnow())
    session.add(user)
    session.flush()
    audit.record(session, actor, "user.create", f"user:{user.id}", {"email": email, "role": role})
    return user


def count_users(session: Session) -> int:
    """How many users exist."""
    return int(session.scalar(select(func.count(User.id))) or 0)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, name: str, role: str, actor: str) -> tuple[ApiToken, str]:
    """Create an API token; the plain token is returned once and never stored."""
    name = name.strip()
    if not name or len(name) > 100:
        raise Invalid("a token needs a name of 1 to 100 characters")
    if role not in ROLES:
        raise Invalid(f"role must be one of {', '.join(ROLES)}")
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        name=name, token_hash=_digest(plain), prefix=plain[:10], role=role, created_at=utcnow()
    )
    session.add(token)
    session.flush()
    audit.record(session, actor, "token.create", f"token:{token.id}", {"name": name, "role": role})
    return token, plain


TOUCH_INTERVAL = timedelta(minutes=1)


def authenticate_token(session: Session, plain: str) -> Principal | None:
    """The principal for a bearer token, or None when it is unknown or revoked."""
    if not plain.startswith(TOKEN_PREFIX) or len(plain) > 200:
        return None
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == _digest(plain)))
    if token is None or token.revoked_at is not None:
        return None
    if token.last_used_at is None or utcnow() - token.last_used_at > TOUCH_INTERVAL:
        _touch_token(token.id)
    return Principal("token", token.id, token.role, token.name)


def _touch_token(token_id: int) -> None:
    """Record that a token was used; once a minute is enough, so reads stay reads."""
    from relaydesk.db import session_scope

    with session_scope() as session:
        session.execute(
            update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=utcnow())
        )
