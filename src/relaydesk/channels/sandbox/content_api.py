"""Twilio's Content API (https://content.twilio.com/v1) as served by the emulator.

The gateway sends https://content.twilio.com/v1/... to `<emulator base>/content/v1/...`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from relaydesk.channels.sandbox.calls import twilio_call
from relaydesk.channels.sandbox.content import (
    CONTENT_BASE,
    TEMPLATES,
    Template,
    content_and_approvals_json,
    content_json,
    find_template,
)
from relaydesk.channels.sandbox.errors import bad_parameter, not_found
from relaydesk.channels.sandbox.runtime import Emulator

router = APIRouter()

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


@router.get("/content/v1/Content")
async def list_content(request: Request) -> Response:
    """List Contents, paged with `contents` + `meta` as the Content API does."""
    return await _listing(request, "Content", content_json)


@router.get("/content/v1/ContentAndApprovals")
async def list_content_and_approvals(request: Request) -> Response:
    """List Contents with their (always approved) WhatsApp approval."""
    return await _listing(request, "ContentAndApprovals", content_and_approvals_json)


@router.get("/content/v1/Content/{sid}")
async def fetch_content(request: Request, sid: str) -> Response:
    """Fetch one Content resource."""

    async def work(emu: Emulator) -> Response:
        template = find_template(sid)
        if template is None:
            raise not_found(f"/v1/Content/{sid}")
        return JSONResponse(content_json(template, emu.settings.account_sid))

    return await twilio_call(request, None, work)


async def _listing(
    request: Request, resource: str, render: Callable[[Template, str], dict[str, Any]]
) -> Response:
    async def work(emu: Emulator) -> Response:
        size, page = _paging(request)
        rows = TEMPLATES[page * size : (page + 1) * size]
        has_next = (page + 1) * size < len(TEMPLATES)

        def url(page_no: int) -> str:
            query = urlencode({"PageSize": size, "Page": page_no})
            return f"{CONTENT_BASE}/{resource}?{query}"

        body = {
            "contents": [render(t, emu.settings.account_sid) for t in rows],
            "meta": {
                "page": page,
                "page_size": size,
                "first_page_url": url(0),
                "previous_page_url": url(page - 1) if page > 0 else None,
                "url": url(page),
                "next_page_url": url(page + 1) if has_next else None,
                "key": "contents",
            },
        }
        return JSONResponse(body)

    return await twilio_call(request, None, work)


def _paging(request: Request) -> tuple[int, int]:
    params = request.query_params
    try:
        size = int(params.get("PageSize") or DEFAULT_PAGE_SIZE)
        page = int(params.get("Page") or 0)
    except ValueError:
        raise bad_parameter("PageSize and Page must be integers") from None
    if not 1 <= size <= MAX_PAGE_SIZE or page < 0:
        raise bad_parameter(f"PageSize must be between 1 and {MAX_PAGE_SIZE}, Page at least 0")
    return size, page
