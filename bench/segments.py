"""Benchmark: a segment's live count and a campaign preview's resolution at 50,000 contacts.

What it measures
    Latency (p50/p95/max over --repeat calls after a warm-up) of the service calls behind
    POST /api/segments/preview (`segments.service.count`, one SQL statement) and behind
    POST /api/multi-sms/preview with a segment (`segments.service.resolve`: every member
    read, opted-out ones given their reason), for rule sets of each kind:
      - everyone                      (no rule)
      - channel + opted-in only
      - label any of 2 / all of 2 / none of 1
      - attribute: text equals, text contains, number >, date <, list one of
      - wrote within 30 days, has an open conversation
      - all of the above combined (the narrow, realistic segment)
    The HTTP layer (a few ms, the same for every route) is left out: the figures are the
    database's work, in process, through the same engine the server uses.

How
    Migrates a fresh DATA_DIR (or DATABASE_URL, e.g. a PostgreSQL database) and seeds
    --contacts customers (10% also on WhatsApp, 5% opted out): one conversation per
    contact row (last inbound spread over 90 days, a status each), 2 labels spread over
    them, a profile with 4 attribute values (city, visits, since, plan) for 80%; then
    ANALYZE, as the app does hourly.

Run (about a minute on SQLite):

    PYTHONPATH=src .venv/bin/python bench/segments.py
    PYTHONPATH=src .venv/bin/python bench/segments.py --contacts 50000 --repeat 30
    DATABASE_URL=postgresql+psycopg://... PYTHONPATH=src .venv/bin/python bench/segments.py
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import percentile

CITIES = ("Warszawa", "Kraków", "Gdańsk", "Łódź", "Wrocław", "Poznań")
STATUSES = ("open", "pending", "snoozed", "resolved")


def seed(contacts: int, rng: random.Random) -> dict[str, int]:
    """Contacts, conversations, labels and profiles, inserted in bulk."""
    from sqlalchemy import insert, text

    from relaydesk.contacts.models import Contact, ContactAttribute, ContactProfile
    from relaydesk.core.db import session_scope
    from relaydesk.messaging.models import Conversation, ConversationLabel, Label

    now = datetime.now(UTC)
    with session_scope() as session:
        session.execute(
            insert(ContactAttribute),
            [
                {
                    "key": "city",
                    "name": "City",
                    "kind": "text",
                    "options": [],
                    "position": 0,
                    "created_at": now,
                },
                {
                    "key": "visits",
                    "name": "Visits",
                    "kind": "number",
                    "options": [],
                    "position": 1,
                    "created_at": now,
                },
                {
                    "key": "since",
                    "name": "Since",
                    "kind": "date",
                    "options": [],
                    "position": 2,
                    "created_at": now,
                },
                {
                    "key": "plan",
                    "name": "Plan",
                    "kind": "list",
                    "options": ["Gold", "Silver"],
                    "position": 3,
                    "created_at": now,
                },
            ],
        )
        labels = {}
        for name, colour in (("VIP", "#1f77b4"), ("Hurt", "#2ca02c")):
            label = Label(name=name, key=name.casefold(), colour=colour, created_at=now)
            session.add(label)
            session.flush()
            labels[name] = label.id
        rows, profiles = [], []
        for i in range(contacts):
            phone = f"+4860{i:07d}"
            out = now - timedelta(days=rng.randint(1, 300)) if rng.random() < 0.05 else None
            rows.append(
                {
                    "phone": phone,
                    "channel": "sms",
                    "opted_out_at": out,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            if rng.random() < 0.10:
                rows.append(
                    {
                        "phone": phone,
                        "channel": "whatsapp",
                        "opted_out_at": None,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
            if rng.random() < 0.8:
                since = now.date() - timedelta(days=rng.randint(0, 2000))
                profiles.append(
                    {
                        "participant": phone,
                        "note": "",
                        "created_at": now,
                        "updated_at": now,
                        "attributes": {
                            "city": rng.choice(CITIES),
                            "visits": rng.randint(0, 40),
                            "since": since.isoformat(),
                            "plan": rng.choice(("Gold", "Silver")),
                        },
                    }
                )
        session.execute(insert(Contact), rows)
        session.execute(insert(ContactProfile), profiles)
        ids = session.execute(text("SELECT id, phone, channel FROM contacts")).all()
        conversations = [
            {
                "contact_id": cid,
                "participant": phone,
                "channel": channel,
                "our_address": ("whatsapp:" if channel == "whatsapp" else "") + "+15005550006",
                "last_inbound_at": now - timedelta(hours=rng.randint(1, 90 * 24)),
                "last_message_at": now,
                "message_count": 1,
                "unread_count": 0,
                "status": rng.choice(STATUSES),
                "priority": "none",
                "automation_enabled": True,
                "created_at": now,
                "updated_at": now,
            }
            for cid, phone, channel in ids
        ]
        session.execute(insert(Conversation), conversations)
        conv_ids = [cid for (cid,) in session.execute(text("SELECT id FROM conversations"))]
        pairs = [
            {"conversation_id": cid, "label_id": lid}
            for cid in conv_ids
            for name, lid in labels.items()
            if rng.random() < (0.2 if name == "VIP" else 0.1)
        ]
        session.execute(insert(ConversationLabel), pairs)
        session.execute(text("ANALYZE"))
    return labels


def rule_sets(labels: dict[str, int]) -> dict[str, dict[str, Any]]:
    vip, hurt = labels["VIP"], labels["Hurt"]
    return {
        "everyone": {},
        "channel+opted-in": {"channel": "sms", "opted_in_only": True},
        "label any": {"labels": [{"match": "any", "label_ids": [vip, hurt]}]},
        "label all": {"labels": [{"match": "all", "label_ids": [vip, hurt]}]},
        "label none": {"labels": [{"match": "none", "label_ids": [vip]}]},
        "text equals": {"attributes": [{"key": "city", "op": "equals", "value": "Warszawa"}]},
        "text contains": {"attributes": [{"key": "city", "op": "contains", "value": "ków"}]},
        "number >": {"attributes": [{"key": "visits", "op": "gt", "value": 30}]},
        "date <": {"attributes": [{"key": "since", "op": "lt", "value": "2022-01-01"}]},
        "list one of": {"attributes": [{"key": "plan", "op": "one_of", "values": ["Gold"]}]},
        "wrote in 30 days": {"last_inbound_within_days": 30},
        "open conversation": {"conversation_status": ["open"]},
        "combined": {
            "channel": "sms",
            "opted_in_only": True,
            "labels": [{"match": "any", "label_ids": [vip]}],
            "attributes": [
                {"key": "city", "op": "equals", "value": "Warszawa"},
                {"key": "visits", "op": "gt", "value": 10},
            ],
            "last_inbound_within_days": 30,
        },
    }


def timed(call: Any, repeat: int) -> list[float]:
    call()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return sorted(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--seed", type=int, default=20)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="bench-segments-")
    os.environ.setdefault("DATA_DIR", folder)
    os.environ.setdefault("SECRET_KEY", "bench-" + "x" * 40)

    from relaydesk import migrations
    from relaydesk.core.config import get_settings
    from relaydesk.core.db import get_engine, session_scope
    from relaydesk.segments import service
    from relaydesk.segments.models import Segment
    from relaydesk.segments.schemas import Rules

    migrations.upgrade()
    started = time.perf_counter()
    labels = seed(args.contacts, random.Random(args.seed))
    print(
        f"seeded {args.contacts:,} customers in {time.perf_counter() - started:.1f} s "
        f"on {get_engine().dialect.name}"
    )
    get_settings().campaign_max_recipients = 10**9  # resolve every set, however large
    print(f"{'rules':<20} {'members':>8}  count p50/p95/max ms   resolve p50/p95/max ms")
    for name, raw in rule_sets(labels).items():
        rules = Rules.model_validate(raw)
        with session_scope() as session:
            segment = Segment(name=name, rules=rules.model_dump(mode="json"))
            session.add(segment)
            session.flush()
            segment_id = segment.id
        with session_scope(write=False) as session:
            counted = service.count(session, rules)
            count_ms = timed(lambda s=session, r=rules: service.count(s, r), args.repeat)
            resolve_ms = timed(
                lambda s=session, i=segment_id: service.resolve(s, i), max(3, args.repeat // 4)
            )
        print(
            f"{name:<20} {counted.matching:>8}  "
            f"{percentile(count_ms, 50):6.1f} {percentile(count_ms, 95):6.1f} {count_ms[-1]:6.1f}"
            f"      {percentile(resolve_ms, 50):6.1f} {percentile(resolve_ms, 95):6.1f} "
            f"{resolve_ms[-1]:6.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
