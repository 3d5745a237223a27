"""Polish and English: complete catalogs, and the language each person gets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from relaydesk.core.i18n import from_accept_language, pick_language, translations

SRC = Path(__file__).resolve().parents[1] / "src" / "relaydesk"
CATALOGS = SRC / "translations"
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")


def source_messages() -> set[str | tuple[str, ...]]:
    """Every string the code and templates mark for translation, as pybabel finds them."""
    found: set[str | tuple[str, ...]] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(SRC),
        method_map=[("**.py", "python"), ("web/templates/**.html", "jinja2")],
        options_map={
            "web/templates/**.html": {
                "extensions": "jinja2.ext.i18n",
                "trim_blocks": "True",
                "lstrip_blocks": "True",
            }
        },
    ):
        found.add(message)
    return found


@pytest.mark.parametrize("language", ["pl", "en"])
def test_every_panel_string_is_translated(language: str) -> None:
    with (CATALOGS / language / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle, locale=language)
    messages = source_messages()
    assert len(messages) > 100
    missing = []
    for message in messages:
        key = message[0] if isinstance(message, tuple) else message
        entry = catalog.get(key)
        if entry is None or entry.fuzzy:
            missing.append(key)
            continue
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        if not all(strings):
            missing.append(key)
            continue
        wanted = set(PLACEHOLDER.findall(key))
        for text in strings:
            assert set(PLACEHOLDER.findall(text)) == wanted, (language, key, text)
    assert not missing, f"run 'make translations' and translate: {sorted(missing)}"
    assert not [problem for problem in catalog.check()]


def test_polish_plurals_follow_polish_grammar() -> None:
    pl = translations("pl")
    forms = [
        pl.ngettext("Sent to %(number)s (%(num)d segment).", "x", n) % {"number": "+48", "num": n}
        for n in (1, 3, 5, 22)
    ]
    assert [f.split("(")[1].split(")")[0] for f in forms] == [
        "1 segment",
        "3 segmenty",
        "5 segmentów",
        "22 segmenty",
    ]


def test_the_browser_language_is_the_default() -> None:
    assert from_accept_language("pl-PL,pl;q=0.9,en;q=0.8") == "pl"
    assert from_accept_language("de-DE,en;q=0.5,pl;q=0.7") == "pl"
    assert from_accept_language("fr-FR") == "en"
    assert from_accept_language(None) == "en"
    assert from_accept_language("pl;q=0, en") == "en"


def test_a_chosen_language_wins_over_the_browser() -> None:
    assert pick_language("pl", "en", "en-GB") == "pl"
    assert pick_language(None, "pl", "en-GB") == "pl"
    assert pick_language(None, "xx", "pl") == "pl"
    assert pick_language("de", None, None) == "en"


# Where an error's English is meant to stay English: startup and command-line text
# (core/config.py, backups, dbcopy, cli), the emulator that imitates Twilio's English
# (channels/sandbox), the index files' format diagnostics quoted inside a translated
# sentence (knowledge/manifest.py, knowledge/disk.py), the Prometheus endpoint
# (observe), and a job kind no code registered (a programming error).
ENGLISH_BY_DESIGN = (
    "backups/",
    "dbcopy",
    "cli.py",
    "channels/sandbox/",
    "migrations/",
    "core/config.py",
    "knowledge/manifest.py",
    "knowledge/disk.py",
    "observe/",
    "jobs/service.py",
)
LIBRARY_ERRORS = {"ValueError", "TypeError", "KeyError", "RuntimeError", "OSError"}


def test_service_errors_are_catalog_templates() -> None:
    """A refusal a person reads is raised with an N_ template, so the panel can translate it."""
    import ast

    plain = []
    for path in sorted(SRC.rglob("*.py")):
        where = path.relative_to(SRC).as_posix()
        if any(part in where for part in ENGLISH_BY_DESIGN):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
                continue
            func = node.exc.func
            name = getattr(func, "id", None) or getattr(func, "attr", "")
            if name in LIBRARY_ERRORS or not node.exc.args:
                continue
            first = node.exc.args[0]
            literal = isinstance(first, ast.JoinedStr) or (
                isinstance(first, ast.Constant) and isinstance(first.value, str)
            )
            if literal and (name.endswith("Error") or name in _DOMAIN_ERRORS):
                plain.append(f"{where}:{node.lineno} {name}")
    assert not plain, f"raise these with N_(template) and params: {plain}"


_DOMAIN_ERRORS = {
    "Invalid",
    "Conflict",
    "NotFound",
    "Forbidden",
    "TooLarge",
    "Gone",
    "Unavailable",
    "VendorRefused",
    "ProviderFailed",
    "OptedOut",
    "WindowClosed",
    "Unauthorized",
    "NoNews",
}
