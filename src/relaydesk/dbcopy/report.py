"""What a copy reports, and the errors that end one.

TableReport holds one table's figures (rows in the source's snapshot, copied, read
back from the target, both SHA-256 checksums, the next id) and CopyReport the whole
copy's, which the CLI prints. CopyError is a refused or failed copy, VerificationFailed
one that finished but did not verify (it carries the report); in both cases the target
keeps nothing. `_reason` is the one line of a database's error that a message quotes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from relaydesk.core.errors import RelaydeskError


class CopyError(RelaydeskError):
    """The copy was refused or failed; the target keeps what it had (nothing)."""


class VerificationFailed(CopyError):
    """The copy finished but a table's count or checksum differs; it was rolled back."""

    def __init__(self, message: str, report: CopyReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class TableReport:
    """One table: rows in the source (snapshot), copied, found in the target; checksums."""

    name: str
    source_rows: int
    copied: int = 0
    target_rows: int = 0
    source_sha256: str = ""
    target_sha256: str = ""
    next_id: int | None = None  # the primary key's sequence after the copy
    seconds: float = 0.0

    @property
    def problem(self) -> str | None:
        """What differs, or None."""
        if not self.source_rows == self.copied == self.target_rows:
            return "count differs"
        if self.source_sha256 != self.target_sha256:
            return "checksum differs"
        return None


@dataclass
class CopyReport:
    """What was copied, from where to where, and how long it took."""

    source: str
    target: str
    revision: str
    tables: list[TableReport] = field(default_factory=list)
    not_copied: list[str] = field(default_factory=list)  # source tables relaydesk lacks
    sequences: int = 0
    foreign_keys: int = 0
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        """Rows copied over all tables."""
        return sum(t.copied for t in self.tables)

    @property
    def failed(self) -> list[TableReport]:
        """Tables whose count or checksum differs."""
        return [t for t in self.tables if t.problem]


def _reason(exc: BaseException) -> str:
    """The first line of what the database said (the DBAPI error under SQLAlchemy's)."""
    cause = getattr(exc, "orig", None) or exc
    text = str(cause).strip()
    return text.splitlines()[0] if text else cause.__class__.__name__
