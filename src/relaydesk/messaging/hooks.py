"""Follow-up work for stored inbound messages, registered by later domains.

Handler modules are listed here (not discovered) so that the web process, which stores
messages, and the workers, which run the handlers, always agree on whether there is
follow-up work at all.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from sqlalchemy.orm import Session

from relaydesk.messaging.models import Message

# Modules whose import registers inbound handlers with @on_inbound.
HANDLER_MODULES: list[str] = ["relaydesk.automation.tasks"]

InboundHandler = Callable[[Session, Message], None]
_inbound_handlers: list[tuple[str, InboundHandler]] = []
_loaded = False


def on_inbound(name: str) -> Callable[[InboundHandler], InboundHandler]:
    """Register a handler run once for every new inbound message (in the worker)."""

    def decorator(func: InboundHandler) -> InboundHandler:
        _inbound_handlers[:] = [(n, f) for n, f in _inbound_handlers if n != name]
        _inbound_handlers.append((name, func))
        return func

    return decorator


def remove_handler(name: str) -> None:
    """Unregister a handler (tests)."""
    _inbound_handlers[:] = [(n, f) for n, f in _inbound_handlers if n != name]


def inbound_handlers() -> list[tuple[str, InboundHandler]]:
    """The registered handlers, in registration order."""
    global _loaded
    if not _loaded:
        for module in HANDLER_MODULES:
            importlib.import_module(module)
        _loaded = True
    return list(_inbound_handlers)
