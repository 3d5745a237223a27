"""Where relaydesk's log lines go and what they look like (LOG_LEVEL, LOG_FORMAT).

`text` (the default) is one readable line per event; `json` is one JSON object per
line (timestamp, level, logger, message, and any fields the event carries, such as an
access log's method, path, status and duration) for a log collector.
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from relaydesk.core.config import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# These log request details (headers, URLs with credentials) at INFO.
QUIET = ("twilio.http_client", "httpx", "alembic", "huey")


def configure(settings: Settings) -> None:
    """Set up the root logger once per process; uvicorn's loggers pass through it."""
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                timestamp=False,
            )
        )
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    for noisy in QUIET:
        logging.getLogger(noisy).setLevel(logging.WARNING)
