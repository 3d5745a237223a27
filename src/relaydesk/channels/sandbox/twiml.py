"""Reading `<Message>` replies out of the TwiML our webhook answered, as Twilio does."""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree import ElementTree


@dataclass(frozen=True)
class Reply:
    """One `<Message>` verb: text plus optional to/from/statusCallback attributes."""

    body: str
    media: tuple[str, ...]
    to: str | None
    from_: str | None
    status_callback: str | None


def message_replies(xml_text: str) -> list[Reply]:
    """The `<Message>` verbs of a `<Response>`; anything unparsable yields no replies."""
    try:
        # The document comes from the webhook target the operator configured, and expat
        # (Python ≥ 3.7.1) neither resolves external entities nor expands them unbounded.
        root = ElementTree.fromstring(xml_text)  # noqa: S314
    except ElementTree.ParseError:
        return []
    if root.tag != "Response":
        return []
    replies = []
    for verb in root.findall("Message"):
        body_el = verb.find("Body")
        text = body_el.text if body_el is not None else verb.text
        media = tuple((m.text or "").strip() for m in verb.findall("Media") if m.text)
        replies.append(
            Reply(
                body=(text or "").strip(),
                media=media,
                to=verb.get("to"),
                from_=verb.get("from"),
                status_callback=verb.get("statusCallback"),
            )
        )
    return replies
