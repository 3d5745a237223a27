"""Search a loaded index: the passages nearest to a question or a vector."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from relaydesk.core.errors import Invalid
from relaydesk.core.i18n import N_
from relaydesk.knowledge.embeddings import Embedder, describe_embedder
from relaydesk.knowledge.store import IncompatibleEmbedder, LoadedIndex, StoredChunk


@dataclass(frozen=True)
class Hit:
    """A search result: the passage and its cosine similarity to the query (-1 … 1)."""

    score: float
    chunk: StoredChunk


def search(
    index: LoadedIndex,
    query_vector: Any,
    top_k: int = 5,
    min_score: float = 0.0,
    category: str | None = None,
) -> list[Hit]:
    """The `top_k` passages most similar to the vector, best first, scoring ≥ `min_score`."""
    if top_k < 1:
        raise Invalid(N_("top_k must be at least 1"), params={}, field="top_k")
    query = np.asarray(query_vector, dtype=np.float32).reshape(1, -1)
    if query.shape[1] != index.manifest.dimension:
        raise Invalid(
            N_("The query vector has %(given)s dimensions; the index '%(name)s' holds %(held)s"),
            params={
                "given": query.shape[1],
                "name": index.name,
                "held": index.manifest.dimension,
            },
        )
    norm = float(np.linalg.norm(query))
    if norm > 0:
        query = query / norm
    params = None
    if category is not None:
        params = index._filters.get(category)
        if params is None:
            return []
    k = min(top_k, index.vectors)
    if k == 0:
        return []
    scores, rows = index.index.search(query, k, params=params)
    return [
        Hit(float(score), index.chunks[row])
        for score, row in zip(scores[0], rows[0], strict=True)
        if row >= 0 and score >= min_score
    ]


def check_compatible(index: LoadedIndex, embedder: Embedder) -> None:
    """IncompatibleEmbedder unless `embedder` makes vectors like the ones in the index."""
    m = index.manifest
    if embedder.model == m.model and embedder.dimension == m.dimension:
        return
    raise IncompatibleEmbedder(
        N_(
            "The index '%(name)s' was built with %(built_with)s (%(built_dimension)s "
            "dimensions) but the configured embedder is %(embedder)s (%(dimension)s "
            "dimensions); rebuild the index, or set EMBEDDING_PROVIDER and EMBEDDING_MODEL "
            "to what it was built with"
        ),
        params={
            "name": index.name,
            "built_with": f"{m.provider} · {m.model}",
            "built_dimension": m.dimension,
            "embedder": describe_embedder(embedder),
            "dimension": embedder.dimension,
        },
    )


def search_text(
    index: LoadedIndex,
    embedder: Embedder,
    query: str,
    top_k: int = 5,
    min_score: float = 0.0,
    category: str | None = None,
) -> list[Hit]:
    """Embed `query` and search; refuses an index built by another embedding model."""
    if not query.strip():
        raise Invalid(N_("The question is empty"), params={}, field="query")
    check_compatible(index, embedder)
    vector = embedder.embed_query(query.strip())
    return search(index, vector, top_k=top_k, min_score=min_score, category=category)
