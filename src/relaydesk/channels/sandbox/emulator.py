"""Twilio's Messages REST API (create, list, fetch) and account fetch as served by the emulator.

Media (media_api) and the Content API (content_api) are mounted on the same router.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams

from relaydesk.channels.sandbox import content_api, media_api
from relaydesk.channels.sandbox.calls import twilio_call
from relaydesk.channels.sandbox.content import with_content
from relaydesk.channels.sandbox.errors import bad_parameter, not_found
from relaydesk.channels.sandbox.render import (
    account_json,
    message_json,
    messages_path,
    page_json,
)
from relaydesk.channels.sandbox.runtime import Emulator
from relaydesk.channels.sandbox.service import create_outbound
from relaydesk.channels.sandbox.store import MessageQuery
from relaydesk.channels.sandbox.validation import parse_create

router = APIRouter(tags=["sandbox: Twilio API"])

ACCOUNT = "/2010-04-01/Accounts/{account_sid}.json"
MESSAGES = "/2010-04-01/Accounts/{account_sid}/Messages.json"
MESSAGE = "/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
FILTERS = ("To", "From", "DateSent", "DateSent<", "DateSent>")


@router.get(ACCOUNT)
async def fetch_account(request: Request, account_sid: str) -> Response:
    """FetchAccount: the emulator's one account (what "test connection" asks for)."""

    async def work(emu: Emulator) -> Response:
        return JSONResponse(account_json(emu.settings.account_sid, emu.settings.auth_token))

    return await twilio_call(request, account_sid, work)


@router.post(MESSAGES, status_code=201)
async def create_message(request: Request, account_sid: str) -> Response:
    """CreateMessage: validate like Twilio, store, answer 201 and start the status lifecycle."""

    async def work(emu: Emulator) -> Response:
        req = with_content(parse_create(await request.form()))
        msg = await run_in_threadpool(create_outbound, emu, req)
        return JSONResponse(message_json(msg), status_code=201)

    return await twilio_call(request, account_sid, work)


@router.get(MESSAGES)
async def list_messages(request: Request, account_sid: str) -> Response:
    """ListMessage: newest first, filtered by To/From/DateSent, paged with PageToken."""

    async def work(emu: Emulator) -> Response:
        return await run_in_threadpool(_list_page, emu, request, account_sid)

    return await twilio_call(request, account_sid, work)


@router.get(MESSAGE)
async def fetch_message(request: Request, account_sid: str, sid: str) -> Response:
    """FetchMessage by SID."""

    async def work(emu: Emulator) -> Response:
        msg = await run_in_threadpool(emu.store.get, sid)
        if msg is None or msg.account_sid != account_sid:
            raise not_found(f"{messages_path(account_sid)}/{sid}.json")
        return JSONResponse(message_json(msg))

    return await twilio_call(request, account_sid, work)


def _list_page(emu: Emulator, request: Request, account_sid: str) -> JSONResponse:
    params = request.query_params
    filters = [(k, params[k]) for k in FILTERS if params.get(k)]
    since, until = _date_window(params)
    query = MessageQuery(
        account_sid=account_sid,
        to_addr=params.get("To") or None,
        from_addr=params.get("From") or None,
        since=since,
        until=until,
    )
    size = _int_param(params.get("PageSize"), "PageSize", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    page = _int_param(params.get("Page"), "Page", 0, 0, 1_000_000)
    token = params.get("PageToken") or None
    if token and token[:2] not in ("PA", "PB"):
        raise bad_parameter(f"PageToken '{token}' is not valid")
    older = token[2:] if token and token.startswith("PA") else None
    newer = token[2:] if token and token.startswith("PB") else None
    # One extra row tells whether a next page exists without a COUNT query.
    rows = emu.store.list_page(
        query, size + 1, older_than=older, newer_than=newer, offset=page * size
    )
    has_next = len(rows) > size or newer is not None
    rows = rows[-size:] if newer is not None else rows[:size]
    body = page_json(
        account_sid,
        rows,
        filters=filters,
        page=page,
        page_size=size,
        token=token,
        has_next=has_next,
    )
    return JSONResponse(body)


def _date_window(params: QueryParams) -> tuple[float | None, float | None]:
    """[since, until) in epoch seconds from DateSent, DateSent< and DateSent> (whole GMT days)."""
    since: float | None = None
    until: float | None = None
    for key in FILTERS[2:]:
        raw = params.get(key)
        if not raw:
            continue
        # Accept both `DateSent<=2024-01-02` spellings: the operator in the key or the value.
        op = key[-1] if key[-1] in "<>" else ""
        value = raw
        if value[:2] in ("<=", ">="):
            op, value = value[0], value[2:]
        day = _parse_day(value)
        start = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
        end = start + timedelta(days=1).total_seconds()
        if op in ("", ">"):
            since = start if since is None else max(since, start)
        if op in ("", "<"):
            until = end if until is None else min(until, end)
    return since, until


def _parse_day(value: str) -> date:
    value = value.strip()
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(value).astimezone(UTC).date()
    except (TypeError, ValueError):
        raise bad_parameter(f"'{value}' is not a date like YYYY-MM-DD") from None


def _int_param(raw: str | None, name: str, default: int, low: int, high: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_parameter(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise bad_parameter(f"{name} must be between {low} and {high}")
    return value


router.include_router(media_api.router)
router.include_router(content_api.router)
