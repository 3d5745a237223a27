"""`relaydesk spool …`: the spool's counts, its dead letters, retrying and dropping them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.messaging.test_webhooks import inbound, new_sid
from tests.test_cli import RELAYDESK
from tests.test_cli import cli_env as cli_env  # the fixture: a fresh DATA_DIR and database

# Real relaydesk processes (serve, worker, CLI subprocesses): the e2e tier.
pytestmark = pytest.mark.e2e

FIXED_ID = "c0ffee000001"


def run(env: dict[str, str], *args: str, answer: str | None = None) -> Any:
    return subprocess.run(
        [*RELAYDESK, *args], env=env, input=answer, capture_output=True, text=True, timeout=120
    )


def rows(env: dict[str, str], sql: str) -> list[Any]:
    url = env.get("DATABASE_URL") or f"sqlite:///{env['DATA_DIR']}/app.db"
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql)))
    finally:
        engine.dispose()


def lines(path: Path, *entries: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))


def test_cli_shows_retries_and_drops_dead_letters(cli_env: dict[str, str]) -> None:
    assert run(cli_env, "migrate").returncode == 0
    folder = Path(cli_env["DATA_DIR"]) / "spool"
    good, poisoned, fixed = new_sid(), new_sid(), new_sid()
    lines(
        folder / "webhooks.jsonl",
        {"kind": "inbound", "params": inbound(good, "czekała")},
        {"kind": "inbound", "params": {"MessageSid": poisoned, "From": "+48600100200"}},
    )
    # Set aside by an older version; an upgrade has since fixed what made it fail.
    lines(
        folder / "dead.jsonl",
        {
            "id": FIXED_ID,
            "kind": "inbound",
            "params": inbound(fixed, "naprawiona"),
            "error": "DataError: integer out of range",
            "failed_at": "2024-05-01T10:00:00+00:00",
            "tries": 1,
        },
    )
    status = run(cli_env, "spool", "status")
    assert status.returncode == 0, status.stderr
    assert "waiting for the database: 2" in status.stdout
    assert "dead letters:             1" in status.stdout

    replayed = run(cli_env, "spool", "replay")
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 2" in replayed.stdout
    dead = run(cli_env, "spool", "dead")
    assert dead.returncode == 0, dead.stderr
    assert FIXED_ID in dead.stdout and poisoned in dead.stdout
    assert "MessageSid, From and To" in dead.stdout
    [poisoned_id] = [
        json.loads(line)["id"]
        for line in (folder / "dead.jsonl").read_text().splitlines()
        if poisoned in line
    ]

    retried = run(cli_env, "spool", "retry", FIXED_ID)
    assert retried.returncode == 0, retried.stderr
    assert "stored 1; still failing 0" in retried.stdout
    still = run(cli_env, "spool", "retry", "--all")
    assert still.returncode == 1
    assert "still failing 1" in still.stdout
    assert "1 dead letter(s) still fail" in still.stderr
    bodies = rows(cli_env, "SELECT sid, body FROM messages ORDER BY id")
    assert {(r.sid, r.body) for r in bodies} == {(good, "czekała"), (fixed, "naprawiona")}

    for wrong in (["retry", "ffffffffffff"], ["retry", "../../etc\r\nx"], ["drop", "--yes", "0"]):
        refused = run(cli_env, "spool", *wrong)
        assert refused.returncode == 1, wrong
        assert refused.stderr.startswith("Error: ") and "Traceback" not in refused.stderr
    assert run(cli_env, "spool", "retry").returncode == 2  # neither ids nor --all

    kept = run(cli_env, "spool", "drop", poisoned_id, answer="n\n")
    assert kept.returncode == 1
    assert poisoned in run(cli_env, "spool", "dead").stdout
    dropped = run(cli_env, "spool", "drop", poisoned_id, answer="y\n")
    assert dropped.returncode == 0, dropped.stderr
    assert "dropped 1" in dropped.stdout
    assert "dead letters:             0" in run(cli_env, "spool", "status").stdout
    assert run(cli_env, "spool", "dead").stdout.strip() == "no dead letters"
    audit = rows(cli_env, "SELECT actor, action, details FROM audit_log ORDER BY id")
    assert [(a.actor, a.action) for a in audit] == [
        ("cli", "spool.retry"),
        ("cli", "spool.retry"),
        ("cli", "spool.drop"),
    ]
    assert poisoned in str(audit[-1].details)

    # What a webhook carried never reaches the terminal as control characters.
    lines(
        folder / "dead.jsonl",
        {"kind": "inbound\u001b[2J", "params": {"MessageSid": "SM\u001b]0;pwned\u0007x"}},
    )
    listed = run(cli_env, "spool", "dead")
    assert listed.returncode == 0, listed.stderr
    assert "SM ]0;pwned x" in listed.stdout
    assert "\x1b" not in listed.stdout and "\x07" not in listed.stdout
