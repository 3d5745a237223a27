"""The emulator as its own process (`relaydesk sandbox --port N`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from relaydesk.channels.sandbox import emulator, phone
from relaydesk.channels.sandbox.runtime import start_emulator, stop_emulator
from relaydesk.core.heap import settle_after_startup


def create_sandbox_app(webhook_base: str | None = None) -> FastAPI:
    """A standalone Twilio emulator posting inbound webhooks to `<webhook_base>/twilio/inbound`."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        start_emulator(webhook_base, standalone=True)
        settle_after_startup()
        try:
            yield
        finally:
            stop_emulator()

    app = FastAPI(title="relaydesk Twilio sandbox", lifespan=lifespan)
    # Media URLs then point at this server's root, where Twilio's paths are served.
    app.state.standalone_emulator = True
    # At the root so TWILIO_API_BASE_URL can replace https://api.twilio.com as is, and under
    # /sandbox/twilio so the same URLs as in embedded mode work too.
    app.include_router(emulator.router)
    app.include_router(emulator.router, prefix="/sandbox/twilio")
    app.include_router(phone.router, prefix="/sandbox")
    return app
