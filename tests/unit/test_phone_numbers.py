import pytest

from relaydesk.channels.twilio.numbers import InvalidNumber, loose_e164, normalize, parse_address


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+48 600 100 200", "+48600100200"),
        ("600100200", "+48600100200"),
        ("600-100-200", "+48600100200"),
        ("0048600100200", "+48600100200"),
        ("0048 600 100 200", "+48600100200"),
        ("(22) 123-45-67", "+48221234567"),
        ("+1 (415) 555-2671", "+14155552671"),
        ("  +44 7911 123456 ", "+447911123456"),
    ],
)
def test_every_format_people_paste_becomes_e164(raw: str, expected: str) -> None:
    assert normalize(raw, "PL") == expected


def test_numbers_without_country_code_use_the_default_region() -> None:
    assert normalize("07911 123456", "GB") == "+447911123456"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("12345", "wrong number of digits"),
        ("call me", "only digits"),
        ("+48 600 100 200 300 400 500 600 700 800 900", "too long"),
        ("+999 123456789", "cannot"),
    ],
)
def test_malformed_numbers_are_refused_with_a_reason(raw: str, reason: str) -> None:
    with pytest.raises(InvalidNumber) as caught:
        normalize(raw, "PL")
    assert reason.split()[0] in str(caught.value) or caught.value.reason


def test_whatsapp_prefix_selects_the_channel() -> None:
    address = parse_address("whatsapp:+48 600 100 200")
    assert address.channel == "whatsapp"
    assert address.e164 == "+48600100200"
    assert address.twilio == "whatsapp:+48600100200"
    assert parse_address("600100200").twilio == "+48600100200"


def test_loose_e164_keeps_short_codes_it_cannot_parse() -> None:
    assert loose_e164("whatsapp:+48600100200") == "+48600100200"
    assert loose_e164("TWILIO") == "TWILIO"
