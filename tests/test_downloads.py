"""Download names: one Content-Disposition header, safe whatever the name holds (RFC 6266).

Every download (voice-bot CSV and archives, index backups, stored media) names its file
through one helper: an ASCII `filename=` for old clients and the exact name in
`filename*=UTF-8''…`, percent-encoded, so a quote cannot add a parameter, CR/LF or NUL
cannot break the header, and no letter makes the response fail. Ids that end up in a
name are checked first: an agent id that is not one is a 422 that says so.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from starlette.responses import Response

from relaydesk.core.names import content_disposition
from tests.voicebot.test_kpis import conversation, insert

HOSTILE = [
    'report".csv',
    "a\"; filename*=UTF-8''evil.exe",
    "line\r\nSet-Cookie: x=1.csv",
    "nul\x00byte.csv",
    "Łódź — raport.csv",
    "日本語.csv",
    "back\\slash/and/slash.csv",
    "100% pewne;ok.csv",
    "emoji 📞.csv",
    "",
    "\udcff broken surrogate.csv",
]


def parameters(header: str) -> list[tuple[str, str]]:
    """The header's parameters in order, read the strict way (quoted strings honoured)."""
    found = re.findall(r';\s*([^=;\s]+)=("(?:[^"\\]|\\.)*"|[^;]*)', header)
    return [(name.lower(), value) for name, value in found]


def exact_name(header: str) -> str:
    """The name in `filename*=UTF-8''…`, decoded strictly."""
    value = dict(parameters(header))["filename*"]
    assert value.startswith("UTF-8''"), header
    return unquote(value[len("UTF-8''") :], errors="strict")


@pytest.mark.parametrize("name", HOSTILE)
def test_any_name_gives_one_well_formed_header_with_an_ascii_fallback(name: str) -> None:
    header = content_disposition(name)
    header.encode("latin-1")  # sendable as an HTTP header at all
    assert header.isascii() and header.isprintable()
    assert header.startswith("attachment; ")
    params = parameters(header)
    assert [p for p, _ in params] == ["filename", "filename*"], header
    fallback = params[0][1]
    assert fallback.startswith('"') and fallback.endswith('"')
    assert '"' not in fallback[1:-1] and "\\" not in fallback[1:-1] and "%" not in fallback
    exact = params[1][1]
    assert exact.startswith("UTF-8''")
    assert re.fullmatch(r"[A-Za-z0-9!#$&+\-.^_`|~%]*", exact[len("UTF-8''") :]), exact
    decoded = exact_name(header)
    assert decoded and decoded.strip() == decoded
    assert "/" not in decoded and "\\" not in decoded
    assert all(ch.isprintable() for ch in decoded)
    Response(b"", headers={"Content-Disposition": header})  # Starlette can send it


def test_names_keep_their_letters_and_lose_only_what_breaks_a_header_or_a_path() -> None:
    assert exact_name(content_disposition("Łódź — raport.csv")) == "Łódź — raport.csv"
    assert exact_name(content_disposition("日本語.csv")) == "日本語.csv"
    assert exact_name(content_disposition("line\r\nSet-Cookie: x=1.csv")) == (
        "lineSet-Cookie: x=1.csv"
    )
    assert exact_name(content_disposition("../../etc/passwd")) == "_.._etc_passwd"
    assert exact_name(content_disposition("")) == "download"
    long = exact_name(content_disposition("x" * 500 + ".csv"))
    assert len(long) == 200 and long.endswith(".csv")


def test_a_plain_name_is_kept_exactly_and_inline_is_available() -> None:
    assert content_disposition("voicebot-2025-03.csv") == (
        "attachment; filename=\"voicebot-2025-03.csv\"; filename*=UTF-8''voicebot-2025-03.csv"
    )
    polish = content_disposition("Łódź raport.csv", inline=True)
    assert polish == (
        "inline; filename=\"Lodz raport.csv\"; filename*=UTF-8''%C5%81%C3%B3d%C5%BA%20raport.csv"
    )


# --- Voice-bot CSV ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "agent_id",
    [
        "agent\"; filename*=UTF-8''evil.exe",
        "agent\r\nSet-Cookie: x=1",
        "agent\n",
        "agent\x00",
        "Łódź",
        "agent/../x",
        "a" * 65,
    ],
)
def test_an_agent_filter_that_is_not_an_agent_id_is_a_clear_422(
    server: Any, api: httpx.Client, agent_id: str
) -> None:
    answer = api.get("/api/voicebot/export-csv", params={"month": "2025-03", "agent_id": agent_id})
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert "agent id" in str(body["detail"])
    assert "set-cookie" not in answer.headers
    for path in ("/api/voicebot/kpis", "/api/voicebot/conversations"):
        other = api.get(path, params={"month": "2025-03", "agent_id": agent_id})
        assert other.status_code == 422, (path, other.text)


def test_the_csv_of_one_agent_is_named_after_it_in_both_forms(
    server: Any, api: httpx.Client
) -> None:
    insert([conversation(1, datetime(2025, 3, 3, tzinfo=UTC), agent_id="21m00Tcm4TlvDq8ikWAM")])
    answer = api.get(
        "/api/voicebot/export-csv", params={"month": "2025-03", "agent_id": "21m00Tcm4TlvDq8ikWAM"}
    )
    assert answer.status_code == 200, answer.text
    name = "voicebot-2025-03-21m00Tcm4TlvDq8ikWAM.csv"
    assert answer.headers["content-disposition"] == (
        f"attachment; filename=\"{name}\"; filename*=UTF-8''{name}"
    )
    everyone = api.get("/api/voicebot/export-csv", params={"month": "2025-03", "agent_id": ""})
    assert everyone.status_code == 200
    assert 'filename="voicebot-2025-03.csv"' in everyone.headers["content-disposition"]


# --- Stored media ----------------------------------------------------------------------------


PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8"
    "cfc0f01f0005000201a0f1b6a10000000049454e44ae426082"
)


def test_an_uploaded_file_downloads_under_its_name_with_an_ascii_fallback(
    server: Any, api: httpx.Client
) -> None:
    uploaded = api.post("/api/media", files={"file": ("Łódź; zdjęcie 1.png", PNG, "image/png")})
    assert uploaded.status_code == 201, uploaded.text
    got = httpx.get(uploaded.json()["url"], timeout=30)
    assert got.status_code == 200
    header = got.headers["content-disposition"]
    assert header.startswith("inline; ")  # an image shows in the browser
    assert [p for p, _ in parameters(header)] == ["filename", "filename*"], header
    assert dict(parameters(header))["filename"] == '"Lodz_ zdjecie 1.png"'
    assert exact_name(header) == "Łódź; zdjęcie 1.png"
