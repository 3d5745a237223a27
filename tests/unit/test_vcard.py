"""The chat's vCard reader: names and phone numbers from the cards customers share."""

from __future__ import annotations

from relaydesk.media.vcard import MAX_CARDS, Card, parse


def test_a_whatsapp_contact_card_gives_its_name_and_numbers() -> None:
    data = (
        b"BEGIN:VCARD\r\nVERSION:3.0\r\nN:Kowalska;Anna;;;\r\nFN:Anna Kowalska\r\n"
        b"item1.TEL;waid=48600100200:+48 600 100 200\r\nitem1.X-ABLabel:Mobile\r\n"
        b"TEL;TYPE=WORK:+48 22 123 45 67\r\nEND:VCARD\r\n"
    )
    assert parse(data) == [Card("Anna Kowalska", ["+48 600 100 200", "+48 22 123 45 67"])]


def test_folded_lines_are_joined() -> None:
    data = b"BEGIN:VCARD\nVERSION:3.0\nFN:Jan Maria\n  Rokita\nTEL:+48600\n 100200\nEND:VCARD\n"
    assert parse(data) == [Card("Jan Maria Rokita", ["+48600100200"])]


def test_several_cards_in_one_file() -> None:
    data = (
        "BEGIN:VCARD\r\nFN:Zoë Ćwik\r\nTEL:+48600100201\r\nEND:VCARD\r\n"
        "BEGIN:VCARD\r\nFN:Bob\r\nTEL;VALUE=uri:tel:+15005550006\r\nEND:VCARD\r\n"
    ).encode()
    assert parse(data) == [Card("Zoë Ćwik", ["+48600100201"]), Card("Bob", ["+15005550006"])]


def test_the_structured_name_is_used_without_fn() -> None:
    data = b"BEGIN:VCARD\nN:Nowak;Piotr;;Dr.;\nTEL:+48600\nEND:VCARD"
    assert parse(data) == [Card("Dr. Piotr Nowak", ["+48600"])]


def test_escapes_and_quoted_printable_are_decoded() -> None:
    data = (
        b"BEGIN:VCARD\nVERSION:2.1\nFN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:Pawe=C5=82 =\n"
        b"Nowak\nN:Smith\\, Jr.;John\nEND:VCARD\n"
        b"BEGIN:VCARD\nFN:Acme\\, Inc.\nEND:VCARD\n"
    )
    assert [c.name for c in parse(data)] == ["Paweł Nowak", "Acme, Inc."]


def test_garbage_gives_no_cards_and_no_error() -> None:
    assert parse(b"") == []
    assert parse(b"\xff\xfe<script>alert(1)</script>") == []
    assert parse(b"FN:outside any card\nTEL:+1") == []
    assert parse(b"BEGIN:VCARD\nVERSION:3.0\nEND:VCARD") == []  # nothing to show


def test_a_huge_file_is_cut_short() -> None:
    one = b"BEGIN:VCARD\nFN:x\nEND:VCARD\n"
    assert len(parse(one * 500)) == MAX_CARDS
