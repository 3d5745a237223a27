"""How relaydesk starts Chromium: Debian's build, never a downloaded one (tests, screenshots)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
# Headless as root, and quiet: without the networking flags Chromium keeps calling
# Google's services, which this machine's closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch_chromium(driver: Any) -> Any:
    """A headless Chromium browser from a Playwright driver."""
    return driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
