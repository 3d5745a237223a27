"""The news categories a fresh installation offers, in its language, until each has a source."""

from __future__ import annotations

from relaydesk.news.sources import SUGGESTED_CATEGORIES, category_slug, suggested_categories


def test_the_product_documents_categories_are_offered_in_the_installations_language() -> None:
    assert suggested_categories("pl", []) == [
        "Biznes",
        "Giełda",
        "Gospodarka",
        "Nieruchomości",
        "Poradnik finansowy",
        "Praca",
        "Prawo",
        "Technologie",
    ]
    assert suggested_categories("en", [])[:2] == ["Business", "Stock market"]
    assert suggested_categories("de", []) == list(SUGGESTED_CATEGORIES["en"])


def test_a_category_with_a_source_is_no_longer_offered_whatever_its_spelling() -> None:
    used = [category_slug("GIEŁDA"), category_slug("poradnik  finansowy"), "sport"]
    assert used[:2] == ["gielda", "poradnik_finansowy"]
    left = suggested_categories("pl", used)
    assert "Giełda" not in left and "Poradnik finansowy" not in left and len(left) == 6
