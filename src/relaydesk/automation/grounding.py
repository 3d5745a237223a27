"""Answers grounded on a knowledge index: the passages a reply may use, and their record.

The customer's latest words are the query; the best passages go into the system prompt
with an instruction to answer from them (and to say so when they do not cover the
question). Which passages were used is stored with the run and shown in the chat. A
missing or broken index never stops the answer: it is given ungrounded, with the reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from relaydesk.ai.providers import ChatTurn
from relaydesk.ai.text import scrub_twilio
from relaydesk.core.config import get_settings
from relaydesk.core.errors import Invalid, RelaydeskError
from relaydesk.core.i18n import N_

log = logging.getLogger(__name__)

# How much passage text goes into the prompt (the local model reads 2,048 tokens in all).
MAX_CONTEXT_CHARS = {"openai": 6000, "local": 1500}
QUERY_CHARS = 1000


@dataclass
class Grounding:
    """The passages found for one answer, or why there are none."""

    passages: list[dict[str, Any]] = field(default_factory=list)
    problem: str | None = None

    def record(self) -> list[dict[str, Any]]:
        """What is stored with the run (no passage text: the index has it)."""
        return [
            {k: p[k] for k in ("title", "url", "category", "score", "excerpt")}
            for p in self.passages
        ]


def knowledge_index_or_none(name: str | None) -> str | None:
    """A knowledge index name that exists, or None for "" / None; Invalid otherwise."""
    name = (name or "").strip()
    if not name:
        return None
    known = knowledge_indexes()
    if name not in known:
        raise Invalid(
            N_("There is no knowledge index called '%(name)s' (indexes: %(listed)s)"),
            params={"name": name, "listed": known or N_("none yet: build one in the News tab")},
            field="knowledge_index",
        )
    return name


def knowledge_indexes() -> list[str]:
    """The names of the knowledge indexes, for the panel's choices."""
    # FAISS and numpy load only where an index is searched.
    from relaydesk.knowledge import store

    return [info.name for info in store.list_indexes(get_settings().data_dir / "indexes")]


def find(index: str, query: str) -> Grounding:
    """The best passages of `index` for the customer's words (retrieval settings apply)."""
    # FAISS and numpy load only where an index is searched.
    from relaydesk.indexes import retrieval

    text = scrub_twilio(query).strip()[-QUERY_CHARS:]
    if not text:
        return Grounding(problem=N_("nothing to look up (the message has no text)"))
    try:
        found = retrieval.search(text, index=index)
    except RelaydeskError as exc:
        problem = N_("knowledge index '%(index)s' unavailable: %(reason)s")
        return Grounding(problem=problem % {"index": index, "reason": exc.message})
    except Exception as exc:  # a damaged file must not cost the customer the answer
        log.exception("searching knowledge index %s failed", index)
        problem = N_("knowledge index '%(index)s' failed: %(error)s")
        return Grounding(problem=problem % {"index": index, "error": exc.__class__.__name__})
    return Grounding(
        passages=[
            {
                "title": p.title,
                "url": p.url,
                "category": p.category,
                "score": round(float(p.score), 4),
                "excerpt": p.excerpt,
                "text": p.text,
            }
            for p in found
        ],
        problem=None if found else N_("no passage was close enough to the question"),
    )


def ground(turns: list[ChatTurn], grounding: Grounding, provider: str) -> list[ChatTurn]:
    """The turns with the passages added to the system prompt (unchanged without any)."""
    if not grounding.passages or not turns or turns[0].role != "system":
        return turns
    budget = MAX_CONTEXT_CHARS.get(provider, MAX_CONTEXT_CHARS["openai"])
    blocks: list[str] = []
    for number, passage in enumerate(grounding.passages, start=1):
        block = f"[{number}] {passage['title']}\n{scrub_twilio(passage['text']).strip()}"
        if blocks and sum(len(b) for b in blocks) + len(block) > budget:
            break
        blocks.append(block[:budget])
    instruction = (
        "\n\nAnswer from the business's own knowledge below. Use only these passages for "
        "facts; if they do not answer the question, say you do not know and offer to pass "
        "the question to a person. Do not mention the passages or their numbers.\n\n"
        + "\n\n".join(blocks)
    )
    return [ChatTurn("system", turns[0].content + instruction), *turns[1:]]
