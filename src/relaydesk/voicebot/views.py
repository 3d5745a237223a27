"""Panel page of the voice-bot analytics: the Voice bot tab.

The page is a shell: its script (static/voicebot.js) fills the cards, charts, table and
lists from /api/voicebot/*, so a change of month or agent redraws without a reload.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from relaydesk.core import clock
from relaydesk.core.db import session_scope
from relaydesk.core.i18n import translations
from relaydesk.voicebot import kpis, settings
from relaydesk.web.context import request_language
from relaydesk.web.deps import PanelViewer
from relaydesk.web.templating import render

router = APIRouter(include_in_schema=False)

PER_PAGE = 25


@router.get("/voicebot", response_class=HTMLResponse)
def voicebot_page(request: Request, user: PanelViewer) -> Response:
    """The Voice bot tab: filters, KPI cards, charts, calls, archives and (admins) settings."""
    with session_scope(write=False) as session:
        config = settings.read(session)
        shown = settings.view(session) if user.role == "admin" else None
    context = {
        "tab": "voicebot",
        # KPIs count calls by their UTC start, so the default month is the UTC one.
        "month": clock.now().strftime("%Y-%m"),
        "agent_ids": config.agent_ids,
        "ready": config.ready,
        "settings": shown,
        "per_page": PER_PAGE,
        # The KPI tooltips in the page's language (the API gives them in English).
        "kpi_definitions": kpis.definitions(translations(request_language(request, user)).gettext),
    }
    return render(request, "voicebot/index.html", context, user=user)
