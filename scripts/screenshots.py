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
    cli("user", "rename", "--email", EMAIL, "--name", "Anna")
    cli(
        "user", "create", "--email", "piotr@example.com", "--password", PASSWORD,
        "--role", "operator", "--name", "Piotr",
    )  # fmt: skip
    # The token acts as Anna: notes and assignments read as hers.
    token = (
        cli("token", "create", "screenshots", "--role", "admin", "--user", EMAIL)
        .strip()
        .splitlines()[-1]
    )
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
        _team_at_work(api)
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


def _team_at_work(api: httpx.Client) -> None:
    """What a team's inbox holds after a morning: owners, labels, a note, a profile,
    business hours, a reminder and a campaign."""
    api = httpx.Client(
        base_url=api.base_url,
        headers=api.headers,
        event_hooks={"response": [lambda answer: answer.raise_for_status()]},
    )
    users = {u["email"]: u["id"] for u in api.get("/api/users").json()["items"]}
    for name, colour in (("VIP", "#d62728"), ("Dostawa", "#1f77b4"), ("Reklamacja", "#ff7f0e")):
        api.post("/api/labels", json={"name": name, "colour": colour})
    api.put("/api/conversations/+48600100200/labels", json={"labels": ["VIP", "Dostawa"]})
    api.patch(
        "/api/conversations/+48600100200",
        json={"assignee_id": users[EMAIL], "priority": "high"},
    )
    api.patch(
        "/api/conversations/+48602300400",
        json={"assignee_id": users["piotr@example.com"], "priority": "medium"},
    )
    api.put("/api/conversations/+48602300400/labels", json={"labels": ["Dostawa"]})
    api.post(
        "/api/conversations/+48602300400/notes",
        json={"body": "@Piotr klient pyta o zmianę adresu — zamówienie 1057, sprawdź proszę."},
    )
    api.put(
        "/api/contact-attributes",
        json={
            "attributes": [
                {"key": "city", "name": "Miasto", "kind": "text"},
                {"key": "since", "name": "Klient od", "kind": "date"},
                {"key": "tier", "name": "Pakiet", "kind": "list", "options": ["Standard", "Gold"]},
            ]
        },
    )
    api.patch(
        "/api/contacts/+48600100200",
        json={
            "name": "Jan Kowalski",
            "note": "Woli kontakt SMS po 16:00.",
            "attributes": {"city": "Gdańsk", "since": "2024-03-01", "tier": "Gold"},
        },
    )
    api.post(
        "/api/canned-responses",
        json={
            "shortcut": "dostawa",
            "body": "Dzień dobry {{contact.name}}, dostawa trwa 1–2 dni robocze. {{agent.name}}",
            "shared": True,
        },
    )
    weekday = [["09:00", "17:00"]]
    api.put(
        "/api/business-hours",
        json={
            "enabled": True,
            "timezone": "Europe/Warsaw",
            "days": [weekday] * 5 + [[["10:00", "14:00"]], []],
            "holidays": ["2026-12-24", "2026-12-25", "2026-12-26"],
            "message": "Dziękujemy! Jesteśmy teraz nieczynni — odpiszemy zaraz po otwarciu.",
        },
    )
    api.post(
        "/api/reminders",
        json={
            "to": "+48601200300",
            "body": "Przypomnienie: odbiór zamówienia w piątek.",
            "interval_minutes": 1440,
        },
    )
    api.post(
        "/api/multi-sms/batches",
        json={
            "numbers": "+48600100200\n+48601200300\n+48602300400\n600 100 20",
            "body": "Promocja: -20% na pieczywo do niedzieli. Odpisz STOP, aby zrezygnować.",
        },
    )


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
            page.wait_for_url("**/inbox")
            page.goto("/messages")
            page.fill("#send-to", "+48600100200")
            page.fill("#send-body", "Zażółć gęślą jaźń — dziękujemy!")
            page.screenshot(path=str(out_dir / f"messages{suffix}.png"), full_page=True)
            page.goto("/chat/+48600100200")
            page.fill("#chat-body", "Czy mogę jeszcze w czymś pomóc?")
            page.screenshot(path=str(out_dir / f"chat{suffix}.png"), full_page=True)
            for tab in ("auto-reply", "ai", "assistants", "reminders", "multi-sms"):
                page.goto(f"/{tab}")
                page.wait_for_load_state("networkidle")
                page.screenshot(path=str(out_dir / f"{tab}{suffix}.png"), full_page=True)
            page.goto("/inbox?owner=all&c=%2B48600100200")
            page.wait_for_selector("#thread")
            page.wait_for_load_state("networkidle")
            page.fill("#chat-body", "Dzień dobry Panie Janie, ")
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=str(out_dir / f"inbox{suffix}.png"), full_page=True)
            page.goto("/inbox/hours")
            page.screenshot(path=str(out_dir / f"business-hours{suffix}.png"), full_page=True)
            if not suffix:
                page.goto("/settings")
                page.screenshot(path=str(out_dir / "settings.png"), full_page=True)
                for tab in ("users", "audit"):
                    page.goto(f"/{tab}")
                    page.screenshot(path=str(out_dir / f"{tab}.png"), full_page=False)
                page.goto("/sandbox-phone?number=%2B48602300400")
                page.screenshot(path=str(out_dir / "sandbox-phone.png"), full_page=True)
                page.set_viewport_size({"width": 390, "height": 844})
                page.goto("/messages")
                page.screenshot(path=str(out_dir / "messages-phone.png"), full_page=False)
                page.goto("/inbox?owner=all")
                page.screenshot(path=str(out_dir / "inbox-phone.png"), full_page=False)
                page.goto("/inbox?owner=all&c=%2B48602300400")
                page.wait_for_selector("#thread")
                page.screenshot(path=str(out_dir / "inbox-thread-phone.png"), full_page=False)
            context.close()
        browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "screenshots")
