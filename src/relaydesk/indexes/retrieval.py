"""Questions against a knowledge index: the best passages, and answers grounded on them.

`search` finds passages; `answer` hands them to the AI tab's model with instructions to
answer from them only. The news tab's test box, the daily digests and grounded AI
replies all call these two functions, so retrieval behaves the same everywhere.
Both run in worker threads or request threads alike: each opens its own short read
session for the settings and never holds it while the model thinks.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from typing import Any, Literal

from relaydesk.ai.providers import ChatTurn, LLMConfig, LLMError, LLMNotConfigured, complete
from relaydesk.ai.settings import AIConfig, llm_config, read_ai
from relaydesk.core.config import get_settings
from relaydesk.core.db import session_scope
from relaydesk.core.errors import Conflict, Invalid, NotConfigured, ProviderFailed
from relaydesk.core.i18n import N_
from relaydesk.indexes import service
from relaydesk.knowledge import search as index_search
from relaydesk.knowledge import store
from relaydesk.knowledge.embeddings import Embedder

log = logging.getLogger(__name__)

Mode = Literal["answer", "all_categories"]
EXCERPT_CHARS = 280
PER_CATEGORY = 3  # passages per category in a summary across categories
# What the model gets to read: the local model has a 2,048-token window in all.
CONTEXT_CHARS = {"openai": 12_000, "local": 3_000}
DEFAULT_ANSWER_TOKENS = 600
_SENTENCE_END = re.compile(r"[.!?…][\"'”’»)\]]*(?=\s|$)")

ANSWER_PROMPT = (
    "You answer questions using only the numbered news passages below. If they do not "
    "contain the answer, say so plainly instead of guessing, and do not use other "
    "knowledge. Answer in the language of the question. Be concise; name the source "
    "titles you relied on."
)
SUMMARY_PROMPT = (
    "You write a short news summary covering every category of the passages below, one "
    "brief paragraph or a few bullet points per category, most important news first. "
    "Use only what the passages say; if a category's passages say nothing of note, say "
    "so in one line. Write in the language of the request."
)


@dataclass(frozen=True)
class Passage:
    """A retrieved passage: where it comes from, how similar it is (cosine), and its text."""

    title: str
    url: str
    category: str
    score: float
    excerpt: str
    text: str


@dataclass(frozen=True)
class Answer:
    """A grounded answer (None without a usable model), the passages used, and a note."""

    answer: str | None
    sources: list[Passage]
    model: str | None
    note: str | None


def _settings() -> service.Retrieval:
    with session_scope(write=False) as session:
        return service.read_retrieval(session)


def _load(index: str | None) -> store.LoadedIndex:
    root = service.index_root()
    name = index or store.active_name(root)
    if name is None:
        if store.list_indexes(root):
            raise Conflict(
                N_("No knowledge index is active: activate one in the News tab first"), params={}
            )
        raise Conflict(
            N_("There is no knowledge index yet: scrape the news and build an index first"),
            params={},
        )
    return store.load(root, name)


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= EXCERPT_CHARS:
        return text
    cut = text.rfind(" ", 0, EXCERPT_CHARS)
    return text[: cut if cut > 0 else EXCERPT_CHARS].rstrip(" ,;:") + "…"


def _passages(hits: list[index_search.Hit]) -> list[Passage]:
    return [
        Passage(
            title=h.chunk.title,
            url=h.chunk.url,
            category=h.chunk.category,
            score=round(h.score, 4),
            excerpt=_excerpt(h.chunk.text),
            text=h.chunk.text,
        )
        for h in hits
    ]


def _query_vector(loaded: store.LoadedIndex, model: Embedder, query: str) -> Any:
    """The query embedded once (a summary searches every category with it)."""
    if not query.strip():
        raise Invalid(N_("The question is empty"), params={}, field="query")
    try:
        index_search.check_compatible(loaded, model)  # may ask an OpenAI server for its dimension
        return model.embed_query(query.strip())
    except LLMNotConfigured as exc:
        raise exc.as_relaydesk(NotConfigured) from None
    except LLMError as exc:
        # The reason is the provider's English message: only the frame is translated.
        raise ProviderFailed(
            N_("The embedding model could not be used: %(reason)s"),
            params={"reason": exc.message},
        ) from None


def _search(
    loaded: store.LoadedIndex,
    vector: Any,
    top_k: int,
    min_score: float,
    category: str | None = None,
) -> list[Passage]:
    hits = index_search.search(loaded, vector, top_k=top_k, min_score=min_score, category=category)
    return _passages(hits)


def search(
    query: str,
    *,
    top_k: int | None = None,
    min_score: float | None = None,
    index: str | None = None,
    category: str | None = None,
) -> list[Passage]:
    """The passages most similar to `query`, best first (active index, configured limits).

    Conflict when no index exists or none is active; NotFound for an unknown `index`.
    """
    configured = _settings()
    limits = service.Retrieval(
        configured.top_k if top_k is None else top_k,
        configured.min_score if min_score is None else min_score,
    )
    loaded = _load(index)
    vector = _query_vector(loaded, service.embedder(), query)
    return _search(loaded, vector, limits.top_k, limits.min_score, category)


def _context(passages: list[Passage], budget: int) -> str:
    """The passages numbered for the prompt, each shortened alike to fit `budget`."""
    share = max(200, budget // max(1, len(passages)))
    blocks = []
    for n, p in enumerate(passages, 1):
        text = p.text if len(p.text) <= share else p.text[:share].rstrip() + "…"
        blocks.append(f"[{n}] {p.title} ({p.category}) {p.url}\n{text}")
    return "\n\n".join(blocks)


def trim_chars(text: str, max_chars: int) -> str:
    """At most `max_chars` characters, cut at a sentence end when one is near, else a word."""
    text = text.strip()
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    ends = [m.end() for m in _SENTENCE_END.finditer(head)]
    if ends and ends[-1] >= max_chars // 2:
        return head[: ends[-1]].strip()
    cut = head[: max_chars - 1].rfind(" ")
    return head[: cut if cut > 0 else max_chars - 1].rstrip(" ,;:") + "…"


def _model(config: AIConfig, max_chars: int | None) -> LLMConfig:
    llm = llm_config(config, temperature=min(config.temperature, 0.3))
    # Room for the text asked for; the AI tab's reply-segment limit is about SMS replies.
    tokens = max_chars // 3 + 60 if max_chars else DEFAULT_ANSWER_TOKENS
    return replace(llm, max_tokens=tokens)


def _ask(
    mode: Mode, query: str, passages: list[Passage], max_chars: int | None
) -> tuple[str | None, str | None, str | None]:
    """(answer, model, note) from the AI tab's model; no answer and a note when it cannot."""
    with session_scope(write=False) as session:
        config, unreadable = read_ai(session)
    llm = _model(config, max_chars)
    system = ANSWER_PROMPT if mode == "answer" else SUMMARY_PROMPT
    if max_chars:
        system += f" Keep the whole text under {max_chars} characters."
    context = _context(passages, CONTEXT_CHARS.get(llm.provider, 3_000))
    label = "Question" if mode == "answer" else "Request"
    turns = [
        ChatTurn("system", system),
        ChatTurn("user", f"Passages:\n\n{context}\n\n{label}: {query.strip()}"),
    ]
    try:
        settings = get_settings()
        completion = complete(
            llm,
            turns,
            retries=settings.llm_retries,
            backoff_seconds=settings.llm_retry_backoff_seconds,
        )
    except LLMNotConfigured as exc:
        template = (
            N_(
                "No language model is configured (the stored API key cannot be decrypted): "
                "%(reason)s. Showing the passages instead."
            )
            if unreadable
            else N_("No language model is configured: %(reason)s. Showing the passages instead.")
        )
        return None, None, template % {"reason": exc.message.rstrip(".")}
    except LLMError as exc:
        log.warning("news: the model could not answer: %s", exc.message)
        note = N_("The language model could not answer: %(reason)s. Showing the passages.") % {
            "reason": exc.message.rstrip(".")
        }
        return None, None, note
    text = trim_chars(completion.text, max_chars) if max_chars else completion.text
    return text, completion.model or llm.model, None


def answer(
    query: str,
    *,
    mode: Mode = "answer",
    top_k: int | None = None,
    min_score: float | None = None,
    index: str | None = None,
    max_chars: int | None = None,
) -> Answer:
    """A grounded answer to `query` ("answer"), or a summary across every category.

    In "all_categories" mode each category of the index contributes its best passages
    (`top_k` each, default 3, with no score threshold unless `min_score` is given: a
    digest wants every category's news even when a general request matches weakly, or
    not at all).
    """
    configured = _settings()
    loaded = _load(index)
    vector = _query_vector(loaded, service.embedder(), query)
    if mode == "answer":
        limits = service.Retrieval(
            configured.top_k if top_k is None else top_k,
            configured.min_score if min_score is None else min_score,
        )
        passages = _search(loaded, vector, limits.top_k, limits.min_score)
    else:
        limits = service.Retrieval(
            PER_CATEGORY if top_k is None else top_k, 0.0 if min_score is None else min_score
        )
        # Without a threshold asked for, any similarity counts (cosine can be negative).
        floor = -1.0 if min_score is None else limits.min_score
        passages = [
            p
            for category in loaded.categories
            for p in _search(loaded, vector, limits.top_k, floor, category)
        ]
    if not passages:
        empty = (
            "No passage of the index is similar enough to the question "
            f"(minimum score {limits.min_score:g}); nothing was asked of the model."
        )
        return Answer(None, [], None, empty)
    text, model_name, note = _ask(mode, query, passages, max_chars)
    return Answer(text, passages, model_name, note)
