"""Fixtures of the news tests: the loopback news site, a news folder, scraper limits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from relaydesk.news.scraper import ScrapeOptions
from tests.fakes.news_site import Site


@pytest.fixture
def site() -> Iterator[Site]:
    web = Site()
    yield web
    web.close()


@pytest.fixture
def news_dir(tmp_path: Path) -> Path:
    return tmp_path / "news"


@pytest.fixture
def options() -> ScrapeOptions:
    """Limits for the loopback site: private networks allowed, as in the issue's tests."""
    return ScrapeOptions(allow_private_networks=True, timeout_seconds=10, concurrency=2)
