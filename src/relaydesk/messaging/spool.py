"""A disk spool for webhooks the database could not take, so no acknowledged webhook is lost.

Twilio does not retry a messaging webhook that answered 5xx, so a webhook that cannot be
stored at once is kept on disk before Twilio gets its 200. When the database is only
unavailable (locked, down) the webhook waits and is replayed later, record by record;
a record that fails for a reason of its own (the same error every time) becomes a dead
letter instead, which admins see in the panel and the CLI and can retry after an
upgrade, or drop. One record never holds up the others.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import islice
from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from relaydesk.channels.twilio.parsing import BadWebhook, InboundRecord, StatusRecord, parse_status
from relaydesk.core import audit
from relaydesk.core import db as database
from relaydesk.core.db import bounded_wait, is_lock_wait, session_scope, utcnow
from relaydesk.core.errors import Invalid, NotFound, Unavailable
from relaydesk.core.i18n import N_
from relaydesk.messaging import spoolfile
from relaydesk.messaging.ingest import read_inbound, record_statuses, store_inbound
from relaydesk.messaging.models import MessageEvent
from relaydesk.messaging.spoolfile import DAMAGED, ENTRY_ID, SpoolCounts, SpoolEntry

log = logging.getLogger(__name__)

# Records stored per transaction; a chunk that fails is stored again one by one.
CHUNK = 100
# A replay picks up lines that arrived while it ran, this many times at most.
MAX_ROUNDS = 5
# How often a web process looks at its spool (it runs no sweep with --no-worker).
REPLAY_EVERY_SECONDS = 30.0
# A webhook write waits at most this long for a lock (SQLite's write lock, a row or table
# lock on PostgreSQL) before the spool takes the webhook: Twilio waits 15 s for the answer.
LOCK_WAIT = 5.0
MAX_ERROR_LENGTH = 500
_TRANSIENT = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)
STORED, FAILED, STOPPED = "stored", "failed", "stopped"


def is_transient(exc: BaseException) -> bool:
    """True when the database was unavailable (try later), not when the record is at fault."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, _TRANSIENT)


def describe(exc: BaseException) -> str:
    """One line naming an error, without the SQL statement or its parameters."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}".strip()[:MAX_ERROR_LENGTH]


def counts() -> SpoolCounts:
    """How many webhooks wait in the spool and how many are dead letters."""
    return spoolfile.counts()


def dead_letters() -> list[SpoolEntry]:
    """The dead letters, newest first."""
    return spoolfile.dead_letters()[::-1]


def _kind(record: InboundRecord | StatusRecord) -> str:
    return "inbound" if isinstance(record, InboundRecord) else "status"


def _token(record: InboundRecord | StatusRecord) -> str | None:
    return record.idempotency_token if isinstance(record, StatusRecord) else None


def write(
    kind: str,
    params: dict[str, str],
    token: str | None = None,
    received_at: datetime | None = None,
) -> None:
    """Keep one webhook until the database takes it; raises OSError when the disk fails."""
    spoolfile.append_pending(spoolfile.new_entry(kind, params, token, received_at))
    log.debug("a %s webhook waits in %s", kind, spoolfile.folder())


def keep(record: InboundRecord | StatusRecord) -> None:
    """Keep a parsed webhook for a later replay (the database is unavailable now)."""
    write(_kind(record), record.raw, _token(record), record.received_at)


def bury(record: InboundRecord | StatusRecord, error: BaseException) -> None:
    """Set aside a webhook that can never be stored as it is; raises OSError on disk failure."""
    entry = spoolfile.new_entry(_kind(record), record.raw, _token(record), record.received_at)
    _bury(entry, error)


def _bury(entry: SpoolEntry, error: BaseException) -> None:
    dead = replace(entry, error=describe(error), failed_at=utcnow(), tries=entry.tries + 1)
    spoolfile.append_dead(dead)
    log.error(
        "%s webhook %.64r cannot be stored; set aside as dead letter %s: %s",
        entry.kind,
        entry.sid,
        entry.id,
        dead.error,
    )


def replay(*, wait: bool = True) -> int:
    """Store what waits in the spool; returns how many records left it (stored or dead).

    With `wait=False` a replay already running elsewhere is left to finish the work.
    """
    if not spoolfile.has_waiting():
        return 0
    with spoolfile.replay_lock(blocking=wait) as held:
        if not held or not _database_answers():
            return 0
        handled = 0
        for _ in range(MAX_ROUNDS):
            work = spoolfile.take()
            if not work:
                break
            for path in work:
                done, finished = _replay_file(path)
                handled += done
                if not finished:
                    log.warning("database unavailable: the spool's replay stops for now")
                    return handled
    if handled:
        log.info("replayed %d spooled webhooks", handled)
    return handled


def _replay_file(path: Path) -> tuple[int, bool]:
    """Store one work file's records; (records handled, whether the file is done)."""
    handled = 0
    for chunk in _chunks(spoolfile.entries(path)):
        error = _attempt([entry for _, entry in chunk])
        if error is None:
            handled += len(chunk)
            continue
        if is_transient(error) and not _database_answers():
            spoolfile.keep_from(path, chunk[0][0])
            return handled, False
        for offset, entry in chunk:
            outcome, error = _store_one(entry)
            if outcome == STOPPED:
                spoolfile.keep_from(path, offset)
                return handled, False
            if outcome == FAILED and error is not None:
                _bury(entry, error)
            handled += 1
    spoolfile.finished(path)
    return handled, True


def _chunks(items: Iterator[tuple[int, SpoolEntry]]) -> Iterator[list[tuple[int, SpoolEntry]]]:
    """Groups of CHUNK entries, read as they are needed (a spool may be large)."""
    while chunk := list(islice(items, CHUNK)):
        yield chunk


def _store_one(entry: SpoolEntry) -> tuple[str, BaseException | None]:
    """Store one record: STORED, FAILED (its own fault) or STOPPED (database unavailable)."""
    error = _attempt([entry])
    if error is not None and is_transient(error):
        # A lock held elsewhere leaves reads (and a test query) working: still unavailable.
        if is_lock_wait(error) or not _database_answers():
            return STOPPED, error
        # The database takes other writes: one more try, then the record is at fault.
        error = _attempt([entry])
        if error is not None and is_transient(error) and not _database_answers():
            return STOPPED, error
    return (STORED, None) if error is None else (FAILED, error)


def _attempt(entries: list[SpoolEntry]) -> BaseException | None:
    """Store records in one transaction; the error instead of raising it."""
    try:
        _store(entries)
    except Exception as exc:
        if not is_transient(exc) and not isinstance(exc, BadWebhook | DBAPIError):
            log.warning("storing %d spooled webhook(s) failed", len(entries), exc_info=exc)
        return exc
    return None


def lock_budget(lock_wait: float | None = None) -> float:
    """How long a webhook write may wait for a lock (Twilio waits 15 s for its answer)."""
    return min(lock_wait or LOCK_WAIT, database.WRITE_LOCK_TIMEOUT)


def _store(entries: list[SpoolEntry]) -> None:
    records = [_record(entry) for entry in entries]
    inbound = [r for r in records if isinstance(r, InboundRecord)]
    statuses = [r for r in records if isinstance(r, StatusRecord)]
    with session_scope() as session:
        bounded_wait(session, lock_budget())
        if inbound:
            store_inbound(session, inbound)
        if statuses:
            record_statuses(session, _not_kept_yet(session, statuses))


def _record(entry: SpoolEntry) -> InboundRecord | StatusRecord:
    record: InboundRecord | StatusRecord
    if entry.kind == "inbound":
        record = read_inbound(entry.params)
    elif entry.kind == "status":
        record = parse_status(entry.params, entry.token)
    elif entry.kind == DAMAGED:
        raise BadWebhook("the spool line cannot be read (cut short or damaged)")
    else:
        raise BadWebhook(f"unknown kind of webhook {entry.kind[:20]!r}")
    if entry.received_at is not None:
        record.received_at = entry.received_at
    return record


def _not_kept_yet(session: Session, records: list[StatusRecord]) -> list[StatusRecord]:
    """Callbacks not in message_events yet: a replay repeated after a crash keeps each once.

    A spooled callback keeps the time it was received, so the same callback is the
    same (SID, status, time) however often its line is replayed.
    """
    known = {
        tuple(row)
        for row in session.execute(
            select(MessageEvent.sid, MessageEvent.status, MessageEvent.received_at).where(
                MessageEvent.sid.in_({r.sid for r in records})
            )
        )
    }
    fresh = []
    for rec in records:
        key = (rec.sid, rec.status[:20], rec.received_at)
        if key not in known:
            known.add(key)
            fresh.append(rec)
    return fresh


def _database_answers() -> bool:
    """True when the database takes a write transaction now."""
    try:
        with session_scope() as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:
        if not is_transient(exc):
            log.warning("the database refused a test transaction: %s", describe(exc))
        return False
    return True


@dataclass
class RetryOutcome:
    """What a retry of dead letters did."""

    stored: int = 0
    failing: int = 0
    untried: int = 0  # the database became unavailable before their turn
    errors: dict[str, str] = field(default_factory=dict)


def _chosen(ids: list[str] | None) -> list[SpoolEntry]:
    dead = spoolfile.dead_letters()
    if ids is None:
        return dead
    wrong = [i for i in ids if not ENTRY_ID.fullmatch(i)]
    if wrong:
        raise Invalid(
            N_("%(id)s is not a dead-letter id (12 hexadecimal characters)"),
            params={"id": repr(wrong[0][:40])},
        )
    by_id = {entry.id: entry for entry in dead}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise NotFound(
            N_("There is no dead letter %(id)s (it may have been retried already)"),
            params={"id": missing[0]},
        )
    return [by_id[i] for i in dict.fromkeys(ids)]


def retry(ids: list[str] | None, actor: str) -> RetryOutcome:
    """Try dead letters again (all when `ids` is None); the ones stored leave the list."""
    with spoolfile.replay_lock():
        chosen = _chosen(ids)
        if not chosen:
            return RetryOutcome()
        if not _database_answers():
            raise Unavailable(
                N_("The database is not available now; nothing was retried"), params={}
            )
        outcome = RetryOutcome()
        stored: set[str] = set()
        changed: dict[str, SpoolEntry] = {}
        for position, entry in enumerate(chosen):
            result, error = _store_one(entry)
            if result == STOPPED and position == 0:
                # Reads work, writes wait for a lock held elsewhere (PostgreSQL).
                raise Unavailable(
                    N_("The database is not available now; nothing was retried"), params={}
                )
            if result == STOPPED:
                outcome.untried = len(chosen) - position
                break
            if result == STORED:
                stored.add(entry.id)
                outcome.stored += 1
                continue
            message = describe(error) if error is not None else "unknown error"
            changed[entry.id] = replace(
                entry, error=message, failed_at=utcnow(), tries=entry.tries + 1
            )
            outcome.failing += 1
            outcome.errors[entry.id] = message
        spoolfile.update_dead(stored, changed)
        with session_scope() as session:
            audit.record(
                session,
                actor,
                "spool.retry",
                target=None if ids is None else ", ".join(ids)[:200],
                details={
                    "ids": [e.id for e in chosen][:100],
                    "stored": outcome.stored,
                    "failing": outcome.failing,
                    "untried": outcome.untried,
                },
            )
    log.info("retried dead letters: %s", outcome)
    return outcome


def drop(ids: list[str], actor: str) -> list[SpoolEntry]:
    """Delete dead letters for good (recorded in the audit log with their SIDs)."""
    with spoolfile.replay_lock():
        chosen = _chosen(ids)
        with session_scope() as session:
            audit.record(
                session,
                actor,
                "spool.drop",
                target=", ".join(ids)[:200],
                details={
                    "ids": [e.id for e in chosen][:100],
                    "webhooks": [f"{e.kind} {e.sid[:64]}" for e in chosen][:100],
                },
            )
        spoolfile.update_dead({e.id for e in chosen})
    return chosen


class Replayer:
    """Replays the spool now and then from a web process (it runs no sweep with --no-worker)."""

    def __init__(self) -> None:
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the replay thread."""
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="spool-replayer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop after the replay under way, if any."""
        if self._thread is not None:
            self._stopping = True
            self._wake.set()
            self._thread.join(timeout=30)
            self._thread = None

    def wake(self) -> None:
        """Replay now instead of at the next period."""
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait(REPLAY_EVERY_SECONDS)
            self._wake.clear()
            if self._stopping:
                return
            try:
                replay(wait=False)
            except Exception:
                log.exception("replaying the webhook spool failed; trying again later")
