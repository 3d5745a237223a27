"""Image description with an OpenAI vision model.

The image travels inside the request as a data: URL. A Twilio media URL must never reach
a model: it needs the account's credentials and would leak the account SID.
"""

from __future__ import annotations

import base64

from relaydesk.core.config import get_settings
from relaydesk.core.i18n import N_
from relaydesk.media.providers import MediaProviderError, OpenAIAccess, call_openai

DEFAULT_PROMPT = (
    "Describe this image factually in two or three short sentences for someone who "
    "cannot see it. Quote any visible text word for word. Write in the language of the "
    "conversation if you know it, otherwise in English."
)
MAX_TOKENS = 300


class VisionError(MediaProviderError):
    """An image could not be described."""

    code = "vision_error"


def vision_enabled() -> bool:
    """Whether images should be described at all (VISION_PROVIDER=openai)."""
    return get_settings().vision_provider == "openai"


def describe_image(
    data: bytes,
    content_type: str,
    *,
    model: str | None = None,
    openai: OpenAIAccess,
    prompt: str | None = None,
) -> str:
    """A short description of the image, including any text in it."""
    content_type = content_type.split(";")[0].strip().lower()
    if not content_type.startswith("image/"):
        raise VisionError(
            N_("Only images can be described, not %(type)s"),
            params={"type": content_type or N_("this file")},
        )
    if not data:
        raise VisionError(N_("The image is empty"), params={})
    name = model or get_settings().vision_model
    url = f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"
    response = call_openai(
        openai,
        name,
        VisionError,
        lambda client: client.chat.completions.create(
            model=name,
            max_tokens=MAX_TOKENS,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": prompt or DEFAULT_PROMPT},
                        {"type": "image_url", "image_url": {"url": url}},
                    ],
                }
            ],
        ),
    )
    text = (response.choices[0].message.content or "").strip() if response.choices else ""
    if not text:
        raise VisionError(
            N_("The vision model '%(model)s' returned an empty description"),
            params={"model": name},
        )
    return text
