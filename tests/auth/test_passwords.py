"""Signing in with an email and a password (the panel's login form calls this)."""

from __future__ import annotations

from typing import Any

from argon2 import PasswordHasher

from relaydesk.auth import service as auth
from relaydesk.auth.models import User
from relaydesk.core.db import session_scope

PASSWORD = "correct horse battery"


def make_user(email: str = "ola@example.com") -> int:
    with session_scope() as session:
        return auth.create_user(session, email, PASSWORD, "operator", "test").id


def sign_in(email: str, password: str) -> int | None:
    """The id of the user signed in, committed like the login form would."""
    with session_scope() as session:
        user = auth.authenticate_password(session, email, password)
        return None if user is None else user.id


def test_right_password_signs_in_with_any_email_case(server: Any, db: Any) -> None:
    user_id = make_user()
    assert db.get(User, user_id).last_login_at is None
    assert sign_in("  Ola@EXAMPLE.com ", PASSWORD) == user_id
    assert db.get(User, user_id).last_login_at is not None


def test_wrong_password_and_unknown_email_are_refused(server: Any, db: Any) -> None:
    user_id = make_user()
    assert sign_in("ola@example.com", "correct horse battery!") is None
    assert sign_in("ola@example.com", "") is None
    assert sign_in("nobody@example.com", PASSWORD) is None
    assert sign_in("", PASSWORD) is None
    assert db.get(User, user_id).last_login_at is None


def test_an_inactive_user_cannot_sign_in(server: Any) -> None:
    user_id = make_user()
    with session_scope() as session:
        auth.update_user(session, user_id, is_active=False, actor=auth.system_principal("test"))
    assert sign_in("ola@example.com", PASSWORD) is None


def test_an_old_hash_is_upgraded_on_sign_in(server: Any, db: Any) -> None:
    user_id = make_user()
    weak = PasswordHasher(time_cost=1, memory_cost=8192).hash(PASSWORD)
    with session_scope() as session:
        stored = session.get(User, user_id)
        assert stored is not None
        stored.password_hash = weak
    assert sign_in("ola@example.com", PASSWORD) == user_id
    upgraded = db.get(User, user_id).password_hash
    assert upgraded != weak
    assert not PasswordHasher().check_needs_rehash(upgraded)
    assert sign_in("ola@example.com", PASSWORD) == user_id
