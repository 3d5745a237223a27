"""Verification: a SHA-256 over a table's rows, whichever database they are read from.

The copy adds each page it writes to a Checksum; `_digest` reads the table back from the
target in the same primary-key order. The two checksums must be equal, as must the row
counts (TableReport.problem says which differs). A row's canonical form is defined here.
"""

from __future__ import annotations

import hashlib

from relaydesk.dbcopy.plans import Plan, Row
from relaydesk.dbcopy.readers import Reader


class Checksum:
    """SHA-256 over rows in primary-key order, one line per row.

    A line is the repr of the row's typed values: None, bool, int, float (its shortest
    exact form), str, JSON as its stored text, and datetimes in UTC to the microsecond,
    the same text whichever database the row was read from. A repr holds no line break.
    """

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def add(self, rows: list[Row]) -> None:
        if rows:
            text = "\n".join(map(repr, rows)) + "\n"
            self._hash.update(text.encode("utf-8", "surrogatepass"))

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _digest(reader: Reader, plan: Plan, rows: int) -> tuple[int, str]:
    checksum = Checksum()
    count = 0
    for page in reader.pages(plan, rows):
        checksum.add(page)
        count += len(page)
    return count, checksum.hexdigest()
