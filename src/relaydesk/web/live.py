"""Live updates for the panel: one server-sent event stream per open page.

Each process watches the messages table once a second (two index lookups) while
anyone is listening, and tells every open page when something changed; the pages
then fetch the fragments they show. Any process sees changes made by any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from relaydesk.auth.sessions import load_session
from relaydesk.core.db import get_sessionmaker
from relaydesk.inbox.models import ConversationNote
from relaydesk.messaging.models import ConversationEvent, Message
from relaydesk.web.context import session_token
from relaydesk.web.deps import PanelViewer

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

POLL_SECONDS = 1.0
HEARTBEAT_SECONDS = 15.0


def read_marker() -> str:
    """Changes whenever a message is added, removed or changes status, whenever a
    conversation changes state, owner or labels (each such change is a ConversationEvent),
    and whenever someone writes a private note (which is how a mention arrives)."""
    session = get_sessionmaker()()
    try:
        newest, changed, oldest = session.execute(
            select(func.max(Message.id), func.max(Message.updated_at), func.min(Message.id))
        ).one()
        event = session.scalar(select(func.max(ConversationEvent.id)))
        note = session.scalar(select(func.max(ConversationNote.id)))
    finally:
        session.close()
    return f"{newest}:{changed.isoformat() if changed else ''}:{oldest}:{event}:{note}"


class ChangeWatcher:
    """Polls the marker while there are listeners and wakes them when it moves."""

    def __init__(self) -> None:
        self.marker = ""
        self.listeners: set[asyncio.Queue[str]] = set()
        self.task: asyncio.Task[None] | None = None

    def subscribe(self) -> asyncio.Queue[str]:
        """A queue that receives the new marker after each change."""
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=1)
        self.listeners.add(queue)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str]) -> None:
        """Stop telling this queue about changes."""
        self.listeners.discard(queue)

    async def _run(self) -> None:
        self.marker = await run_in_threadpool(read_marker)
        while self.listeners:
            await asyncio.sleep(POLL_SECONDS)
            try:
                marker = await run_in_threadpool(read_marker)
            except Exception:  # a database hiccup must not end live updates
                log.warning("live updates: could not read the change marker", exc_info=True)
                continue
            if marker != self.marker:
                self.marker = marker
                for queue in list(self.listeners):
                    if queue.full():
                        with contextlib.suppress(asyncio.QueueEmpty):
                            queue.get_nowait()
                    queue.put_nowait(marker)


_watchers: dict[int, ChangeWatcher] = {}


def _watcher() -> ChangeWatcher:
    # One watcher per event loop (tests run several servers in one process).
    loop_id = id(asyncio.get_running_loop())
    return _watchers.setdefault(loop_id, ChangeWatcher())


def _still_signed_in(token: str | None) -> bool:
    session = get_sessionmaker()()
    try:
        return load_session(session, token) is not None
    finally:
        session.close()


@router.get("/live")
async def live(request: Request, user: PanelViewer) -> StreamingResponse:
    """`changed` events whenever messages change; a comment line keeps proxies awake."""
    watcher = _watcher()
    queue = watcher.subscribe()
    token = session_token(request)

    async def events() -> AsyncIterator[str]:
        clock = asyncio.get_running_loop().time
        checked = clock()
        try:
            yield "retry: 2000\n\n"
            while not await request.is_disconnected():
                try:
                    marker = await asyncio.wait_for(queue.get(), HEARTBEAT_SECONDS)
                except TimeoutError:
                    marker = None
                if clock() - checked >= HEARTBEAT_SECONDS:
                    # A locked user, or one signed out elsewhere, loses the stream too; the
                    # check keeps the session fresh, so an open page counts as online.
                    if not await run_in_threadpool(_still_signed_in, token):
                        return
                    checked = clock()
                if marker is None:
                    yield ": keep-alive\n\n"
                    continue
                yield f"event: changed\ndata: {marker}\n\n"
        finally:
            watcher.unsubscribe(queue)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
