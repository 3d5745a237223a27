"""Knowledge index, AI provider and core refusals: Polish in the panel, English in the API."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from html import unescape
from pathlib import Path

import httpx
import pytest

from relaydesk.ai.providers import LLMConfig, LLMNotConfigured, openai_client
from relaydesk.core import netguard
from relaydesk.core.errors import Invalid, NotConfigured
from relaydesk.core.i18n import localized
from relaydesk.core.names import category_slug
from relaydesk.knowledge import backup, store
from relaydesk.knowledge.manifest import CHUNKS_FILE, INDEX_FILE, MANIFEST_FILE
from tests.web.conftest import csrf_of, make_user, panel  # noqa: F401 (fixtures: a signed-in panel)

POLISH = {"Accept-Language": "pl-PL,pl;q=0.9"}


def polish_panel(panel: Callable[[str], httpx.Client], role: str) -> httpx.Client:  # noqa: F811
    client = panel(role)
    client.headers.update(POLISH)
    client.headers.update({"X-CSRF-Token": csrf_of(client), "HX-Request": "true"})
    return client


def test_an_empty_backup_is_refused_in_polish_in_the_panel_and_english_in_the_api(
    panel: Callable[[str], httpx.Client],  # noqa: F811
    api: httpx.Client,
) -> None:
    admin = polish_panel(panel, "admin")
    upload = {"file": ("kopia.zip", b"", "application/zip")}
    refused = admin.post("/news/faiss/import", files=upload)
    assert refused.status_code == 422
    assert "Ta kopia zapasowa została odrzucona: plik jest pusty" in unescape(refused.text)
    assert "This backup was refused" not in unescape(refused.text)

    by_api = api.post("/api/news/faiss/import", files=upload)
    assert by_api.status_code == 422
    assert by_api.json() == {
        "detail": "This backup was refused: the file is empty",
        "code": "backup_refused",
    }


def _zip(members: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    buffer.seek(0)
    return buffer


def test_raised_knowledge_refusals_carry_templates_the_catalog_translates(tmp_path: Path) -> None:
    with pytest.raises(store.IndexNotFound) as missing:
        store.load(tmp_path, "faq")
    assert missing.value.message == "There is no index named 'faq'"
    assert localized("pl", missing.value.template or "", missing.value.params) == (
        "Nie ma indeksu o nazwie 'faq'"
    )

    with pytest.raises(backup.BackupRefused) as folder:
        backup.import_zip(tmp_path, _zip({"docs/": b""}))
    assert folder.value.message == (
        "This backup was refused: it contains a folder ('docs/'); a backup holds only files"
    )
    assert folder.value.reason == "it contains a folder ('docs/'); a backup holds only files"
    assert localized("pl", folder.value.template or "", folder.value.params) == (
        "Ta kopia zapasowa została odrzucona: zawiera folder ('docs/'); "
        "kopia zapasowa zawiera tylko pliki"
    )

    # A fixed reason from the file checks is a catalog entry of its own: translated too.
    bad_manifest = _zip({MANIFEST_FILE: b"{", CHUNKS_FILE: b"{}", INDEX_FILE: b"x"})
    with pytest.raises(backup.BackupRefused) as unreadable:
        backup.import_zip(tmp_path, bad_manifest)
    assert unreadable.value.message == "This backup was refused: manifest.json is not valid JSON"
    assert localized("pl", unreadable.value.template or "", unreadable.value.params) == (
        "Ta kopia zapasowa została odrzucona: manifest.json nie jest poprawnym plikiem JSON"
    )


def test_provider_and_core_refusals_keep_their_english_and_translate() -> None:
    with pytest.raises(LLMNotConfigured) as no_key:
        openai_client(LLMConfig(provider="openai", model="gpt-4o-mini"))
    error = no_key.value.as_relaydesk(NotConfigured)
    assert error.to_dict() == {
        "detail": "OpenAI needs an API key: set OPENAI_API_KEY or enter it in the AI tab",
        "code": "not_configured",
    }
    assert localized("pl", error.template or "", error.params) == (
        "OpenAI wymaga klucza API: ustaw OPENAI_API_KEY albo wpisz go w zakładce AI"
    )

    with pytest.raises(netguard.BlockedAddress) as blocked:
        netguard.check_public_url("ftp://example.com/x", setting="LLM_ALLOW_PRIVATE_NETWORKS")
    assert str(blocked.value) == "'ftp://example.com/x' is not an http(s) address"
    assert localized("pl", blocked.value.template or "", blocked.value.params) == (
        "'ftp://example.com/x' nie jest adresem http(s)"
    )

    with pytest.raises(Invalid) as category:
        category_slug("-tech")
    assert category.value.message == "category name '-tech' must start with a letter or a digit"
    assert localized("pl", category.value.template or "", category.value.params) == (
        "nazwa kategorii '-tech' musi zaczynać się literą lub cyfrą"
    )
