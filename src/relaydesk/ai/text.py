"""Text going to and coming from a model: strip Twilio references, fit replies into SMS."""

from __future__ import annotations

import re
from collections.abc import Callable

from relaydesk.channels.twilio.segments import count_segments

# A URL's last character is not sentence punctuation: "see https://…/Media/ME1." keeps its dot.
_URL_TAIL = r"(?:[^\s<>\"']*[^\s<>\"'.,;:!?)\]])?"
_TWILIO_URL = re.compile(
    r"https?://(?:[a-z0-9-]+\.)*(?:twilio\.com|twiliocdn\.com)(?::\d+)?"
    # The host ends here: a path, or trailing punctuation and the end of the word.
    r"(?=[/?#]|[.,;:!?)\]\"']*(?:[\s<>]|$))" + _URL_TAIL,
    re.IGNORECASE,
)
# The REST path alone, as it appears in logs and MediaUrl fragments.
_TWILIO_PATH = re.compile(r"/?2010-04-01/Accounts/" + _URL_TAIL)
# Two-letter type prefix + 32 hex digits: messages, media, accounts, services, calls, keys…
_SID_PREFIXES = "AC|CA|CF|CH|CR|FN|FW|HX|IM|IS|KS|MB|ME|MG|MM|PK|PN|QU|RE|RM|SK|SM|TR|US|ZS"
_TWILIO_SID = re.compile(rf"\b(?:{_SID_PREFIXES})[0-9a-fA-F]{{32}}\b")
_SPACES = re.compile(r"[ \t]{2,}")

# End of a sentence: terminal punctuation (plus closing quotes) before whitespace or the end.
_SENTENCE_END = re.compile(r"[.!?…][\"'”’»)\]]*(?=\s|$)|(?=\n)")
_WORD_END = re.compile(r"\S(?=\s)")


def scrub_twilio(text: str) -> str:
    """Replace Twilio media URLs with [attachment] and Twilio SIDs with [id]."""
    cleaned = _TWILIO_URL.sub("[attachment]", text)
    cleaned = _TWILIO_PATH.sub("[attachment]", cleaned)
    cleaned = _TWILIO_SID.sub("[id]", cleaned)
    if cleaned == text:
        return text
    return _SPACES.sub(" ", cleaned)


def contains_twilio_reference(text: str) -> bool:
    """Whether a Twilio URL, REST path or SID is still in the text (a last check)."""
    return any(p.search(text) for p in (_TWILIO_URL, _TWILIO_PATH, _TWILIO_SID))


def _fits(text: str, max_segments: int) -> bool:
    return count_segments(text).segments <= max_segments


def _longest(n: int, fits: Callable[[int], bool]) -> int:
    """The largest k in 0..n with fits(k), for a predicate that only turns false as k grows."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def trim_to_segments(text: str, max_segments: int) -> str:
    """The longest prefix that fits in `max_segments` SMS segments, cut at a sentence end.

    Without a sentence end that fits, cut at the last whole word and mark the cut with an
    ellipsis: "…" in UCS-2 text, "..." in GSM-7 text (a "…" would switch a GSM-7 message to
    UCS-2 and more than halve what fits in a segment).
    """
    if max_segments < 1:
        raise ValueError("max_segments must be at least 1")
    text = text.strip()
    if _fits(text, max_segments):
        return text
    limit = _longest(len(text), lambda k: _fits(text[:k].rstrip(), max_segments))
    ends = [m.end() for m in _SENTENCE_END.finditer(text) if 0 < m.end() <= limit]
    if ends and text[: ends[-1]].strip():
        return text[: ends[-1]].strip()

    ellipsis = "…" if count_segments(text).encoding == "UCS-2" else "..."
    limit = _longest(len(text), lambda k: _fits(text[:k].rstrip() + ellipsis, max_segments))
    words = [m.end() for m in _WORD_END.finditer(text) if m.end() <= limit]
    cut = words[-1] if words else limit  # one giant word: cut inside it
    return text[:cut].rstrip() + ellipsis
