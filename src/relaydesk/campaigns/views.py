"""Panel page of the campaigns domain: the Multi-SMS tab."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from relaydesk.auth.sessions import SignedIn
from relaydesk.campaigns import service
from relaydesk.campaigns.models import BatchStatus
from relaydesk.campaigns.schemas import BatchOut
from relaydesk.campaigns.service import MAX_INPUT_CHARS
from relaydesk.core import clock
from relaydesk.core.db import session_scope
from relaydesk.core.errors import Invalid
from relaydesk.deps import Id
from relaydesk.messaging.service import MAX_INPUT
from relaydesk.messaging.views import CHANGED, segment_rules
from relaydesk.segments import service as segments
from relaydesk.web.deps import PanelOperator, PanelViewer
from relaydesk.web.forms import form_datetime
from relaydesk.web.labels import N_
from relaydesk.web.templating import render

router = APIRouter(include_in_schema=False)

HISTORY_SIZE = 20  # the document's "ostatnie 20"
# The number normaliser's and the service's reasons, marked so that the templates can show
# them in the panel's language (anything else is shown as it is).
REASONS = (
    N_("it is empty"),
    N_("it is too long"),
    N_("it may contain only digits, spaces, brackets, dashes and '+'"),
    N_("it has the wrong number of digits"),
    N_("no such number exists in its country's numbering plan"),
    N_("campaign canceled"),
)

Numbers = Annotated[str, Form(max_length=MAX_INPUT_CHARS)]
Body = Annotated[str, Form(max_length=MAX_INPUT)]
DateText = Annotated[str, Form(max_length=40)]
Fingerprint = Annotated[str, Form(max_length=64)]
Source = Annotated[Literal["list", "segment"], Form()]
SegmentId = Annotated[str, Form(max_length=20)]


def _fingerprint(numbers: str, body: str, send_at_local: str, segment: int | None = None) -> str:
    """Identifies the form's content, to tell whether a shown summary is still current."""
    text = "\0".join((numbers, body, send_at_local, str(segment or "")))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _segment(source: str, segment_id: str) -> int | None:
    """The segment the form sends to (None: the pasted list); Invalid when none is chosen."""
    if source != "segment":
        return None
    if not segment_id.isdigit() or not 0 < int(segment_id) < 2**63:
        raise Invalid(N_("Choose a segment"), params={}, field="segment_id")
    return int(segment_id)


def _segments() -> list[dict[str, Any]]:
    with session_scope(write=False) as session:
        return [{"id": s.id, "name": s.name} for s in segments.list_segments(session)]


def _starts_soon(batch: BatchOut) -> bool:
    """A batch whose counters or status may move any second (the history polls for it)."""
    if batch.status == BatchStatus.PROCESSING:
        return True
    send_at = batch.send_at
    return batch.status == BatchStatus.PENDING and (send_at is None or send_at <= clock.now())


def _history() -> dict[str, Any]:
    with session_scope(write=False) as session:
        batches = service.list_batches(session, HISTORY_SIZE)
    return {"batches": batches, "running": any(_starts_soon(b) for b in batches)}


def _history_section(request: Request, user: SignedIn, **extra: Any) -> Response:
    return render(request, "campaigns/_history.html", {**_history(), **extra}, user=user)


@router.get("/multi-sms", response_class=HTMLResponse)
def campaigns_page(request: Request, user: PanelViewer) -> Response:
    """The Multi-SMS tab: the form with its live count, and the history of campaigns."""
    context = {
        **_history(),
        "tab": "multi_sms",
        "segment_rules": segment_rules(),
        "history_size": HISTORY_SIZE,
        "segments": _segments(),
    }
    return render(request, "campaigns/index.html", context, user=user)


@router.post("/multi-sms/preview", response_class=HTMLResponse)
def campaign_preview(
    request: Request,
    user: PanelOperator,
    numbers: Numbers = "",
    body: Body = "",
    send_at_local: DateText = "",
    summary_of: Fingerprint = "",
    source: Source = "list",
    segment_id: SegmentId = "",
) -> Response:
    """The live count: valid, duplicate and invalid entries (or a segment's recipients and
    skipped members) and the cost in segments.

    A summary shown for other content than the form's is taken away (out of band), so
    only what is on screen can be confirmed.
    """
    segment = int(segment_id) if source == "segment" and segment_id.isdigit() else None
    fingerprint = _fingerprint(numbers, body, send_at_local, segment)
    stale = bool(summary_of) and summary_of != fingerprint
    if segment is not None:
        with session_scope(write=False) as session:
            count = service.preview_segment(session, segment, body)
    else:
        count = service.preview(numbers, body)
    context = {
        "count": count,
        "typed": bool(numbers.strip()) or segment is not None,
        "stale": stale,
    }
    return render(request, "campaigns/_count.html", context, user=user)


@router.post("/multi-sms/confirm", response_class=HTMLResponse)
def campaign_confirm(
    request: Request,
    user: PanelOperator,
    numbers: Numbers = "",
    body: Body = "",
    send_at: DateText = "",
    send_at_local: DateText = "",
    source: Source = "list",
    segment_id: SegmentId = "",
) -> Response:
    """The summary to confirm: the service's own checks, nothing stored."""
    segment = _segment(source, segment_id)
    with session_scope(write=False) as session:
        plan = service.validate(
            "" if segment else numbers,
            body,
            form_datetime(send_at, "send_at"),
            session=session,
            segment_id=segment,
        )
    summary = {
        "valid": plan.valid,
        "segments": plan.segments_per_message * plan.valid,
        "sender": plan.sender,
        "send_at": plan.send_at,
        "segment": plan.segment[1] if plan.segment else None,
        "skipped": len(plan.skipped),
    }
    context = {
        "summary": summary,
        "numbers": "" if segment else numbers,
        "body": body,
        "segment_id": segment,
        "fingerprint": _fingerprint(numbers, body, send_at_local, segment),
    }
    return render(request, "campaigns/_confirm.html", context, user=user)


@router.post("/multi-sms/batches", response_class=HTMLResponse)
def campaign_create(
    request: Request,
    user: PanelOperator,
    numbers: Numbers = "",
    body: Body = "",
    send_at: DateText = "",
    source: Source = "list",
    segment_id: SegmentId = "",
) -> Response:
    """Create the confirmed campaign; it goes out in the background at the configured rate."""
    when = form_datetime(send_at, "send_at")
    segment = _segment(source, segment_id)
    with session_scope() as session:
        batch = service.create(
            session, "" if segment else numbers, body, when, user.actor, segment_id=segment
        )
        created = {"id": batch.id, "valid": batch.valid, "send_at": batch.send_at}
    context = {"created": created, "segment_rules": segment_rules(), "segments": _segments()}
    return render(
        request, "campaigns/_created.html", context, headers={"HX-Trigger": CHANGED}, user=user
    )


@router.get("/multi-sms/batches", response_class=HTMLResponse)
def campaign_history(request: Request, user: PanelViewer) -> Response:
    """The last 20 campaigns with progress and counters (reloaded live)."""
    return _history_section(request, user)


@router.get("/multi-sms/batches/{batch_id}/recipients", response_class=HTMLResponse)
def campaign_recipients(request: Request, batch_id: Id, user: PanelViewer) -> Response:
    """Every recipient of a campaign with its status, Twilio's error or the skip reason."""
    with session_scope(write=False) as session:
        batch = service.with_counters(session, batch_id)
        rows = service.recipients(session, batch_id)
    context = {"batch": batch, "recipients": rows}
    return render(request, "campaigns/_recipients.html", context, user=user)


@router.post("/multi-sms/batches/{batch_id}/{action}", response_class=HTMLResponse)
def campaign_action(
    request: Request,
    batch_id: Id,
    action: Literal["pause", "resume", "cancel"],
    user: PanelOperator,
) -> Response:
    """Pause, resume or cancel a campaign (cancel is confirmed in the browser first)."""
    with session_scope() as session:
        service.change_state(session, batch_id, action, user.actor)
    return _history_section(request, user, changed=(batch_id, action))
