"""The media downloader: Twilio's credentials go to Twilio's media path, and nowhere else."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from relaydesk.media.download import DownloadError, Source, TooLarge, download
from tests.fakes import AnsweringServer

SID = "AC" + "7" * 32
TOKEN = "secret-token-123"
MEDIA = f"/2010-04-01/Accounts/{SID}/Messages/MM{'1' * 32}/Media/ME{'2' * 32}"


@pytest.fixture
def cdn() -> Iterator[AnsweringServer]:
    server = AnsweringServer(lambda path: (200, {"Content-Type": "image/png"}, b"\x89PNG-bytes"))
    yield server
    server.close()


def twilio_redirecting_to(target: str) -> AnsweringServer:
    return AnsweringServer(lambda path: (307, {"Location": f"{target}/signed?sig=abc"}, b""))


def test_credentials_go_to_twilio_only_and_never_to_the_redirect_target(
    cdn: AnsweringServer,
) -> None:
    api = twilio_redirecting_to(cdn.base)
    try:
        got = download(
            api.base + MEDIA, Source(api.base, SID, TOKEN, True), max_bytes=1000, timeout=5
        )
    finally:
        api.close()
    assert got.data == b"\x89PNG-bytes" and got.content_type == "image/png"
    [(path, headers)] = api.seen
    assert path == MEDIA and headers["authorization"].startswith("Basic ")
    [(cdn_path, cdn_headers)] = cdn.seen
    assert cdn_path == "/signed?sig=abc" and "authorization" not in cdn_headers


def test_an_address_outside_the_accounts_media_is_never_requested(cdn: AnsweringServer) -> None:
    source = Source(cdn.base, SID, TOKEN, True)
    other_account = MEDIA.replace(SID, "AC" + "8" * 32)
    for url in (
        "https://attacker.example/steal",
        cdn.base + other_account,
        cdn.base + "/2010-04-01/Accounts/" + SID + "/Messages/../../x",
    ):
        with pytest.raises(DownloadError, match="not one of this Twilio account"):
            download(url, source, max_bytes=1000, timeout=5)
    assert cdn.seen == []


def test_live_mode_refuses_a_redirect_into_the_servers_own_network(cdn: AnsweringServer) -> None:
    api = twilio_redirecting_to(cdn.base.replace("http://", "https://"))
    try:
        with pytest.raises(DownloadError, match=r"refused redirect.*internal address"):
            download(
                api.base + MEDIA, Source(api.base, SID, TOKEN, False), max_bytes=1000, timeout=5
            )
    finally:
        api.close()
    assert cdn.seen == []


def test_a_file_over_the_limit_is_not_read_to_the_end(cdn: AnsweringServer) -> None:
    with pytest.raises(TooLarge):
        download(cdn.base + MEDIA, Source(cdn.base, SID, TOKEN, True), max_bytes=5, timeout=5)


def test_server_errors_are_worth_retrying_and_refusals_are_not() -> None:
    codes = iter([503, 401])
    server = AnsweringServer(lambda path: (next(codes), {}, b"{}"))
    source = Source(server.base, SID, TOKEN, True)
    try:
        with pytest.raises(DownloadError) as busy:
            download(server.base + MEDIA, source, max_bytes=100, timeout=5)
        assert busy.value.transient
        with pytest.raises(DownloadError, match="credentials") as refused:
            download(server.base + MEDIA, source, max_bytes=100, timeout=5)
        assert not refused.value.transient
    finally:
        server.close()
