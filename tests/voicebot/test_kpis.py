"""The voice-bot KPIs equal the values computed here, in plain Python, from the fixture data."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from relaydesk.voicebot import kpis

CRITERIA = ("goal_reached", "greeting", "politeness")
MARCH = (datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC))


def conversation(n: int, start_time: datetime, **fields: Any) -> dict[str, Any]:
    """A conversation row (as the sync would store it) with sensible defaults."""
    row: dict[str, Any] = {
        "conversation_id": f"conv_{n:05d}",
        "agent_id": "agent_a",
        "agent_name": "Recepcja",
        "status": "done",
        "start_time": start_time,
        "duration_secs": 60,
        "message_count": 4,
        "agent_messages": 2,
        "direction": "inbound",
        "call_successful": "success",
        "cost": 100.0,
        "rating": None,
        "likes": 0,
        "dislikes": 0,
        "has_error": False,
        "transferred": False,
        "dropout": False,
        "customer_number": "+48600100200",
        "agent_number": "+48221234567",
        "title": "Pytanie o dostawę",
        "summary": "Klient zapytał o termin dostawy.",
        "details": None,
        "evaluations": {},
    }
    row.update(fields)
    return row


def insert(rows: Iterable[dict[str, Any]]) -> None:
    """Store conversations and their evaluation results directly (no sync involved)."""
    from relaydesk.core.db import session_scope
    from relaydesk.voicebot.models import VoiceConversation, VoiceEvaluation

    with session_scope() as session:
        for data in rows:
            values = {k: v for k, v in data.items() if k != "evaluations"}
            row = VoiceConversation(**values)
            session.add(row)
            session.flush()
            for criterion, result in data["evaluations"].items():
                session.add(
                    VoiceEvaluation(
                        conversation_pk=row.id,
                        start_time=row.start_time,
                        agent_id=row.agent_id,
                        criterion=criterion,
                        result=result,
                    )
                )


def fixture_rows(seed: int = 8) -> list[dict[str, Any]]:
    """300 calls in March 2025 over two agents, the edges of the month, and calls outside it."""
    rng = random.Random(seed)
    rows = []
    for n in range(300):
        moment = MARCH[0] + timedelta(seconds=rng.randrange(31 * 86400))
        result_pool = ["success"] * 5 + ["failure"] * 3 + ["unknown"] * 2
        rows.append(
            conversation(
                n,
                moment,
                agent_id=rng.choice(["agent_a", "agent_a", "agent_b"]),
                status=rng.choice(["done"] * 9 + ["failed"]),
                duration_secs=rng.choice([0, 5, 29, 30, 31, 120, 299, 300, 301, 640]),
                agent_messages=rng.randrange(0, 15),
                direction=rng.choice(["inbound", "inbound", "outbound", None]),
                call_successful=rng.choice(result_pool),
                cost=rng.choice([None, float(rng.randrange(10, 3000))]),
                rating=rng.choice([None, None, float(rng.randint(1, 5))]),
                likes=rng.randrange(0, 3),
                dislikes=rng.randrange(0, 2),
                has_error=rng.random() < 0.08,
                transferred=rng.random() < 0.15,
                dropout=rng.random() < 0.2,
                evaluations={c: rng.choice(result_pool) for c in CRITERIA if rng.random() < 0.85},
            )
        )
    edges = [
        (datetime(2025, 3, 1, 0, 0, 0, tzinfo=UTC), "in"),
        (datetime(2025, 3, 31, 23, 59, 59, tzinfo=UTC), "in"),
        (datetime(2025, 2, 28, 23, 59, 59, tzinfo=UTC), "out"),
        (datetime(2025, 4, 1, 0, 0, 0, tzinfo=UTC), "out"),
        (datetime(2025, 2, 10, 12, 0, tzinfo=UTC), "out"),
        (datetime(2025, 4, 15, 12, 0, tzinfo=UTC), "out"),
    ]
    for i, (moment, _) in enumerate(edges):
        rows.append(
            conversation(
                1000 + i,
                moment,
                agent_id="agent_b",
                cost=7.0,
                rating=5.0,
                evaluations={"goal_reached": "success", "outside_only": "failure"},
            )
        )
    return rows


def pct(part: int, whole: int) -> float:
    return round(part * 100 / whole, 1) if whole else 0.0


def expected(
    rows: list[dict[str, Any]], start: datetime, end: datetime, agent: str | None
) -> dict[str, Any]:
    """Every KPI computed in Python from the fixture rows (never from the database)."""
    picked = [
        r
        for r in rows
        if start <= r["start_time"] < end and (agent is None or r["agent_id"] == agent)
    ]
    total = len(picked)

    def count(pred: Any, among: list[dict[str, Any]] = picked) -> int:
        return sum(1 for r in among if pred(r))

    ok = count(lambda r: r["call_successful"] == "success")
    bad = count(lambda r: r["call_successful"] == "failure")
    directions = {}
    for side in ("inbound", "outbound"):
        mine = [r for r in picked if r["direction"] == side]
        directions[side] = {
            "total": len(mine),
            "successful": count(lambda r: r["call_successful"] == "success", mine),
            "failed": count(lambda r: r["call_successful"] == "failure", mine),
        }
    durations = [r["duration_secs"] for r in picked]
    costs = [r["cost"] for r in picked if r["cost"] is not None]
    ratings = [r["rating"] for r in picked if r["rating"] is not None]
    errors = count(lambda r: r["has_error"] or r["status"] == "failed")
    transfers = count(lambda r: r["transferred"])
    dropouts = count(lambda r: r["dropout"])
    evaluation: dict[str, dict[str, Any]] = {}
    tally: dict[str, dict[str, int]] = defaultdict(
        lambda: {"success": 0, "failure": 0, "unknown": 0}
    )
    for r in picked:
        for criterion, result in r["evaluations"].items():
            tally[criterion][result] += 1
    for criterion in sorted(tally):
        t = tally[criterion]
        evaluation[criterion] = {**t, "pass_rate": pct(t["success"], t["success"] + t["failure"])}
    by_day: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in picked:
        by_day[r["start_time"].strftime("%Y-%m-%d")].append(r)
    daily = []
    for day in sorted(by_day):
        mine = by_day[day]
        won = count(lambda r: r["call_successful"] == "success", mine)
        day_costs = [r["cost"] for r in mine if r["cost"] is not None]
        daily.append(
            {
                "date": day,
                "total": len(mine),
                "successful": won,
                "conversion_rate": pct(won, len(mine)),
                "avg_duration": round(sum(r["duration_secs"] for r in mine) / len(mine), 1),
                "cost": round(sum(day_costs), 2),
            }
        )
    return {
        "total": total,
        "successful": ok,
        "failed": bad,
        "unknown": total - ok - bad,
        "conversion_rate": pct(ok, total),
        "direction": directions,
        "duration": {
            "avg": round(sum(durations) / total, 1) if total else 0.0,
            "min": min(durations, default=0),
            "max": max(durations, default=0),
            "short": count(lambda r: r["duration_secs"] < 30),
            "long": count(lambda r: r["duration_secs"] > 300),
        },
        "avg_agent_messages": round(sum(r["agent_messages"] for r in picked) / total, 1)
        if total
        else 0.0,
        "cost": {
            "total": round(sum(costs), 2),
            "avg": round(sum(costs) / len(costs), 2) if costs else 0.0,
        },
        "errors": errors,
        "error_rate": pct(errors, total),
        "avg_rating": round(sum(ratings) / len(ratings), 2) if ratings else None,
        "rating_count": len(ratings),
        "likes": sum(r["likes"] for r in picked),
        "dislikes": sum(r["dislikes"] for r in picked),
        "evaluation": evaluation,
        "transfers": {"count": transfers, "rate": pct(transfers, total)},
        "dropouts": {"count": dropouts, "rate": pct(dropouts, total)},
        "daily": daily,
    }


def without_text(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k not in ("period", "definitions")}


@pytest.fixture
def march(server: Any) -> list[dict[str, Any]]:
    rows = fixture_rows()
    insert(rows)
    return rows


def test_every_kpi_of_a_month_equals_the_independent_computation(
    march: list[dict[str, Any]], db: Any
) -> None:
    answer = kpis.compute(db, start=MARCH[0], end=MARCH[1], agent_id=None)
    want = expected(march, *MARCH, None)
    assert want["total"] == 302  # the two edge calls inside March count, the others do not
    assert without_text(answer) == want
    assert answer["period"] == {"from": MARCH[0], "to": MARCH[1]}


def test_kpis_of_one_agent_count_only_its_calls(march: list[dict[str, Any]], db: Any) -> None:
    for agent in ("agent_a", "agent_b", "nobody"):
        answer = kpis.compute(db, start=MARCH[0], end=MARCH[1], agent_id=agent)
        assert without_text(answer) == expected(march, *MARCH, agent), agent


def test_kpis_api_with_month_and_with_a_date_range(
    march: list[dict[str, Any]], api: httpx.Client
) -> None:
    by_month = api.get("/api/voicebot/kpis", params={"month": "2025-03", "agent_id": "agent_a"})
    assert by_month.status_code == 200, by_month.text
    body = by_month.json()
    assert body["period"] == {"from": "2025-03-01T00:00:00Z", "to": "2025-04-01T00:00:00Z"}
    assert without_text(body) == expected(march, *MARCH, "agent_a")

    ranged = api.get("/api/voicebot/kpis", params={"from": "2025-03-05", "to": "2025-03-11"})
    assert ranged.status_code == 200, ranged.text
    start, end = datetime(2025, 3, 5, tzinfo=UTC), datetime(2025, 3, 12, tzinfo=UTC)
    assert without_text(ranged.json()) == expected(march, start, end, None)
    assert {d["date"] for d in ranged.json()["daily"]} <= {
        f"2025-03-{day:02d}" for day in range(5, 12)
    }


def test_every_kpi_has_a_plain_definition(march: list[dict[str, Any]], db: Any) -> None:
    from relaydesk.voicebot.extract import DROPOUT_DEFINITION, ERROR_DEFINITION

    answer = kpis.compute(db, start=MARCH[0], end=MARCH[1], agent_id=None)
    shown = set(answer) - {"period", "definitions", "rating_count", "likes", "dislikes"}
    assert shown <= set(answer["definitions"])
    assert all(text.strip() for text in answer["definitions"].values())
    assert answer["definitions"]["dropouts"] == DROPOUT_DEFINITION
    assert answer["definitions"]["errors"] == ERROR_DEFINITION


def test_an_empty_month_gives_zeros_and_no_rating(
    march: list[dict[str, Any]], api: httpx.Client
) -> None:
    answer = api.get("/api/voicebot/kpis", params={"month": "2024-07"})
    assert answer.status_code == 200, answer.text
    body = without_text(answer.json())
    assert body == expected([], *MARCH, None)
    assert body["avg_rating"] is None and body["daily"] == [] and body["evaluation"] == {}


@pytest.mark.parametrize(
    "params",
    [
        {"month": "2025-13"},
        {"month": "march"},
        {"month": "2025-3"},
        {"month": "2025-03", "from": "2025-03-01"},
        {"from": "2025-03-10", "to": "2025-03-01"},
        {"from": "2023-01-01", "to": "2025-03-01"},
        {"from": "2025-02-30"},
    ],
)
def test_a_bad_period_is_refused_with_422(api: httpx.Client, params: dict[str, str]) -> None:
    answer = api.get("/api/voicebot/kpis", params=params)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]
