"""Splitting text into overlapping chunks on sentence and paragraph boundaries."""

from __future__ import annotations

import itertools
import random

import pytest

from relaydesk.knowledge.chunking import split

WORDS = ["rye", "bread", "bakery", "oven", "flour", "shop", "price", "town", "market"]


def sentences(count: int, seed: int = 7, longest: int = 22) -> list[str]:
    rng = random.Random(seed)
    return [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, longest))).capitalize() + "."
        for _ in range(count)
    ]


def shared_edge(previous: str, following: str) -> int:
    """How many characters `following` repeats from the end of `previous`."""
    for k in range(min(len(previous), len(following)), 0, -1):
        if previous.endswith(following[:k]):
            return k
    return 0


def test_a_short_text_is_one_chunk() -> None:
    assert split("Open from 8 to 18.  Closed on Sundays.") == [
        "Open from 8 to 18. Closed on Sundays."
    ]


def test_empty_text_gives_no_chunks() -> None:
    assert split("") == []
    assert split(" \n\n \t ") == []


def test_chunks_fit_the_size_and_repeat_the_end_of_the_previous_one() -> None:
    text = " ".join(sentences(120))
    chunks = split(text, size=400, overlap=100)
    assert len(chunks) > 5
    assert all(len(chunk) <= 400 for chunk in chunks)
    for previous, following in itertools.pairwise(chunks):
        assert 0 < shared_edge(previous, following) <= 100


def test_chunks_end_and_start_on_sentence_boundaries() -> None:
    # Sentences shorter than the overlap: the repeated tail is whole sentences.
    chunks = split(" ".join(sentences(80, longest=12)), size=500, overlap=120)
    for chunk in chunks:
        assert chunk.endswith(".")
        assert chunk[0].isupper()


def test_every_sentence_is_in_some_chunk() -> None:
    parts = sentences(60, seed=3)
    chunks = split(" ".join(parts), size=300, overlap=60)
    for sentence in parts:
        assert any(sentence in chunk for chunk in chunks), sentence


def test_paragraph_breaks_survive_inside_a_chunk() -> None:
    text = "First paragraph here.\nStill the first? No.\n\n\nSecond paragraph.  Two   spaces."
    assert split(text) == [
        "First paragraph here.\n\nStill the first? No.\n\nSecond paragraph. Two spaces."
    ]


def test_an_overlong_sentence_is_cut_between_words() -> None:
    text = " ".join(f"word{i}" for i in range(400))  # one sentence of ~3,000 characters
    chunks = split(text, size=200, overlap=40)
    assert all(len(chunk) <= 200 for chunk in chunks)
    words = set(text.split())
    assert all(set(chunk.split()) <= words for chunk in chunks)
    assert chunks[0].startswith("word0 ") and chunks[-1].endswith("word399")
    for previous, following in itertools.pairwise(chunks):
        assert 0 < shared_edge(previous, following) <= 40


def test_a_word_longer_than_a_chunk_is_sliced() -> None:
    chunks = split("x" * 1000, size=300, overlap=50)
    assert "".join(chunks) == "x" * 1000
    assert all(len(chunk) <= 300 for chunk in chunks)


def test_no_overlap_when_asked_for_none() -> None:
    parts = sentences(40)
    chunks = split(" ".join(parts), size=300, overlap=0)
    assert " ".join(chunks) == " ".join(parts)


@pytest.mark.parametrize(("size", "overlap"), [(10, 0), (800, 500), (800, -1)])
def test_unusable_sizes_are_refused(size: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        split("Some text.", size=size, overlap=overlap)
