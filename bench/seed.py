"""Seed a migrated relaydesk SQLite database with a realistic message history.

Writes N messages over M conversations straight into the tables, the way the app itself
would have written them over a year of traffic: one contact and one conversation per
customer number, messages alternating mostly between inbound and outbound (~50/50),
outbound statuses in a realistic mix (mostly delivered, some sent/undelivered/failed with
Twilio error codes), inbound messages already processed by the worker, conversation
previews/counters matching their messages, and `message_counters` set to the true totals.

The database must be migrated (`relaydesk migrate`) and hold no messages, conversations
or contacts yet. Datetimes are stored exactly as the app stores them on SQLite:
'YYYY-MM-DD HH:MM:SS.ffffff' (SQLAlchemy's DATETIME), except `conversations.last_message_at`
and `last_inbound_at`, which the app writes through an untyped bind parameter in
`relaydesk.messaging.ingest.bump_conversations` and therefore end up as
str(datetime) = 'YYYY-MM-DD HH:MM:SS.ffffff+00:00' -- the seed mirrors that too.

Run (about 40 s for a million messages on 2 cores):

    .venv/bin/relaydesk migrate          # with DATA_DIR=/tmp/seeded
    .venv/bin/python bench/seed.py --db /tmp/seeded/app.db --messages 1000000 \
        --conversations 50000
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchlib import BENCH_ACCOUNT_SID
from relaydesk.channels.twilio.errors import describe_error
from relaydesk.channels.twilio.segments import count_segments
from relaydesk.core.config import SANDBOX_DEFAULT_FROM
from relaydesk.maintenance import ANALYSIS_LIMIT

OUR_ADDRESS = SANDBOX_DEFAULT_FROM
ACCOUNT_SID = BENCH_ACCOUNT_SID
CHUNK = 50_000
BODY_POOL = 20_000
DEFAULT_SEED = 20261122

# Polish mobile prefixes (all valid for phonenumbers' numbering plan).
PL_MOBILE_PREFIXES = [
    *(f"50{d}" for d in range(10)),
    *(f"51{d}" for d in range(10)),
    *(f"53{d}" for d in range(10)),
    *(f"57{d}" for d in range(10)),
    *(f"60{d}" for d in range(10)),
    *(f"66{d}" for d in range(10)),
    *(f"69{d}" for d in range(9)),
    *(f"72{d}" for d in range(10)),
    *(f"78{d}" for d in range(10)),
    *(f"79{d}" for d in range(10)),
    *(f"88{d}" for d in range(10)),
]

INBOUND_SENTENCES = [
    "Dzień dobry, kiedy dotrze moja paczka?",
    "Czy mogę zmienić adres dostawy na Kraków, ul. Długa 12?",
    "Ile kosztuje dostawa kurierem?",
    "Zamówienie nr {n} jeszcze nie przyszło.",
    "Dziękuję, wszystko się zgadza.",
    "Proszę o fakturę VAT na firmę.",
    "Czy jest możliwość odbioru osobistego w Warszawie?",
    "Chciałbym złożyć reklamację, produkt przyszedł uszkodzony.",
    "Jaki jest status mojego zamówienia?",
    "Płatność została już zrobiona przelewem.",
    "Potwierdzam wizytę w czwartek o 14:30.",
    "Niestety nie mogę przyjść jutro, czy możemy przełożyć termin?",
    "Czy sklep jest otwarty w sobotę?",
    "Super, dzięki za szybką odpowiedź!",
    "Hi, is my order {n} on its way?",
    "Can I change the delivery date to Friday?",
    "Thanks, received it today.",
    "Where can I download the invoice?",
    "Zgubiłem numer przesyłki, możecie go przesłać jeszcze raz?",
    "Czy produkt jest dostępny w rozmiarze M?",
    "Ok",
    "Tak, poproszę.",
    "Nie, dziękuję.",
    "Kurier był, ale nikogo nie zastał w domu. Co teraz?",
    "Zwrot wysłałem paczkomatem, kod nadania {n}.",
]
OUTBOUND_SENTENCES = [
    "Dzień dobry! Twoje zamówienie nr {n} zostało wysłane.",
    "Przesyłka dotrze jutro między 9:00 a 17:00.",
    "Numer przesyłki: {n}. Śledzenie: https://example.pl/t/{n}",
    "Dziękujemy za kontakt, odpowiemy najszybciej jak to możliwe.",
    "Faktura została wysłana na adres e-mail podany w zamówieniu.",
    "Przypominamy o wizycie w czwartek o 14:30. Odpowiedz TAK, aby potwierdzić.",
    "Reklamacja nr {n} została przyjęta, rozpatrzymy ją w ciągu 14 dni.",
    "Dostawa kurierem kosztuje 14,99 zł, od 200 zł gratis.",
    "Sklep jest czynny od poniedziałku do soboty w godz. 10-20.",
    "Płatność zaksięgowana, dziękujemy!",
    "Your order {n} has shipped and should arrive within 2 business days.",
    "Thank you for your message, a consultant will reply shortly.",
    "Kod odbioru w paczkomacie: {n}.",
    "Zmieniliśmy adres dostawy zgodnie z prośbą.",
    "Pozdrawiamy, zespół obsługi klienta.",
]

# (status, weight, error codes) for outbound messages that reached a final Twilio status.
OUTBOUND_STATUSES: list[tuple[str, float, list[int]]] = [
    ("delivered", 0.88, []),
    ("sent", 0.05, []),
    ("undelivered", 0.04, [30003, 30005, 30006, 30008]),
    ("failed", 0.03, [30007, 30008, 21610, 30034]),
]

MESSAGE_COLUMNS = (
    "id",
    "sid",
    "direction",
    "channel",
    "from_addr",
    "to_addr",
    "participant",
    "conversation_id",
    "body",
    "media",
    "num_media",
    "status",
    "error_code",
    "error_message",
    "num_segments",
    "encoding",
    "source",
    "raw",
    "attempts",
    "next_attempt_at",
    "submit_started_at",
    "submit_state",
    "processed_at",
    "created_at",
    "updated_at",
    "status_changed_at",
)


@dataclass
class SeedSummary:
    """What was written."""

    messages: int
    inbound: int
    outbound: int
    conversations: int
    seconds: float
    busiest_participant: str
    busiest_count: int


def participant_number(index: int) -> str:
    """The E.164 number of seeded customer `index` (distinct for index < 117,000,000)."""
    prefix = PL_MOBILE_PREFIXES[index % len(PL_MOBILE_PREFIXES)]
    # 7919 is coprime with 10**6, so the suffixes of one prefix never repeat.
    suffix = ((index // len(PL_MOBILE_PREFIXES)) * 7919 + 123_457) % 1_000_000
    return f"+48{prefix}{suffix:06d}"


def new_sid(rng: random.Random) -> str:
    """A Twilio-looking message SID: 'SM' + 32 hex digits."""
    return f"SM{rng.getrandbits(128):032x}"


def make_body(
    rng: random.Random, sentences: list[str], min_len: int = 20, max_len: int = 300
) -> str:
    """A message body of `min_len`..`max_len` characters made of whole sentences."""
    target = min(max_len, max(min_len, int(rng.lognormvariate(math.log(70), 0.7))))
    parts: list[str] = []
    length = 0
    while length < target:
        sentence = rng.choice(sentences).replace("{n}", str(rng.randrange(100_000, 999_999)))
        parts.append(sentence)
        length += len(sentence) + 1
    body = " ".join(parts)
    if len(body) > max_len:
        body = body[:max_len].rsplit(" ", 1)[0]
    if len(body) < min_len:
        body = (body + " Pozdrawiam serdecznie.")[:max_len]
    return body


def sqlite_datetime(dt: datetime) -> str:
    """How SQLAlchemy's SQLite DATETIME stores a value: always with microseconds."""
    return dt.isoformat(sep=" ", timespec="microseconds")


def bump_datetime(dt: datetime) -> str:
    """How bump_conversations' untyped bind stores an aware datetime: str(datetime)."""
    return str(dt.replace(tzinfo=UTC))


def _check_empty(conn: sqlite3.Connection) -> None:
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    needed = {"messages", "conversations", "contacts", "message_counters", "alembic_version"}
    if not needed <= tables:
        raise SystemExit(
            f"the database is not migrated (missing {', '.join(sorted(needed - tables))}); "
            "run 'relaydesk migrate' with the same DATA_DIR first"
        )
    for table in ("messages", "conversations", "contacts"):
        if conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone():  # noqa: S608
            raise SystemExit(f"table {table} is not empty; seed into a freshly migrated database")


def _body_pool(rng: random.Random, sentences: list[str]) -> list[tuple[str, int, str]]:
    """(body, segments, encoding) for BODY_POOL bodies."""
    pool = []
    for _ in range(BODY_POOL):
        body = make_body(rng, sentences)
        info = count_segments(body)
        pool.append((body, info.segments, info.encoding))
    return pool


def _message_rows(
    rng: random.Random,
    messages: int,
    conversations: int,
    days: int,
    now: datetime,
    state: dict[str, list[Any]],
) -> Iterator[list[tuple[Any, ...]]]:
    """Chunks of message rows, oldest first; fills `state` with per-conversation facts."""
    phones = [participant_number(i) for i in range(conversations)]
    # Skewed activity: a few customers write a lot, most a little (log-normal weights).
    weights = [rng.lognormvariate(0.0, 1.0) for _ in range(conversations)]
    cum: list[float] = []
    total = 0.0
    for w in weights:
        total += w
        cum.append(total)
    conv_of = list(range(conversations)) + rng.choices(
        range(conversations), cum_weights=cum, k=messages - conversations
    )
    rng.shuffle(conv_of)

    inbound_pool = _body_pool(rng, INBOUND_SENTENCES)
    outbound_pool = _body_pool(rng, OUTBOUND_SENTENCES)
    status_names = [s for s, _, _ in OUTBOUND_STATUSES]
    status_weights = [w for _, w, _ in OUTBOUND_STATUSES]
    codes = {s: c for s, _, c in OUTBOUND_STATUSES}
    lease = timedelta(minutes=2)

    start = now - timedelta(days=days)
    step_us = days * 86_400_000_000 / messages
    count = state["count"]
    last_id = state["last_id"]
    last_at = state["last_at"]
    last_body = state["last_body"]
    last_dir = state["last_dir"]
    last_in = state["last_in"]
    first_at = state["first_at"]
    unread = state["unread"]

    chunk: list[tuple[Any, ...]] = []
    for i in range(messages):
        mid = i + 1
        c = conv_of[i]
        phone = phones[c]
        created = start + timedelta(microseconds=int(i * step_us + rng.random() * step_us * 0.9))
        previous = last_dir[c]
        if previous is None:
            direction = "inbound" if rng.random() < 0.65 else "outbound"
        elif rng.random() < 0.7:
            direction = "outbound" if previous == "inbound" else "inbound"
        else:
            direction = previous
        sid = new_sid(rng)
        at = sqlite_datetime(created)
        row: tuple[Any, ...]
        if direction == "inbound":
            body, segments, _ = inbound_pool[rng.randrange(BODY_POOL)]
            raw = json.dumps(
                {
                    "ToCountry": "US",
                    "SmsMessageSid": sid,
                    "NumMedia": "0",
                    "SmsSid": sid,
                    "SmsStatus": "received",
                    "Body": body,
                    "FromCountry": "PL",
                    "To": OUR_ADDRESS,
                    "NumSegments": str(segments),
                    "MessageSid": sid,
                    "AccountSid": ACCOUNT_SID,
                    "From": phone,
                    "ApiVersion": "2010-04-01",
                }
            )
            processed = sqlite_datetime(created + timedelta(milliseconds=rng.randint(20, 400)))
            row = (
                mid, sid, "inbound", "sms", phone, OUR_ADDRESS, phone, c + 1, body, "[]", 0,
                "received", None, None, segments, None, "customer", raw, 0, None, None, None,
                processed, at, at, at,
            )  # fmt: skip
            last_in[c] = created
            unread[c] += 1
        else:
            body, segments, encoding = outbound_pool[rng.randrange(BODY_POOL)]
            status = rng.choices(status_names, weights=status_weights)[0]
            code = rng.choice(codes[status]) if codes[status] else None
            submitted = created + timedelta(milliseconds=rng.randint(5, 80))
            changed = sqlite_datetime(created + timedelta(milliseconds=rng.randint(800, 20_000)))
            row = (
                mid, sid, "outbound", "sms", OUR_ADDRESS, phone, phone, c + 1, body, "[]", 0,
                status, code, describe_error(code) if code else None, segments, encoding, "api",
                None, 2 if rng.random() < 0.01 else 1, sqlite_datetime(submitted + lease),
                sqlite_datetime(submitted), "submitted", None, at, changed, changed,
            )  # fmt: skip
            unread[c] = 0  # an operator who replies has read the thread
        if first_at[c] is None:
            first_at[c] = created
        count[c] += 1
        last_id[c] = mid
        last_at[c] = created
        last_body[c] = body[:200]
        last_dir[c] = direction
        chunk.append(row)
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
    state["phones"] = phones


def seed_database(
    db_path: Path,
    messages: int,
    conversations: int,
    *,
    days: int = 365,
    rng_seed: int = DEFAULT_SEED,
    analyze: bool = True,
    progress: Callable[[str], None] | None = None,
) -> SeedSummary:
    """Seed `messages` messages over `conversations` conversations into `db_path`."""
    if messages < 1 or conversations < 1:
        raise ValueError("messages and conversations must be positive")
    conversations = min(conversations, messages)
    say = progress or (lambda _msg: None)
    began = time.perf_counter()
    rng = random.Random(rng_seed)
    now = datetime.now(UTC).replace(tzinfo=None)

    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        _check_empty(conn)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-1048576")  # 1 GiB: all indexes stay in memory
        conn.execute("PRAGMA temp_store=MEMORY")
        conn.execute("PRAGMA foreign_keys=OFF")

        state: dict[str, list[Any]] = {
            "count": [0] * conversations,
            "last_id": [0] * conversations,
            "last_at": [None] * conversations,
            "last_body": [None] * conversations,
            "last_dir": [None] * conversations,
            "last_in": [None] * conversations,
            "first_at": [None] * conversations,
            "unread": [0] * conversations,
        }
        insert = (
            f"INSERT INTO messages ({', '.join(MESSAGE_COLUMNS)}) "  # noqa: S608
            f"VALUES ({', '.join('?' * len(MESSAGE_COLUMNS))})"
        )
        written = 0
        for chunk in _message_rows(rng, messages, conversations, days, now, state):
            conn.execute("BEGIN")
            conn.executemany(insert, chunk)
            conn.execute("COMMIT")
            written += len(chunk)
            if written % (CHUNK * 4) == 0 or written == messages:
                say(f"  seeded {written:,} / {messages:,} messages")

        phones: list[str] = state["phones"]
        contacts = []
        convs = []
        for c in range(conversations):
            first = state["first_at"][c]
            last = state["last_at"][c]
            last_in = state["last_in"][c]
            contacts.append(
                (
                    c + 1,
                    phones[c],
                    "sms",
                    sqlite_datetime(first),
                    sqlite_datetime(last_in or first),
                )
            )
            convs.append(
                (
                    c + 1,
                    c + 1,
                    phones[c],
                    "sms",
                    OUR_ADDRESS,
                    state["last_id"][c],
                    bump_datetime(last),
                    state["last_body"][c],
                    state["last_dir"][c],
                    bump_datetime(last_in) if last_in else None,
                    state["count"][c],
                    state["unread"][c],
                    sqlite_datetime(first),
                    sqlite_datetime(last),
                )
            )
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO contacts (id, phone, channel, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?)",
            contacts,
        )
        conn.executemany(
            "INSERT INTO conversations (id, contact_id, participant, channel, our_address, "
            "last_message_id, last_message_at, last_body, last_direction, last_inbound_at, "
            "message_count, unread_count, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            convs,
        )
        for direction in ("inbound", "outbound"):
            conn.execute(
                "INSERT INTO message_counters (direction, count) "
                "VALUES (?, (SELECT count(*) FROM messages WHERE direction = ?)) "
                "ON CONFLICT (direction) DO UPDATE SET count = excluded.count",
                (direction, direction),
            )
        conn.execute("COMMIT")
        say(f"  seeded {conversations:,} contacts and conversations")
        if analyze:
            # What the app's hourly maintenance.analyze job does, no more: the figures
            # are those of a long-running install, not of a hand-tuned database.
            started = time.perf_counter()
            conn.execute(f"PRAGMA analysis_limit={ANALYSIS_LIMIT}")
            conn.execute("ANALYZE")
            say(f"  planner statistics (sampled ANALYZE) in {time.perf_counter() - started:.2f} s")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        totals = dict(conn.execute("SELECT direction, count FROM message_counters").fetchall())
    finally:
        conn.close()

    busiest = max(range(conversations), key=lambda c: state["count"][c])
    return SeedSummary(
        messages=messages,
        inbound=int(totals.get("inbound", 0)),
        outbound=int(totals.get("outbound", 0)),
        conversations=conversations,
        seconds=time.perf_counter() - began,
        busiest_participant=state["phones"][busiest],
        busiest_count=state["count"][busiest],
    )


def main(argv: list[str] | None = None) -> int:
    """Command line: seed a database and print a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True, help="SQLite file (DATA_DIR/app.db)")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--conversations", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=365, help="history spans this many days")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    parser.add_argument("--no-analyze", action="store_true", help="skip ANALYZE afterwards")
    args = parser.parse_args(argv)
    if not args.db.exists():
        parser.error(f"{args.db} does not exist; run 'relaydesk migrate' first")
    summary = seed_database(
        args.db,
        args.messages,
        args.conversations,
        days=args.days,
        rng_seed=args.seed,
        analyze=not args.no_analyze,
        progress=print,
    )
    print(
        f"seeded {summary.messages:,} messages ({summary.inbound:,} inbound, "
        f"{summary.outbound:,} outbound) over {summary.conversations:,} conversations "
        f"in {summary.seconds:.1f} s; busiest conversation {summary.busiest_participant} "
        f"({summary.busiest_count:,} messages)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
