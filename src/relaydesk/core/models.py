"""Runtime settings and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from relaydesk.core.db import Base, BigId, UTCDateTime, utcnow


class Setting(Base):
    """A setting changed at run time; secret values are stored encrypted."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    is_secret: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(100))


class AuditEntry(Base):
    """Who changed what, when: settings, users, tokens, deletions."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(100))
    target: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class SettingsVersion(Base):
    """One row, bumped in the transaction of every change of `settings`.

    Each process keeps the settings it read with the version they had; a read checks
    the version (one primary-key lookup) instead of reading the rows again, so a change
    in any process is seen by the next transaction everywhere.
    """

    __tablename__ = "settings_version"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
