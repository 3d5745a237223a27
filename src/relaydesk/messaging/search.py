"""Search over message text and contacts, from an index kept in the background.

What is indexed: a message's body and the transcripts and descriptions of its files; a
contact's name (edited, or the one the customer gave), the profile's note, its custom
attribute values and the number's digits. The text is *folded* — lower case, diacritics
removed (ą→a, ł→l, é→e) — so "zolw" finds "Żółw" and the other way round.

How it is found: SQLite's FTS5 with the trigram tokenizer, or PostgreSQL's pg_trgm GIN
index, answer "which rows contain this substring" without reading the rows (a word that
matches nothing costs as little as a rare one). Each word of a query is cut to a stem
(`stem`: a Polish or English ending removed) and looked for as a substring, so
"zamówienia" also finds "zamówienie", "zamówień" and "zamówieniu"; all words must occur.
A query that looks like a number is looked for among the contacts' digits (partial
digits too: "600 123" finds +48 600 123 456) and normalised as the installation's
numbers are ("0048…", national numbers).

When it is indexed: never on the webhook or the send path. `catch_up` (a background job
on the bulk queue, queued again while there is work and by a sweep every minute) reads
what was stored since its last position and writes it into the index in chunks. A
search reads the rows the indexer has not reached yet directly (`_tail_matches`), so a
message stored a moment ago is found as well; `relaydesk search rebuild` starts over.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import phonenumbers
from sqlalchemy import Select, and_, delete, func, or_, select, text, update
from sqlalchemy.orm import Session

from relaydesk.channels.twilio.numbers import InvalidNumber, normalize
from relaydesk.contacts.models import Contact, ContactProfile
from relaydesk.core.config import get_settings
from relaydesk.core.db import dialect_insert, utcnow
from relaydesk.core.errors import Invalid
from relaydesk.core.i18n import N_
from relaydesk.messaging.models import Message, search_contacts, search_messages, search_progress

log = logging.getLogger(__name__)

MIN_TERM = 3  # the trigram index finds substrings of three characters or more
MAX_TERMS = 8
# Rows read and indexed per transaction. Smaller chunks hold SQLite's write lock for less
# time but make FTS5 merge many small segments: 250 rows indexed three times slower. So
# a backlog (a rebuild, a restart after a burst) goes in chunks of CHUNK, and the few
# seconds of messages that come in while the indexer keeps up in chunks of TAIL_CHUNK:
# 2,000 rows held the lock for about 0.3 s, and the webhooks waiting behind it doubled
# the p99 of ingest.
CHUNK = 2000
TAIL_CHUNK = 250
# How long a transaction may take to commit: positions by change time stay this far
# behind (a late commit is read again, never missed); on PostgreSQL new rows are indexed
# once they are this old (an earlier transaction may still commit a lower id).
SETTLE = timedelta(seconds=10)
# A search reads at most this many not-yet-indexed rows (the newest) itself.
TAIL_LIMIT = 20_000

MESSAGES, CHANGED, CONTACTS = "messages", "changed", "contacts"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Folding: lower case, then each letter of the Latin-1 and Latin Extended-A blocks to its
# base letter (one character for one, so positions in the folded text are positions in
# the original and a match can be highlighted where it is).
_FOLD: dict[int, str] = {}
for _code in range(0xC0, 0x250):
    _char = chr(_code)
    _base = "".join(c for c in unicodedata.normalize("NFKD", _char) if not unicodedata.combining(c))
    if len(_base) == 1 and _base != _char:
        _FOLD[_code] = _base.lower()
_FOLD.update({ord("ł"): "l", ord("Ł"): "l", ord("ø"): "o", ord("đ"): "d", ord("ß"): "s"})
_FOLD_TABLE = str.maketrans(_FOLD)


def fold(value: str) -> str:
    """`value` in lower case without diacritics, as the index stores it."""
    return value.lower().translate(_FOLD_TABLE).replace("\x00", " ")


# Endings cut from a word before it is looked for (the longest that leaves three letters
# or more): Polish declension and conjugation, and English plurals. Crude on purpose: the
# stem is found as a substring, so a word's other forms are found too.
_ENDINGS = sorted(
    [
        "owie",
        "ami",
        "ach",
        "ego",
        "emu",
        "ich",
        "ych",
        "ymi",
        "imi",
        "iem",
        "iej",
        "owi",
        "om",
        "ow",
        "ie",
        "ia",
        "iu",
        "em",
        "ej",
        "ym",
        "im",
        "ec",
        "a",
        "e",
        "i",
        "o",
        "u",
        "y",
        "s",
    ],
    key=len,
    reverse=True,
)
_WORD = re.compile(r"\w+")
_NUMBER_LIKE = re.compile(r"[\d\s+()\-./]+")


def stem(word: str) -> str:
    """A folded word without its ending, when enough is left to look for."""
    if len(word) > MIN_TERM and not word.isdigit():
        for ending in _ENDINGS:
            if word.endswith(ending) and len(word) - len(ending) >= MIN_TERM:
                return word[: -len(ending)]
    return word


@dataclass(frozen=True)
class Query:
    """What a search looks for: text stems (all must occur) and, for what looks like a
    phone number, its digits (any of the forms)."""

    raw: str
    terms: tuple[str, ...] = ()
    digits: tuple[str, ...] = ()

    @property
    def is_number(self) -> bool:
        return bool(self.digits)


def parse(raw: str) -> Query:
    """The query in `raw`, or Invalid when nothing in it can be looked for."""
    cleaned = raw.replace("\x00", " ").strip()
    digits: set[str] = set()
    if _NUMBER_LIKE.fullmatch(cleaned) and sum(c.isdigit() for c in cleaned) >= MIN_TERM:
        digits.add(re.sub(r"\D", "", cleaned))
        with contextlib.suppress(InvalidNumber):  # partial digits: looked for as they are
            digits.add(normalize(cleaned, get_settings().default_region).lstrip("+"))
    terms: list[str] = []
    for word in _WORD.findall(fold(cleaned)):
        term = stem(word)
        if len(term) >= MIN_TERM and term not in terms:
            terms.append(term)
    if not terms and digits:
        terms = [max(digits, key=len)]
    if not terms:
        raise Invalid(
            N_("Type at least %(count)s letters or digits to search."),
            params={"count": MIN_TERM},
            field="q",
        )
    return Query(
        cleaned,
        terms=tuple(terms[:MAX_TERMS]),
        digits=tuple(sorted(digits, key=len, reverse=True)),
    )


def matches(query: Query, folded: str, *, contact: bool = False) -> bool:
    """True when folded text holds what `query` looks for (a contact: by its digits too)."""
    if contact and query.is_number and any(d in folded for d in query.digits):
        return True
    return bool(query.terms) and all(term in folded for term in query.terms)


def highlights(query: Query, value: str) -> list[tuple[int, int]]:
    """Where `value` matches: (start, end) spans, merged, whole words for text terms."""
    folded = fold(value)
    if len(folded) != len(value):  # a letter whose lower case is longer: no spans
        return []
    spans: list[tuple[int, int]] = []
    for term in (*query.terms, *query.digits):
        for found in re.finditer(re.escape(term), folded):
            end = found.end()
            while end < len(folded) and (folded[end].isalnum() or folded[end] == "_"):
                end += 1
            spans.append((found.start(), end))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


# ---------------------------------------------------------------- the documents


def message_text(body: str | None, media: Sequence[dict[str, Any]] | None) -> str:
    """What a message is found by: its body and its files' transcripts and descriptions."""
    parts = [body or ""]
    for item in media or ():
        if isinstance(item, dict):
            parts.extend(
                str(item[k]) for k in ("transcript", "description") if item.get(k) is not None
            )
    return " ".join(p for p in parts if p)


def _digits_forms(e164: str) -> str:
    """A number's digits as typed internationally and nationally (+48 600… and 600…)."""
    digits = e164.lstrip("+")
    forms = [digits]
    # A stored number the library cannot read is found by its digits only.
    with contextlib.suppress(phonenumbers.NumberParseException):
        forms.append(str(phonenumbers.parse(e164, None).national_number))
    return " ".join(forms)


def _contact_documents(session: Session, participants: Iterable[str]) -> dict[int, str]:
    """{contact id: folded text} for every contact row of these numbers."""
    wanted = sorted(set(participants))
    documents: dict[int, str] = {}
    for start in range(0, len(wanted), 500):
        part = wanted[start : start + 500]
        profiles = {
            p.participant: p
            for p in session.scalars(
                select(ContactProfile).where(ContactProfile.participant.in_(part))
            )
        }
        rows = session.execute(
            select(Contact.id, Contact.phone, Contact.profile_name).where(Contact.phone.in_(part))
        )
        for contact_id, phone, given_name in rows:
            profile = profiles.get(phone)
            pieces = [given_name or ""]
            if profile is not None:
                pieces += [profile.name or "", profile.note or ""]
                pieces += [str(v) for v in (profile.attributes or {}).values() if v is not None]
            pieces.append(_digits_forms(phone))
            documents[contact_id] = fold(" ".join(p for p in pieces if p))
    return documents


# ---------------------------------------------------------------- the indexer


@dataclass
class Progress:
    """How far the indexer has come for one kind (a row of search_progress)."""

    name: str
    position: int = 0
    changed_at: datetime | None = None


def _progress(session: Session, name: str) -> Progress:
    """The stored progress of `name` (nothing stored yet: the start)."""
    row = session.execute(
        select(search_progress.c.position, search_progress.c.changed_at).where(
            search_progress.c.name == name
        )
    ).first()
    return Progress(name, row.position, row.changed_at) if row else Progress(name)


def _is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


@dataclass
class _Chunk:
    """What one step read: documents to write and where its position moves."""

    read_at: Progress  # the position the rows were read from
    moved: Progress  # where it stands once they are written
    table: Any
    documents: dict[int, str]
    more: bool  # more is waiting now


def _commit(session: Session, chunk: _Chunk) -> bool:
    """Write a chunk's documents and move its position, in a short write transaction
    (reading and folding happened before, outside SQLite's write lock). False when
    another indexer (another process) moved the position since: nothing is written."""
    table = search_progress
    name = chunk.read_at.name
    session.execute(
        dialect_insert(session)(table)
        .values(name=name, position=0, changed_at=None)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    statement = select(table.c.position, table.c.changed_at).where(table.c.name == name)
    if _is_postgresql(session):
        statement = statement.with_for_update()
    stored = session.execute(statement).one()
    if (stored.position, stored.changed_at) != (chunk.read_at.position, chunk.read_at.changed_at):
        return False
    _write(session, chunk.table, chunk.documents)
    session.execute(
        update(table)
        .where(table.c.name == name)
        .values(position=chunk.moved.position, changed_at=chunk.moved.changed_at)
    )
    return True


def _write(session: Session, table: Any, documents: dict[int, str]) -> None:
    """Put these documents in the index, replacing older versions of the same rows."""
    if not documents:
        return
    ids = list(documents)
    if _is_postgresql(session):
        insert = dialect_insert(session)(table)
        session.execute(
            insert.on_conflict_do_update(
                index_elements=["rowid"], set_={"text": insert.excluded.text}
            ),
            [{"rowid": i, "text": t} for i, t in documents.items()],
        )
        return
    # FTS5 has no upsert: the old version goes first.
    session.execute(delete(table).where(table.c.rowid.in_(ids)))
    session.execute(table.insert(), [{"rowid": i, "text": t} for i, t in documents.items()])


def _new_messages(session: Session, now: datetime) -> _Chunk | None:
    """The next chunk of messages past the position.

    SQLite commits one writer at a time, so ids are committed in order. On PostgreSQL a
    transaction that started earlier may still commit a lower id: only rows older than
    SETTLE are indexed there (younger ones are read directly by a search meanwhile).
    """
    progress = _progress(session, MESSAGES)
    statement = select(Message.id, Message.body, Message.media).where(
        Message.id > progress.position
    )
    if _is_postgresql(session):
        statement = statement.where(Message.created_at <= now - SETTLE)
    last = session.scalar(select(func.max(Message.id))) or 0
    chunk = CHUNK if last - progress.position >= CHUNK else TAIL_CHUNK
    rows = session.execute(statement.order_by(Message.id).limit(chunk)).all()
    if not rows:
        return None
    return _Chunk(
        progress,
        Progress(MESSAGES, rows[-1].id, progress.changed_at),
        search_messages,
        {row.id: fold(message_text(row.body, row.media)) for row in rows},
        more=len(rows) == chunk,
    )


def _since(progress: Progress) -> datetime:
    return progress.changed_at or EPOCH


Between = Callable[[datetime, datetime], Any]  # a select ordered by change time


def _changed(
    session: Session, progress: Progress, between: Between, now: datetime
) -> tuple[list[Any], Progress, bool] | None:
    """The next chunk of rows changed since the position: (rows, moved position, more).

    `between(after, until)` selects rows changed in (after, until], ordered by their
    change time (the last column). Only changes at least SETTLE old are read: a change
    stamped before another transaction's can commit after it, and a search reads the
    younger ones directly. A chunk never splits the rows of one instant (one transaction
    stamps many rows alike): those at the chunk's last instant go with the next chunk,
    or all together when the whole chunk is one instant.
    """
    since, horizon = _since(progress), now - SETTLE
    if horizon <= since:
        return None
    rows = list(session.execute(between(since, horizon).limit(CHUNK)).all())
    more = len(rows) == CHUNK
    if not more:
        until = horizon
    elif rows[0][-1] == rows[-1][-1]:
        until = rows[-1][-1]
        rows = list(session.execute(between(since, until)).all())
    else:
        until = rows[-1][-1]
        rows = [row for row in rows if row[-1] < until]
        until = rows[-1][-1]
    return rows, Progress(progress.name, progress.position, until), more


def _changed_messages(session: Session, now: datetime) -> _Chunk | None:
    """Messages whose text can change after they were stored, read again: files get
    transcripts and descriptions, a template's text is filled in when recovered."""
    position = _progress(session, MESSAGES).position

    def between(after: datetime, until: datetime) -> Select[Any]:
        return (
            select(Message.id, Message.body, Message.media, Message.updated_at)
            .where(
                Message.updated_at > after,
                Message.updated_at <= until,
                Message.id <= position,
                or_(Message.num_media > 0, Message.content_sid.is_not(None)),
            )
            .order_by(Message.updated_at)
        )

    progress = _progress(session, CHANGED)
    found = _changed(session, progress, between, now)
    if found is None:
        return None
    rows, moved, more = found
    documents = {row.id: fold(message_text(row.body, row.media)) for row in rows}
    # A status callback touches the row too: write only the texts that changed.
    return _Chunk(
        progress, moved, search_messages, _differing(session, search_messages, documents), more
    )


def _changed_contacts(session: Session, now: datetime) -> _Chunk | None:
    """The contacts whose row or profile changed since the last pass, read again."""

    def between(after: datetime, until: datetime) -> Any:
        return (
            select(Contact.phone, Contact.updated_at)
            .where(Contact.updated_at > after, Contact.updated_at <= until)
            .union_all(
                select(ContactProfile.participant, ContactProfile.updated_at).where(
                    ContactProfile.updated_at > after, ContactProfile.updated_at <= until
                )
            )
            .order_by(text("2"))
        )

    progress = _progress(session, CONTACTS)
    found = _changed(session, progress, between, now)
    if found is None:
        return None
    rows, moved, more = found
    documents = _contact_documents(session, (p for p, _ in rows))
    # Ingest touches a contact's row with every message it stores; its document changes
    # only with a name, a note or an attribute: write only what differs.
    return _Chunk(
        progress, moved, search_contacts, _differing(session, search_contacts, documents), more
    )


def _differing(session: Session, table: Any, documents: dict[int, str]) -> dict[int, str]:
    """The documents whose indexed text is not already this."""
    stored = {
        row.rowid: row.text
        for row in session.execute(
            select(table.c.rowid, table.c.text).where(table.c.rowid.in_(list(documents)))
        )
    }
    return {i: t for i, t in documents.items() if stored.get(i) != t}


_running = threading.Lock()


@dataclass
class Pass:
    """What one `catch_up` did."""

    indexed: int = 0
    behind: bool = False  # stopped by its time budget with work left
    seconds: float = 0.0
    steps: list[str] = field(default_factory=list)


def catch_up(budget: float = 20.0, yield_to: Any = None) -> Pass:
    """Index what was stored or changed since the last pass, for at most `budget` seconds.

    Each chunk is read and folded in a read transaction and written in a short write
    transaction of its own; `yield_to` (the worker's `yield_to_live`) is called between
    chunks so customers' messages are never kept waiting by the index.
    """
    from relaydesk.core.db import session_scope

    done = Pass()
    if not _running.acquire(blocking=False):
        return done  # another thread of this process is at it
    started = time.monotonic()
    try:
        for step in (_new_messages, _changed_messages, _changed_contacts):
            while True:
                with session_scope(write=False) as session:
                    chunk = step(session, utcnow())
                if chunk is None:
                    break
                if chunk.documents or chunk.moved != chunk.read_at:
                    with session_scope() as session:
                        if not _commit(session, chunk):
                            break  # another process is indexing: it goes on
                done.indexed += len(chunk.documents)
                if not chunk.more:
                    break
                if time.monotonic() - started > budget:
                    done.behind = True
                    return done
                if yield_to is not None:
                    yield_to()
            done.steps.append(step.__name__)
        return done
    finally:
        done.seconds = time.monotonic() - started
        _running.release()


def reset(session: Session) -> None:
    """Empty the index and its positions: the indexer starts over from the first row."""
    for table in (search_messages, search_contacts, search_progress):
        session.execute(delete(table))


@dataclass(frozen=True)
class Status:
    """How far the index is: messages indexed up to `position` of `newest`."""

    position: int
    newest: int
    contacts_indexed: int

    @property
    def behind(self) -> int:
        return max(0, self.newest - self.position)


def status(session: Session) -> Status:
    """The indexer's position against the newest message."""
    return Status(
        position=_position(session, MESSAGES),
        newest=session.scalar(select(func.max(Message.id))) or 0,
        contacts_indexed=session.scalar(select(func.count()).select_from(search_contacts)) or 0,
    )


# ---------------------------------------------------------------- reading


def _position(session: Session, name: str) -> int:
    table = search_progress
    return session.scalar(select(table.c.position).where(table.c.name == name)) or 0


def _condition(session: Session, table: Any, query: Query, *, contact: bool = False) -> Any:
    """The WHERE clause that asks the index for `query` on this database: every term, or
    (for contacts) any form of the number's digits."""
    alternatives = [query.terms] if query.terms else []
    if contact and query.is_number:
        alternatives += [(d,) for d in query.digits]
    if _is_postgresql(session):
        column = table.c.text
        return or_(
            *(and_(*(column.contains(t, autoescape=True) for t in terms)) for terms in alternatives)
        )
    # FTS5: each term a quoted phrase (a substring, for the trigram tokenizer).
    expression = " OR ".join(
        "(" + " AND ".join(f'"{t.replace(chr(34), chr(34) * 2)}"' for t in terms) + ")"
        for terms in alternatives
    )
    return text(f"{table.name} MATCH :match").bindparams(match=expression)


def indexed_message_ids(
    session: Session, query: Query, *, before: int | None, after: int | None, limit: int
) -> list[int]:
    """Ids of indexed messages matching, newest first (oldest first with `after`)."""
    table = search_messages
    statement: Select[Any] = select(table.c.rowid).where(_condition(session, table, query))
    if before is not None:
        statement = statement.where(table.c.rowid < before)
    if after is not None:
        statement = statement.where(table.c.rowid > after)
    order = table.c.rowid.asc() if after is not None else table.c.rowid.desc()
    return list(session.scalars(statement.order_by(order).limit(limit)))


def _tail_matches(
    session: Session, query: Query, *, before: int | None, after: int | None
) -> list[int]:
    """Messages past the indexer's position that match, read directly, newest first."""
    position = _position(session, MESSAGES)
    statement = select(Message.id, Message.body, Message.media).where(Message.id > position)
    if before is not None:
        statement = statement.where(Message.id < before)
    if after is not None:
        statement = statement.where(Message.id > after)
    rows = session.execute(statement.order_by(Message.id.desc()).limit(TAIL_LIMIT))
    return [row.id for row in rows if matches(query, fold(message_text(row.body, row.media)))]


def _changed_tail(
    session: Session, query: Query, position: int, *, before: int | None, after: int | None
) -> tuple[list[int], set[int]]:
    """Indexed messages whose text changed since the indexer last read changes (a
    transcript, a description, a recovered template), read directly: those that match
    now, and the others, whose indexed text may match words they no longer hold."""
    since = _since(_progress(session, CHANGED))
    statement = select(Message.id, Message.body, Message.media).where(
        Message.updated_at > since,
        Message.id <= position,
        or_(Message.num_media > 0, Message.content_sid.is_not(None)),
    )
    if before is not None:
        statement = statement.where(Message.id < before)
    if after is not None:
        statement = statement.where(Message.id > after)
    rows = session.execute(statement.order_by(Message.updated_at.desc()).limit(TAIL_LIMIT))
    matching: list[int] = []
    other: set[int] = set()
    for row in rows:
        if matches(query, fold(message_text(row.body, row.media))):
            matching.append(row.id)
        else:
            other.add(row.id)
    return sorted(matching), other


def message_ids(
    session: Session,
    query: Query,
    *,
    before: int | None = None,
    after: int | None = None,
    chunk: int = 200,
) -> Iterator[list[int]]:
    """Matching message ids in chunks: newest first, or oldest first past `after`.

    The index answers for the rows it has read. What it has not read yet is read
    directly: the messages past its position, and those whose text changed since it last
    read changes (a transcript that came after the message was indexed is found at once;
    a text that lost a word is no longer found by it). Each id is given once.
    """
    tail = _tail_matches(session, query, before=before, after=after)
    position = _position(session, MESSAGES)
    changed, stale = _changed_tail(session, query, position, before=before, after=after)
    if after is not None:
        tail.reverse()
        low = after
        while True:
            found = indexed_message_ids(session, query, before=None, after=low, limit=chunk)
            ids = [i for i in found if i <= position]
            done = len(found) < chunk or len(ids) < len(found)
            top = position if done else ids[-1]
            merged = {i for i in ids if i not in stale}
            merged.update(i for i in changed if low < i <= top)
            if merged:
                yield sorted(merged)
            if done:
                break
            low = top
        if tail:
            yield tail
        return
    seen = set(tail)
    if tail:
        yield tail
    high = position + 1 if before is None else min(before, position + 1)
    while True:
        ids = indexed_message_ids(session, query, before=high, after=None, limit=chunk)
        last = len(ids) < chunk  # nothing further in the index
        low = 0 if last else ids[-1]
        merged = {i for i in ids if i not in stale and i not in seen}
        merged.update(i for i in changed if low <= i < high)
        if merged:
            seen.update(merged)
            yield sorted(merged, reverse=True)
        if last:
            return
        high = low


def contact_ids(session: Session, query: Query, limit: int, before: int | None = None) -> list[int]:
    """Ids of contacts matching, newest first: the index, then changes it has not read."""
    table = search_contacts
    statement = select(table.c.rowid).where(_condition(session, table, query, contact=True))
    if before is not None:
        statement = statement.where(table.c.rowid < before)
    found = list(session.scalars(statement.order_by(table.c.rowid.desc()).limit(limit)))
    since = (
        session.scalar(
            select(search_progress.c.changed_at).where(search_progress.c.name == CONTACTS)
        )
        or EPOCH
    )
    changed = {
        p
        for (p,) in session.execute(
            select(Contact.phone)
            .where(Contact.updated_at > since)
            .union(select(ContactProfile.participant).where(ContactProfile.updated_at > since))
            .limit(TAIL_LIMIT)
        )
    }
    if changed:
        fresh = _contact_documents(session, changed)
        extra = {
            i
            for i, folded in fresh.items()
            if matches(query, folded, contact=True) and (before is None or i < before)
        }
        stale = set(fresh) - extra
        found = sorted((set(found) - stale) | extra, reverse=True)[:limit]
    return found


# ---------------------------------------------------------------- results

KINDS = ("messages", "contacts", "conversations")
SNIPPET = 160  # characters of text shown around the first match


def snippet(query: Query, value: str) -> tuple[str, list[tuple[int, int]]]:
    """A window of `value` around its first match, and the matches' spans in it."""
    spans = highlights(query, value)
    if len(value) <= SNIPPET or not spans:
        cut = value[:SNIPPET]
        return cut, [(s, min(e, len(cut))) for s, e in spans if s < len(cut)]
    start = max(0, min(spans[0][0] - SNIPPET // 4, len(value) - SNIPPET))
    end = start + SNIPPET
    prefix = "…" if start else ""
    suffix = "…" if end < len(value) else ""
    shift = len(prefix) - start
    window = prefix + value[start:end] + suffix
    inside = [(s + shift, min(e, end) + shift) for s, e in spans if start <= s < end]
    return window, inside


def _message_rows(session: Session, ids: Sequence[int]) -> dict[int, Any]:
    if not ids:
        return {}
    rows = session.execute(
        select(
            Message.id,
            Message.participant,
            Message.direction,
            Message.channel,
            Message.body,
            Message.media,
            Message.status,
            Message.created_at,
            Message.conversation_id,
        ).where(Message.id.in_(ids))
    )
    return {row.id: row for row in rows}


def _names(session: Session, participants: Iterable[str]) -> dict[str, str]:
    """The name to show for each number: the team's edit, else the name the customer gave."""
    wanted = sorted(set(participants))
    if not wanted:
        return {}
    names: dict[str, str] = {}
    for phone, given in session.execute(
        select(Contact.phone, Contact.profile_name).where(
            Contact.phone.in_(wanted), Contact.profile_name.is_not(None)
        )
    ):
        if given:
            names.setdefault(phone, given)
    for participant, name in session.execute(
        select(ContactProfile.participant, ContactProfile.name).where(
            ContactProfile.participant.in_(wanted), ContactProfile.name.is_not(None)
        )
    ):
        if name:
            names[participant] = name
    return names


def _message_item(query: Query, row: Any, names: dict[str, str]) -> dict[str, Any]:
    found_in = message_text(row.body, row.media)
    text_shown, spans = snippet(query, found_in)
    return {
        "id": row.id,
        "participant": row.participant,
        "name": names.get(row.participant),
        "direction": row.direction,
        "channel": row.channel,
        "status": str(row.status),
        "created_at": row.created_at,
        "conversation_id": row.conversation_id,
        "snippet": text_shown,
        "highlights": [list(s) for s in spans],
    }


def _messages_page(
    session: Session, query: Query, before: int | None, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    ids: list[int] = []
    for chunk in message_ids(session, query, before=before, chunk=limit + 1):
        ids.extend(chunk)
        if len(ids) > limit:
            break
    page = ids[:limit]
    rows = _message_rows(session, page)
    names = _names(session, (r.participant for r in rows.values()))
    items = [_message_item(query, rows[i], names) for i in page if i in rows]
    return items, (page[-1] if len(ids) > limit else None)


def _contacts_page(
    session: Session, query: Query, before: int | None, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    ids = contact_ids(session, query, limit + 1, before)
    page = ids[:limit]
    rows = session.execute(
        select(Contact.id, Contact.phone, Contact.channel, Contact.opted_out_at).where(
            Contact.id.in_(page)
        )
    ).all()
    by_id = {row.id: row for row in rows}
    names = _names(session, (r.phone for r in rows))
    profiles = {
        p.participant: p
        for p in session.scalars(
            select(ContactProfile).where(ContactProfile.participant.in_({r.phone for r in rows}))
        )
    }
    items: list[dict[str, Any]] = []
    for contact_id in page:
        row = by_id.get(contact_id)
        if row is None:
            continue
        profile = profiles.get(row.phone)
        shown = " · ".join(
            p
            for p in (
                names.get(row.phone) or "",
                row.phone,
                (profile.note if profile else "") or "",
                " ".join(
                    str(v) for v in ((profile.attributes if profile else None) or {}).values()
                ),
            )
            if p
        )
        text_shown, spans = snippet(query, shown)
        items.append(
            {
                "id": row.id,
                "participant": row.phone,
                "channel": row.channel,
                "name": names.get(row.phone),
                "opted_out": row.opted_out_at is not None,
                "snippet": text_shown,
                "highlights": [list(s) for s in spans],
            }
        )
    return items, (page[-1] if len(ids) > limit else None)


def _listed_before(
    session: Session, query: Query, conversations: set[int], before: int
) -> set[int]:
    """Those of `conversations` with a matching message at or after `before` (the id a
    page of conversations went on from): they were listed on an earlier page."""
    if not conversations:
        return set()
    table = search_messages
    position = _position(session, MESSAGES)
    matching = select(table.c.rowid).where(
        _condition(session, table, query), table.c.rowid >= before
    )
    listed = set(
        session.scalars(
            select(Message.conversation_id)
            .where(
                Message.conversation_id.in_(conversations),
                Message.id >= before,
                Message.id.in_(matching),
            )
            .distinct()
        )
    )
    # And the messages the indexer has not read yet, checked here.
    for row in session.execute(
        select(Message.conversation_id, Message.body, Message.media).where(
            Message.conversation_id.in_(conversations - listed),
            Message.id >= before,
            Message.id > position,
        )
    ):
        if matches(query, fold(message_text(row.body, row.media))):
            listed.add(row.conversation_id)
    return {c for c in listed if c is not None}


CONVERSATION_SCAN = 2000  # matching messages read at most for one page of conversations


def _conversations_page(
    session: Session, query: Query, before: int | None, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """Conversations whose messages match, by their newest matching message; on the
    first page, the conversations of matching contacts come first."""
    from relaydesk.messaging.models import Conversation

    best: dict[int, int] = {}  # conversation id -> newest matching message id
    scanned, last_id, exhausted = 0, None, True
    for chunk in message_ids(session, query, before=before, chunk=200):
        rows = session.execute(
            select(Message.id, Message.conversation_id).where(Message.id.in_(chunk))
        ).all()
        conversation_of = dict(rows)
        if before is not None:  # listed on an earlier page: a newer message matched there
            shown = _listed_before(
                session, query, {c for c in conversation_of.values() if c is not None}, before
            )
            conversation_of = {m: c for m, c in conversation_of.items() if c not in shown}
        for message_id in chunk:
            last_id = message_id
            owner = conversation_of.get(message_id)
            if owner is not None and owner not in best:
                best[owner] = message_id
            if len(best) > limit:
                break
        scanned += len(chunk)
        if len(best) > limit or scanned >= CONVERSATION_SCAN:
            exhausted = False
            break
    ordered = sorted(best.items(), key=lambda kv: kv[1], reverse=True)
    extra: list[int] = []
    if before is None:
        participants = {
            p
            for (p,) in session.execute(
                select(Contact.phone).where(Contact.id.in_(contact_ids(session, query, limit)))
            )
        }
        if participants:
            extra = [
                c
                for (c,) in session.execute(
                    select(Conversation.id)
                    .where(Conversation.participant.in_(participants))
                    .order_by(Conversation.last_message_at.desc())
                    .limit(limit)
                )
                if c not in best
            ]
    chosen = extra + [c for c, _ in ordered]
    page = chosen[:limit]
    conversations = {
        c.id: c for c in session.scalars(select(Conversation).where(Conversation.id.in_(page)))
    }
    messages = _message_rows(session, [best[c] for c in page if c in best])
    names = _names(session, (c.participant for c in conversations.values()))
    items: list[dict[str, Any]] = []
    for conversation_id in page:
        conversation = conversations.get(conversation_id)
        if conversation is None:
            continue
        match = best.get(conversation_id)
        items.append(
            {
                "id": conversation.id,
                "participant": conversation.participant,
                "channel": conversation.channel,
                "name": names.get(conversation.participant),
                "status": str(conversation.status),
                "last_message_at": conversation.last_message_at,
                "match": _message_item(query, messages[match], names)
                if match in messages
                else None,
            }
        )
    more = len(chosen) > limit or not exhausted
    next_before = min((best[c] for c in page if c in best), default=None)
    if not more:
        return items, None
    if next_before is None:
        next_before = last_id
    return items, next_before


def find(
    session: Session, raw: str, kind: str, *, before: int | None = None, limit: int = 20
) -> tuple[list[dict[str, Any]], int | None]:
    """One page of results of `kind` for the query in `raw`, and where the next one starts."""
    query = parse(raw)
    if kind == "contacts":
        return _contacts_page(session, query, before, limit)
    if kind == "conversations":
        return _conversations_page(session, query, before, limit)
    return _messages_page(session, query, before, limit)


def participants_with_number(session: Session, query: Query, limit: int = 500) -> list[str]:
    """The numbers of contacts whose digits hold the number `query` looks like."""
    if not query.is_number:
        return []
    numbers = Query(query.raw, terms=(), digits=query.digits)
    ids = contact_ids(session, numbers, limit)
    if not ids:
        return []
    return sorted(set(session.scalars(select(Contact.phone).where(Contact.id.in_(ids)))))
