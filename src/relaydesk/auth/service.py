"""Users, passwords and API tokens."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from relaydesk.auth.models import ROLE_RANK, ROLES, ApiToken, User
from relaydesk.core import audit
from relaydesk.core.db import session_scope, utcnow
from relaydesk.core.errors import Conflict, Invalid, NotFound
from relaydesk.core.i18n import N_

TOKEN_PREFIX = "rd_"  # noqa: S105 (a prefix, not a secret)
_hasher = PasswordHasher()

# Called inside the transaction that deactivates a user (the panel registers the
# purge of that user's browser sessions); a hook that raises aborts the change.
USER_DISABLED_HOOKS: list[Callable[[Session, int], None]] = []
# Called inside the transaction that gives a user a new password.
PASSWORD_CHANGED_HOOKS: list[Callable[[Session, int], None]] = []


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user, an API token or the system, with a role."""

    kind: str  # "token" | "user" | "system"
    id: int
    role: str
    name: str
    owner_id: int | None = None  # for a token: the user who made it, if any

    @property
    def actor(self) -> str:
        """How the audit log names this principal."""
        if self.kind == "system":
            return self.name
        return f"{self.kind}:{self.id}:{self.name}"

    @property
    def user_id(self) -> int | None:
        """The user acting: the signed-in user, or the owner of the token used."""
        return self.id if self.kind == "user" else self.owner_id


def system_principal(name: str) -> Principal:
    """An administrator that is not a person, e.g. the `relaydesk` command ("cli")."""
    return Principal("system", 0, "admin", name)


def hash_password(password: str) -> str:
    """An argon2id hash of `password`."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when `password` matches the stored hash."""
    try:
        return bool(_hasher.verify(password_hash, password))
    except (VerificationError, InvalidHashError):
        return False


def normalize_email(email: str) -> str:
    """The stored form of an email (trimmed, lower case); Invalid when it is not one."""
    email = email.strip().lower()
    if "@" not in email or len(email) > 254:
        raise Invalid(
            N_("'%(email)s' is not an email address"), params={"email": email}, field="email"
        )
    return email


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise Invalid(
            N_("role must be one of %(roles)s"), params={"roles": ", ".join(ROLES)}, field="role"
        )


MAX_NAME = 100
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def clean_name(name: str | None) -> str | None:
    """A person's display name as stored: trimmed, 1 to 100 characters, one line; "" → None."""
    if name is None:
        return None
    name = " ".join(name.split())
    if not name:
        return None
    if len(name) > MAX_NAME:
        raise Invalid(
            N_("a name has at most %(max)s characters"), params={"max": MAX_NAME}, field="name"
        )
    if _CONTROL.search(name) or "@" in name:
        raise Invalid(
            N_("a name is one line of text without control characters or @"),
            params={},
            field="name",
        )
    return name


def _check_password(password: str) -> None:
    if len(password) < 8:
        raise Invalid(
            N_("the password must be at least 8 characters long"), params={}, field="password"
        )


def create_user(
    session: Session, email: str, password: str, role: str, actor: str, name: str | None = None
) -> User:
    """Create a user; the email must be new and the password at least 8 characters."""
    email = normalize_email(email)
    name = clean_name(name)
    _check_role(role)
    _check_password(password)
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict(N_("a user with email %(email)s already exists"), params={"email": email})
    user = User(
        email=email,
        name=name,
        password_hash=hash_password(password),
        role=role,
        created_at=utcnow(),
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError:
        # Created by another transaction between the check above and this insert.
        raise Conflict(
            N_("a user with email %(email)s already exists"), params={"email": email}
        ) from None
    audit.record(session, actor, "user.create", f"user:{user.id}", {"email": email, "role": role})
    return user


def count_users(session: Session) -> int:
    """How many users exist."""
    return int(session.scalar(select(func.count(User.id))) or 0)


def list_users(session: Session) -> list[User]:
    """Every user, by email."""
    return list(session.scalars(select(User).order_by(User.email)))


def get_user(session: Session, user_id: int) -> User:
    """One user; NotFound when there is none with this id."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(N_("user %(id)s does not exist"), params={"id": user_id})
    return user


def get_user_by_email(session: Session, email: str) -> User:
    """The user with this email (any case); NotFound when there is none."""
    email = email.strip().lower()
    user = session.scalar(select(User).where(User.email == email))
    if user is None:
        raise NotFound(N_("there is no user with email %(email)s"), params={"email": email})
    return user


def update_user(
    session: Session,
    user_id: int,
    *,
    role: str | None = None,
    is_active: bool | None = None,
    password: str | None = None,
    name: str | None = None,
    actor: Principal,
) -> User:
    """Change a user's role, active flag, password or name ("" clears it); audited."""
    user = get_user(session, user_id)
    if name is not None and clean_name(name) != user.name:
        old_name, user.name = user.name, clean_name(name)
        audit.record(
            session,
            actor.actor,
            "user.rename",
            f"user:{user.id}",
            {"email": user.email, "from": old_name, "to": user.name},
        )
    if role is not None:
        _check_role(role)
    if password is not None:
        _check_password(password)
    new_role = user.role if role is None else role
    new_active = user.is_active if is_active is None else is_active
    changed = [
        name
        for name, old, new in (
            ("role", user.role, new_role),
            ("is_active", user.is_active, new_active),
        )
        if old != new
    ]
    loses_admin = (
        user.role == "admin" and user.is_active and not (new_role == "admin" and new_active)
    )
    if loses_admin:
        _check_may_lose_admin(session, user, actor)
    target = f"user:{user.id}"
    if changed:
        lowered = ROLE_RANK[new_role] < ROLE_RANK[user.role]
        user.role, user.is_active = new_role, new_active
        audit.record(
            session,
            actor.actor,
            "user.update",
            target,
            {"email": user.email, "fields": changed, "role": new_role, "is_active": new_active},
        )
        if "is_active" in changed and not new_active:
            _revoke_user_tokens(session, user.id, actor.actor, "user deactivated")
            for hook in USER_DISABLED_HOOKS:
                hook(session, user.id)
        elif lowered:
            # A token may not outrank the person who made it.
            _revoke_user_tokens(session, user.id, actor.actor, "user role lowered", new_role)
    if password is not None:
        user.password_hash = hash_password(password)
        audit.record(session, actor.actor, "user.password_reset", target, {"email": user.email})
        for hook in PASSWORD_CHANGED_HOOKS:
            hook(session, user.id)
    session.flush()
    return user


def _check_may_lose_admin(session: Session, user: User, actor: Principal) -> None:
    """Refuse to demote or deactivate oneself, or the last active administrator."""
    if actor.user_id == user.id:
        raise Conflict(
            N_(
                "You cannot remove your own administrator rights or deactivate yourself; "
                "ask another administrator"
            ),
            params={},
        )
    # Lock the active administrators so that two admins demoting each other at the
    # same moment cannot both succeed (SQLite serialises writers anyway).
    admins = session.scalars(
        select(User.id).where(User.role == "admin", User.is_active.is_(True)).with_for_update()
    ).all()
    if not set(admins) - {user.id}:
        raise Conflict(
            N_(
                "%(email)s is the last active administrator; make someone else an "
                "administrator first"
            ),
            params={"email": user.email},
        )


def _revoke_user_tokens(
    session: Session, user_id: int, actor: str, reason: str, max_role: str | None = None
) -> None:
    """Revoke a user's live tokens (only those above `max_role` when it is given)."""
    tokens = session.scalars(
        select(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
    ).all()
    now = utcnow()
    for token in tokens:
        if max_role is not None and ROLE_RANK[token.role] <= ROLE_RANK[max_role]:
            continue
        token.revoked_at = now
        audit.record(
            session,
            actor,
            "token.revoke",
            f"token:{token.id}",
            {"name": token.name, "reason": reason},
        )


@cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def authenticate_password(session: Session, email: str, password: str) -> User | None:
    """The active user with this email and password, or None; records the sign-in time."""
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        # Spend the same time as a real check so answers do not reveal which emails exist.
        verify_password(_dummy_hash(), password)
        return None
    if not verify_password(user.password_hash, password) or not user.is_active:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = utcnow()
    session.flush()
    return user


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    session: Session, name: str, role: str, actor: str, user_id: int | None = None
) -> tuple[ApiToken, str]:
    """Create an API token; the plain token is returned once and never stored.

    With `user_id` the token acts as that user (assignee=me, notes and mentions over the
    API): the user must be active, and the token's role cannot be above theirs.
    """
    name = name.strip()
    if not name or len(name) > 100:
        raise Invalid(N_("a token needs a name of 1 to 100 characters"), params={}, field="name")
    _check_role(role)
    if user_id is not None:
        owner = session.get(User, user_id)
        if owner is None:
            raise Invalid(N_("No user has the id %(id)s"), params={"id": user_id}, field="user_id")
        if not owner.is_active:
            raise Invalid(
                N_("%(email)s is deactivated: a token cannot act as them"),
                params={"email": owner.email},
                field="user_id",
            )
        if ROLE_RANK[role] > ROLE_RANK[owner.role]:
            raise Invalid(
                N_("A token acting as %(email)s (%(user_role)s) cannot have the role %(role)s"),
                params={"email": owner.email, "user_role": owner.role, "role": role},
                field="role",
            )
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        name=name,
        token_hash=_digest(plain),
        prefix=plain[:10],
        role=role,
        user_id=user_id,
        created_at=utcnow(),
    )
    session.add(token)
    session.flush()
    audit.record(session, actor, "token.create", f"token:{token.id}", {"name": name, "role": role})
    return token, plain


def list_tokens(session: Session, include_revoked: bool = True) -> list[ApiToken]:
    """API tokens, newest first."""
    query = select(ApiToken).order_by(ApiToken.id.desc())
    if not include_revoked:
        query = query.where(ApiToken.revoked_at.is_(None))
    return list(session.scalars(query))


def revoke_token(session: Session, token_id: int, actor: str) -> ApiToken:
    """Revoke a token at once; revoking a revoked token changes nothing."""
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(N_("token %(id)s does not exist"), params={"id": token_id})
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit.record(session, actor, "token.revoke", f"token:{token.id}", {"name": token.name})
        session.flush()
    return token


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
    return Principal("token", token.id, token.role, token.name, token.user_id)


def _touch_token(token_id: int) -> None:
    """Record that a token was used; once a minute is enough, so reads stay reads."""
    with session_scope() as session:
        session.execute(
            update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=utcnow())
        )
