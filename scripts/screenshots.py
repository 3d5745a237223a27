"""Take the README's screenshots of the panel: python scripts/screenshots.py [OUT_DIR].

Starts relaydesk in sandbox mode on a throwaway data directory, plays a few customers
through the sandbox phone, answers them, and photographs the pages in headless Chromium
(Debian's /usr/bin/chromium, driven by Playwright).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.web.browser import launch_chromium  # noqa: E402  (after the path is set)

RELAYDESK = [sys.executable, "-m", "relaydesk.cli"]
EMAIL, PASSWORD = "anna@example.com", "panel screenshots"
CUSTOMERS = [
    (
        "+48600100200",
        "Dzień dobry, czy zamówienie 1042 już wyszło?",
        "Tak, wyszło dziś rano. Kurier będzie jutro.",
    ),
    (
        "+48601200300",
        "Ile kosztuje dostawa do Gdańska?",
        "Dostawa kurierem kosztuje 14,99 zł, powyżej 200 zł gratis.",
    ),
    ("+48602300400", "Czy mogę zmienić adres dostawy?", None),
    (
        "+447700900123",
        "Hello, do you ship to the UK?",
        "Yes, we ship to the UK within 3 working days.",
    ),
]


def free_port() -> int:
    """A TCP port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check, what: str, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    """Poll `check` until it is true."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


def main(out_dir: Path) -> None:
    """Start a server, fill it with a small conversation history and photograph it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = Path(tempfile.mkdtemp(prefix="relaydesk-shots-"))
    port = free_port()
    env = {**os.environ, "DATA_DIR": str(data), "PORT": str(port), "LOG_LEVEL": "WARNING"}
    for name in ("DATABASE_URL", "TWILIO_ACCOUNT_SID", "TWILIO_API_BASE_URL", "TWILIO_MODE"):
        env.pop(name, None)
    env["SANDBOX_STATUS_DELAY_MS"] = "300"

    def cli(*args: str) -> str:
        done = subprocess.run([*RELAYDESK, *args], env=env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(done.stderr)
        return done.stdout

    cli("migrate")
    cli("user", "create", "--email", EMAIL, "--password", PASSWORD, "--role", "admin")
    token = cli("token", "create", "screenshots").strip().splitlines()[-1]
    server = subprocess.Popen([*RELAYDESK, "serve"], env=env, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _healthy(base), "the server")
        api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"})
        api.put("/api/automation/rules", json={"debounce_seconds": 0})
        api.put(
            "/api/auto-reply",
            json={
                "enabled": True,
                "message": "Dziękujemy za wiadomość! Odpiszemy w ciągu godziny.",
            },
        )
        baker = api.post(
            "/api/assistants",
            json={
                "name": "Piekarnia — zamówienia",
                "first_message": "Dzień dobry, tu asystent piekarni Kłos.",
                "system_prompt": "Przyjmujesz zamówienia na pieczywo. Pytaj o dzień odbioru.",
            },
        ).json()
        api.post("/api/phone-numbers", json={"number": "+48732100200", "assistant_id": baker["id"]})
        for number, question, answer in CUSTOMERS:
            api.post("/sandbox/phone/messages", json={"from": number, "body": question})
            if answer:
                api.post("/api/send-message", json={"to": number, "body": answer})
        # Twilio's magic "invalid number": shows a failed row with its error.
        api.post("/api/send-message", json={"to": "+15005550001", "body": "Numer z błędem"})
        wait_until(
            lambda: all(
                m["status"] in ("delivered", "received", "failed")
                for m in api.get("/api/messages").json()["items"]
            ),
            "deliveries",
        )
        _photograph(base, out_dir)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"screenshots written to {out_dir}")


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _photograph(base: str, out_dir: Path) -> None:
    with sync_playwright() as driver:
        browser = launch_chromium(driver)
        for lang, suffix in (("en-GB", ""), ("pl-PL", "-pl")):
            context = browser.new_context(
                base_url=base,
                locale=lang,
                timezone_id="Europe/Warsaw",
                viewport={"width": 1280, "height": 860},
            )
            page = context.new_page()
            page.goto("/login")
            page.fill("#email", EMAIL)
            page.fill("#password", PASSWORD)
            page.click("form[action='/login'] button[type=submit]")
            page.wait_for_url("**/messages")
            page.fill("#send-to", "+48600100200")
            page.fill("#send-body", "Zażółć gęślą jaźń — dziękujemy!")
            page.screenshot(path=str(out_dir / f"messages{suffix}.png"), full_page=True)
            page.goto("/chat/+48600100200")
            page.fill("#chat-body", "Czy mogę jeszcze w czymś pomóc?")
            page.screenshot(path=str(out_dir / f"chat{suffix}.png"), full_page=True)
            for tab in ("auto-reply", "ai", "assistants"):
                page.goto(f"/{tab}")
                page.screenshot(path=str(out_dir / f"{tab}{suffix}.png"), full_page=True)
            if not suffix:
                page.goto("/settings")
                page.screenshot(path=str(out_dir / "settings.png"), full_page=True)
                page.goto("/sandbox-phone?number=%2B48602300400")
                page.screenshot(path=str(out_dir / "sandbox-phone.png"), full_page=True)
                page.set_viewport_size({"width": 390, "height": 844})
                page.goto("/messages")
                page.screenshot(path=str(out_dir / "messages-phone.png"), full_page=False)
            context.close()
        browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "screenshots")
