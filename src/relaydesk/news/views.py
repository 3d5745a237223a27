"""Panel page of the news module: the News tab and its htmx fragments.

The index sections (status card, index list, test box) are the indexes package's
fragments (indexes/views.py); this page includes them.

Every section is a fragment of its own that reloads itself when the page's
`news-changed` event fires (a job finished, a source or an index changed), so an
action in one section keeps the others current without a page reload.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from relaydesk.auth.sessions import SignedIn
from relaydesk.core.config import get_settings
from relaydesk.core.db import session_scope
from relaydesk.deps import Id
from relaydesk.documents.views import documents_context
from relaydesk.indexes.schemas import RetrievalSettings
from relaydesk.indexes.service import Retrieval
from relaydesk.indexes.views import changed, indexes_context, status_context
from relaydesk.jobs import service as job_service
from relaydesk.jobs.service import ACTIVE
from relaydesk.news import service, tasks
from relaydesk.news.schemas import ScheduleSettings, SourceOut
from relaydesk.news.sources import suggested_categories
from relaydesk.web.deps import PanelAdmin, PanelOperator, PanelViewer
from relaydesk.web.forms import form_problem
from relaydesk.web.templating import render

router = APIRouter(include_in_schema=False)

JOB_KINDS = (tasks.SCRAPE, tasks.BUILD, tasks.REFRESH)
Text = Annotated[str, Form(max_length=2048)]
Short = Annotated[str, Form(max_length=100)]


# --- Context of each section ---------------------------------------------------------------


def _sources() -> dict[str, Any]:
    with session_scope(write=False) as session:
        groups = service.list_sources(session)
    used = [g.category for g in groups]
    return {"groups": groups, "suggested": suggested_categories(get_settings().language, used)}


def _files() -> dict[str, Any]:
    return {"file_groups": service.file_groups()}


def _settings() -> dict[str, Any]:
    with session_scope(write=False) as session:
        return {"settings": service.settings_view(session)}


def _running_jobs() -> list[dict[str, Any]]:
    """The latest job of each news kind while it is still under way (shown on page load)."""
    with session_scope(write=False) as session:
        found = []
        for kind in JOB_KINDS:
            latest = job_service.latest(session, kind, 1)
            if latest and latest[0].status in ACTIVE:
                found.append(job_service.view(latest[0]))
    return found


def _section(request: Request, user: SignedIn, template: str, context: dict[str, Any]) -> Response:
    return render(request, f"news/{template}", context, user=user)


# --- The page ------------------------------------------------------------------------------


@router.get("/news", response_class=HTMLResponse)
def news_page(request: Request, user: PanelViewer) -> Response:
    """The News tab: index status, sources, scraping and building, files, indexes, tests."""
    context = {
        "tab": "news",
        **status_context(),
        **_sources(),
        **_files(),
        **documents_context(),
        **indexes_context(),
        **_settings(),
        "running": _running_jobs(),
    }
    return render(request, "news/index.html", context, user=user)


@router.get("/news/sources", response_class=HTMLResponse)
def sources_section(request: Request, user: PanelViewer) -> Response:
    """The sources by category."""
    return _section(request, user, "_sources.html", _sources())


@router.post("/news/sources", response_class=HTMLResponse)
def add_source(
    request: Request,
    user: PanelOperator,
    category: Short = "",
    url: Text = "",
    kind: Annotated[Literal["feed", "page"], Form()] = "feed",
) -> Response:
    """Add a source; the section comes back with it and a confirmation."""
    with session_scope() as session:
        row = service.add_source(session, category, url, kind, user.actor)
        added = SourceOut.model_validate(row)
    context = {**_sources(), "added": added}
    return render(request, "news/_sources.html", context, headers=changed(), user=user)


@router.delete("/news/sources/{source_id}", response_class=HTMLResponse)
def delete_source(request: Request, source_id: Id, user: PanelOperator) -> Response:
    """Remove a source."""
    with session_scope() as session:
        service.delete_source(session, source_id, user.actor)
    context = {**_sources(), "removed": True}
    return render(request, "news/_sources.html", context, headers=changed(), user=user)


# --- Jobs ----------------------------------------------------------------------------------


def _job_fragment(request: Request, user: SignedIn, job: dict[str, Any]) -> Response:
    # The fragment that sees the job end tells the other sections to reload.
    finished = job["status"] not in ACTIVE
    headers = changed() if finished else None
    return render(request, "news/_job.html", {"job": job}, headers=headers, user=user)


@router.post("/news/scrape", response_class=HTMLResponse)
def start_scrape(request: Request, user: PanelOperator) -> Response:
    """Start scraping every category; the progress fragment polls until it ends."""
    with session_scope() as session:
        job = tasks.start_scrape(session, None, user.actor)
        session.flush()
        view = job_service.view(job)
    return render(request, "news/_job.html", {"job": view}, user=user)


@router.post("/news/build", response_class=HTMLResponse)
def start_build(request: Request, user: PanelOperator, name: Short = "") -> Response:
    """Start building an index (default 'news') from the saved files."""
    with session_scope() as session:
        job = tasks.start_build(session, name.strip() or service.DEFAULT_INDEX, None, user.actor)
        session.flush()
        view = job_service.view(job)
    return render(request, "news/_job.html", {"job": view}, user=user)


@router.get("/news/jobs/{job_id}", response_class=HTMLResponse)
def job_progress(request: Request, job_id: Id, user: PanelViewer) -> Response:
    """A job's progress bar, or its result once it has ended."""
    with session_scope(write=False) as session:
        view = job_service.view(job_service.get(session, job_id))
    return _job_fragment(request, user, view)


# --- Files ---------------------------------------------------------------------------------


@router.get("/news/files", response_class=HTMLResponse)
def files_section(request: Request, user: PanelViewer) -> Response:
    """The saved files per category."""
    return _section(request, user, "_files.html", _files())


@router.delete("/news/files/{name}", response_class=HTMLResponse)
def delete_file(request: Request, name: str, user: PanelAdmin) -> Response:
    """Delete one file."""
    with session_scope() as session:
        service.delete_file(session, name, user.actor)
    context = {**_files(), "deleted": [name]}
    return render(request, "news/_files.html", context, headers=changed(), user=user)


@router.delete("/news/files", response_class=HTMLResponse)
def delete_all_files(request: Request, user: PanelAdmin) -> Response:
    """Delete every file."""
    with session_scope() as session:
        deleted = service.delete_all_files(session, user.actor)
    context = {**_files(), "deleted": deleted}
    return render(request, "news/_files.html", context, headers=changed(), user=user)


# --- Settings ------------------------------------------------------------------------------


@router.post("/news/settings", response_class=HTMLResponse)
def save_settings(
    request: Request,
    user: PanelOperator,
    top_k: Short = "",
    min_score: Short = "",
    scrape_at: Short = "",
    timezone: Short = "",
) -> Response:
    """Store the retrieval settings and the daily schedule."""
    try:
        retrieval_in = RetrievalSettings.model_validate(
            {"top_k": top_k.strip(), "min_score": min_score.strip()}
        )
        schedule_in = ScheduleSettings.model_validate(
            {
                "scrape_at": scrape_at.strip() or None,
                "timezone": timezone.strip() or service.DEFAULT_TIMEZONE,
            }
        )
    except ValidationError as exc:
        raise form_problem(exc) from None
    with session_scope() as session:
        service.save_settings(
            session,
            user.actor,
            retrieval=Retrieval(**retrieval_in.model_dump()),
            schedule=service.Schedule(**schedule_in.model_dump()),
        )
    context = {**_settings(), "saved": True}
    return render(request, "news/_settings.html", context, user=user)
