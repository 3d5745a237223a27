"""The panel's search: the box in the header and the results page."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from relaydesk.core.db import session_scope
from relaydesk.core.errors import Invalid
from relaydesk.core.pagination import cursor_id, encode_cursor
from relaydesk.messaging import search
from relaydesk.web.deps import PanelViewer
from relaydesk.web.errors import error_text
from relaydesk.web.templating import render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 20
Kind = Literal["messages", "contacts", "conversations"]


def marked(value: str, spans: list[list[int]]) -> Markup:
    """`value` escaped, with each span in <mark>."""
    parts: list[str] = []
    at = 0
    for start, end in spans:
        parts += [value[at:start], Markup("<mark>{}</mark>").format(value[start:end])]
        at = end
    parts.append(value[at:])
    return Markup("").join(parts)


def in_thread(message_id: int) -> str:
    """The chat page's `before` that shows this message last in its thread."""
    return encode_cursor(message_id + 1)


def _results(request: Request, q: str, kind: str, cursor: str | None) -> dict[str, Any]:
    context: dict[str, Any] = {"q": q, "kind": kind, "items": [], "next": None, "error": None}
    if not q.strip():
        return context
    try:
        before = cursor_id(cursor) if cursor else None
        with session_scope(write=False) as session:
            items, next_before = search.find(session, q, kind, before=before, limit=PAGE_SIZE)
            context["indexing"] = search.status(session).behind
    except Invalid as exc:
        context["error"] = error_text(request, exc)
        return context
    context["items"] = items
    context["next"] = encode_cursor(next_before) if next_before is not None else None
    return context


Text = Annotated[str, Query(max_length=200)]


@router.get("/search", response_class=HTMLResponse)
def search_page(
    request: Request,
    user: PanelViewer,
    q: Text = "",
    type: Kind = "conversations",
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Results for the header's search box: conversations, messages or contacts."""
    context = {**_results(request, q, type, cursor), "marked": marked, "in_thread": in_thread}
    return render(request, "search/index.html", {**context, "tab": "search"}, user=user)


@router.get("/search/more", response_class=HTMLResponse)
def search_more(
    request: Request,
    user: PanelViewer,
    q: Text = "",
    type: Kind = "conversations",
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """The next page of results (the "Load more" button)."""
    context = {**_results(request, q, type, cursor), "marked": marked, "in_thread": in_thread}
    return render(request, "search/_results.html", {**context, "more": True}, user=user)
