"""Which files a message may carry, by channel and direction (Twilio's published rules).

Inbound: Twilio hands over at most 10 files and 16 MB per message (WhatsApp: one file).
Outbound WhatsApp: images up to 5 MB, other files up to 16 MB, OGG audio only with the
Opus codec. Outbound MMS: JPEG, PNG and GIF up to 5 MB, other accepted types 500 KB.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import filetype

from relaydesk.core.i18n import N_

MB = 1024 * 1024

# content type → kind shown in the chat
INBOUND_TYPES: dict[str, str] = {
    "image/jpeg": "image",
    "image/jpg": "image",
    "image/png": "image",
    "image/gif": "image",
    "image/webp": "image",
    "image/bmp": "image",
    "image/heic": "image",
    "audio/ogg": "audio",
    "audio/opus": "audio",
    "audio/amr": "audio",
    "audio/3gpp": "audio",
    "audio/aac": "audio",
    "audio/mp4": "audio",
    "audio/x-m4a": "audio",
    "audio/mpeg": "audio",
    "audio/mp3": "audio",
    "audio/wav": "audio",
    "audio/x-wav": "audio",
    "audio/webm": "audio",
    "video/mp4": "video",
    "video/3gpp": "video",
    "video/quicktime": "video",
    "video/webm": "video",
    "application/pdf": "document",
    "application/msword": "document",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "document",
    "application/vnd.ms-excel": "document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "document",
    "application/vnd.ms-powerpoint": "document",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "document",
    "application/rtf": "document",
    "text/plain": "document",
    "text/csv": "document",
    "text/calendar": "document",
    "text/vcard": "contact",
    "text/x-vcard": "contact",
    "text/directory": "contact",
}

WHATSAPP_OUTBOUND = {
    "image/jpeg",
    "image/png",
    "audio/ogg",
    "audio/amr",
    "audio/3gpp",
    "audio/aac",
    "audio/mpeg",
    "audio/mp4",
    "video/mp4",
    "application/pdf",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "text/vcard",
}
MMS_IMAGES = {"image/jpeg", "image/png", "image/gif"}
MMS_OTHER = {
    "audio/mpeg",
    "audio/mp4",
    "audio/ogg",
    "audio/amr",
    "audio/3gpp",
    "video/mp4",
    "video/3gpp",
    "application/pdf",
    "text/vcard",
    "text/plain",
}

# Declared types whose first bytes must agree (a browser shows these inline).
_SNIFFED = ("image/", "audio/", "video/")
_SAME = {
    "image/jpg": "image/jpeg",
    "audio/mp3": "audio/mpeg",
    "audio/x-wav": "audio/wav",
    "audio/x-m4a": "audio/mp4",
    "audio/opus": "audio/ogg",
    "text/x-vcard": "text/vcard",
    "text/directory": "text/vcard",
}


def normalise(content_type: str | None) -> str:
    """'Audio/OGG; codecs=opus' → 'audio/ogg'."""
    return (content_type or "").split(";")[0].strip().lower()


def kind_of(content_type: str | None) -> str:
    """image | audio | video | document | contact | other."""
    ct = normalise(content_type)
    return INBOUND_TYPES.get(ct) or (ct.split("/")[0] if ct.startswith(_SNIFFED) else "other")


@dataclass(frozen=True)
class Verdict:
    """The type to store a file under, or why it is refused."""

    content_type: str
    problem: str | None = None


def check_inbound(declared: str | None, data: bytes) -> Verdict:
    """Is this received file one we keep? Its type is checked against its first bytes."""
    ct = normalise(declared)
    sniffed = filetype.guess_mime(data)
    if not ct or ct == "application/octet-stream":
        ct = normalise(sniffed) or ct
    if ct not in INBOUND_TYPES:
        problem = N_("files of type %(type)s are not accepted") % {"type": ct or "unknown"}
        return Verdict(ct or "unknown", problem)
    if ct.startswith(_SNIFFED) and sniffed and not _agree(ct, sniffed):
        problem = N_("the file says %(declared)s but its content is %(sniffed)s")
        return Verdict(ct, problem % {"declared": ct, "sniffed": sniffed})
    if ct.startswith(_SNIFFED) and not sniffed and ct.startswith("image/"):
        return Verdict(ct, N_("the content is not a %(type)s image") % {"type": ct})
    return Verdict(ct)


@dataclass(frozen=True)
class Problem:
    """Why a file is refused: a catalog template and its values; str() is the English."""

    template: str
    params: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.template % self.params


def check_outbound(channel: str, content_type: str, size: int) -> Problem | None:
    """Why Twilio would refuse this file on the channel, or None when it is fine."""
    ct = normalise(content_type)
    if channel == "whatsapp":
        if ct not in WHATSAPP_OUTBOUND:
            return Problem(N_("WhatsApp does not accept files of type %(type)s"), {"type": ct})
        limit = 5 * MB if ct.startswith("image/") else 16 * MB
    else:
        if ct in MMS_IMAGES:
            limit = 5 * MB
        elif ct in MMS_OTHER:
            limit = 500 * 1024
        else:
            return Problem(N_("MMS does not accept files of type %(type)s"), {"type": ct})
    if size > limit:
        return Problem(
            N_("the file is %(size)s, over the %(limit)s limit for %(type)s on %(channel)s"),
            {"size": _mb(size), "limit": _mb(limit), "type": ct, "channel": channel},
        )
    return None


def _agree(declared: str, sniffed: str) -> bool:
    a, b = _SAME.get(declared, declared), _SAME.get(sniffed, normalise(sniffed))
    if a == b:
        return True
    # Containers that several names share: MP4/M4A/3GP, OGG/Opus, WAV.
    families = ({"audio/mp4", "video/mp4", "video/3gpp", "audio/3gpp", "audio/aac"},)
    return any(a in f and b in f for f in families) or a.split("/")[0] == b.split("/")[0]


def _mb(size: int) -> str:
    return f"{size / MB:.1f} MB" if size >= MB else f"{size // 1024} KB"
