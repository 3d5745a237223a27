"""Syncing ElevenLabs conversations into voicebot_conversations, as resumable jobs.

A sync lists each agent's conversations page by page, fetches the details of those that
are new, changed (their list fingerprint moved) or still without details, and upserts
them by conversation_id. HTTP calls happen outside database transactions; each page is
written in one short transaction that also moves the run's cursor, so a run whose
worker died resumes from the page it had reached when the next sync starts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from relaydesk.core import events
from relaydesk.core.db import dialect_insert, session_scope, utcnow
from relaydesk.core.errors import RelaydeskError
from relaydesk.core.i18n import N_
from relaydesk.core.tasks import stopping
from relaydesk.jobs import service as jobs
from relaydesk.jobs.service import Progress
from relaydesk.voicebot import extract, settings
from relaydesk.voicebot.client import ElevenLabsClient, ElevenLabsError, Page
from relaydesk.voicebot.models import SyncStatus, VoiceConversation, VoiceEvaluation, VoiceSyncRun
from relaydesk.voicebot.service import REFETCH, SYNC, ready_config

log = logging.getLogger(__name__)

DETAIL_WORKERS = 4  # details fetched at once (ElevenLabs limits concurrent requests)
REFETCH_BATCH = 50
STALE_RUN = timedelta(seconds=90)  # a running sync silent this long lost its worker
sleep: Callable[[float], None] = time.sleep  # the backoff's sleep (tests replace it)


@dataclass
class _Counts:
    listed: int = 0
    fetched: int = 0
    created: int = 0
    updated: int = 0

    def add(self, other: _Counts) -> None:
        self.listed += other.listed
        self.fetched += other.fetched
        self.created += other.created
        self.updated += other.updated


def _unix(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


class _Syncer:
    """Runs sync runs with one client; reports through one Progress."""

    def __init__(self, client: ElevenLabsClient, progress: Progress) -> None:
        self.client = client
        self.progress = progress
        self.total = _Counts()
        self.pool = ThreadPoolExecutor(DETAIL_WORKERS, thread_name_prefix="voicebot-details")

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.client.close()

    def report(self, message: str, *, force: bool = False) -> None:
        done = self.total.listed
        self.progress(done, max(done, 1), message, force=force)

    def details(self, conversation_ids: Iterable[str]) -> dict[str, dict[str, Any] | None]:
        """Details of each conversation (None where ElevenLabs no longer has it)."""

        def one(conversation_id: str) -> dict[str, Any] | None:
            try:
                return self.client.get_conversation(conversation_id)
            except ElevenLabsError as exc:
                if exc.status == 404:
                    return None  # deleted since it was listed
                raise

        ids = list(conversation_ids)
        return dict(zip(ids, self.pool.map(one, ids), strict=True))

    def run(self, run_id: int) -> _Counts:
        """List and store every page of a run from its cursors; marks it done or failed."""
        with session_scope(write=False) as session:
            run = session.get(VoiceSyncRun, run_id)
            assert run is not None
            agents, cursors = list(run.agent_ids or []), dict(run.cursors or {})
            after, before = _unix(run.range_from), _unix(run.range_to)
            counts = _Counts(run.listed, run.fetched, run.created, run.updated)
        with _failing(run_id):
            for agent_id in agents:
                state = cursors.get(agent_id) or {}
                if state.get("done"):
                    continue
                cursor = state.get("cursor")
                while True:
                    if stopping():
                        _finish(
                            run_id,
                            SyncStatus.INTERRUPTED,
                            N_("The worker stopped; the next sync resumes"),
                        )
                        return counts
                    page = self.client.list_conversations(
                        agent_id, after_unix=after, before_unix=before, cursor=cursor
                    )
                    cursor = page.next_cursor
                    cursors[agent_id] = {"cursor": cursor, "done": not page.has_more}
                    added = self._store(run_id, page, cursors)
                    counts.add(added)
                    self.total.add(added)
                    self.report(
                        N_("Agent %(agent)s: listed %(listed)s conversations, fetched %(fetched)s")
                        % {
                            "agent": agent_id,
                            "listed": self.total.listed,
                            "fetched": self.total.fetched,
                        }
                    )
                    if not page.has_more:
                        break
        _finish(run_id, SyncStatus.DONE)
        return counts

    def _store(self, run_id: int, page: Page, cursors: dict[str, Any]) -> _Counts:
        summaries = {
            str(c["conversation_id"]): c for c in page.conversations if c.get("conversation_id")
        }
        with session_scope(write=False) as session:
            known = {
                cid: (fingerprint, fetched is not None)
                for cid, fingerprint, fetched in session.execute(
                    select(
                        VoiceConversation.conversation_id,
                        VoiceConversation.list_fingerprint,
                        VoiceConversation.details_fetched_at,
                    ).where(VoiceConversation.conversation_id.in_(list(summaries)))
                )
            }
        prints = {cid: extract.list_fingerprint(s) for cid, s in summaries.items()}
        stale = [cid for cid in summaries if cid not in known or known[cid] != (prints[cid], True)]
        fetched = self.details(stale)  # outside any transaction
        now = utcnow()
        full: list[dict[str, Any]] = []
        listed_only: list[dict[str, Any]] = []
        for cid in stale:
            row = extract.row_from(summaries[cid], fetched[cid])
            if fetched[cid] is None:
                listed_only.append(
                    {key: row[key] for key in _SUMMARY_COLUMNS} | {"list_fingerprint": None}
                )
            else:
                row |= {
                    "details": fetched[cid],
                    "list_fingerprint": prints[cid],
                    "details_fetched_at": now,
                }
                full.append(row)
        with session_scope() as session:
            _upsert(session, full)
            _upsert(session, listed_only)
            _replace_evaluations(
                session, {row["conversation_id"]: fetched[row["conversation_id"]] for row in full}
            )
            if full and events.wanted("voicebot.call_synced", session):
                events.emit(
                    session,
                    "voicebot.call_synced",
                    [(f"call:{row['conversation_id']}", _call_data(row)) for row in full],
                )
            counts = _Counts(
                listed=len(summaries),
                fetched=len(full),
                created=sum(1 for cid in stale if cid not in known),
                updated=sum(1 for cid in stale if cid in known),
            )
            session.execute(
                update(VoiceSyncRun)
                .where(VoiceSyncRun.id == run_id)
                .values(
                    cursors=cursors,
                    listed=VoiceSyncRun.listed + counts.listed,
                    fetched=VoiceSyncRun.fetched + counts.fetched,
                    created=VoiceSyncRun.created + counts.created,
                    updated=VoiceSyncRun.updated + counts.updated,
                    heartbeat_at=now,
                )
                .execution_options(synchronize_session=False)
            )
        return counts


def _call_data(row: dict[str, Any]) -> dict[str, Any]:
    """A synced call for outgoing webhooks: its summary columns, JSON-ready."""
    return {
        key: row[key].isoformat() if isinstance(row.get(key), date | datetime) else row.get(key)
        for key in _SUMMARY_COLUMNS
    }


_SUMMARY_COLUMNS = (
    "conversation_id",
    "agent_id",
    "agent_name",
    "status",
    "start_time",
    "day",
    "duration_secs",
    "message_count",
    "direction",
    "call_successful",
    "title",
    "summary",
)


def _upsert(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert rows or update them by conversation_id (rows share their keys)."""
    if not rows:
        return
    now = utcnow()
    values = [row | {"created_at": now, "updated_at": now} for row in rows]
    statement = dialect_insert(session)(VoiceConversation).values(values)
    keep = {"conversation_id", "created_at"}
    statement = statement.on_conflict_do_update(
        index_elements=["conversation_id"],
        set_={key: statement.excluded[key] for key in values[0] if key not in keep},
    )
    session.execute(statement)


def _replace_evaluations(session: Session, details: dict[str, dict[str, Any] | None]) -> None:
    if not details:
        return
    found = session.execute(
        select(
            VoiceConversation.conversation_id,
            VoiceConversation.id,
            VoiceConversation.start_time,
            VoiceConversation.agent_id,
        ).where(VoiceConversation.conversation_id.in_(list(details)))
    )
    calls = {cid: (pk, start, agent) for cid, pk, start, agent in found}
    session.execute(
        delete(VoiceEvaluation).where(
            VoiceEvaluation.conversation_pk.in_([pk for pk, _, _ in calls.values()])
        )
    )
    rows = [
        {
            "conversation_pk": calls[cid][0],
            "start_time": calls[cid][1],
            "agent_id": calls[cid][2],
            "criterion": criterion,
            "result": result,
        }
        for cid, data in details.items()
        if cid in calls
        for criterion, result in extract.evaluations_from(data)
    ]
    if rows:
        session.execute(insert(VoiceEvaluation), rows)


@contextmanager
def _failing(run_id: int) -> Iterator[None]:
    """A run whose work raises is marked failed with a readable reason; the error goes on."""
    try:
        yield
    except RelaydeskError as exc:
        _finish(run_id, SyncStatus.FAILED, exc.message)
        raise
    except Exception as exc:
        _finish(run_id, SyncStatus.FAILED, f"{exc.__class__.__name__}: {exc}")
        raise


def _finish(run_id: int, status: SyncStatus, error: str | None = None) -> None:
    with session_scope() as session:
        session.execute(
            update(VoiceSyncRun)
            .where(VoiceSyncRun.id == run_id)
            .values(
                status=status,
                error=error[:2000] if error else None,
                finished_at=utcnow(),
                heartbeat_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )


def _new_run(
    job_id: int,
    trigger: str,
    agents: list[str],
    range_from: datetime | None,
    range_to: datetime | None,
) -> int:
    with session_scope() as session:
        run = VoiceSyncRun(
            trigger=trigger,
            status=SyncStatus.RUNNING,
            range_from=range_from,
            range_to=range_to,
            agent_ids=agents,
            cursors={},
            job_id=job_id,
            started_at=utcnow(),
            heartbeat_at=utcnow(),
        )
        session.add(run)
        session.flush()
        return run.id


def _claim_interrupted(job_id: int, agents: list[str]) -> VoiceSyncRun | None:
    """Take over the newest sync run whose worker died (stale heartbeat), if any."""
    now = utcnow()
    with session_scope() as session:
        run = session.scalar(
            select(VoiceSyncRun)
            .where(
                VoiceSyncRun.trigger != "refetch",
                (VoiceSyncRun.status == SyncStatus.INTERRUPTED)
                | (
                    (VoiceSyncRun.status == SyncStatus.RUNNING)
                    & (VoiceSyncRun.heartbeat_at < now - STALE_RUN)
                ),
            )
            .order_by(VoiceSyncRun.id.desc())
            .limit(1)
        )
        if run is None:
            return None
        kept = [a for a in run.agent_ids or [] if a in agents]
        taken = session.execute(
            update(VoiceSyncRun)
            .where(VoiceSyncRun.id == run.id, VoiceSyncRun.status == run.status)
            .values(
                status=SyncStatus.RUNNING,
                job_id=job_id,
                heartbeat_at=now,
                error=None,
                agent_ids=kept,
            )
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if not taken:
            return None
        session.refresh(run)
        session.expunge(run)
        return run


def _client(config: settings.VoicebotConfig) -> ElevenLabsClient:
    return ElevenLabsClient.from_config(config, sleep=lambda seconds: sleep(seconds))


@jobs.runner(SYNC)
def run_sync(params: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Finish an interrupted sync first (from its cursors), then sync the asked range."""
    with session_scope(write=False) as session:
        config = ready_config(session)
    range_from = datetime.fromisoformat(params["from"]) if params.get("from") else None
    range_to = datetime.fromisoformat(params["to"]) if params.get("to") else None
    trigger = str(params.get("trigger") or "manual")
    syncer = _Syncer(_client(config), progress)
    resumed: int | None = None
    try:
        previous = _claim_interrupted(progress.job_id, config.agent_ids)
        covered = False
        if previous is not None:
            resumed = previous.id
            syncer.run(previous.id)
            covered = set(config.agent_ids) <= set(previous.agent_ids or []) and _within(
                range_from, range_to, previous.range_from, previous.range_to
            )
        run_id = resumed
        if not covered and not stopping():
            run_id = _new_run(progress.job_id, trigger, config.agent_ids, range_from, range_to)
            syncer.run(run_id)
    finally:
        syncer.close()
    syncer.report(N_("Sync finished"), force=True)
    return {
        "run_id": run_id,
        "resumed_run_id": resumed,
        "listed": syncer.total.listed,
        "fetched": syncer.total.fetched,
        "created": syncer.total.created,
        "updated": syncer.total.updated,
        "requests": syncer.client.requests,
    }


def _within(
    start: datetime | None,
    end: datetime | None,
    outer_start: datetime | None,
    outer_end: datetime | None,
) -> bool:
    if outer_start is not None and (start is None or start < outer_start):
        return False
    return outer_end is None or (end is not None and end <= outer_end)


@jobs.runner(REFETCH)
def run_refetch(params: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Fetch again the details of conversations that have no customer number."""
    with session_scope(write=False) as session:
        config = ready_config(session)
        without = session.execute(
            select(VoiceConversation.conversation_id, VoiceConversation.direction)
            .where(VoiceConversation.customer_number.is_(None))
            .order_by(VoiceConversation.start_time)
        )
        directions: dict[str, str | None] = {cid: direction for cid, direction in without}
    ids = list(directions)
    run_id = _new_run(progress.job_id, "refetch", config.agent_ids, None, None)
    syncer = _Syncer(_client(config), progress)
    fetched = filled = 0
    try:
        with _failing(run_id):
            for offset in range(0, len(ids), REFETCH_BATCH):
                if stopping():
                    _finish(
                        run_id,
                        SyncStatus.INTERRUPTED,
                        N_("The worker stopped; start the re-fetch again"),
                    )
                    break
                batch = syncer.details(ids[offset : offset + REFETCH_BATCH])
                found = {cid: data for cid, data in batch.items() if data is not None}
                filled += _store_details(run_id, found, directions)
                fetched += len(found)
                progress(
                    offset + len(batch),
                    len(ids),
                    N_("Fetched %(fetched)s of %(total)s conversations")
                    % {"fetched": fetched, "total": len(ids)},
                )
            else:
                _finish(run_id, SyncStatus.DONE)
    finally:
        syncer.close()
    progress(len(ids), len(ids), N_("Re-fetch finished"), force=True)
    return {"run_id": run_id, "candidates": len(ids), "fetched": fetched, "numbers_found": filled}


def _store_details(
    run_id: int, found: dict[str, dict[str, Any]], directions: dict[str, str | None]
) -> int:
    """Update the detail columns of fetched conversations; how many now have a number."""
    now = utcnow()
    filled = 0
    with session_scope() as session:
        for cid, data in found.items():
            # The list gave the direction; the details alone may not say it.
            row = extract.row_from({"direction": directions.get(cid)}, data)
            values = {key: row[key] for key in extract.DETAIL_COLUMNS}
            filled += values["customer_number"] is not None
            session.execute(
                update(VoiceConversation)
                .where(VoiceConversation.conversation_id == cid)
                .values(**values, details=data, details_fetched_at=now, updated_at=now)
                .execution_options(synchronize_session=False)
            )
        _replace_evaluations(session, dict(found))
        session.execute(
            update(VoiceSyncRun)
            .where(VoiceSyncRun.id == run_id)
            .values(
                fetched=VoiceSyncRun.fetched + len(found),
                updated=VoiceSyncRun.updated + filled,
                listed=VoiceSyncRun.listed + len(found),
                heartbeat_at=now,
            )
            .execution_options(synchronize_session=False)
        )
    return filled
