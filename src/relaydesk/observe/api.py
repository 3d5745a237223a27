"""Liveness, readiness and metrics: `/health`, `/ready` (no sign-in) and `/metrics`."""

from __future__ import annotations

import hmac
import logging
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import text

from relaydesk import __version__
from relaydesk.auth.service import authenticate_token
from relaydesk.core.config import get_settings
from relaydesk.core.db import database_kind, get_engine, get_sessionmaker
from relaydesk.core.errors import Unauthorized
from relaydesk.messaging import spool
from relaydesk.messaging.writer import get_writer
from relaydesk.observe import checks, metrics

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


@router.get("/health")
def health() -> JSONResponse:
    """Liveness and configuration warnings (no authentication)."""
    settings = get_settings()
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        db_ok = True
    except Exception:
        log.exception("health check: database unreachable")
        db_ok = False
    spooled = spool.counts()
    body = {
        "status": "ok" if db_ok else "error",
        "version": __version__,
        "database": database_kind() if db_ok else "unreachable",
        "twilio_mode": metrics.twilio_mode(),
        "signature_validation": settings.twilio_validate_signature,
        "webhook_backlog": get_writer().backlog(),
        # Webhooks on disk: waiting for the database, and dead letters for an admin.
        "spool_backlog": spooled.waiting,
        "dead_letters": spooled.dead,
        "warnings": settings.warnings(),
    }
    return JSONResponse(body, status_code=200 if db_ok else 503)


class CheckOut(BaseModel):
    """One readiness check."""

    ok: bool
    detail: str = Field(description="what was found, or why the check failed")
    ms: float = Field(description="how long the check took")


class ReadyOut(BaseModel):
    """Whether this process can take traffic, check by check."""

    status: Literal["ready", "not ready"]
    checks: dict[str, CheckOut] = Field(description="database, queue, data_dir, disk")


@router.get(
    "/ready",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "A check failed: the body says which"}},
)
def ready() -> JSONResponse:
    """Readiness: the database and the queues answer, the data directory takes a file and
    its disk has room (no authentication). 503 names the failing checks."""
    results = checks.run_checks()
    ok = all(check.ok for check in results)
    body = {
        "status": "ready" if ok else "not ready",
        "checks": {
            check.name: {"ok": check.ok, "detail": check.detail, "ms": check.ms}
            for check in results
        },
    }
    return JSONResponse(body, status_code=200 if ok else 503)


def _authorised(authorization: str | None) -> bool:
    scheme, _, value = (authorization or "").partition(" ")
    token = value.strip()
    if scheme.lower() != "bearer" or not token:
        return False
    wanted = get_settings().metrics_token
    if wanted is not None and hmac.compare_digest(token.encode(), wanted.encode()):
        return True
    session = get_sessionmaker()()
    try:
        return authenticate_token(session, token) is not None
    finally:
        session.close()


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {metrics.CONTENT_TYPE: {}}, "description": "Prometheus text format"},
        401: {"description": "No token, or an unknown one"},
    },
)
async def prometheus_metrics(request: Request) -> Response:
    """Prometheus metrics. Send `Authorization: Bearer` with METRICS_TOKEN or an API token
    of any role; never readable anonymously."""
    if not await run_in_threadpool(_authorised, request.headers.get("authorization")):
        raise Unauthorized("Send METRICS_TOKEN or an API token as 'Authorization: Bearer <token>'")
    body = await run_in_threadpool(metrics.render)
    return Response(body, media_type=metrics.CONTENT_TYPE)
