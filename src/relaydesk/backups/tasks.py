"""Scheduled backups: one archive a day into BACKUP_DIR, the newest BACKUP_KEEP kept.

The job runs every hour on the bulk queue and does its work once a day, at the first
run at or after BACKUP_HOUR (UTC): a worker that was down at that hour backs up when it
is back. Several workers may run it at the same moment; the one that creates the day's
marker file (O_EXCL) writes the archive, the others return.
"""

from __future__ import annotations

import logging
import os
import re
from datetime import date, datetime
from pathlib import Path

from relaydesk.backups.writer import write_backup
from relaydesk.core import clock
from relaydesk.core.config import Settings, get_settings
from relaydesk.core.tasks import BULK, periodic

log = logging.getLogger(__name__)

ARCHIVE_NAME = re.compile(r"relaydesk-\d{8}-\d{6}\.tar\.gz")
_CLAIM = re.compile(r"\.relaydesk-(\d{8})\.claim")


def archive_name(at: datetime) -> str:
    """The file name of a scheduled archive made at `at` (UTC)."""
    return f"relaydesk-{at:%Y%m%d-%H%M%S}.tar.gz"


@periodic("backups.daily", minutes="5", queue=BULK)
def scheduled_backup(settings: Settings | None = None) -> Path | None:
    """Hourly: write the day's archive if BACKUP_DIR is set, it is time and no one has yet."""
    settings = settings or get_settings()
    folder = settings.backup_dir
    if folder is None:
        return None
    now = clock.now()
    if now.hour < settings.backup_hour:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    claim = folder / f".relaydesk-{now:%Y%m%d}.claim"
    if not _claim(claim):
        return None
    try:
        report = write_backup(folder / archive_name(now), settings)
    except BaseException:
        claim.unlink(missing_ok=True)  # the next hourly run tries again
        raise
    _forget_claims(folder, now.date())
    removed = prune(folder, settings.backup_keep)
    log.info(
        "scheduled backup %s written (%d files, %d bytes); %d old archive(s) deleted",
        report.path.name,
        len(report.manifest.files),
        report.archive_bytes,
        len(removed),
    )
    return report.path


def _claim(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    os.write(fd, f"{os.getpid()}\n".encode())
    os.close(fd)
    return True


def _forget_claims(folder: Path, today: date) -> None:
    stamp = f"{today:%Y%m%d}"
    for path in folder.iterdir():
        match = _CLAIM.fullmatch(path.name)
        if match and match.group(1) < stamp:
            path.unlink(missing_ok=True)


def prune(folder: Path, keep: int) -> list[Path]:
    """Delete the oldest scheduled archives beyond `keep`; only files named like them."""
    archives = sorted(
        path
        for path in folder.iterdir()
        if ARCHIVE_NAME.fullmatch(path.name) and path.is_file() and not path.is_symlink()
    )
    doomed = archives[:-keep] if keep > 0 else archives
    for path in doomed:
        path.unlink(missing_ok=True)
        log.info("deleted the old backup %s (BACKUP_KEEP=%d)", path.name, keep)
    return doomed
