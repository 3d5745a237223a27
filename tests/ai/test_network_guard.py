"""The API key goes to a panel-given AI address only while that address is public.

The address typed in the AI tab is checked when it is saved and again at every use,
on the address each connection really reached: a server restarted without
LLM_ALLOW_PRIVATE_NETWORKS, or a name that resolves to a public address for the check
and to loopback for the connection (DNS rebinding), sends nothing. A recorder on
loopback stands in for the AI server and keeps every byte it receives.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from relaydesk.core.config import get_settings

KEY = "sk-guard-secret-0123456789"
REBOUND = "ai.rebind.relaydesk.test"  # public for the check, loopback for the connection
PUBLIC = "93.184.216.34"


class Recorder:
    """A TCP server on 127.0.0.1 that keeps what it receives and answers 401 to each request."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._lock = threading.Lock()
        self._received = bytearray()
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/v1"

    @property
    def received(self) -> bytes:
        with self._lock:
            return bytes(self._received)

    def clear(self) -> None:
        with self._lock:
            self._received.clear()

    def close(self) -> None:
        self._stop = True
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        with conn:
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                    with self._lock:
                        self._received.extend(chunk)
                if data:
                    body = b'{"error": {"message": "no", "type": "invalid_request_error"}}'
                    conn.sendall(
                        b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
                        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                        + body
                    )
            except OSError:
                pass


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    found = Recorder()
    yield found
    found.close()


@pytest.fixture
def rebinding(monkeypatch: pytest.MonkeyPatch) -> None:
    """REBOUND resolves to a public address when checked and to loopback when connected to.

    The guard's check asks getaddrinfo with proto=IPPROTO_TCP; a connection
    (socket.create_connection) asks with type=SOCK_STREAM: the answer that matters is
    the second one, as after a rebinding between the two lookups.
    """
    real = socket.getaddrinfo

    def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != REBOUND:
            return real(host, port, *args, **kwargs)
        connecting = (len(args) >= 2 and args[1] == socket.SOCK_STREAM) or kwargs.get(
            "type"
        ) == socket.SOCK_STREAM
        address = "127.0.0.1" if connecting else PUBLIC
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port or 443)))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


def private_networks(monkeypatch: pytest.MonkeyPatch, allowed: bool) -> None:
    monkeypatch.setattr(get_settings(), "llm_allow_private_networks", allowed)


def save_ai(api: httpx.Client, base_url: str) -> None:
    saved = api.put(
        "/api/ai/config",
        json={"provider": "openai", "model": "gpt-4o-mini", "api_key": KEY, "base_url": base_url},
    )
    assert saved.status_code == 200, saved.text


def test_a_loopback_address_saved_while_allowed_gets_nothing_after_the_setting_is_off(
    api: httpx.Client, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_ai(api, recorder.url())  # allowed: the test suite runs with the setting on
    tried = api.post("/api/ai/test", json={"message": "Hej"})
    assert tried.status_code == 502, tried.text  # the recorder refused the key
    assert KEY.encode() in recorder.received  # the recorder would have seen it

    recorder.clear()
    private_networks(monkeypatch, False)  # as after a restart without the setting
    refused = api.post("/api/ai/test", json={"message": "Hej"})
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert body["code"] == "not_configured"
    assert "127.0.0.1" in body["detail"] and "LLM_ALLOW_PRIVATE_NETWORKS" in body["detail"]
    assert KEY not in refused.text
    assert recorder.received == b""


def test_a_name_that_rebinds_to_loopback_after_its_check_gets_nothing(
    api: httpx.Client, recorder: Recorder, monkeypatch: pytest.MonkeyPatch, rebinding: None
) -> None:
    private_networks(monkeypatch, False)
    save_ai(api, recorder.url(REBOUND))  # public when checked: saved
    refused = api.post("/api/ai/test", json={"message": "Hej"})
    assert refused.status_code == 409, refused.text
    assert "127.0.0.1" in refused.json()["detail"]
    assert recorder.received == b""


def _embed(access: Any) -> Any:
    from relaydesk.knowledge.embeddings import get_embedder

    embedder = get_embedder(get_settings(), api_key=access.api_key, base_url=access.base_url)
    return embedder.embed(["lighthouse"])


def _transcribe(access: Any) -> Any:
    from relaydesk.media import transcribe

    return transcribe.transcribe(b"RIFF", provider="openai", model="whisper-1", openai=access)


def _describe(access: Any) -> Any:
    from relaydesk.media import vision

    return vision.describe_image(b"\x89PNG", "image/png", model="gpt-4o-mini", openai=access)


@pytest.mark.parametrize("use", [_embed, _transcribe, _describe], ids=["embed", "stt", "vision"])
def test_embeddings_transcription_and_vision_send_nothing_to_a_rebound_address(
    api: httpx.Client,
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
    rebinding: None,
    use: Callable[[Any], Any],
) -> None:
    from relaydesk.media import processing as media

    monkeypatch.setattr(get_settings(), "embedding_provider", "openai")
    monkeypatch.setattr(get_settings(), "embedding_model", "text-embedding-3-small")
    private_networks(monkeypatch, False)
    save_ai(api, recorder.url(REBOUND))
    access = media.openai_access()  # the key and address the media jobs use
    assert access.base_url == recorder.url(REBOUND)
    with pytest.raises(Exception, match="LLM_ALLOW_PRIVATE_NETWORKS") as refused:
        use(access)
    assert "127.0.0.1" in str(refused.value)
    assert recorder.received == b""


def test_the_deployers_own_openai_base_url_may_be_on_loopback(
    api: httpx.Client, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    private_networks(monkeypatch, False)
    monkeypatch.setattr(get_settings(), "openai_base_url", recorder.url())
    monkeypatch.setattr(get_settings(), "openai_api_key", KEY)
    api.put("/api/ai/config", json={"provider": "openai", "model": "gpt-4o-mini"})
    tried = api.post("/api/ai/test", json={"message": "Hej"})
    assert tried.status_code == 502, tried.text  # reached the recorder, which refused the key
    assert KEY.encode() in recorder.received
