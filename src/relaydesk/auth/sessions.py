"""Panel sign-in: browser sessions, CSRF tokens and login throttling."""

from __future__ import annotations

import hashlib
import ipaddress
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from relaydesk.auth.models import LoginFailure, User, WebSession
from relaydesk.auth.service import Principal
from relaydesk.core import audit
from relaydesk.core.db import session_scope, utcnow

# A working day of inactivity signs a browser out; a week signs it out regardless.
IDLE_TIMEOUT = timedelta(hours=12)
ABSOLUTE_TIMEOUT = timedelta(days=7)
TOUCH_INTERVAL = timedelta(minutes=1)

# Password guessing (README, "Security"). Failures count per address and account
# together, so that guesses from elsewhere never lock the real user out:
# - after PAIR_FREE_FAILURES from one address for one email, that address waits 1, 2,
#   4 … minutes (at most PAIR_MAX_WAIT) after each further failure, for that email only;
#   failures older than PAIR_WINDOW are forgotten, a sign-in forgets the pair's;
# - one address failing MAX_FAILURES_PER_ADDRESS times within ADDRESS_WINDOW, whatever
#   the emails, waits until the oldest leaves the window (spraying one password);
# - an email failing ACCOUNT_UNDER_ATTACK times within ACCOUNT_WINDOW from all addresses
#   together makes every address that failed for it wait ACCOUNT_SPACING after its last
#   failure: a slowdown for the guessers, never a wait for an address without failures.
PAIR_FREE_FAILURES = 5
PAIR_FIRST_WAIT = timedelta(minutes=1)
PAIR_MAX_WAIT = timedelta(hours=1)
PAIR_WINDOW = timedelta(hours=24)
MAX_FAILURES_PER_ADDRESS = 20
ADDRESS_WINDOW = timedelta(minutes=15)
ACCOUNT_UNDER_ATTACK = 50
ACCOUNT_WINDOW = timedelta(minutes=15)
ACCOUNT_SPACING = timedelta(minutes=1)
# IPv6 hands a whole /64 to one customer: its addresses count as one.
IPV6_PREFIX = 64


@dataclass(frozen=True)
class Throttle:
    """Why and for how long an address must wait before trying an email again."""

    seconds: int
    rule: str  # "address+account", "address" or "account"


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

    @property
    def principal(self) -> Principal:
        """This user as the services' caller (as the API sees a panel session)."""
        return Principal("user", self.user_id, self.role, self.email)


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
    session.execute(delete(LoginFailure).where(LoginFailure.at < now - PAIR_WINDOW))
    return int(removed or 0)


def address_key(ip: str) -> str:
    """How failures from `ip` are counted: the address itself, or its /64 for IPv6."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip[:64]
    if isinstance(address, ipaddress.IPv4Address):
        return str(address)
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    prefix = int(address) >> (128 - IPV6_PREFIX) << (128 - IPV6_PREFIX)
    return str(ipaddress.IPv6Network((prefix, IPV6_PREFIX)))


def _normal(email: str) -> str:
    return email.strip().lower()[:254]


def _after(moment: datetime, now: datetime) -> int:
    """Whole seconds from `now` until `moment` (rounded up), 0 when it has passed."""
    return max(0, math.ceil((moment - now).total_seconds()))


def login_throttle(session: Session, email: str, ip: str) -> Throttle | None:
    """How long this address must wait before trying this email, or None: it may try now."""
    now = utcnow()
    email, key = _normal(email), address_key(ip)
    waits: list[Throttle] = []

    pair_count, pair_last = session.execute(
        select(func.count(LoginFailure.id), func.max(LoginFailure.at)).where(
            LoginFailure.ip == key, LoginFailure.email == email, LoginFailure.at > now - PAIR_WINDOW
        )
    ).one()
    if pair_count >= PAIR_FREE_FAILURES and pair_last is not None:
        delay = min(PAIR_MAX_WAIT, PAIR_FIRST_WAIT * 2 ** (pair_count - PAIR_FREE_FAILURES))
        waits.append(Throttle(_after(pair_last + delay, now), "address+account"))

    address_times = session.scalars(
        select(LoginFailure.at)
        .where(LoginFailure.ip == key, LoginFailure.at > now - ADDRESS_WINDOW)
        .order_by(LoginFailure.at.desc())
        .limit(MAX_FAILURES_PER_ADDRESS)
    ).all()
    if len(address_times) >= MAX_FAILURES_PER_ADDRESS:
        # Free again once fewer than the limit are left in the window.
        waits.append(Throttle(_after(address_times[-1] + ADDRESS_WINDOW, now), "address"))

    if pair_last is not None and now - pair_last < ACCOUNT_SPACING:
        # Counted only up to the limit: under attack an email may have very many rows.
        recent = select(LoginFailure.id).where(
            LoginFailure.email == email, LoginFailure.at > now - ACCOUNT_WINDOW
        )
        attacked = session.scalar(
            select(func.count()).select_from(recent.limit(ACCOUNT_UNDER_ATTACK).subquery())
        )
        if (attacked or 0) >= ACCOUNT_UNDER_ATTACK:
            waits.append(Throttle(_after(pair_last + ACCOUNT_SPACING, now), "account"))

    longest = max(waits, key=lambda t: t.seconds, default=None)
    return longest if longest is not None and longest.seconds > 0 else None


def record_failure(session: Session, email: str, ip: str) -> Throttle | None:
    """Remember one refused sign-in; the wait it imposes (audited), if any."""
    email, key = _normal(email), address_key(ip)
    session.add(LoginFailure(email=email, ip=key, at=utcnow()))
    session.flush()
    audit.record(session, f"ip:{ip[:64]}", "auth.login_failed", None, {"email": email})
    throttle = login_throttle(session, email, ip)
    if throttle is not None:
        audit.record(
            session,
            f"ip:{ip[:64]}",
            "auth.login_throttled",
            None,
            {"email": email, "address": key, "rule": throttle.rule, "seconds": throttle.seconds},
        )
    return throttle


def clear_failures(session: Session, email: str, ip: str) -> None:
    """Forget this address's failures for an email once it signed in (nobody else's)."""
    session.execute(
        delete(LoginFailure).where(
            LoginFailure.email == _normal(email), LoginFailure.ip == address_key(ip)
        )
    )


def _register() -> None:
    # A disabled user (or one whose password was reset) is signed out everywhere.
    from relaydesk.auth.service import PASSWORD_CHANGED_HOOKS, USER_DISABLED_HOOKS

    for hooks in (USER_DISABLED_HOOKS, PASSWORD_CHANGED_HOOKS):
        if end_user_sessions not in hooks:
            hooks.append(end_user_sessions)


_register()
