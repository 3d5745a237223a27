"""Media refusals in the person's language: the panel translates, the API keeps English."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from relaydesk.core.i18n import localized
from relaydesk.media import kinds
from relaydesk.media.providers import OpenAIAccess
from relaydesk.media.speech import SpeechError, _elevenlabs_error, synthesize
from relaydesk.media.vision import VisionError, describe_image
from tests.web.conftest import csrf_of, make_user, panel  # noqa: F401 (fixtures: a signed-in panel)

POLISH = {"Accept-Language": "pl-PL,pl;q=0.9"}


class _Refused(Exception):
    """What the ElevenLabs SDK raises, as far as `_elevenlabs_error` reads it."""

    def __init__(self, status_code: int, body: object) -> None:
        self.status_code = status_code
        self.body = body


def test_engine_errors_keep_their_english_and_carry_a_template() -> None:
    with pytest.raises(SpeechError) as empty:
        synthesize("   ", fmt="mp3", provider="espeak")
    assert empty.value.message == "There is no text to speak"
    assert empty.value.to_dict() == {"detail": "There is no text to speak", "code": "speech_error"}
    assert localized("pl", empty.value.template or "", empty.value.params) == (
        "Brak tekstu do wypowiedzenia"
    )

    refused = _elevenlabs_error(_Refused(400, {"detail": {"message": "bad voice"}}), "key")
    assert refused.message == "ElevenLabs refused the request (400): bad voice"
    assert refused.status == 400 and not refused.transient
    assert localized("pl", refused.template or "", refused.params) == (
        "ElevenLabs odrzucił żądanie (400): bad voice"
    )
    silent = _elevenlabs_error(_Refused(400, None), "key")
    assert silent.message == "ElevenLabs refused the request (400): no reason given"
    assert localized("pl", silent.template or "", silent.params).endswith("nie podano powodu")

    # A fixed English phrase given as a value is translated too.
    with pytest.raises(VisionError) as not_image:
        describe_image(b"data", "", openai=OpenAIAccess(None, None))
    assert not_image.value.message == "Only images can be described, not this file"
    assert not_image.value.status_code == 502 and not_image.value.code == "vision_error"
    assert localized("pl", not_image.value.template or "", not_image.value.params) == (
        "Opisać można tylko obrazy, a nie ten plik"
    )


def test_a_file_mms_refuses_is_explained_in_polish_in_the_panel_and_english_by_the_api(
    panel: Callable[[str], httpx.Client],  # noqa: F811
    api: httpx.Client,
) -> None:
    problem = kinds.check_outbound("sms", "text/csv", 10)
    assert problem is not None and str(problem) == "MMS does not accept files of type text/csv"

    uploaded = api.post("/api/media", files={"file": ("list.csv", b"a,b\n1,2\n", "text/csv")})
    assert uploaded.status_code == 201, uploaded.text
    url = uploaded.json()["url"]

    by_api = api.post("/api/send-message", json={"to": "+48600400901", "media_urls": [url]})
    assert by_api.status_code == 422
    assert by_api.json()["detail"] == "MMS does not accept files of type text/csv"
    assert by_api.json()["field"] == "media_urls"

    operator = panel("operator")
    operator.headers.update(POLISH)
    operator.headers.update({"X-CSRF-Token": csrf_of(operator), "HX-Request": "true"})
    refused = operator.post(
        "/messages/send", data={"to": "+48600400901", "body": "Lista", "media_urls": url}
    )
    assert refused.status_code == 422
    assert "MMS nie przyjmuje plików typu text/csv" in refused.text
    assert "does not accept" not in refused.text
