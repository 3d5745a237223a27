import pytest

from relaydesk.ai.text import contains_twilio_reference, scrub_twilio, trim_to_segments
from relaydesk.channels.twilio.segments import count_segments

SID_HEX = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Photo: https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1 ok",
            "Photo: [attachment] ok",
        ),
        ("See https://mcs.us1.twilio.com/v1/Services/IS1/Media/ME1?x=1.", "See [attachment]."),
        ("Image https://media.twiliocdn.com/abc/def.jpg here", "Image [attachment] here"),
        (
            "path /2010-04-01/Accounts/AC9/Messages/MM9/Media/ME9 end",
            "path [attachment] end",
        ),
        (f"Message MM{SID_HEX} arrived", "Message [id] arrived"),
        (f"SMS SM{SID_HEX}, media ME{SID_HEX}", "SMS [id], media [id]"),
        (f"Account AC{SID_HEX} and template HX{SID_HEX}", "Account [id] and template [id]"),
    ],
)
def test_twilio_urls_and_sids_are_replaced(text: str, expected: str) -> None:
    assert scrub_twilio(text) == expected
    assert not contains_twilio_reference(scrub_twilio(text))


@pytest.mark.parametrize(
    "text",
    [
        "Our menu: https://example.com/menu.pdf",
        "Docs at https://twilio.com.example.org/page",  # not a Twilio host
        "Order MM0123 and code XX" + SID_HEX,  # too short; not a Twilio prefix
        "MM" + SID_HEX + "ab",  # 34 hex digits: not a SID
        "Two  spaces stay when nothing was removed",
    ],
)
def test_ordinary_text_and_urls_are_left_alone(text: str) -> None:
    assert scrub_twilio(text) == text
    assert not contains_twilio_reference(text)


def test_double_spaces_left_by_removals_are_collapsed() -> None:
    text = f"Hi  MM{SID_HEX}  there"
    assert scrub_twilio(text) == "Hi [id] there"


def test_contains_twilio_reference_finds_a_leftover() -> None:
    assert contains_twilio_reference("x https://api.twilio.com/y")
    assert contains_twilio_reference(f"ME{SID_HEX}")


def test_text_that_fits_is_returned_stripped() -> None:
    assert trim_to_segments("  Hello there.  \n", 1) == "Hello there."
    assert trim_to_segments("a" * 306, 2) == "a" * 306


def test_gsm7_text_is_cut_at_the_last_sentence_that_fits() -> None:
    first = "First sentence is here. " * 6  # 144 chars
    text = first + "Second part that pushes the message over one segment!"
    trimmed = trim_to_segments(text, 1)
    assert trimmed == first.strip()
    assert count_segments(trimmed).segments == 1


def test_gsm7_multi_segment_budget_uses_153_per_segment() -> None:
    sentence = "This is sentence number one of many? "  # 37 chars
    text = sentence * 10  # 370 chars: 3 segments
    trimmed = trim_to_segments(text, 2)
    info = count_segments(trimmed)
    assert info.encoding == "GSM-7" and info.segments == 2
    assert trimmed == (sentence * 8).strip()  # 295 chars; a ninth sentence would be 332 > 306


def test_polish_text_is_cut_for_ucs2_segments() -> None:
    text = "Dzień dobry! Zamówienie jest gotowe do odbioru. Zapraszamy jutro od rana do wieczora."
    assert count_segments(text).encoding == "UCS-2"
    trimmed = trim_to_segments(text, 1)
    assert trimmed == "Dzień dobry! Zamówienie jest gotowe do odbioru."
    assert count_segments(trimmed).segments == 1


def test_polish_text_uses_67_characters_per_segment() -> None:
    sentence = "Zażółć gęślą jaźń. "  # 19 chars
    text = sentence * 10  # 190 chars: 3 UCS-2 segments
    trimmed = trim_to_segments(text, 2)
    assert trimmed == (sentence * 7).strip()  # 132 chars <= 134; eight would be 151
    assert count_segments(trimmed).segments == 2


def test_line_break_counts_as_a_sentence_boundary() -> None:
    text = "Opening hours\n" + "x " * 100
    assert trim_to_segments(text, 1) == "Opening hours"


def test_without_sentence_boundary_cut_at_word_with_ellipsis() -> None:
    text = "word " * 50  # 250 chars, no sentence end
    trimmed = trim_to_segments(text, 1)
    assert trimmed.endswith("...")
    assert trimmed.removesuffix("...") == ("word " * 31).strip()  # 154 + 3 <= 160
    assert count_segments(trimmed).encoding == "GSM-7"  # no "…": it would force UCS-2


def test_without_sentence_boundary_ucs2_text_gets_unicode_ellipsis() -> None:
    text = "żółw " * 30  # 150 chars
    trimmed = trim_to_segments(text, 1)
    assert trimmed == ("żółw " * 14).strip() + "…"  # 69 + 1 <= 70
    assert count_segments(trimmed).segments == 1


def test_a_single_giant_word_is_cut_inside() -> None:
    trimmed = trim_to_segments("x" * 500, 1)
    assert trimmed == "x" * 157 + "..."


def test_extension_characters_count_double() -> None:
    text = "{" * 79 + ". " + "{" * 50  # the first sentence is 80 chars = 160 septets
    assert trim_to_segments(text, 1) == "{" * 79 + "."
