"""Panel sign-in: browser sessions, CSRF tokens and login throttling."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from relaydesk.admin import service as audit
from relaydesk.auth.models import LoginFailure, User, WebSession
from relaydesk.db import utcnow

# A working day of inactivity signs a browser out; a week signs it out regardless.
IDLE_TIMEOUT = timedelta(hours=12)
ABSOLUTE_TIMEOUT = timedelta(days=7)
TOUCH_INTERVAL = timedelta(minutes=1)

# Password guessing: this many failures within the window lock the email (and the
# address they come from) until the oldest failure leaves the window.
FAILURE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_EMAIL = 5
MAX_FAILURES_PER_IP = 20


@dataclass(frozen=True)
class SignedIn:
    """The user behind a valid session cookie."""

    session_id: int
    user_id: int
    email: str
    role: str
    language: str | None
    csrf_token: str

    @property
    def actor(self) -> str:
        """How the audit log names this user (the same form as `Principal.actor`)."""
        return f"user:{self.user_id}:{self.email}"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(session: Session, user: User, ip: str | None, user_agent: str | None) -> str:
    """Create a session for `user`; returns the cookie value (shown to nobody else)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        WebSession(
            token_hash=_digest(token),
            user_id=user.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            expires_at=now + ABSOLUTE_TIMEOUT,
            ip=(ip or "")[:64] or None,
            user_agent=(user_agent or "")[:200] or None,
        )
    )
    audit.record(session, f"user:{user.id}:{user.email}", "auth.login", f"user:{user.id}")
    return token


def load_session(session: Session, token: str | None) -> SignedIn | None:
    """The signed-in user for a cookie value, or None when it is unknown or expired."""
    if not token or len(token) > 100:
        return None
    row = session.execute(
        select(WebSession, User)
        .join(User, User.id == WebSession.user_id)
        .where(WebSession.token_hash == _digest(token))
    ).first()
    if row is None:
        return None
    web, user = row
    now = utcnow()
    if not user.is_active or web.expires_at <= now or now - web.last_seen_at > IDLE_TIMEOUT:
        return None
    if now - web.last_seen_at > TOUCH_INTERVAL:
        _touch(web.id)
    return SignedIn(web.id, user.id, user.email, user.role, user.language, web.csrf_token)


def _touch(session_id: int) -> None:
    """Keep an active session alive; once a minute is enough, so page loads stay reads."""
    from relaydesk.db import session_scope

    with session_scope() as session:
        session.execute(
            update(WebSession).where(WebSession.id == session_id).values(last_seen_at=utcnow())
        )


def end_session(session: Session, token: str | None) -> None:
    """Sign a browser out (its cookie stops working at once)."""
    if token:
        session.execute(delete(WebSession).where(WebSession.token_hash == _digest(token)))


def end_user_sessions(session: Session, user_id: int) -> None:
    """Sign a user out everywhere (deactivated, password changed)."""
    session.execute(delete(WebSession).where(WebSession.user_id == user_id))


def purge_expired(session: Session) -> int:
    """Delete expired sessions and old login failures; returns the sessions removed."""
    now = utcnow()
    result = session.execute(
        delete(WebSession).where(
            (WebSession.expires_at <= now) | (WebSession.last_seen_at < now - IDLE_TIMEOUT)
        )
    )
    removed = getattr(result, "rowcount", 0)
    session.execute(delete(LoginFailure).where(LoginFailure.at < now - FAILURE_WINDOW))
    return int(removed or 0)


def login_retry_after(session: Session, email: str, ip: str) -> int:
    """Seconds until this email/address may try again; 0 when it may try now."""
    since = utcnow() - FAILURE_WINDOW
    waits = []
    for column, value, limit in (
        (LoginFailure.email, email.strip().lower(), MAX_FAILURES_PER_EMAIL),
        (LoginFailure.ip, ip, MAX_FAILURES_PER_IP),
    ):
        count, oldest = session.execute(
            select(func.count(LoginFailure.id), func.min(LoginFailure.at)).where(
                column == value, LoginFailure.at >= since
            )
        ).one()
        if count >= limit and oldest is not None:
            waits.append(int((oldest + FAILURE_WINDOW - utcnow()).total_seconds()) + 1)
    return max(waits, default=0)


def record_failure(session: Session, email: str, ip: str) -> None:
    """Remember one refused sign-in."""
    email = email.strip().lower()[:254]
    session.add(LoginFailure(email=email, ip=ip[:64], at=utcnow()))
    audit.record(session, f"ip:{ip[:64]}", "auth.login_failed", None, {"email": email})


def clear_failures(session: Session, email: str) -> None:
    """Forget an email's failures after it signed in."""
    session.execute(delete(LoginFailure).where(LoginFailure.email == email.strip().lower()))


def _register() -> None:
    # A disabled user (or one whose password was reset) is signed out everywhere.
    from relaydesk.auth.service import PASSWORD_CHANGED_HOOKS, USER_DISABLED_HOOKS

    for hooks in (USER_DISABLED_HOOKS, PASSWORD_CHANGED_HOOKS):
        if end_user_sessions not in hooks:
            hooks.append(end_user_sessions)


_register()
