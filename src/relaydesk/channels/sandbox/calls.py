"""What every Twilio REST route of the emulator does around its own work."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import Request, Response

from relaydesk.channels.sandbox.deps import basic_credentials_ok
from relaydesk.channels.sandbox.errors import (
    ApiError,
    not_found,
    too_many_requests,
    unauthenticated,
)
from relaydesk.channels.sandbox.runtime import Emulator, get_emulator


async def twilio_call(
    request: Request, account_sid: str | None, work: Callable[[Emulator], Awaitable[Response]]
) -> Response:
    """Rate limit, auth and account checks, `work`, then latency.

    `account_sid` is the one in the path; None for APIs without one (Content API).
    """
    emu = get_emulator()
    try:
        if not emu.control.bucket.take():
            raise too_many_requests()
        if not basic_credentials_ok(request, emu.settings):
            raise unauthenticated()
        if account_sid is not None and account_sid != emu.settings.account_sid:
            raise not_found(f"/2010-04-01/Accounts/{account_sid}")
        response = await work(emu)
    except ApiError as exc:
        response = exc.response()
    # The latency is Twilio's time to answer after doing the work: a client that gives
    # up (or dies) meanwhile does not know whether its message was accepted.
    latency = emu.control.knobs.latency_ms
    if latency:
        await asyncio.sleep(latency / 1000)
    return response
