"""English notes kept on rows and in job results, shown in the panel's language."""

from __future__ import annotations

from relaydesk.core.i18n import translate_stored, translations


def test_an_exact_catalog_sentence_is_translated() -> None:
    english = "OpenAI rejected the API key (401)"
    assert translate_stored("pl", english) == translations("pl").gettext(english)
    assert translate_stored("pl", english) != english


def test_a_filled_in_template_is_recognised_with_its_values() -> None:
    english = "The index 'news' is damaged: chunks.json does not match its manifest"
    assert translate_stored("pl", english) == (
        "Indeks 'news' jest uszkodzony: chunks.json nie zgadza się ze swoim manifestem"
    )


def test_a_sentence_quoting_another_translates_both() -> None:
    inner = "OpenAI rejected the API key (401)"
    english = f"The embedding model could not be used: {inner}"
    polish = translate_stored("pl", english)
    assert polish.startswith("Nie udało się użyć modelu embeddingów: ")
    assert polish.endswith(translations("pl").gettext(inner))


def test_a_single_word_value_is_kept_as_written() -> None:
    # "Done" is a catalog entry on its own, but as a value (an index's name) it stays.
    english = "The index 'Done' is damaged: chunks.json does not match its manifest"
    assert "'Done'" in translate_stored("pl", english)


def test_unknown_text_english_and_nothing_pass_through() -> None:
    assert translate_stored("pl", "Twilio said something new") == "Twilio said something new"
    assert translate_stored("en", "OpenAI rejected the API key (401)") == (
        "OpenAI rejected the API key (401)"
    )
    assert translate_stored("pl", None) == ""
    assert translate_stored("pl", "") == ""
    assert translate_stored("xx", "Not found.") == "Not found."


def test_values_with_quotes_newlines_and_nul_bytes_do_not_break_it() -> None:
    name = "a'b\n\x00c"
    english = f"The index '{name}' is damaged: chunks.json does not match its manifest"
    polish = translate_stored("pl", english)
    assert name in polish and polish.startswith("Indeks")
