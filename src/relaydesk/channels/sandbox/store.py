"""The emulator's own state in `<DATA_DIR>/sandbox.db`: like Twilio's, it outlives restarts."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    sid TEXT NOT NULL UNIQUE,
    account_sid TEXT NOT NULL,
    direction TEXT NOT NULL,
    from_addr TEXT,
    to_addr TEXT NOT NULL,
    body TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    error_code INTEGER,
    error_message TEXT,
    messaging_service_sid TEXT,
    num_segments INTEGER NOT NULL,
    num_media INTEGER NOT NULL,
    media_json TEXT NOT NULL DEFAULT '[]',
    content_sid TEXT,
    content_variables TEXT,
    status_callback TEXT,
    date_created REAL NOT NULL,
    date_updated REAL NOT NULL,
    date_sent REAL
);
CREATE INDEX IF NOT EXISTS ix_messages_to ON messages (to_addr);
CREATE INDEX IF NOT EXISTS ix_messages_from ON messages (from_addr);
-- One pending status step per message; due_at is wall-clock epoch seconds so it survives restarts.
CREATE TABLE IF NOT EXISTS pending_steps (
    sid TEXT PRIMARY KEY REFERENCES messages (sid) ON DELETE CASCADE,
    due_at REAL NOT NULL
);
-- Files simulated customers sent, served like Twilio's media (ME... SIDs).
CREATE TABLE IF NOT EXISTS media (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    sid TEXT NOT NULL UNIQUE,
    message_sid TEXT NOT NULL REFERENCES messages (sid) ON DELETE CASCADE,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    data BLOB NOT NULL,
    date_created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_media_message ON media (message_sid);
"""
# Oldest files are dropped beyond this, like Twilio's media retention but by size.
MEDIA_STORE_CAP = 512 * 1024 * 1024

_COLUMNS = (
    "sid, account_sid, direction, from_addr, to_addr, body, status, error_code, error_message, "
    "messaging_service_sid, num_segments, num_media, media_json, content_sid, content_variables, "
    "status_callback, date_created, date_updated, date_sent"
)


@dataclass(frozen=True)
class StoredMessage:
    """One message as the emulator keeps it (outbound or inbound)."""

    sid: str
    account_sid: str
    direction: str
    from_addr: str | None
    to_addr: str
    body: str
    status: str
    num_segments: int
    num_media: int
    date_created: float
    date_updated: float
    date_sent: float | None = None
    error_code: int | None = None
    error_message: str | None = None
    messaging_service_sid: str | None = None
    media: tuple[str, ...] = field(default_factory=tuple)
    content_sid: str | None = None
    content_variables: str | None = None
    status_callback: str | None = None


@dataclass(frozen=True)
class StoredMedia:
    """One media file of a message, with its bytes."""

    sid: str
    message_sid: str
    content_type: str
    data: bytes
    date_created: float

    @property
    def size(self) -> int:
        """Length in bytes."""
        return len(self.data)


@dataclass(frozen=True)
class MessageQuery:
    """List filters: exact To/From and a [since, until) window on the sent (or created) time."""

    account_sid: str
    to_addr: str | None = None
    from_addr: str | None = None
    since: float | None = None
    until: float | None = None


class SandboxStore:
    """Thread-safe access to the emulator's SQLite file (one connection behind a lock)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, timeout=5.0)
        self._conn.row_factory = sqlite3.Row
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.executescript(SCHEMA)

    def close(self) -> None:
        """Release the database file."""
        with self._lock:
            self._conn.close()

    def insert(
        self, msg: StoredMessage, next_due: float | None, media: Sequence[StoredMedia] = ()
    ) -> None:
        """Store a new message (with its files) and, if given, when its next step is due."""
        with self._lock, self._conn:
            self._conn.execute(
                f"INSERT INTO messages ({_COLUMNS}) VALUES ({', '.join('?' * 19)})",  # noqa: S608
                _row_values(msg),
            )
            if next_due is not None:
                self._conn.execute(
                    "INSERT INTO pending_steps (sid, due_at) VALUES (?, ?)", (msg.sid, next_due)
                )
            if media:
                self._conn.executemany(
                    "INSERT INTO media (sid, message_sid, content_type, size, data, date_created)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (m.sid, m.message_sid, m.content_type, m.size, m.data, m.date_created)
                        for m in media
                    ],
                )
                self._trim_media()

    def _trim_media(self) -> None:
        """Drop the oldest files while the store holds more than MEDIA_STORE_CAP bytes."""
        total = self._conn.execute("SELECT coalesce(sum(size), 0) FROM media").fetchone()[0]
        if total <= MEDIA_STORE_CAP:
            return
        rows = self._conn.execute("SELECT seq, size FROM media ORDER BY seq").fetchall()
        drop = []
        for seq, size in rows:
            if total <= MEDIA_STORE_CAP:
                break
            drop.append((seq,))
            total -= size
        self._conn.executemany("DELETE FROM media WHERE seq = ?", drop)

    def media_types(self, message_sids: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
        """(media SID, content type) of each message's files, in the order they came."""
        if not message_sids:
            return {}
        marks = ", ".join("?" * len(message_sids))
        with self._lock:
            rows = self._conn.execute(
                "SELECT message_sid, sid, content_type FROM media"  # noqa: S608
                f" WHERE message_sid IN ({marks}) ORDER BY seq",
                tuple(message_sids),
            ).fetchall()
        found: dict[str, list[tuple[str, str]]] = {}
        for row in rows:
            found.setdefault(row["message_sid"], []).append((row["sid"], row["content_type"]))
        return found

    def get_media(self, sid: str) -> StoredMedia | None:
        """One media file by its ME... SID."""
        with self._lock:
            row = self._conn.execute(
                "SELECT sid, message_sid, content_type, data, date_created FROM media"
                " WHERE sid = ?",
                (sid,),
            ).fetchone()
        if row is None:
            return None
        return StoredMedia(
            sid=row["sid"],
            message_sid=row["message_sid"],
            content_type=row["content_type"],
            data=bytes(row["data"]),
            date_created=row["date_created"],
        )

    def update(self, msg: StoredMessage, next_due: float | None) -> bool:
        """Save a status change and replace its pending step; False if the message is gone."""
        with self._lock, self._conn:
            cur = self._conn.execute(
                "UPDATE messages SET from_addr = ?, status = ?, error_code = ?, error_message = ?,"
                " num_segments = ?, date_updated = ?, date_sent = ? WHERE sid = ?",
                (
                    msg.from_addr,
                    msg.status,
                    msg.error_code,
                    msg.error_message,
                    msg.num_segments,
                    msg.date_updated,
                    msg.date_sent,
                    msg.sid,
                ),
            )
            if cur.rowcount == 0:
                return False
            self._conn.execute("DELETE FROM pending_steps WHERE sid = ?", (msg.sid,))
            if next_due is not None:
                self._conn.execute(
                    "INSERT INTO pending_steps (sid, due_at) VALUES (?, ?)", (msg.sid, next_due)
                )
            return True

    def get(self, sid: str) -> StoredMessage | None:
        """One message by SID."""
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE sid = ?",  # noqa: S608
                (sid,),
            ).fetchone()
        return _from_row(row) if row else None

    def pending(self) -> list[tuple[str, float]]:
        """Every (sid, due_at) step still to run, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT sid, due_at FROM pending_steps ORDER BY due_at"
            ).fetchall()
        return [(str(r["sid"]), float(r["due_at"])) for r in rows]

    def list_page(
        self,
        query: MessageQuery,
        size: int,
        *,
        older_than: str | None = None,
        newer_than: str | None = None,
        offset: int = 0,
    ) -> list[StoredMessage]:
        """Newest-first page of messages matching `query`, after or before a cursor SID."""
        where, args = _where(query)
        order = "DESC"
        if older_than is not None:
            where.append("seq < (SELECT seq FROM messages WHERE sid = ?)")
            args.append(older_than)
            offset = 0
        elif newer_than is not None:
            # Walk backwards from the cursor, then flip, so the page stays newest-first.
            where.append("seq > (SELECT seq FROM messages WHERE sid = ?)")
            args.append(newer_than)
            order, offset = "ASC", 0
        sql = (
            f"SELECT {_COLUMNS} FROM messages WHERE {' AND '.join(where)}"  # noqa: S608
            f" ORDER BY seq {order} LIMIT ? OFFSET ?"
        )
        with self._lock:
            rows = self._conn.execute(sql, (*args, size, offset)).fetchall()
        found = [_from_row(r) for r in rows]
        return found[::-1] if order == "ASC" else found

    def for_number(self, number: str | None, limit: int = 200) -> list[StoredMessage]:
        """The latest messages to or from `number` (any channel prefix), oldest first."""
        sql = f"SELECT {_COLUMNS} FROM messages"  # noqa: S608
        args: list[Any] = []
        if number:
            sql += (
                " WHERE replace(coalesce(from_addr, ''), 'whatsapp:', '') = ?"
                " OR replace(to_addr, 'whatsapp:', '') = ?"
            )
            args += [number, number]
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY seq DESC LIMIT ?", (*args, limit)).fetchall()
        return [_from_row(r) for r in reversed(rows)]

    def clear(self) -> None:
        """Forget every message, file and pending step (tests)."""
        with self._lock, self._conn:
            self._conn.execute("DELETE FROM pending_steps")
            self._conn.execute("DELETE FROM media")
            self._conn.execute("DELETE FROM messages")


def _where(query: MessageQuery) -> tuple[list[str], list[Any]]:
    where = ["account_sid = ?"]
    args: list[Any] = [query.account_sid]
    if query.to_addr is not None:
        where.append("to_addr = ?")
        args.append(query.to_addr)
    if query.from_addr is not None:
        where.append("from_addr = ?")
        args.append(query.from_addr)
    # Messages not sent yet still show up by their creation time, so reconciliation finds them.
    if query.since is not None:
        where.append("coalesce(date_sent, date_created) >= ?")
        args.append(query.since)
    if query.until is not None:
        where.append("coalesce(date_sent, date_created) < ?")
        args.append(query.until)
    return where, args


def _row_values(msg: StoredMessage) -> tuple[Any, ...]:
    return (
        msg.sid,
        msg.account_sid,
        msg.direction,
        msg.from_addr,
        msg.to_addr,
        msg.body,
        msg.status,
        msg.error_code,
        msg.error_message,
        msg.messaging_service_sid,
        msg.num_segments,
        msg.num_media,
        json.dumps(list(msg.media)),
        msg.content_sid,
        msg.content_variables,
        msg.status_callback,
        msg.date_created,
        msg.date_updated,
        msg.date_sent,
    )


def _from_row(row: sqlite3.Row) -> StoredMessage:
    return StoredMessage(
        sid=row["sid"],
        account_sid=row["account_sid"],
        direction=row["direction"],
        from_addr=row["from_addr"],
        to_addr=row["to_addr"],
        body=row["body"],
        status=row["status"],
        error_code=row["error_code"],
        error_message=row["error_message"],
        messaging_service_sid=row["messaging_service_sid"],
        num_segments=row["num_segments"],
        num_media=row["num_media"],
        media=tuple(json.loads(row["media_json"])),
        content_sid=row["content_sid"],
        content_variables=row["content_variables"],
        status_callback=row["status_callback"],
        date_created=row["date_created"],
        date_updated=row["date_updated"],
        date_sent=row["date_sent"],
    )
