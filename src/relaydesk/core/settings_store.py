"""Settings changed at run time: rows in `settings`, secrets encrypted, every change audited."""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from relaydesk.core.audit import record
from relaydesk.core.config import get_settings
from relaydesk.core.crypto import SecretUnreadable, decrypt, encrypt
from relaydesk.core.db import session_scope, utcnow
from relaydesk.core.models import Setting, SettingsVersion

log = logging.getLogger(__name__)

_CHANGED = "relaydesk_settings_changed"
_listeners: list[Callable[[], None]] = []
_reported: set[str] = set()  # unreadable keys already logged (caches re-read every few s)


@dataclass(frozen=True)
class Snapshot:
    """Stored values (secrets decrypted) and the secret keys that could not be decrypted."""

    values: dict[str, Any]
    unreadable: frozenset[str]


def read(session: Session, keys: Iterable[str]) -> Snapshot:
    """The stored values of `keys`; a missing key is simply absent.

    Served from this process's copy of the whole table while the stored version says
    it is current (one primary-key read per transaction, none for the next read in the
    same one); read from the rows in a transaction that changed settings itself.
    """
    wanted = list(keys)
    stored = _current(session)
    if stored is None:
        return _read_rows(session, wanted)
    values: dict[str, Any] = {}
    unreadable: set[str] = set()
    for key in wanted:
        if key in stored.unreadable:
            unreadable.add(key)
        elif key in stored.values:
            value = stored.values[key]
            # The copy is shared: callers get their own containers to change.
            values[key] = copy.deepcopy(value) if isinstance(value, dict | list) else value
    return Snapshot(values, frozenset(unreadable))


def _read_rows(session: Session, keys: list[str] | None) -> Snapshot:
    """The rows of `keys` (None: every row), secrets decrypted."""
    query = select(Setting.key, Setting.value, Setting.is_secret)
    values: dict[str, Any] = {}
    unreadable: set[str] = set()
    for key, value, is_secret in session.execute(
        query if keys is None else query.where(Setting.key.in_(keys))
    ):
        try:
            values[key] = decrypt(str(value)) if is_secret else value
        except SecretUnreadable:
            unreadable.add(key)
            if key not in _reported:
                _reported.add(key)
                # The key's name only: a value, even encrypted, never goes to a log.
                log.error("setting %s cannot be decrypted with the current SECRET_KEY", key)
    return Snapshot(values, frozenset(unreadable))


_SNAPSHOT = "relaydesk_settings_snapshot"
_copy_lock = threading.Lock()
# Every row as this process read them, with the database, the SECRET_KEY that decrypted
# them and the version they had.
_copy: tuple[tuple[str, str, int], Snapshot] | None = None
_version = select(SettingsVersion.version).where(SettingsVersion.id == 1)


def _current(session: Session) -> Snapshot | None:
    """Every setting as of this transaction, or None when the rows must be read."""
    global _copy
    if session.info.get(_CHANGED):
        return None  # this transaction changed settings: its own rows, not a copy
    held: Snapshot | None = session.info.get(_SNAPSHOT)
    if held is not None:
        return held
    version = session.scalar(_version)
    if version is None:
        return None  # no version row (a database made without the migrations)
    mark = (str(session.get_bind().engine.url), get_settings().secret_key or "", version)
    kept = _copy
    if kept is None or kept[0] != mark:
        # Read in this transaction, so the rows are the ones of `version`.
        kept = (mark, _read_rows(session, None))
        with _copy_lock:
            _copy = kept
    session.info[_SNAPSHOT] = kept[1]
    return kept[1]


def save(
    session: Session,
    changes: Mapping[str, Any],
    *,
    actor: str,
    action: str,
    target: str,
    secret_keys: Collection[str] = (),
) -> list[str]:
    """Apply `changes` (None deletes the row) and audit the changed keys; returns them.

    Secrets are stored encrypted and never appear in the audit entry. Nothing is
    committed here: the caller's unit of work does that.
    """
    rows = {
        row.key: row for row in session.scalars(select(Setting).where(Setting.key.in_(changes)))
    }
    changed: list[str] = []
    now = utcnow()
    for key, value in changes.items():
        row = rows.get(key)
        if value is None:
            if row is not None:
                session.delete(row)
                changed.append(key)
            continue
        if row is not None and _same(row, value):
            continue
        secret = key in secret_keys
        stored = encrypt(str(value)) if secret else value
        if row is None:
            session.add(
                Setting(key=key, value=stored, is_secret=secret, updated_at=now, updated_by=actor)
            )
        else:
            row.value, row.is_secret, row.updated_at, row.updated_by = stored, secret, now, actor
        changed.append(key)
    if changed:
        record(session, actor, action, target, {"fields": changed})
        session.info[_CHANGED] = True
        session.info.pop(_SNAPSHOT, None)
        session.flush()
        session.execute(
            update(SettingsVersion)
            .where(SettingsVersion.id == 1)
            .values(version=SettingsVersion.version + 1)
            .execution_options(synchronize_session=False)
        )
    return changed


def mark_changed(session: Session) -> None:
    """Run the `on_change` callbacks after this session commits (a related table changed)."""
    session.info[_CHANGED] = True


def on_change(callback: Callable[[], None]) -> None:
    """Call `callback` after every commit that changed settings (to drop cached copies)."""
    _listeners.append(callback)


T = TypeVar("T")


class Cached(Generic[T]):
    """A value made from settings, kept for `seconds`, for paths that ask all the time.

    A commit that changes settings in this process drops it at once (`on_change`); another
    process's change is seen within `seconds`.
    """

    def __init__(self, load: Callable[[Session], T], seconds: float) -> None:
        self._load, self._seconds = load, seconds
        self._lock = threading.Lock()
        self._value: tuple[float, T] | None = None
        on_change(self.forget)

    def forget(self) -> None:
        """Drop the kept value: the next `get` reads the settings again."""
        with self._lock:
            self._value = None

    def get(self, session: Session | None = None) -> T:
        """The value, read again (with `session`, else a read-only one) once it is stale."""
        with self._lock:
            if self._value is not None and time.monotonic() - self._value[0] < self._seconds:
                return self._value[1]
        if session is None:
            with session_scope(write=False) as own:
                value = self._load(own)
        else:
            value = self._load(session)
        with self._lock:
            self._value = (time.monotonic(), value)
        return value


def _plain(row: Setting) -> Any:
    return decrypt(str(row.value)) if row.is_secret else row.value


def _same(row: Setting, value: Any) -> bool:
    try:
        return bool(_plain(row) == value)
    except SecretUnreadable:
        return False  # unreadable: overwrite it with the new value


@event.listens_for(Session, "after_commit")
def _notify(session: Session) -> None:
    if session.info.pop(_CHANGED, False):
        for callback in _listeners:
            callback()


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_CHANGED, None)


@event.listens_for(Session, "after_transaction_end")
def _drop_snapshot(session: Session, _transaction: Any) -> None:
    session.info.pop(_SNAPSHOT, None)  # the next transaction checks the version again


# Settings saved from a dataclass come back as JSON: these turn them into one again.
def stored_dict(values: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The JSON object stored under `key` (an empty one when missing or not an object)."""
    raw = values.get(key)
    return dict(raw) if isinstance(raw, dict) else {}


def known_fields(cls: Any, data: dict[str, Any]) -> dict[str, Any]:
    """The entries of `data` that are fields of the dataclass `cls` (older keys dropped)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def parse_time(value: Any) -> datetime | None:
    """A stored ISO 8601 time, or None."""
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None
