"""Domain errors: each class answers a stable code; a raising site may name a finer one."""

from __future__ import annotations

import pytest

from relaydesk.core.crypto import SecretUnreadable
from relaydesk.core.errors import (
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    NotConfigured,
    NotFound,
    OptedOut,
    ProviderFailed,
    RelaydeskError,
    TooLarge,
    Unauthorized,
    Unavailable,
    VendorRefused,
    WindowClosed,
)
from relaydesk.digests.compose import NoNews
from relaydesk.knowledge.backup import BackupRefused, BackupTooLarge
from relaydesk.knowledge.store import IncompatibleEmbedder, IndexDamaged, IndexNotFound
from relaydesk.media.audio import AudioError
from relaydesk.media.providers import MediaProviderError
from relaydesk.messaging.templates import TemplatesUnavailable
from relaydesk.voicebot.client import ElevenLabsError

# The codes the API answers: renaming one breaks the programs that read it.
CODES: list[tuple[type[RelaydeskError], int, str]] = [
    (RelaydeskError, 400, "bad_request"),
    (NotFound, 404, "not_found"),
    (Invalid, 422, "invalid"),
    (Conflict, 409, "conflict"),
    (OptedOut, 409, "opted_out"),
    (WindowClosed, 422, "whatsapp_window_closed"),
    (Unauthorized, 401, "unauthorized"),
    (Forbidden, 403, "forbidden"),
    (TooLarge, 413, "too_large"),
    (Gone, 410, "gone"),
    (Unavailable, 503, "unavailable"),
    (VendorRefused, 422, "twilio_error"),
    (ProviderFailed, 502, "provider_error"),
    (NotConfigured, 409, "not_configured"),
    (SecretUnreadable, 500, "secret_unreadable"),
    (BackupRefused, 422, "backup_refused"),
    (BackupTooLarge, 413, "backup_refused"),
    (IncompatibleEmbedder, 409, "embedder_mismatch"),
    (IndexDamaged, 500, "index_damaged"),
    (IndexNotFound, 404, "not_found"),
    (AudioError, 422, "audio_error"),
    (MediaProviderError, 502, "provider_error"),
    (TemplatesUnavailable, 502, "twilio_unavailable"),
    (NoNews, 409, "no_news"),
    (ElevenLabsError, 502, "elevenlabs_error"),
]


@pytest.mark.parametrize(("cls", "status", "code"), CODES, ids=[c.__name__ for c, _, _ in CODES])
def test_each_error_class_has_its_status_and_code(
    cls: type[RelaydeskError], status: int, code: str
) -> None:
    assert (cls.status_code, cls.code) == (status, code)


def test_the_body_is_detail_code_and_the_extra_fields() -> None:
    error = Invalid("Too long", field="body")
    assert error.to_dict() == {"detail": "Too long", "code": "invalid", "field": "body"}
    assert error.extra == {"field": "body"}


def test_a_raising_site_may_name_a_finer_code_for_that_error_only() -> None:
    error = Forbidden("The form expired", code="csrf")
    assert error.code == "csrf"
    assert error.to_dict() == {"detail": "The form expired", "code": "csrf"}
    assert "code" not in error.extra
    assert Forbidden("No").code == Forbidden.code == "forbidden"


def test_the_specific_refusals_are_still_their_general_kinds() -> None:
    assert isinstance(OptedOut("x"), Conflict) and isinstance(WindowClosed("x"), Invalid)
    assert NoNews().to_dict()["code"] == "no_news"
