import pytest

from relaydesk.channels.twilio.segments import count_segments


@pytest.mark.parametrize(
    ("body", "encoding", "segments"),
    [
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("a" * 306, "GSM-7", 2),
        ("a" * 307, "GSM-7", 3),
        ("a" * 159 + "€", "GSM-7", 2),  # € is an extension character: two septets
        ("{" * 80, "GSM-7", 1),
        ("{" * 81, "GSM-7", 2),
        ("a" * 70 + "ą", "UCS-2", 2),
        ("x" * 152 + "ą", "UCS-2", 3),
        ("Zażółć gęślą jaźń", "UCS-2", 1),
        ("ó" * 70, "UCS-2", 1),  # ó is not in GSM-7 (only ò is)
        ("😀" * 35, "UCS-2", 1),  # each emoji is two UTF-16 units
        ("😀" * 36, "UCS-2", 2),
    ],
)
def test_segments_follow_twilio_billing(body: str, encoding: str, segments: int) -> None:
    info = count_segments(body)
    assert info.encoding == encoding
    assert info.segments == segments


def test_polish_diacritics_are_reported_as_the_reason_for_ucs2() -> None:
    info = count_segments("Dzień dobry")
    assert info.non_gsm_chars == ("ń",)
