"""The ASGI application: routes, error rendering, limits and background services."""

from __future__ import annotations

import functools
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError, SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relaydesk import __version__
from relaydesk.channels.sandbox.deps import require_sandbox_mode
from relaydesk.channels.sandbox.emulator import router as emulator_router
from relaydesk.channels.sandbox.phone import router as phone_router
from relaydesk.channels.sandbox.runtime import start_emulator, stop_emulator
from relaydesk.core import domains
from relaydesk.core.config import get_settings
from relaydesk.core.errors import Invalid, RelaydeskError, Unavailable
from relaydesk.core.heap import settle_after_startup
from relaydesk.core.proxies import ForwardedHeaders
from relaydesk.core.tasks import start_embedded_worker
from relaydesk.messaging import hooks
from relaydesk.messaging.webhooks import WebhookFrontDoor
from relaydesk.messaging.writer import get_writer
from relaydesk.observe import api as observe_api
from relaydesk.observe.access import AccessLog
from relaydesk.openapi import describe
from relaydesk.web.errors import is_panel_request, panel_error, panel_invalid
from relaydesk.web.views import install_panel

log = logging.getLogger(__name__)

MAX_API_BODY = 1024 * 1024
FRAMEWORK_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "too_large",
    415: "unsupported_media_type",
}
# Index backups are uploaded whole; the import itself enforces its exact limit (250 MB),
# this leaves room for the multipart envelope around the file.
_BACKUP_UPLOAD = 251 * 1024 * 1024
# Knowledge documents: the extractor's limit plus the envelope; a key ending in "/" is a
# prefix (a document's own path, for a new version).
_DOCUMENT_UPLOAD = 21 * 1024 * 1024
UPLOAD_PATHS = {
    "/api/news/faiss/import": _BACKUP_UPLOAD,
    "/news/faiss/import": _BACKUP_UPLOAD,
    "/api/knowledge/documents": _DOCUMENT_UPLOAD,
    "/api/knowledge/documents/": _DOCUMENT_UPLOAD,
    "/news/documents": _DOCUMENT_UPLOAD,
    "/news/documents/": _DOCUMENT_UPLOAD,
}
# Attachments: MEDIA_MAX_BYTES plus room for the multipart envelope.
MEDIA_UPLOAD_PATHS = ("/api/media", "/sandbox/phone/messages", "/sandbox-phone/send")


class BodyLimit:
    """Refuses request bodies over a limit before reading them into memory."""

    def __init__(self, app: ASGIApp, limit: int, larger: dict[str, int] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.larger = larger or {}  # paths that take uploads, with their own limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        limit = self.larger.get(path) or next(
            (
                size
                for key, size in self.larger.items()
                if key.endswith("/") and path.startswith(key)
            ),
            self.limit,
        )
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _too_large(limit, send)
                return
        seen = 0
        over = False

        async def limited() -> Message:
            nonlocal seen, over
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                over = True
                raise _BodyTooLarge
            return message

        started = False

        async def answer(message: Message) -> None:
            # A body of unknown length (chunked) went over the limit while a route read
            # it: whatever the route makes of that (FastAPI says 400), the answer is 413.
            nonlocal started
            if not over:
                started = started or message["type"] == "http.response.start"
                await send(message)

        with suppress(_BodyTooLarge):
            await self.app(scope, limited, answer)
        if over and not started:
            await _too_large(limit, send)


class _BodyTooLarge(Exception):
    pass


async def _too_large(limit: int, send: Send) -> None:
    body = JSONResponse(
        {"detail": f"The request body is larger than {_size(limit)}", "code": "too_large"},
        status_code=413,
    )
    await send({"type": "http.response.start", "status": 413, "headers": body.raw_headers})
    await send({"type": "http.response.body", "body": body.body})


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MB" if limit >= 10 * 1024 * 1024 else f"{limit // 1024} KB"


def _validation_message(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    problems = []
    for err in exc.errors():
        where = [str(p) for p in err.get("loc", ())]
        # Drop the request part ("body", "query"…), not a field that is called "body".
        loc = where[1:] if where[:1] in (["body"], ["query"], ["path"]) else where
        kind = err.get("type", "")
        if kind == "json_invalid":
            problems.append("The request body is not valid JSON")
        elif kind == "missing" and not loc:
            problems.append("The request needs a JSON body")
        elif kind == "extra_forbidden":
            problems.append(f"Unknown field '{'.'.join(loc)}'")
        elif kind in ("model_attributes_type", "dict_type") and not loc:
            problems.append("The request body must be a JSON object")
        else:
            problems.append(f"{'.'.join(loc) or 'request'}: {err.get('msg', 'invalid')}")
    fields = [
        {"field": ".".join(str(p) for p in e.get("loc", ())[1:]), "problem": e.get("msg")}
        for e in exc.errors()
    ]
    return "; ".join(dict.fromkeys(problems)), fields


LISTEN_WAIT_SECONDS = 30.0


class _WhenListening(threading.Thread):
    """Runs some start-up actions once this server accepts connections."""

    def __init__(self, host: str, port: int, actions: list[Callable[[], None]]) -> None:
        super().__init__(name="start-when-listening", daemon=True)
        # A server listening on every interface is reached on loopback.
        wildcard = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104
        self.address = (wildcard.get(host, host), port)
        self.actions = actions
        self.stopped = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + LISTEN_WAIT_SECONDS
        while not self._listening():
            if self.stopped.wait(0.05):
                return  # shut down before it ever listened
            if time.monotonic() > deadline:
                log.warning("the server does not answer on %s:%s; starting anyway", *self.address)
                break
        for action in self.actions:
            action()

    def _listening(self) -> bool:
        try:
            socket.create_connection(self.address, timeout=1).close()
        except OSError:
            return False
        return True


def create_app(*, run_worker: bool = False) -> ASGIApp:
    """The ASGI application to serve: forwarded headers applied (from trusted proxies
    only), then Twilio's webhooks, then the FastAPI app."""
    app: ASGIApp = WebhookFrontDoor(create_fastapi_app(run_worker=run_worker))
    if get_settings().access_log:
        app = AccessLog(app)
    return ForwardedHeaders(app)


def create_fastapi_app(*, run_worker: bool = False) -> FastAPI:
    """Build the application; `run_worker` also runs the task consumer in-process."""
    settings = get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for warning in settings.warnings():
            log.warning("%s", warning)
        # One process that stores the webhooks and runs their jobs does the jobs' first
        # step as it stores them; a web process of a scaled-out setup leaves it to them.
        hooks.work_at_store(run_worker)
        writer = get_writer()
        writer.start()
        consumers: list[Any] = []
        later: list[Callable[[], None]] = []
        if settings.embedded_sandbox:
            later.append(start_emulator(dispatch=False).dispatcher.start)
        if run_worker:
            later.append(lambda: consumers.extend(start_embedded_worker()))
        starter = None
        if settings.embedded_sandbox:
            # The built-in emulator is this server: its callbacks, and the worker's calls
            # to it (a restart resumes interrupted sends at once), wait until it answers.
            starter = _WhenListening(settings.host, settings.port, later)
            starter.start()
        else:
            for action in later:
                action()
        settle_after_startup()
        try:
            yield
        finally:
            writer.stop()
            if starter is not None:
                starter.stopped.set()
                starter.join(timeout=LISTEN_WAIT_SECONDS)
            for consumer in consumers:
                consumer.stop(graceful=True)
            if settings.embedded_sandbox:
                stop_emulator()

    app = FastAPI(
        title="relaydesk",
        version=__version__,
        description="Messaging hub for Twilio SMS, MMS and WhatsApp. "
        "Authenticate with `Authorization: Bearer <token>` (create one with "
        "`relaydesk token create NAME`).",
        lifespan=lifespan,
        # Served by the panel instead, behind sign-in and with local assets (web/views.py).
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    for module in domains.load("api"):
        app.include_router(module.router)
    if settings.embedded_sandbox:
        # Off (404) while the panel has switched this process to live Twilio.
        sandbox_on = [Depends(require_sandbox_mode)]
        app.include_router(
            emulator_router,
            prefix="/sandbox/twilio",
            include_in_schema=False,
            dependencies=sandbox_on,
        )
        app.include_router(
            phone_router, prefix="/sandbox", tags=["sandbox"], dependencies=sandbox_on
        )

    @app.exception_handler(RelaydeskError)
    async def _domain_error(request: Request, exc: RelaydeskError) -> Response:
        if is_panel_request(request):
            return panel_error(request, exc)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _framework_error(request: Request, exc: StarletteHTTPException) -> Response:
        # Unknown paths, wrong methods, unreadable bodies: the same shape as our own errors.
        detail = exc.detail if isinstance(exc.detail, str) else "The request was refused"
        if exc.status_code == 400:
            detail = (
                "The request body could not be read: send UTF-8 JSON (or multipart/form-data "
                "for uploads) matching its Content-Type"
            )
        error = RelaydeskError(detail, code=FRAMEWORK_CODES.get(exc.status_code, "error"))
        error.status_code = exc.status_code
        response = await _domain_error(request, error)
        for name, value in (exc.headers or {}).items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(DataError)
    @app.exception_handler(OverflowError)
    async def _out_of_range(request: Request, exc: Exception) -> Response:
        # A value the database cannot hold (a number beyond 64 bits): the input's fault.
        log.info("refused a value out of range on %s %s: %s", request.method, request.url, exc)
        return await _domain_error(
            request, Invalid("A value in the request is out of range or not storable")
        )

    @app.exception_handler(SQLAlchemyError)
    async def _database_error(request: Request, exc: SQLAlchemyError) -> Response:
        # Also a commit that failed after the route returned: the client must hear that
        # nothing was saved, never the 2xx the route had prepared.
        log.error("database error on %s %s", request.method, request.url.path, exc_info=exc)
        return await _domain_error(
            request,
            Unavailable(
                "The database could not complete the request and nothing was saved; "
                "try again in a moment"
            ),
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        message, fields = _validation_message(exc)
        if is_panel_request(request):
            return panel_invalid(request, message)
        return JSONResponse(
            {"detail": message, "code": "invalid", "fields": fields}, status_code=422
        )

    app.include_router(observe_api.router)
    install_panel(app)
    app.openapi = functools.partial(describe, app)  # type: ignore[method-assign]
    media_limit = settings.media_max_bytes + 1024 * 1024
    larger = {**UPLOAD_PATHS, **dict.fromkeys(MEDIA_UPLOAD_PATHS, media_limit)}
    app.add_middleware(BodyLimit, limit=MAX_API_BODY, larger=larger)
    return app
