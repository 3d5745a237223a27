"""Errors in the panel: a sign-in redirect, or a notice the person can read."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from relaydesk.core.errors import Invalid, RelaydeskError
from relaydesk.core.i18n import localized, translations
from relaydesk.web.context import request_language
from relaydesk.web.deps import LoginRequired, login_url
from relaydesk.web.templating import render

NOT_PANEL = (
    "/api/",
    "/twilio/",
    "/sandbox/twilio/",
    "/sandbox/phone/",
    "/sandbox/config",
    "/sandbox/reset",
    "/openapi.json",
)


def is_panel_request(request: Request) -> bool:
    """True for the panel's pages and fragments (the API and webhooks answer JSON/XML).

    A client that sends credentials of its own (a token) or asks for JSON is a program,
    whatever the path (files under /media are fetched by both).
    """
    path = request.url.path
    if path.startswith(NOT_PANEL) or path in ("/stats", "/health", "/ready", "/metrics"):
        return False
    if request.headers.get("authorization"):
        return False
    accept = request.headers.get("accept", "")
    return not ("application/json" in accept and "text/html" not in accept)


def _titles(lang: str) -> dict[str, str]:
    _ = translations(lang).gettext
    return {
        "csrf": _("The page expired. Reload it and try again."),
        "forbidden": _("Your role does not allow this."),
        "not_found": _("Not found."),
        "opted_out": _("This customer unsubscribed; nothing can be sent to them."),
        "whatsapp_window_closed": _(
            "The WhatsApp 24-hour window is closed: only an approved template can be sent."
        ),
        "invalid": _("Please check what you entered."),
        "twilio_error": _("Twilio refused the message."),
        "conflict": _("This cannot be done right now."),
    }


def error_text(request: Request, exc: RelaydeskError) -> str:
    """A domain error's message in the panel's language (English when it has no template)."""
    if exc.template is None:
        return exc.message
    return localized(request_language(request), exc.template, exc.params)


def panel_error(request: Request, exc: RelaydeskError) -> Response:
    """Render a domain error for the panel: redirect to sign-in, or show a notice."""
    htmx = request.headers.get("hx-request") == "true"
    if isinstance(exc, LoginRequired):
        target = login_url(exc.next_url)
        if htmx:
            return Response(status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)
    language = request_language(request)
    title = _titles(language).get(exc.code, "")
    text = error_text(request, exc)
    context = {"kind": "error", "title": title, "text": text, "text_key": None}
    if htmx:
        return render(
            request,
            "_notice.html",
            context,
            status_code=exc.status_code,
            headers={"HX-Retarget": "#notices", "HX-Reswap": "afterbegin"},
        )
    return render(request, "error.html", context, status_code=exc.status_code)


def panel_invalid(request: Request, message: str) -> Response:
    """A request the panel's forms should not have produced (too long, wrong choice)."""
    return panel_error(request, Invalid(message))
