"""What a daily digest says: the news index's answer (or its headlines), cut to the SMS limit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from relaydesk.ai.text import trim_to_segments
from relaydesk.channels.twilio.segments import count_segments
from relaydesk.core.config import get_settings
from relaydesk.core.errors import Conflict, ProviderFailed, RelaydeskError
from relaydesk.core.i18n import N_

if TYPE_CHECKING:
    from relaydesk.indexes.retrieval import Passage

# What the all-categories digest asks the index for; the answer becomes the SMS.
# The request for a digest across categories, in the installation's language (a
# recipient with a custom prompt gets the answer to that prompt instead).
DIGEST_INSTRUCTIONS = {
    "en": (
        "Write a short SMS news digest in English: the most important news of each "
        "category, one or two plain sentences per category, without links."
    ),
    "pl": (
        "Napisz krótki przegląd wiadomości na SMS po polsku: najważniejsze wiadomości z "
        "każdej kategorii, jedno lub dwa proste zdania na kategorię, bez linków."
    ),
}
# GSM-7 fits 153 characters a segment in a long SMS: asking for more is wasted words.
CHARS_PER_SEGMENT = 153


class NoNews(Conflict):
    """Nothing is indexed (or nothing matched): no digest, rather than an empty SMS."""

    code = "no_news"

    def __init__(
        self, reason: str | None = None, *, params: Mapping[str, Any] | None = None
    ) -> None:
        if not reason:
            reason = N_(
                "No news matched: scrape the sources and build an index first, or check the prompt"
            )
            params = {}
        super().__init__(reason, params=params)


@dataclass(frozen=True)
class Digest:
    """A digest ready to send: the text, its segments and the passages it is built on."""

    text: str
    segments: int
    sources: Sequence[Passage]
    model: str | None  # None: built from the headlines (no LLM configured or it failed)
    note: str | None


def _from_passages(passages: Sequence[Passage]) -> str:
    """Headlines by category, for when no LLM is configured to write the digest."""
    by_category: dict[str, list[str]] = {}
    for p in passages:
        titles = by_category.setdefault(p.category, [])
        if p.title and p.title not in titles:
            titles.append(p.title)
    return "\n".join(f"{category}: {'; '.join(t)}." for category, t in by_category.items() if t)


def compose(mode: str, prompt: str | None, max_segments: int) -> Digest:
    """The digest text for a recipient's mode and prompt, within `max_segments`.

    Raises NoNews when the index has nothing, ProviderFailed when retrieval breaks.
    """
    # Imported when used: the index (FAISS, embedders) stays out of code paths that only
    # list or edit recipients.
    from relaydesk.indexes import retrieval

    max_chars = max_segments * CHARS_PER_SEGMENT
    try:
        if mode == "custom_prompt":
            found = retrieval.answer(prompt or "", mode="answer", max_chars=max_chars)
        else:
            instruction = DIGEST_INSTRUCTIONS[get_settings().language]
            found = retrieval.answer(instruction, mode="all_categories", max_chars=max_chars)
    except NoNews:
        raise
    except Conflict as exc:  # no index built, or none active: nothing to tell today
        # The refusal's template goes along, so that the panel can still translate it.
        raise NoNews(
            exc.template or exc.message, params=exc.params if exc.template else None
        ) from None
    except RelaydeskError:
        raise
    except Exception as exc:  # an index or model failing in its own way
        raise ProviderFailed(
            N_("The news index could not answer: %(error)s"), params={"error": str(exc)}
        ) from exc
    if not found.sources:
        raise NoNews(found.note)
    text = (found.answer or "").strip() or _from_passages(found.sources)
    if not text:
        raise NoNews(found.note)
    text = trim_to_segments(text, max_segments)
    return Digest(text, count_segments(text).segments, found.sources, found.model, found.note)
