"""Follow-up work for stored inbound messages, registered by later domains.

Handler modules are listed here (not discovered) so that the web process, which stores
messages, and the workers, which run the handlers, always agree on whether there is
follow-up work at all.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from sqlalchemy.orm import Session

from relaydesk.channels.twilio.parsing import InboundRecord
from relaydesk.messaging.models import Message

# Modules whose import registers inbound handlers with @on_inbound.
# Order matters: media records a message's files before automation queues its answer.
HANDLER_MODULES: list[str] = ["relaydesk.media.tasks", "relaydesk.automation.tasks"]

InboundHandler = Callable[[Session, Message], None]
# Asked when a message is stored: does this handler have anything to do with it?
Wants = Callable[[InboundRecord], bool]
_inbound_handlers: list[tuple[str, InboundHandler]] = []
_wants: dict[str, Wants] = {}
_loaded = False


def on_inbound(name: str, wants: Wants | None = None) -> Callable[[InboundHandler], InboundHandler]:
    """Register a handler run once for every new inbound message (in the worker).

    `wants`, if given, is asked while the message is stored (it must be cheap); when no
    handler wants a message, no follow-up job is queued for it at all.
    """

    def decorator(func: InboundHandler) -> InboundHandler:
        _inbound_handlers[:] = [(n, f) for n, f in _inbound_handlers if n != name]
        _inbound_handlers.append((name, func))
        _wants.pop(name, None)
        if wants is not None:
            _wants[name] = wants
        return func

    return decorator


def remove_handler(name: str) -> None:
    """Unregister a handler (tests)."""
    _inbound_handlers[:] = [(n, f) for n, f in _inbound_handlers if n != name]
    _wants.pop(name, None)


def wanted(record: InboundRecord) -> bool:
    """True when some handler has follow-up work for this new inbound message."""
    return any(name not in _wants or _wants[name](record) for name, _ in inbound_handlers())


def inbound_handlers() -> list[tuple[str, InboundHandler]]:
    """The registered handlers, in registration order."""
    global _loaded
    if not _loaded:
        for module in HANDLER_MODULES:
            importlib.import_module(module)
        _loaded = True
    return list(_inbound_handlers)
