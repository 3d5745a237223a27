"""CSV export and monthly archives: Excel-friendly UTF-8, one archive per month, safe downloads."""

from __future__ import annotations

import csv
import hashlib
import io
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from relaydesk.core.errors import NotFound
from relaydesk.voicebot import export
from tests.voicebot.test_kpis import conversation, insert

POLISH = "Zażółć gęślą jaźń — klient prosi o kontakt"
APRIL_2 = datetime(2025, 4, 2, 3, 0, tzinfo=UTC)


def march_rows(count: int = 5) -> list[dict[str, Any]]:
    start = datetime(2025, 3, 3, 9, 30, tzinfo=UTC)
    return [
        conversation(
            n,
            start + timedelta(hours=n * 7),
            summary=POLISH if n == 0 else f'Rozmowa {n}, "cytat"\nnowa linia',
            rating=4.0 if n % 2 else None,
            cost=float(120 + n),
            transferred=n == 1,
            direction=None if n == 2 else "outbound",
            customer_number=None if n == 3 else f"+4860010020{n}",
        )
        for n in range(count)
    ]


def read_csv(data: bytes) -> list[dict[str, str]]:
    assert data.startswith(b"\xef\xbb\xbf"), "UTF-8 byte order mark first, for Excel"
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_csv_export_round_trips_polish_text_and_utc_dates(server: Any, api: httpx.Client) -> None:
    rows = march_rows()
    insert(rows)
    answer = api.get("/api/voicebot/export-csv", params={"month": "2025-03"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.headers["content-disposition"] == (
        "attachment; filename=\"voicebot-2025-03.csv\"; filename*=UTF-8''voicebot-2025-03.csv"
    )
    read = read_csv(answer.content)
    assert list(read[0]) == list(export.CSV_FIELDS)
    newest_first = sorted(rows, key=lambda r: r["start_time"], reverse=True)
    assert [r["conversation_id"] for r in read] == [r["conversation_id"] for r in newest_first]
    for got, sent in zip(read, newest_first, strict=True):
        assert got["summary"] == sent["summary"]
        assert got["start_time"] == sent["start_time"].strftime("%Y-%m-%dT%H:%M:%SZ")
        assert got["cost"] == str(sent["cost"])
        assert got["rating"] == ("" if sent["rating"] is None else str(sent["rating"]))
        assert got["direction"] == (sent["direction"] or "")
        assert got["customer_number"] == (sent["customer_number"] or "")
        assert got["transferred"] == ("true" if sent["transferred"] else "false")
    assert POLISH in answer.content.decode("utf-8")


def test_csv_export_follows_the_table_filters(server: Any, api: httpx.Client) -> None:
    insert(
        [
            conversation(1, datetime(2025, 3, 3, tzinfo=UTC), call_successful="failure"),
            conversation(2, datetime(2025, 3, 4, tzinfo=UTC), agent_id="agent_b"),
            conversation(3, datetime(2025, 3, 9, tzinfo=UTC)),
        ]
    )
    answer = api.get(
        "/api/voicebot/export-csv",
        params={"from": "2025-03-01", "to": "2025-03-05", "agent_id": "agent_a"},
    )
    assert answer.status_code == 200
    assert [r["conversation_id"] for r in read_csv(answer.content)] == ["conv_00001"]
    assert "voicebot-2025-03-01_2025-03-05-agent_a.csv" in answer.headers["content-disposition"]
    only_failed = api.get(
        "/api/voicebot/export-csv", params={"month": "2025-03", "outcome": "failure"}
    )
    assert [r["conversation_id"] for r in read_csv(only_failed.content)] == ["conv_00001"]
    empty = api.get("/api/voicebot/export-csv", params={"month": "2020-01"})
    assert read_csv(empty.content) == [] and empty.content.count(b"\n") == 1
    assert api.get("/api/voicebot/export-csv", params={"month": "2025-99"}).status_code == 422


def test_a_formula_in_free_text_is_defused_for_excel(server: Any, api: httpx.Client) -> None:
    insert([conversation(1, datetime(2025, 3, 3, tzinfo=UTC), title='=HYPERLINK("x")')])
    answer = api.get("/api/voicebot/export-csv", params={"month": "2025-03"})
    assert read_csv(answer.content)[0]["title"] == '\'=HYPERLINK("x")'


def archive_files() -> list[str]:
    return sorted(p.name for p in export.archive_dir().iterdir() if p.name != ".lock")


def clear_archive_files() -> None:
    for path in export.archive_dir().iterdir():
        path.unlink()


def test_the_automatic_archive_of_last_month_runs_once(server: Any, db: Any) -> None:
    clear_archive_files()
    insert(march_rows())
    first = export.archive_previous_month_if_missing(APRIL_2)
    assert first is not None and first.month == "2025-03" and first.trigger == "auto"
    assert first.rows == 5
    insert([conversation(99, datetime(2025, 3, 20, tzinfo=UTC))])
    assert export.archive_previous_month_if_missing(APRIL_2 + timedelta(days=1)) is None
    path = export.archive_dir() / "voicebot-2025-03.csv"
    data = path.read_bytes()
    assert len(read_csv(data)) == 5  # not rewritten by the second run
    assert hashlib.sha256(data).hexdigest() == first.sha256 and len(data) == first.size
    assert archive_files() == ["voicebot-2025-03.csv"]


def test_two_workers_archiving_at_once_make_one_archive(server: Any, db: Any) -> None:
    from sqlalchemy import func, select

    from relaydesk.voicebot.models import VoiceArchive

    clear_archive_files()
    insert(march_rows())
    results: list[Any] = []
    barrier = threading.Barrier(3)

    def work() -> None:
        barrier.wait()
        results.append(export.archive_previous_month_if_missing(APRIL_2))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 3
    assert sum(r is not None for r in results) == 1
    assert db.scalar(select(func.count()).select_from(VoiceArchive)) == 1
    assert archive_files() == ["voicebot-2025-03.csv"]


def test_no_automatic_archive_for_a_month_without_calls(server: Any, db: Any) -> None:
    assert export.archive_previous_month_if_missing(APRIL_2) is None
    assert export.previous_month(datetime(2025, 1, 3, tzinfo=UTC)) == "2024-12"


def test_manual_archive_replaces_the_file_and_downloads(server: Any, api: httpx.Client) -> None:
    clear_archive_files()
    insert(march_rows(3))
    made = api.post("/api/voicebot/archive", params={"month": "2025-03"})
    assert made.status_code == 201, made.text
    first = made.json()
    assert first["rows"] == 3 and first["trigger"] == "manual"
    insert([conversation(99, datetime(2025, 3, 28, tzinfo=UTC))])
    again = api.post("/api/voicebot/archive", params={"month": "2025-03"}).json()
    assert again["id"] == first["id"] and again["rows"] == 4 and again["sha256"] != first["sha256"]
    listed = api.get("/api/voicebot/archives").json()
    assert [a["month"] for a in listed] == ["2025-03"]
    got = api.get(listed[0]["download_url"])
    assert got.status_code == 200
    assert got.headers["content-type"] == "text/csv; charset=utf-8"
    assert 'filename="voicebot-2025-03.csv"' in got.headers["content-disposition"]
    assert hashlib.sha256(got.content).hexdigest() == again["sha256"]
    assert len(read_csv(got.content)) == 4
    assert archive_files() == ["voicebot-2025-03.csv"]
    empty = api.post("/api/voicebot/archive", params={"month": "2020-01"})
    assert empty.status_code == 422
    assert api.post("/api/voicebot/archive", params={"month": "../x"}).status_code == 422


@pytest.mark.parametrize(
    "name",
    [
        "../app.db",
        "../../etc/passwd",
        "/etc/passwd",
        "voicebot-2025-03.csv/../../app.db",
        "voicebot-2025-03.csv\x00",
        ".lock",
        "voicebot-2025-13.csv",
    ],
)
def test_the_download_path_never_leaves_the_archive_folder(server: Any, name: str) -> None:
    with pytest.raises(NotFound):
        export.archive_path(name)


def test_an_archive_row_naming_another_file_is_not_served(server: Any, api: httpx.Client) -> None:
    from relaydesk.core.db import session_scope
    from relaydesk.voicebot.models import VoiceArchive

    with session_scope() as session:
        row = VoiceArchive(
            month="2025-01",
            filename="../app.db",
            rows=0,
            size=0,
            sha256="0" * 64,
            trigger="manual",
        )
        session.add(row)
        session.flush()
        archive_id = row.id
    assert api.get(f"/api/voicebot/archives/{archive_id}/download").status_code == 404
    assert api.get("/api/voicebot/archives/999999/download").status_code == 404
    assert api.get("/api/voicebot/archives/..%2F..%2Fapp.db/download").status_code in (404, 422)
