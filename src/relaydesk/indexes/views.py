"""Panel fragments of the knowledge indexes inside the News tab: status, list, backups, test box.

The News page (news/views.py) shows these sections next to its own; each answers an
action with its fragment again and fires the page's `news-changed` event, so the
other sections reload themselves.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from relaydesk.core.db import session_scope
from relaydesk.indexes import retrieval
from relaydesk.indexes import service as indexes
from relaydesk.indexes.schemas import TestIn
from relaydesk.web.deps import PanelAdmin, PanelOperator, PanelViewer
from relaydesk.web.forms import form_problem
from relaydesk.web.templating import render

router = APIRouter(include_in_schema=False)

# The News page's event: a job finished, a source or an index changed.
CHANGED = "news-changed"
Short = Annotated[str, Form(max_length=100)]


def changed() -> dict[str, str]:
    """The response header that tells the News page's other sections to reload."""
    return {"HX-Trigger": CHANGED}


def status_context() -> dict[str, Any]:
    """The index status card's context."""
    with session_scope(write=False) as session:
        return {"status": indexes.status(session)}


def indexes_context() -> dict[str, Any]:
    """The index list's context."""
    return {"indexes": indexes.list_indexes()}


@router.get("/news/status", response_class=HTMLResponse)
def status_card(request: Request, user: PanelViewer) -> Response:
    """The index status card."""
    return render(request, "news/_status.html", status_context(), user=user)


@router.get("/news/indexes", response_class=HTMLResponse)
def indexes_section(request: Request, user: PanelViewer) -> Response:
    """The index list."""
    return render(request, "news/_indexes.html", indexes_context(), user=user)


@router.post("/news/indexes/{name}/activate", response_class=HTMLResponse)
def activate_index(request: Request, name: str, user: PanelOperator) -> Response:
    """Make an index the active one."""
    with session_scope() as session:
        indexes.activate(session, name, user.actor)
    context = {**indexes_context(), "done": ("activated", name)}
    return render(request, "news/_indexes.html", context, headers=changed(), user=user)


@router.delete("/news/indexes/{name}", response_class=HTMLResponse)
def delete_index(request: Request, name: str, user: PanelAdmin) -> Response:
    """Delete an index."""
    with session_scope() as session:
        indexes.delete(session, name, user.actor)
    context = {**indexes_context(), "done": ("deleted", name)}
    return render(request, "news/_indexes.html", context, headers=changed(), user=user)


@router.post("/news/faiss/import", response_class=HTMLResponse)
def import_index(
    request: Request,
    user: PanelAdmin,
    file: Annotated[UploadFile, File()],
    name: Annotated[str, Form(max_length=63)] = "",
    activate: Annotated[bool, Form()] = False,
) -> Response:
    """Restore an index from a backup ZIP (refusals come back as a notice)."""
    with session_scope() as session:
        manifest = indexes.import_backup(
            session, file.file, name.strip() or None, activate, user.actor
        )
    context = {**indexes_context(), "done": ("imported", manifest.name)}
    return render(request, "news/_indexes.html", context, headers=changed(), user=user)


@router.post("/news/test", response_class=HTMLResponse)
def test_question(
    request: Request,
    user: PanelOperator,
    query: Annotated[str, Form(max_length=4000)] = "",
    mode: Short = "answer",
    top_k: Short = "",
    min_score: Short = "",
) -> Response:
    """Ask the active index; shows the answer (or why there is none) and the passages."""
    try:
        asked = TestIn.model_validate(
            {
                "query": query.strip(),
                "mode": mode,
                "top_k": top_k.strip() or None,
                "min_score": min_score.strip() or None,
            }
        )
    except ValidationError as exc:
        raise form_problem(exc) from None
    result = retrieval.answer(
        asked.query, mode=asked.mode, top_k=asked.top_k, min_score=asked.min_score
    )
    return render(request, "news/_answer.html", {"result": result}, user=user)
