"""Follow-up work for stored inbound messages, registered by later domains.

Handler modules come from the registry of domains (core.domains), not discovery, so that
the web process, which stores messages, and the workers, which run the handlers, always
agree on whether there is follow-up work at all.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.orm import Session

from relaydesk.channels.twilio.parsing import InboundRecord
from relaydesk.core import domains
from relaydesk.messaging.models import Message

InboundHandler = Callable[[Session, Message], None]
# The same work for several messages at once (set-wise), if a handler has it.
InboundBatchHandler = Callable[[Session, list[Message]], None]
# Asked when a message is stored: does this handler have anything to do with it?
Wants = Callable[[InboundRecord], bool]


@dataclass(frozen=True)
class NewInbound:
    """A new inbound message as its webhook's transaction stored it (no ORM row)."""

    id: int
    conversation_id: int
    participant: str
    body: str
    raw: dict[str, Any]


# The work for a batch of messages, done in the transaction that stores them.
AtStoreHandler = Callable[[Session, list[NewInbound]], None]
_inbound_handlers: list[tuple[str, InboundHandler]] = []
_many: dict[str, InboundBatchHandler] = {}
_wants: dict[str, Wants] = {}
_at_store: dict[str, AtStoreHandler] = {}
_loaded = False
# Whether this process does the handlers' at-store work (see `work_at_store`).
_store_time = False


def work_at_store(enabled: bool) -> None:
    """Whether the webhooks this process stores get their handlers' at-store work done
    as they are stored: in a process that also runs the jobs (the default `serve`), it
    saves a job and a transaction per batch. A web process of a scaled-out setup leaves
    the work to the follow-up job in the workers, which scale out: its own CPU goes to
    taking in the webhooks."""
    global _store_time
    _store_time = enabled


def on_inbound(
    name: str,
    wants: Wants | None = None,
    many: InboundBatchHandler | None = None,
    at_store: AtStoreHandler | None = None,
) -> Callable[[InboundHandler], InboundHandler]:
    """Register a handler run once for every new inbound message (in the worker).

    `wants`, if given, is asked while the message is stored (it must be cheap); when no
    handler wants a message, no follow-up job is queued for it at all. `many`, if given,
    does the same work for a batch of messages at once; should it fail, the messages
    are handled one by one.

    `at_store`, if given, is the handler's work for a batch of messages done in the
    transaction that stores them (it must be brief: it holds the webhooks' answers). It
    is used for a message when every handler that wants it has one; otherwise, or if
    it fails, the message goes to the follow-up job as usual.
    """

    def decorator(func: InboundHandler) -> InboundHandler:
        remove_handler(name)
        _inbound_handlers.append((name, func))
        if wants is not None:
            _wants[name] = wants
        if many is not None:
            _many[name] = many
        if at_store is not None:
            _at_store[name] = at_store
        return func

    return decorator


def remove_handler(name: str) -> None:
    """Unregister a handler (tests)."""
    _inbound_handlers[:] = [(n, f) for n, f in _inbound_handlers if n != name]
    _wants.pop(name, None)
    _many.pop(name, None)
    _at_store.pop(name, None)


def batch_handler(name: str) -> InboundBatchHandler | None:
    """The handler's set-wise form, if it has one."""
    return _many.get(name)


def wanting(record: InboundRecord) -> list[str]:
    """The handlers that have follow-up work for this new inbound message, in order."""
    return [name for name, _ in inbound_handlers() if name not in _wants or _wants[name](record)]


def all_at_store(names: list[str]) -> bool:
    """True when each of these handlers does its work while the message is stored here."""
    return _store_time and bool(names) and all(name in _at_store for name in names)


def run_at_store(session: Session, names: list[str], messages: list[NewInbound]) -> None:
    """The handlers' work for these messages, in registration order, in this transaction."""
    for name in names:
        _at_store[name](session, messages)


def _load() -> None:
    global _loaded
    if not _loaded:
        # The registry's order: media records a message's files before automation answers.
        for module in domains.inbound_modules():
            importlib.import_module(module)
        _loaded = True


def inbound_handlers() -> list[tuple[str, InboundHandler]]:
    """The registered handlers, in registration order."""
    _load()
    return list(_inbound_handlers)


class OutboundFiles(Protocol):
    """What a later domain (media) does with the files of a message we send."""

    def inspect(self, session: Session, urls: list[str], channel: str) -> list[Any]:
        """The files behind these links, checked for this channel; Invalid says why not."""
        ...

    def record(self, session: Session, message_id: int, files: list[Any]) -> None:
        """Keep the checked files with the stored message."""
        ...


_outbound_files: OutboundFiles | None = None


def on_outbound_files(handler: OutboundFiles) -> None:
    """Register the one handler of outbound files (media does, when its tasks load)."""
    global _outbound_files
    _outbound_files = handler


def outbound_files() -> OutboundFiles:
    """The registered handler of outbound files; a message with files needs one."""
    _load()
    if _outbound_files is None:
        raise RuntimeError("no domain handles the files of outbound messages")
    return _outbound_files
