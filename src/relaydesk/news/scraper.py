"""Scrape news: feeds and section pages → new articles merged into the category files.

A run reads every source, drops the links it already has (by normalised URL, across
all stored categories and within the run), fetches and extracts the rest, drops texts
it already has (by content hash), and merges the new articles into the files under the
directory lock. Network work runs on a small thread pool; bookkeeping, progress calls
and file writes happen on the calling thread.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

from relaydesk.core.config import Settings, get_settings
from relaydesk.core.i18n import N_
from relaydesk.news import files
from relaydesk.news.extract import (
    HTML_TYPES,
    ExtractError,
    Link,
    article_text,
    feed_links,
    page_links,
)
from relaydesk.news.fetcher import Fetcher, FetchError, Limits, user_agent
from relaydesk.news.sources import Category, Source, normalise_url, unique_categories

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]
Outcome = Literal["failed", "skipped"]
T = TypeVar("T")


@dataclass(frozen=True)
class ScrapeOptions:
    """The limits of one run (`from_settings` reads them from the SCRAPER_* settings)."""

    allow_private_networks: bool = False
    timeout_seconds: float = 20.0
    max_bytes: int = 5 * 1024 * 1024
    concurrency: int = 4
    max_articles_per_source: int = 20
    keep_per_category: int = 500
    max_redirects: int = 5
    user_agent: str = user_agent(None)

    @classmethod
    def from_settings(cls, settings: Settings) -> ScrapeOptions:
        """The options the deployment configured."""
        return cls(
            allow_private_networks=settings.scraper_allow_private_networks,
            timeout_seconds=settings.scraper_timeout_seconds,
            max_bytes=settings.scraper_max_bytes,
            concurrency=settings.scraper_concurrency,
            max_articles_per_source=settings.scraper_max_articles_per_source,
            keep_per_category=settings.scraper_keep_articles_per_category,
            user_agent=user_agent(settings.public_base_url),
        )

    def limits(self) -> Limits:
        """The per-request part, for the fetcher."""
        return Limits(
            allow_private_networks=self.allow_private_networks,
            timeout_seconds=self.timeout_seconds,
            max_bytes=self.max_bytes,
            max_redirects=self.max_redirects,
            connections=self.concurrency,
            user_agent=self.user_agent,
        )


@dataclass(frozen=True)
class Problem:
    """A source or article that brought nothing, and why, in words a person can act on."""

    category: str
    url: str
    reason: str
    outcome: Outcome


@dataclass
class CategoryReport:
    """What a run did for one category; `stored` is the article count in its files after."""

    name: str
    new: int = 0
    duplicate: int = 0
    failed: int = 0
    skipped: int = 0
    stored: int = 0


@dataclass
class ScrapeReport:
    """The outcome of a run."""

    categories: list[CategoryReport]
    problems: list[Problem] = field(default_factory=list)
    started_at: str = ""
    finished_at: str = ""

    @property
    def new(self) -> int:
        """New articles over all categories."""
        return sum(c.new for c in self.categories)

    def category(self, name: str) -> CategoryReport:
        """The report of one category."""
        return next(c for c in self.categories if c.name == name)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form for a job's result."""
        return {**asdict(self), "new": self.new}


class _Run:
    """The state of one scrape: counts, problems, progress and what is already known."""

    def __init__(self, categories: list[Category], directory: Path, progress: Progress | None):
        self.report = ScrapeReport([CategoryReport(c.name) for c in categories])
        self.report.started_at = files.now_iso()
        self._progress = progress
        self.done = 0
        self.total = sum(len(c.sources) for c in categories)
        # Everything stored in any category counts as known: an article lives in one
        # category only.
        self.urls: set[str] = set()
        self.hashes: set[str] = set()
        for stored in files.list_files(directory):
            if stored.kind == "txt":
                for article in files.read_category(directory, stored.category):
                    self.urls.add(article.url)
                    self.hashes.add(article.content_hash)

    def counts(self, category: str) -> CategoryReport:
        return self.report.category(category)

    def tell(self, message: str, *, step: bool = True) -> None:
        if step:
            self.done += 1
        if self._progress is not None:
            self._progress(self.done, self.total, message)

    def problem(self, category: str, url: str, error: BaseException | str) -> None:
        """Record what went wrong; a deliberate refusal counts as skipped, not failed."""
        outcome: Outcome = "failed"
        if isinstance(error, FetchError):
            reason, outcome = error.reason, ("skipped" if error.skipped else "failed")
        elif isinstance(error, ExtractError):
            reason = str(error)
        elif isinstance(error, str):
            reason, outcome = error, "skipped"
        else:
            reason = N_("unexpected error: %(kind)s: %(reason)s") % {
                "kind": error.__class__.__name__,
                "reason": error,
            }
        counts = self.counts(category)
        if outcome == "failed":
            counts.failed += 1
        else:
            counts.skipped += 1
        self.report.problems.append(Problem(category, url, reason, outcome))


def _run_all(
    pool: ThreadPoolExecutor,
    jobs: Sequence[Callable[[], T]],
    done: Callable[[int, T | BaseException], None],
) -> list[T | BaseException]:
    """Run jobs on the pool; `done` hears of each as it ends; results in job order."""
    futures = {pool.submit(job): index for index, job in enumerate(jobs)}
    results: list[T | BaseException] = [RuntimeError("not run")] * len(jobs)
    for future in as_completed(futures):
        index = futures[future]
        try:
            results[index] = future.result()
        except Exception as exc:  # one broken page must not end the run
            if not isinstance(exc, FetchError | ExtractError):
                log.exception("news: unexpected error")
            results[index] = exc
        done(index, results[index])
    return results


def _discover(fetcher: Fetcher, source: Source, limit: int) -> list[Link]:
    page = fetcher.get(source.url)
    if source.kind == "feed":
        return feed_links(page.content, page.url, page.media_type, limit)
    if page.media_type not in HTML_TYPES:
        raise ExtractError(N_("the section page is %(type)s, not HTML") % {"type": page.media_type})
    return page_links(page.content, page.url, limit)


def _fetch_article(fetcher: Fetcher, source: Source, link: Link) -> files.Article:
    page = fetcher.get(link.url)
    if page.media_type not in HTML_TYPES:
        raise FetchError(
            N_("not an article page (%(type)s)") % {"type": page.media_type}, skipped=True
        )
    extracted = article_text(page.content, page.url)
    if extracted is None:
        raise FetchError(N_("no article text found on the page"), skipped=True)
    # A feed names its entries well; the anchor text of a section page is often
    # "read more", so there the page's own title comes first.
    feed_title = link.title if source.kind == "feed" else None
    return files.Article(
        url=normalise_url(link.url),
        title=feed_title or extracted.title or link.title or link.url,
        text=extracted.text,
        source=source.url,
        published=link.published or extracted.published,
        fetched_at=files.now_iso(),
        content_hash=files.content_hash(extracted.text),
    )


def _merge(directory: Path, category: str, new: list[files.Article], keep: int) -> tuple[int, int]:
    """Add new articles to a category's files (call under the lock): (added, stored)."""
    # Read again under the lock: another run may have stored some of them meanwhile.
    existing = files.read_category(directory, category)
    urls = {a.url for a in existing}
    hashes = {a.content_hash for a in existing}
    fresh = [a for a in new if a.url not in urls and a.content_hash not in hashes]
    if not fresh and len(existing) <= keep:
        return 0, len(existing)
    merged = sorted(fresh + existing, key=lambda a: a.sort_key, reverse=True)[:keep]
    files.write_category(directory, category, merged)
    kept = {a.url for a in merged}
    return sum(1 for a in fresh if a.url in kept), len(merged)


def scrape(
    categories: Iterable[Category],
    directory: Path,
    *,
    options: ScrapeOptions | None = None,
    progress: Progress | None = None,
) -> ScrapeReport:
    """Fetch the new articles of every category into its files in `directory`."""
    options = options or ScrapeOptions.from_settings(get_settings())
    chosen = unique_categories(categories)
    run = _Run(chosen, directory, progress)
    sources = [(c.name, s) for c in chosen for s in c.sources]
    run.tell(N_("reading %(count)s sources") % {"count": len(sources)}, step=False)
    new: dict[str, list[files.Article]] = defaultdict(list)
    with (
        Fetcher(options.limits()) as fetcher,
        ThreadPoolExecutor(options.concurrency, thread_name_prefix="news-scrape") as pool,
    ):
        found = _run_all(
            pool,
            [partial(_discover, fetcher, s, options.max_articles_per_source) for _, s in sources],
            # Too little fixed text to be recognised later: this one stays English.
            lambda i, _: run.tell(f"{sources[i][0]}: read {sources[i][1].url}"),
        )
        # In source order, so that which category keeps a shared link does not depend
        # on which server answered first.
        candidates: list[tuple[str, Source, Link]] = []
        for (category, source), links in zip(sources, found, strict=True):
            if isinstance(links, BaseException):
                run.problem(category, source.url, links)
            elif not links:
                run.problem(category, source.url, N_("no article links found"))
            for link in links if isinstance(links, list) else []:
                key = normalise_url(link.url)
                if key in run.urls:
                    run.counts(category).duplicate += 1
                else:
                    run.urls.add(key)
                    candidates.append((category, source, link))
        run.total += len(candidates)
        fetched = _run_all(
            pool,
            [partial(_fetch_article, fetcher, s, link) for _, s, link in candidates],
            lambda i, _: run.tell(
                N_("%(category)s: fetched %(url)s")
                % {"category": candidates[i][0], "url": candidates[i][2].url}
            ),
        )
    for (category, _, link), article in zip(candidates, fetched, strict=True):
        if isinstance(article, BaseException):
            run.problem(category, link.url, article)
        elif article.content_hash in run.hashes:
            run.counts(category).duplicate += 1
        else:
            run.hashes.add(article.content_hash)
            new[category].append(article)
    with files.directory_lock(directory):
        for name in (c.name for c in chosen):
            counts = run.counts(name)
            counts.new, counts.stored = _merge(
                directory, name, new[name], options.keep_per_category
            )
    run.report.finished_at = files.now_iso()
    run.tell(N_("saved %(count)s new articles") % {"count": run.report.new}, step=False)
    log.info(
        "news: scraped %d sources, %d new articles, %d problems",
        len(sources),
        run.report.new,
        len(run.report.problems),
    )
    return run.report
