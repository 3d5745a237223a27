"""Text out of an uploaded file, in parts that keep their page or row; never runs macros.

The type is read from the bytes (a PDF's header, the members of an Office or
OpenDocument ZIP), not from the name: a name that promises another type than the bytes
is refused. Limits hold before and while reading (size, ZIP members and their unpacked
size, pages, rows, characters), so a small file that unpacks into gigabytes is refused
rather than read. Spreadsheets with macros (.xlsm, a vbaProject part), password
protection and the old binary Office formats are refused with a reason.

Each part is a page of a PDF, a row of a CSV or XLSX (with its header: "Produkt: chleb;
Cena: 6 zł"), or the whole text of the other kinds; the index splits long parts itself.

Each reader imports its library (pypdf, python-docx, odfpy, openpyxl, trafilatura) when
it is first used, so processes that never read a document do not load them.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

from relaydesk.core.errors import Invalid, TooLarge
from relaydesk.core.i18n import N_

MAX_BYTES = 20 * 1024 * 1024  # an upload
MAX_UNPACKED = 100 * 1024 * 1024  # the members of a DOCX/XLSX/ODT together
MAX_MEMBERS = 5_000
MAX_PAGES = 1_000
MAX_ROWS = 50_000
MAX_CHARACTERS = 3_000_000  # text extracted from one document

KINDS = ("pdf", "docx", "odt", "xlsx", "csv", "txt", "md", "html")
# What a file name's suffix promises; a suffix not listed here is read by its bytes.
SUFFIXES = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".odt": "odt",
    ".xlsx": "xlsx",
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "txt",
    ".text": "txt",
    ".md": "md",
    ".markdown": "md",
    ".html": "html",
    ".htm": "html",
}
# Each is a template with the file's name as %(filename)s.
_REFUSED_SUFFIXES = {
    ".xlsm": N_(
        "%(filename)s: a spreadsheet with macros (.xlsm) is not accepted: save it as .xlsx"
    ),
    ".docm": N_("%(filename)s: a document with macros (.docm) is not accepted: save it as .docx"),
    ".doc": N_("%(filename)s: the old Word format (.doc) is not accepted: save it as .docx"),
    ".xls": N_("%(filename)s: the old Excel format (.xls) is not accepted: save it as .xlsx"),
}
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ODT_MIMETYPE = b"application/vnd.oasis.opendocument.text"


@dataclass(frozen=True)
class Part:
    """A piece of a document's text and where it is ("page 3", "row 12"; None: the whole)."""

    ref: str | None
    text: str


@dataclass(frozen=True)
class Extracted:
    """A document's kind and its parts with text."""

    kind: str
    parts: list[Part]

    @property
    def characters(self) -> int:
        """How much text was found."""
        return sum(len(p.text) for p in self.parts)


def extract(filename: str, data: bytes) -> Extracted:
    """The kind and text parts of an uploaded file; Invalid or TooLarge with a reason."""
    if len(data) > MAX_BYTES:
        raise TooLarge(
            N_("The file is larger than %(size)s MB"), params={"size": MAX_BYTES // (1024 * 1024)}
        )
    if not data.strip():
        raise Invalid(N_("The file is empty"), params={}, field="file")
    suffix = PurePosixPath(filename.lower()).suffix
    if suffix in _REFUSED_SUFFIXES:
        raise Invalid(_REFUSED_SUFFIXES[suffix], params={"filename": filename}, field="file")
    kind = _kind_of(data, suffix, filename)
    parts = list(_limited(_READERS[kind](data)))
    if not parts:
        raise Invalid(
            N_("%(filename)s: no text was found in it (a scan needs OCR first)"),
            params={"filename": filename},
            field="file",
        )
    return Extracted(kind, parts)


def _kind_of(data: bytes, suffix: str, filename: str) -> str:
    promised = SUFFIXES.get(suffix)
    if data.startswith(b"%PDF-"):
        found = "pdf"
    elif data.startswith(_OLE_MAGIC):
        raise Invalid(
            N_(
                "%(filename)s: a password-protected or old binary Office file (.doc, .xls) is "
                "not accepted: save it as .docx or .xlsx without a password"
            ),
            params={"filename": filename},
            field="file",
        )
    elif data.startswith(b"PK\x03\x04"):
        found = _zip_kind(data, filename)
    elif b"\x00" in data[:8192]:
        raise Invalid(
            N_("%(filename)s: this kind of file is not supported"),
            params={"filename": filename},
            field="file",
        )
    else:
        found = promised if promised in ("csv", "txt", "md", "html") else _text_kind(data)
    if promised is not None and promised != found:
        raise Invalid(
            N_("%(filename)s: the name says %(promised)s but the content is %(found)s"),
            params={"filename": filename, "promised": promised.upper(), "found": found.upper()},
            field="file",
        )
    return found


def _text_kind(data: bytes) -> str:
    head = data[:2048].lstrip().lower()
    return "html" if head.startswith((b"<!doctype html", b"<html")) else "txt"


def _zip_kind(data: bytes, filename: str) -> str:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, ValueError):
        raise Invalid(
            N_("%(filename)s: the file is damaged (not a readable ZIP)"),
            params={"filename": filename},
            field="file",
        ) from None
    names = {m.filename for m in members}
    if len(members) > MAX_MEMBERS or sum(m.file_size for m in members) > MAX_UNPACKED:
        raise Invalid(
            N_("%(filename)s: the file unpacks to too much data"),
            params={"filename": filename},
            field="file",
        )
    if any(m.flag_bits & 0x1 for m in members):
        raise Invalid(
            N_("%(filename)s: a password-protected file is not accepted"),
            params={"filename": filename},
            field="file",
        )
    if any(name.lower().endswith("vbaproject.bin") for name in names):
        raise Invalid(
            N_(
                "%(filename)s: a file with macros is not accepted: save it without macros "
                "(.xlsx, .docx)"
            ),
            params={"filename": filename},
            field="file",
        )
    if "word/document.xml" in names:
        return "docx"
    if "xl/workbook.xml" in names:
        return "xlsx"
    if "mimetype" in names and archive.read("mimetype").strip() == _ODT_MIMETYPE:
        return "odt"
    raise Invalid(
        N_("%(filename)s: this kind of ZIP file is not supported"),
        params={"filename": filename},
        field="file",
    )


def _limited(parts: Iterable[Part]) -> Iterator[Part]:
    total = 0
    for part in parts:
        text = _tidy(part.text)
        if not text:
            continue
        total += len(text)
        if total > MAX_CHARACTERS:
            raise Invalid(
                N_(
                    "The document holds more than %(limit)s characters of text; "
                    "split it into smaller files"
                ),
                params={"limit": f"{MAX_CHARACTERS:,}"},
                field="file",
            )
        yield Part(part.ref, text)


def _tidy(text: str) -> str:
    lines = (re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in text.splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# --- Readers, one per kind -----------------------------------------------------------------


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1250"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _plain(data: bytes) -> Iterator[Part]:
    yield Part(None, _decode(data))


def _html(data: bytes) -> Iterator[Part]:
    import trafilatura  # also what the news scraper reads pages with

    text = trafilatura.extract(_decode(data), include_tables=True, include_comments=False)
    yield Part(None, text or "")


def _csv(data: bytes) -> Iterator[Part]:
    text = _decode(data)
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
            text[:8192], delimiters=",;\t|"
        )
    except csv.Error:
        dialect = csv.excel
    yield from _rows(None, csv.reader(io.StringIO(text), dialect))


def _rows(sheet: str | None, rows: Iterable[Iterable[object]]) -> Iterator[Part]:
    header: list[str] | None = None
    for number, row in enumerate(rows, start=1):
        if number > MAX_ROWS:
            raise Invalid(
                N_("More than %(limit)s rows: split the table"),
                params={"limit": f"{MAX_ROWS:,}"},
                field="file",
            )
        cells = ["" if c is None else str(c).strip() for c in row]
        if not any(cells):
            continue
        if header is None:
            header = cells
            continue
        pairs = [
            f"{header[i] if i < len(header) and header[i] else f'#{i + 1}'}: {value}"
            for i, value in enumerate(cells)
            if value
        ]
        ref = f"{sheet}, row {number}" if sheet else f"row {number}"
        yield Part(ref, "; ".join(pairs))


def _xlsx(data: bytes) -> Iterator[Part]:
    import openpyxl

    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        many = len(book.sheetnames) > 1
        for sheet in book.worksheets:
            yield from _rows(sheet.title if many else None, sheet.iter_rows(values_only=True))
    finally:
        book.close()


def _pdf(data: bytes) -> Iterator[Part]:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise Invalid(N_("A password-protected PDF is not accepted"), params={}, field="file")
        if len(reader.pages) > MAX_PAGES:
            raise Invalid(
                N_("More than %(limit)s pages: split the PDF"),
                params={"limit": f"{MAX_PAGES:,}"},
                field="file",
            )
        for number, page in enumerate(reader.pages, start=1):
            yield Part(f"page {number}", page.extract_text() or "")
    except Invalid:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, MemoryError, RecursionError) as exc:
        raise Invalid(
            N_("The PDF could not be read (%(error)s)"),
            params={"error": type(exc).__name__},
            field="file",
        ) from None


def _docx(data: bytes) -> Iterator[Part]:
    import docx

    document = docx.Document(io.BytesIO(data))
    lines = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            lines.append(" | ".join(cell.text.strip() for cell in row.cells))
    yield Part(None, "\n".join(lines))


def _odt(data: bytes) -> Iterator[Part]:
    from odf import teletype
    from odf.namespaces import TEXTNS
    from odf.opendocument import load

    blocks = {(TEXTNS, "p"), (TEXTNS, "h")}
    lines: list[str] = []

    def walk(node: object) -> None:  # headings and paragraphs in document order
        for child in getattr(node, "childNodes", []):
            if getattr(child, "qname", None) in blocks:
                lines.append(teletype.extractText(child))
            else:
                walk(child)

    walk(load(io.BytesIO(data)).text)
    yield Part(None, "\n".join(lines))


_READERS = {
    "pdf": _pdf,
    "docx": _docx,
    "odt": _odt,
    "xlsx": _xlsx,
    "csv": _csv,
    "txt": _plain,
    "md": _plain,
    "html": _html,
}
