"""Messaging test helpers: an empty webhook spool for tests that look at it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest


@pytest.fixture
def empty_spool() -> Iterator[None]:
    """The spool folder starts empty (other tests may have left webhooks or dead letters)."""
    from relaydesk.config import get_settings

    folder = get_settings().data_dir / "spool"
    shutil.rmtree(folder, ignore_errors=True)
    yield
    shutil.rmtree(folder, ignore_errors=True)
