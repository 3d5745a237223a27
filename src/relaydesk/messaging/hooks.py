"""Follow-up work for stored inbound messages, registered by later domains."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from relaydesk.messaging.models import Message

InboundHandler = Callable[[Session, Message], None]
_inbound_handlers: list[tuple[str, InboundHandler]] = []


def on_inbound(name: str) -> Callable[[InboundHandler], InboundHandler]:
    """Register a handler run once for every new inbound message (in the worker)."""

    def decorator(func: InboundHandler) -> InboundHandler:
        _inbound_handlers[:] = [(n, f) for n, f in _inbound_handlers if n != name]
        _inbound_handlers.append((name, func))
        return func

    return decorator


def inbound_handlers() -> list[tuple[str, InboundHandler]]:
    """The registered handlers, in registration order."""
    return list(_inbound_handlers)
