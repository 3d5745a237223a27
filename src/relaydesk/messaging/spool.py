"""A disk spool for webhooks the database could not take, so no customer message is lost.

Twilio does not retry a messaging webhook that answered 5xx, so when the database is
unavailable the raw parameters are appended (and fsynced) to a file in the data
directory and Twilio gets its 200; the sweeper stores them once the database is back.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from relaydesk.config import get_settings

log = logging.getLogger(__name__)
_lock = threading.Lock()


def _dir() -> Path:
    return get_settings().data_dir / "spool"


def write(kind: str, params: dict[str, str]) -> None:
    """Append one webhook durably; raises OSError when even the disk fails."""
    directory = _dir()
    directory.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"kind": kind, "params": params}, ensure_ascii=False) + "\n"
    with _lock, open(directory / "webhooks.jsonl", "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())
    log.error("database unavailable: spooled a %s webhook to %s", kind, directory)


def replay() -> int:
    """Store spooled webhooks; returns how many were replayed."""
    path = _dir() / "webhooks.jsonl"
    if not path.exists():
        return 0
    from relaydesk.channels.twilio.webhooks import parse_inbound, parse_status
    from relaydesk.db import session_scope
    from relaydesk.messaging.ingest import record_statuses, store_inbound

    with _lock:
        work = path.with_suffix(".replaying")
        if not work.exists():
            path.rename(work)
    entries: list[dict[str, Any]] = []
    for line in work.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                log.error("skipping a damaged spool line: %.80s", line)
    with session_scope() as session:
        store_inbound(
            session, [parse_inbound(e["params"]) for e in entries if e["kind"] == "inbound"]
        )
        record_statuses(
            session, [parse_status(e["params"], None) for e in entries if e["kind"] == "status"]
        )
    work.unlink()
    log.info("replayed %d spooled webhooks", len(entries))
    return len(entries)
