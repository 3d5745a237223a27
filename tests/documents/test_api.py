"""/api/knowledge/documents against the live server: upload, ask, replace, delete, refuse."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.conftest import LiveServer, wait_for
from tests.documents import samples
from tests.news.live import finished_job
from tests.news.live import fresh as fresh  # a fixture

URL = "/api/knowledge/documents"
PRICES = (
    "Produkt;Cena;Kiedy\n"
    "Chleb żytni;6,50 zł;codziennie\n"
    "Sernik krakowski;45 zł za blachę;w soboty\n"
    "Pączek z różą;3,50 zł;w tłusty czwartek i piątki\n"
)


def upload(api: httpx.Client, name: str, data: bytes, category: str = "Piekarnia") -> Any:
    answer = api.post(URL, files={"file": (name, data)}, data={"category": category})
    assert answer.status_code == 201, answer.text
    saved = answer.json()
    assert saved["job_id"] is not None
    job = finished_job(api, saved["job_id"])
    assert job["status"] == "done", job["error"]
    return saved["document"], job["result"]


def ask(api: httpx.Client, question: str) -> list[dict[str, Any]]:
    answer = api.post("/api/news/test-faiss", json={"query": question})
    assert answer.status_code == 200, answer.text
    sources: list[dict[str, Any]] = answer.json()["sources"]
    return sources


def test_an_uploaded_price_list_answers_questions_citing_its_row(
    api: httpx.Client, fresh: None
) -> None:
    prices, built = upload(api, "cennik.csv", PRICES.encode())
    assert prices["category"] == "piekarnia"
    assert (prices["kind"], prices["parts"]) == ("csv", 3)
    assert built["activated"] is True and built["documents"] == 3  # its first index
    hours, again = upload(
        api,
        "godziny.pdf",
        samples.pdf("Open Monday to Friday 7-18", "Saturday: open 8-14, Sunday closed"),
    )
    assert (hours["kind"], hours["parts"]) == ("pdf", 2)
    assert again["reused"] > 0 and again["documents"] == 5  # the price list kept its vectors

    top = ask(api, "Ile kosztuje sernik krakowski?")[0]
    assert top["title"] == "cennik.csv (row 3)"
    assert top["url"] == f"document:{prices['id']}#row-3"
    assert "45 zł" in top["excerpt"]
    assert ask(api, "Is the bakery open on Saturday?")[0]["title"] == "godziny.pdf (page 2)"

    listed = api.get(URL).json()
    assert [d["filename"] for d in listed] == ["godziny.pdf", "cennik.csv"]
    assert api.get(f"{URL}/{prices['id']}").json()["sha256"] == prices["sha256"]
    audited = api.get("/api/audit", params={"action": "knowledge."}).json()["items"]
    assert [e["action"] for e in audited] == ["knowledge.document.add"] * 2


def test_a_new_version_replaces_the_old_text_and_deleting_drops_it(
    api: httpx.Client, fresh: None
) -> None:
    prices, _ = upload(api, "cennik.csv", PRICES.encode())
    newer = PRICES.replace("45 zł za blachę", "52 zł za blachę")
    answer = api.put(f"{URL}/{prices['id']}", files={"file": ("cennik.csv", newer.encode())})
    assert answer.status_code == 200, answer.text
    assert answer.json()["document"]["id"] == prices["id"]
    assert answer.json()["document"]["sha256"] != prices["sha256"]
    job = finished_job(api, answer.json()["job_id"])
    # Only the row that changed is embedded again.
    assert (job["result"]["embedded"], job["result"]["reused"]) == (1, 2)
    top = ask(api, "Ile kosztuje sernik krakowski?")[0]
    assert "52 zł" in top["excerpt"] and top["title"] == "cennik.csv (row 3)"

    upload(api, "godziny.txt", b"Open Monday to Friday from 7 to 18.")
    assert api.delete(f"{URL}/{prices['id']}").status_code == 204
    assert api.get(f"{URL}/{prices['id']}").status_code == 404
    assert api.delete(f"{URL}/{prices['id']}").status_code == 404

    def dropped() -> bool:  # the index update queued with the deletion has run
        titles = [s["title"] for s in ask(api, "Ile kosztuje sernik krakowski?")]
        return bool(titles) and all(not t.startswith("cennik") for t in titles)

    wait_for(dropped, timeout=120, what="the deleted price list to leave the index")


def test_bad_uploads_are_refused_and_nothing_is_stored(
    api: httpx.Client, fresh: None, server: LiveServer
) -> None:
    macro = samples.with_macros(samples.xlsx([["Produkt"], ["Chleb"]]))
    for name, data, status, words in [
        ("cennik.xlsx", macro, 422, "macros"),
        ("tajne.pdf", samples.encrypted_pdf(), 422, "password-protected"),
        ("cennik.pdf", b"not a pdf", 422, "the name says PDF"),
        ("../../etc/passwd", b"\x7fELF\x02\x01\x01\0\0\0", 422, "not supported"),
    ]:
        refused = api.post(URL, files={"file": (name, data)}, data={"category": "Piekarnia"})
        assert refused.status_code == status, (name, refused.text)
        assert words in refused.json()["detail"]
    bad_category = api.post(URL, files={"file": ("a.txt", b"tekst")}, data={"category": "a/../b\n"})
    assert bad_category.status_code == 422
    huge = httpx.post(
        server.url + URL,
        headers={"Authorization": api.headers["Authorization"]},
        files={"file": ("duzy.txt", b"a" * (22 * 1024 * 1024))},
        data={"category": "Piekarnia"},
        timeout=60,
    )
    assert huge.status_code == 413
    assert api.get(URL).json() == []

    odd, _ = upload(api, "../../etc/dostawa\tGdynia.txt", b"Dowozimy w Gdyni i Sopocie.")
    # One path segment: the folders a client sent cannot lead anywhere.
    assert "/" not in odd["filename"] and odd["filename"].endswith("Gdynia.txt")


def test_roles_viewers_read_operators_upload_admins_delete(
    api: httpx.Client, make_token: Callable[[str], str], server: LiveServer, fresh: None
) -> None:
    def as_role(role: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {make_token(role)}"}
        return httpx.Client(base_url=server.url, headers=headers, timeout=30)

    with as_role("viewer") as viewer, as_role("operator") as operator:
        assert viewer.get(URL).status_code == 200
        sent = {"files": {"file": ("a.txt", b"tekst")}, "data": {"category": "x"}}
        assert viewer.post(URL, **sent).status_code == 403
        added = operator.post(URL, **sent)
        assert added.status_code == 201
        document = added.json()["document"]["id"]
        finished_job(operator, added.json()["job_id"])
        assert operator.delete(f"{URL}/{document}").status_code == 403
        assert httpx.get(server.url + URL).status_code == 401
    assert api.delete(f"{URL}/{document}").status_code == 204
