"""The emulator's process-wide state and its start/stop, called from an app's lifespan."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from relaydesk.channels.sandbox.dispatcher import CALLBACK_LANES, Dispatcher
from relaydesk.channels.sandbox.knobs import Control
from relaydesk.channels.sandbox.outbound import Outbound
from relaydesk.channels.sandbox.store import SandboxStore
from relaydesk.channels.twilio.account import current_account
from relaydesk.core.config import Settings, get_settings

log = logging.getLogger(__name__)

DB_NAME = "sandbox.db"


@dataclass
class Emulator:
    """Store, knobs and dispatcher of one running emulator."""

    settings: Settings
    store: SandboxStore
    control: Control
    dispatcher: Dispatcher
    outbound: Outbound

    @property
    def webhook_base(self) -> str | None:
        """Where a standalone emulator's relaydesk listens, if given."""
        return self.outbound.webhook_base

    @property
    def inbound_url(self) -> str:
        """Where simulated customers' messages are posted, as Twilio would."""
        base = self.webhook_base or self.settings.base_url
        return base.rstrip("/") + "/twilio/inbound"

    def reset(self) -> None:
        """Forget all messages and pending steps and restore the knobs from settings."""
        self.dispatcher.clear()
        self.store.clear()
        self.control.reset()


_lock = threading.Lock()
_current: Emulator | None = None


def start_emulator(
    webhook_base: str | None = None, *, standalone: bool = False, dispatch: bool = True
) -> Emulator:
    """Open `<DATA_DIR>/sandbox.db`, resume pending status steps and start the dispatcher.

    A `standalone` emulator runs without relaydesk's database (`relaydesk sandbox`).
    Without `dispatch` the caller starts `dispatcher` itself (once relaydesk listens:
    callbacks posted before that would be lost, as Twilio does not retry them).
    """
    global _current
    with _lock:
        if _current is not None:
            if webhook_base:
                _current.outbound.webhook_base = webhook_base
            return _current
        settings = get_settings()
        store = SandboxStore(settings.data_dir / DB_NAME)
        control = Control(settings)
        panel_base = None if standalone else _panel_public_base
        outbound = Outbound(settings, webhook_base, panel_base, maxsize=CALLBACK_LANES)
        dispatcher = Dispatcher(store, control, settings, outbound)
        if dispatch:
            dispatcher.start()
        _current = Emulator(settings, store, control, dispatcher, outbound)
        log.info("sandbox: Twilio emulator started (%s)", store.path)
        return _current


def stop_emulator() -> None:
    """Stop the dispatcher and close the store; state stays on disk for the next start."""
    global _current
    with _lock:
        emulator, _current = _current, None
    if emulator is not None:
        emulator.dispatcher.stop()
        emulator.outbound.close()
        emulator.store.close()
        log.info("sandbox: Twilio emulator stopped")


def _panel_public_base() -> str | None:
    """The public base URL relaydesk uses now (the panel may have changed it)."""
    # A standalone emulator never calls this: it has no database to ask.
    return current_account().public_base_url


def get_emulator() -> Emulator:
    """The running emulator, started on first use if no lifespan started it."""
    return _current or start_emulator()
