"""CSV files that open correctly in a spreadsheet: a BOM, CRLF lines, formula-safe cells.

UTF-8 with a byte-order mark (Excel then reads Polish letters right). A cell that begins
with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading apostrophe (OWASP's
rule against formula injection): a spreadsheet shows it as text and never evaluates it.
E.164 numbers begin with `+`, so they read '+48600100200 — the plus kept, not a sum.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

BOM = "\ufeff"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe(value: Any) -> str:
    """One cell as text a spreadsheet will not run as a formula."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def line(cells: list[Any]) -> str:
    """One CSV row (CRLF-terminated, quoted where needed) of formula-safe cells."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow([safe(cell) for cell in cells])
    return out.getvalue()


def unsafe(cell: str) -> str:
    """A cell as `safe` wrote it, read back: the guarding apostrophe taken off."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(_FORMULA_START) else cell
