"""News, documents and digests refusals: Polish in the panel, English in the API."""

from __future__ import annotations

from collections.abc import Callable
from html import unescape

import httpx
import pytest

from relaydesk.core.errors import Conflict, Invalid
from relaydesk.core.i18n import N_, localized
from relaydesk.digests import compose as digest_compose
from relaydesk.digests.compose import NoNews
from relaydesk.documents.extract import extract
from relaydesk.news.sources import check_url
from tests.web.conftest import csrf_of, make_user, panel  # noqa: F401 (fixtures: a signed-in panel)

POLISH = {"Accept-Language": "pl-PL,pl;q=0.9"}


def polish_panel(panel: Callable[[str], httpx.Client], role: str) -> httpx.Client:  # noqa: F811
    client = panel(role)
    client.headers.update(POLISH)
    client.headers.update({"X-CSRF-Token": csrf_of(client), "HX-Request": "true"})
    return client


def test_a_bad_source_url_is_refused_in_polish_in_the_panel_and_english_in_the_api(
    panel: Callable[[str], httpx.Client],  # noqa: F811
    api: httpx.Client,
) -> None:
    operator = polish_panel(panel, "operator")
    refused = operator.post("/news/sources", data={"category": "Tech", "url": "ftp://x.example"})
    assert refused.status_code == 422
    assert "'ftp://x.example' musi zaczynać się od http:// lub https://" in unescape(refused.text)
    assert "must start with" not in unescape(refused.text)

    by_api = api.post("/api/news/sources", json={"category": "Tech", "url": "ftp://x.example"})
    assert by_api.status_code == 422
    assert by_api.json()["detail"] == "'ftp://x.example' must start with http:// or https://"


def test_a_refused_document_is_explained_in_polish_in_the_panel_and_english_in_the_api(
    panel: Callable[[str], httpx.Client],  # noqa: F811
    api: httpx.Client,
) -> None:
    operator = polish_panel(panel, "operator")
    upload = {"file": ("cennik.xlsm", b"PK\x03\x04 not really a workbook", "text/plain")}
    refused = operator.post("/news/documents", files=upload, data={"category": "Ceny"})
    assert refused.status_code == 422
    assert "cennik.xlsm: arkusz z makrami (.xlsm) nie jest przyjmowany" in unescape(refused.text)

    by_api = api.post("/api/knowledge/documents", files=upload, data={"category": "Ceny"})
    assert by_api.status_code == 422
    assert by_api.json()["detail"] == (
        "cennik.xlsm: a spreadsheet with macros (.xlsm) is not accepted: save it as .xlsx"
    )
    assert by_api.json()["field"] == "file"


def test_a_bad_send_time_is_refused_in_polish_in_the_panel_and_english_in_the_api(
    panel: Callable[[str], httpx.Client],  # noqa: F811
    api: httpx.Client,
) -> None:
    operator = polish_panel(panel, "operator")
    form = {"phone": "+48600100958", "send_time": "25:00", "timezone": "Europe/Warsaw"}
    refused = operator.post("/news/recipients", data=form)
    assert refused.status_code == 422
    assert "'25:00' nie jest godziną; wpisz GG:MM od 00:00 do 23:59" in unescape(refused.text)

    by_api = api.post("/api/news/recipients", json=form)
    assert by_api.status_code == 422
    assert by_api.json()["detail"] == (
        "'25:00' is not a time of day; write HH:MM between 00:00 and 23:59"
    )


def test_raised_refusals_carry_templates_the_catalog_translates() -> None:
    with pytest.raises(Invalid) as url:
        check_url("https://user:secret@example.com/feed")
    assert url.value.message == (
        "'https://user:secret@example.com/feed' must not contain a user name or password"
    )
    assert localized("pl", url.value.template or "", url.value.params) == (
        "'https://user:secret@example.com/feed' nie może zawierać nazwy użytkownika ani hasła"
    )
    with pytest.raises(Invalid) as empty:
        extract("notatki.txt", b"   ")
    assert empty.value.message == "The file is empty"
    assert localized("pl", empty.value.template or "", empty.value.params) == "Plik jest pusty"

    default = NoNews()
    assert default.message.startswith("No news matched: scrape the sources")
    assert localized("pl", default.template or "", default.params).startswith(
        "Nie znaleziono pasujących wiadomości"
    )


def test_no_news_keeps_the_template_of_the_conflict_it_wraps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from relaydesk.indexes import retrieval

    def no_index(*args: object, **kwargs: object) -> None:
        # A stand-in for the index's own refusal: any template of the catalog does.
        raise Conflict(N_("News source %(id)s does not exist"), params={"id": 7})

    monkeypatch.setattr(retrieval, "answer", no_index)
    with pytest.raises(NoNews) as caught:
        digest_compose.compose("all_categories", None, 2)
    assert caught.value.code == "no_news"
    assert caught.value.message == "News source 7 does not exist"
    assert localized("pl", caught.value.template or "", caught.value.params) == (
        "Źródło 7 nie istnieje"
    )
