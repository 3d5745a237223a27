"""Split a document into overlapping chunks that end on sentence or paragraph boundaries.

A chunk is what one vector stands for: small enough that its embedding is about one
thing, large enough to be a useful passage to quote. Consecutive chunks share their
last/first ~`overlap` characters so a fact that straddles a boundary is whole in one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_SIZE = 800
DEFAULT_OVERLAP = 150

_PARAGRAPHS = re.compile(r"\s*\n\s*")
# A sentence ends with . ! ? … (and closing quotes or brackets) followed by white space.
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’»)\]]*\s+")
_SPACES = re.compile(r"[ \t\f\v\u00a0]+")


@dataclass(frozen=True)
class _Piece:
    """The smallest unit kept whole: a sentence, or a word of an overlong sentence."""

    text: str
    paragraph_start: bool  # joined to the previous piece with a blank line, not a space


def split(text: str, *, size: int = DEFAULT_SIZE, overlap: int = DEFAULT_OVERLAP) -> list[str]:
    """Chunks of at most `size` characters, each starting with the previous one's tail."""
    if size < 20:
        raise ValueError("chunk size must be at least 20 characters")
    if not 0 <= overlap <= size // 2:
        raise ValueError("chunk overlap must be between 0 and half the chunk size")
    pieces = list(_pieces(text, size))
    chunks: list[str] = []
    current: list[_Piece] = []
    fresh = 0  # pieces of `current` that no earlier chunk contains
    for piece in pieces:
        if current and _length([*current, piece]) > size:
            if fresh:
                chunks.append(_join(current))
                current = _tail(current, overlap)
            # The overlap must leave room for the new piece, or the loop would not advance.
            while current and _length([*current, piece]) > size:
                current.pop(0)
            fresh = 0
        current.append(piece)
        fresh += 1
    if fresh:
        chunks.append(_join(current))
    return chunks


def _pieces(text: str, size: int) -> list[_Piece]:
    out: list[_Piece] = []
    for paragraph in _PARAGRAPHS.split(text):
        paragraph = _SPACES.sub(" ", paragraph).strip()
        first = True
        for sentence in _SENTENCE_END.split(paragraph):
            sentence = sentence.strip()
            if not sentence:
                continue
            parts = [sentence] if len(sentence) <= size else _words(sentence, size)
            for part in parts:
                out.append(_Piece(part, paragraph_start=first))
                first = False
    return out


def _words(sentence: str, size: int) -> list[str]:
    """An overlong sentence as words; a word longer than a chunk is cut into slices."""
    out: list[str] = []
    for word in sentence.split(" "):
        out.extend(word[i : i + size] for i in range(0, len(word), size))
    return out


def _tail(pieces: list[_Piece], overlap: int) -> list[_Piece]:
    """The last pieces that fit in `overlap` characters; words of the last one if none do."""
    tail: list[_Piece] = []
    for piece in reversed(pieces):
        if _length([piece, *tail]) > overlap:
            break
        tail.insert(0, piece)
    if tail or overlap == 0:
        return tail
    words = pieces[-1].text.split(" ")
    kept: list[str] = []
    while words and len(" ".join([words[-1], *kept])) <= overlap:
        kept.insert(0, words.pop())
    # A cut sentence continues the paragraph it came from.
    return [_Piece(" ".join(kept), paragraph_start=False)] if kept else []


def _join(pieces: list[_Piece]) -> str:
    text = pieces[0].text
    for piece in pieces[1:]:
        text += ("\n\n" if piece.paragraph_start else " ") + piece.text
    return text


def _length(pieces: list[_Piece]) -> int:
    """len(_join(pieces)) without building the string."""
    if not pieces:
        return 0
    joints = sum(2 if p.paragraph_start else 1 for p in pieces[1:])
    return sum(len(p.text) for p in pieces) + joints
