"""Long news work as jobs: fetching the sources (and updating the index they feed),
building an index, and both on a schedule.

Runners take plain parameters (category names, an index name), read what they need
from the database themselves, and report progress through the job row.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from relaydesk.core import clock
from relaydesk.core.audit import record
from relaydesk.core.db import session_scope
from relaydesk.core.errors import Conflict, Invalid, RelaydeskError
from relaydesk.core.i18n import N_
from relaydesk.core.tasks import periodic
from relaydesk.documents import service as knowledge_documents
from relaydesk.indexes.service import embedder, index_root
from relaydesk.jobs import service as jobs
from relaydesk.jobs.models import Job
from relaydesk.jobs.service import Progress
from relaydesk.knowledge import indexing, store
from relaydesk.news import files, scraper, service
from relaydesk.news.sources import category_slugs

log = logging.getLogger(__name__)

SCRAPE = "news.scrape"
BUILD = "news.build_index"
REFRESH = "news.refresh"  # scrape then build: what the daily schedule runs


def start_scrape(
    session: Session, categories: list[str] | None, actor: str, *, build: bool = True
) -> Job:
    """Queue a fetch of all categories or the named ones (checked now, not in the worker).

    With `build` (the default) the same job then updates the active index (or 'news')
    from every category's articles, as the daily refresh does, so a question asked
    after a fetch reads the new articles without a separate build.
    """
    chosen = service.categories(session, categories)
    if categories is not None:
        categories = [c.name for c in chosen]  # stored as slugs, however they were typed
    job = jobs.start(session, SCRAPE, {"categories": categories, "build": build}, actor)
    record(
        session,
        actor,
        "news.scrape.start",
        f"job:{job.id}",
        {"categories": categories, "build": build},
    )
    return job


def start_build(session: Session, name: str, categories: list[str] | None, actor: str) -> Job:
    """Queue an index build from the stored articles (of all or the named categories)."""
    store.check_name(name)
    if categories is not None:
        # Checked here, so that a name that is not one is a 422 and never a failed job.
        categories = category_slugs(categories)
    params = {"name": name, "categories": categories}
    job = jobs.start(session, BUILD, params, actor)
    record(session, actor, "news.index.build", f"index:{name}", {"job": job.id})
    return job


def _scrape(params: dict[str, Any], progress: Progress) -> dict[str, Any]:
    with session_scope(write=False) as session:
        chosen = service.categories(session, params.get("categories"))
    report = scraper.scrape(chosen, service.news_dir(), progress=progress)
    return report.to_dict()


def _build(params: dict[str, Any], progress: Progress) -> dict[str, Any]:
    name = str(params.get("name") or service.DEFAULT_INDEX)
    categories = params.get("categories")
    articles = files.load_articles(service.news_dir(), categories)
    documents = [
        indexing.Document(a.url, a.title, a.category, a.text, a.published) for a in articles
    ]
    with session_scope(write=False) as session:
        documents += knowledge_documents.index_documents(session, categories)
    if not documents:
        raise Invalid(
            N_(
                "There are no scraped articles or uploaded documents to index yet: "
                "run a scrape first or upload a document"
            ),
            params={},
        )
    root = index_root()
    result = indexing.build(root, name, documents, embedder(), progress)
    # The first index becomes the active one: a fresh install needs no extra click.
    activated = store.active_name(root) is None
    if activated:
        store.activate(root, name)
    return {
        "name": result.name,
        "vectors": result.vectors,
        "documents": result.documents,
        "embedded": result.embedded,
        "reused": result.reused,
        "skipped_documents": result.skipped_documents,
        "activated": activated,
    }


@jobs.runner(SCRAPE, again_after_stop=True)
def run_scrape(params: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Scrape the chosen categories into the news files, then update the index they feed.

    The result is the scrape's report with `index`: the build's figures, or null with
    `index_note` saying why the index was left as it was (nothing to index yet, or the
    embedder failed: the articles are stored either way).
    """
    result = _scrape(params, progress)
    if params.get("build", True) is False:
        return result
    name = store.active_name(index_root()) or service.DEFAULT_INDEX
    try:
        result["index"] = _build({"name": name, "categories": None}, progress)
    except RelaydeskError as exc:
        result["index"], result["index_note"] = None, exc.message
    return result


@jobs.runner(BUILD, again_after_stop=True)
def run_build(params: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Build (or update) an index from the news files."""
    return _build(params, progress)


@jobs.runner(REFRESH, again_after_stop=True)
def run_refresh(params: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Scrape every category, then update the active index (or 'news')."""
    scraped = _scrape({"categories": None}, progress)
    name = store.active_name(index_root()) or service.DEFAULT_INDEX
    built = _build({"name": name, "categories": None}, progress)
    return {"scrape": scraped, "build": built}


@periodic("news.schedule", minutes="*")
def scheduled_refresh() -> None:
    """Start the daily scrape and build once the configured local time has come."""
    with session_scope() as session:
        schedule = service.read_schedule(session)
        day = schedule.due_on(clock.now())
        if day is None or service.last_scheduled(session) == day:
            return
        try:
            service.categories(session)
        except Invalid:
            return  # no sources yet: nothing to refresh
        # The day is claimed in the same transaction that queues the job.
        service.mark_scheduled(session, day)
        try:
            jobs.start(session, REFRESH, {"day": day}, "system:news-schedule")
        except Conflict:
            log.info("news: the scheduled refresh of %s found one already running", day)
