"""The News tab's forms refuse category and index names that are not names, with a notice."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.web.conftest import csrf_of


def test_panel_forms_refuse_names_that_are_not_names_with_a_notice(
    panel: Callable[[str], httpx.Client], api: httpx.Client
) -> None:
    client = panel("operator")
    headers = {"X-CSRF-Token": csrf_of(client), "HX-Request": "true"}
    for name in ("../../outside/secret", "eco\x00nomy"):
        added = client.post(
            "/news/sources",
            data={"category": name, "url": "https://example.com/rss"},
            headers=headers,
        )
        assert added.status_code == 422, added.text
        assert added.headers["HX-Retarget"] == "#notices"
        assert "category name" in added.text
        built = client.post("/news/build", data={"name": name}, headers=headers)
        assert built.status_code == 422, built.text
        assert "index name" in built.text
    assert api.get("/api/news/sources").json() == []
    assert api.get("/api/jobs").json() == []
