"""What the media engines share: OpenAI access and the error every engine raises."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from relaydesk.ai.credentials import resolve
from relaydesk.ai.providers import LLMConfig, LLMError, openai_client, openai_error
from relaydesk.core.config import get_settings
from relaydesk.core.errors import ProviderFailed, RelaydeskError
from relaydesk.core.vendor import Kind, VendorError

if TYPE_CHECKING:
    import openai

T = TypeVar("T")


class MediaProviderError(VendorError, ProviderFailed):
    """A media engine failed; `transient` says whether trying again later may help.

    A VendorError like every vendor's, and the ProviderFailed (502) the API shows. With
    `params` the message is a catalog template, as for every RelaydeskError.
    """

    def __init__(
        self,
        message: str,
        /,
        *,
        transient: bool = False,
        status: int | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        kind = Kind.TRANSIENT if transient else Kind.PERMANENT
        super().__init__(message, vendor="media", kind=kind, status=status)
        if params is not None:
            # VendorError hands RelaydeskError the bare message: fill in the template
            # (template, params and the English `message`) as RelaydeskError does.
            RelaydeskError.__init__(self, message, params=params)


@dataclass(frozen=True)
class OpenAIAccess:
    """How to reach OpenAI or a compatible server; the key never appears in a repr."""

    api_key: str | None = field(repr=False)
    base_url: str | None
    timeout: float = 60.0

    @classmethod
    def from_settings(cls) -> OpenAIAccess:
        """The access configured in the environment."""
        credentials = resolve()
        timeout = get_settings().llm_timeout_seconds
        return cls(credentials.api_key, credentials.base_url, timeout)


def call_openai(
    access: OpenAIAccess,
    model: str,
    error: type[MediaProviderError],
    request: Callable[[openai.OpenAI], T],
) -> T:
    """Run `request` with the SDK client; SDK failures become `error` with a short message."""
    # Heavy SDK (about half a second to import): loaded only where it is called.
    import openai

    config = LLMConfig(
        provider="openai",
        model=model,
        api_key=access.api_key,
        base_url=access.base_url,
        timeout=access.timeout,
    )
    try:
        return request(openai_client(config))
    except LLMError as exc:
        raise _as(error, exc) from None
    except openai.APIError as exc:
        raise _as(error, openai_error(config, exc)) from None


def _as(error: type[MediaProviderError], failure: LLMError) -> MediaProviderError:
    """The AI provider's failure as `error`, keeping its catalog template when it has one."""
    template = getattr(failure, "template", None)
    if template:
        params = getattr(failure, "params", None) or {}
        return error(template, transient=failure.transient, status=failure.status, params=params)
    return error(failure.message, transient=failure.transient, status=failure.status)
