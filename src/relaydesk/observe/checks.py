"""Readiness: can this process do its work right now?

A load balancer or an orchestrator sends traffic (or keeps a container) only while
every check passes: the database answers, every queue's storage answers, the data
directory takes a file, and its disk has room (READY_MIN_FREE_MB).
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text

from relaydesk.core.config import get_settings
from relaydesk.core.db import get_engine
from relaydesk.core.tasks import hueys


@dataclass(frozen=True)
class Check:
    """One readiness check's verdict, with what a person needs to act on it."""

    name: str
    ok: bool
    detail: str
    ms: float


def _database() -> str:
    with get_engine().connect() as conn:
        conn.execute(text("SELECT 1"))
    return "answers"


def _queues() -> str:
    depths = {queue: huey.pending_count() for queue, huey in hueys().items()}
    return ", ".join(f"{queue} {depth} waiting" for queue, depth in depths.items())


def _data_dir_writable() -> str:
    folder = get_settings().data_dir
    probe = folder / f".ready-{uuid.uuid4().hex}"
    with open(probe, "xb") as handle:
        handle.write(b"ok")
        handle.flush()
        os.fsync(handle.fileno())
    probe.unlink()
    return str(folder)


def _disk_space() -> str:
    settings = get_settings()
    free = shutil.disk_usage(settings.data_dir).free
    need = settings.ready_min_free_mb * 1024 * 1024
    left = f"{free // (1024 * 1024)} MB free"
    if free < need:
        raise RuntimeError(f"{left}, below READY_MIN_FREE_MB={settings.ready_min_free_mb}")
    return left


CHECKS: dict[str, Callable[[], str]] = {
    "database": _database,
    "queue": _queues,
    "data_dir": _data_dir_writable,
    "disk": _disk_space,
}


def run_checks() -> list[Check]:
    """Every readiness check, each caught on its own (one failing says which)."""
    results = []
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            detail, ok = check(), True
        except Exception as exc:  # any failure means "not ready", with its reason
            detail, ok = f"{type(exc).__name__}: {exc}"[:300], False
        results.append(Check(name, ok, detail, round((time.perf_counter() - started) * 1000, 1)))
    return results
