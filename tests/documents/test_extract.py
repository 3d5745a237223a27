"""Text out of each document type, with its page or row; refusals with a reason."""

from __future__ import annotations

import pytest

from relaydesk.core.errors import Invalid, TooLarge
from relaydesk.documents.extract import MAX_BYTES, extract
from tests.documents import samples


def test_a_pdf_gives_one_part_per_page() -> None:
    found = extract("cennik.pdf", samples.pdf("Chleb zytni 6 zl", "Bulka maslana 2 zl"))
    assert found.kind == "pdf"
    assert [(p.ref, p.text) for p in found.parts] == [
        ("page 1", "Chleb zytni 6 zl"),
        ("page 2", "Bulka maslana 2 zl"),
    ]


def test_a_price_list_becomes_one_passage_per_row_with_its_header() -> None:
    csv_text = "Produkt;Cena;Dostępność\nChleb żytni;6,50 zł;codziennie\n\nSernik;45 zł;w soboty\n"
    found = extract("cennik.csv", csv_text.encode())
    assert found.kind == "csv"
    assert [(p.ref, p.text) for p in found.parts] == [
        ("row 2", "Produkt: Chleb żytni; Cena: 6,50 zł; Dostępność: codziennie"),
        ("row 4", "Produkt: Sernik; Cena: 45 zł; Dostępność: w soboty"),
    ]
    sheet = samples.xlsx([["Produkt", "Cena"], ["Pączek", 3.5], [None, None], ["Tort", 120]])
    rows = extract("cennik.xlsx", sheet)
    assert rows.kind == "xlsx"
    assert [(p.ref, p.text) for p in rows.parts] == [
        ("row 2", "Produkt: Pączek; Cena: 3.5"),
        ("row 4", "Produkt: Tort; Cena: 120"),
    ]


def test_word_opendocument_markdown_html_and_text_give_their_text() -> None:
    word = extract(
        "faq.docx",
        samples.docx("Czy pieczecie bez glutenu?", "Tak, w piątki.", table=[["Dzień", "Od"]]),
    )
    assert word.kind == "docx"
    assert word.parts[0].text == "Czy pieczecie bez glutenu?\nTak, w piątki.\nDzień | Od"
    odt = extract("godziny.odt", samples.odt("Pn–Pt 7:00–18:00", "Sob 8:00–14:00"))
    assert odt.kind == "odt"
    assert odt.parts[0].text == "Godziny otwarcia\nPn–Pt 7:00–18:00\nSob 8:00–14:00"
    md = extract("faq.md", b"# Dostawa\n\nDowozimy   w Gdyni.\n")
    assert (md.kind, md.parts[0].text) == ("md", "# Dostawa\n\nDowozimy w Gdyni.")
    html = (
        "<html><body><article><h1>Cennik</h1><p>Chleb 6 zł, bułka 1 zł.</p></article></body></html>"
    )
    page = extract("cennik.html", html.encode())
    assert page.kind == "html" and "Chleb 6 zł" in page.parts[0].text
    windows = extract("godziny.txt", "Sobota: nieczynne".encode("cp1250"))
    assert windows.parts[0].text == "Sobota: nieczynne"
    assert extract("godziny.txt", "Zażółć gęślą jaźń".encode("cp1250")).parts[0].text == (
        "Zażółć gęślą jaźń"
    )


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("cennik.xlsm", b"PK\x03\x04", "macros"),
        ("cennik.xlsx", samples.with_macros(samples.xlsx([["a"], ["b"]])), "macros"),
        ("tajne.pdf", samples.encrypted_pdf(), "password-protected PDF"),
        ("stary.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, "old Word format"),
        ("plik.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, "password-protected"),
        ("bomba.docx", samples.zip_bomb(), "unpacks to too much data"),
        ("cennik.pdf", b"Produkt;Cena\nchleb;6\n", "the name says PDF but the content is TXT"),
        ("obraz.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "not supported"),
        ("pusty.txt", b"   \n", "empty"),
        ("skan.pdf", samples.pdf(""), "no text was found"),
        ("zepsuty.pdf", b"%PDF-1.4\n garbage", "could not be read"),
    ],
)
def test_refused_files_say_why(name: str, data: bytes, reason: str) -> None:
    with pytest.raises(Invalid) as refused:
        extract(name, data)
    assert reason in refused.value.message


def test_a_pdf_that_unpacks_into_too_much_text_is_refused() -> None:
    bomb = samples.pdf("A" * 3_500_000, compress=True)
    assert len(bomb) < 50_000  # small on the wire
    with pytest.raises(Invalid) as refused:
        extract("bomba.pdf", bomb)
    assert "more than 3,000,000 characters" in refused.value.message


def test_a_file_over_the_limit_is_too_large() -> None:
    with pytest.raises(TooLarge):
        extract("duzy.txt", b"a" * (MAX_BYTES + 1))
