"""Is an inbound message part of a loop with another machine?

A loop is what two bots do to each other: the other side answers every automatic answer
at once, with the same text (or the same text with another number in it), or sends our
own answer back. A person does not: even a long conversation changes from message to
message. So the guard looks at what was said in the conversation's last half hour, not
at how many answers there were:

- *echo*: the customer's message is one of our recent automatic answers, word for word
  (ignoring case, digits and punctuation);
- *repeated exchange*: the same message comes for the third time and was answered the
  same way each time before (a short "tak" answered differently by the AI is a person
  agreeing; "Dziękujemy za wiadomość nr 17" answered by the same auto-reply is a bot);
- *repeated long text*: a message of some length comes for the third time, whatever we
  answered (a bot talking to our AI, whose answers vary).

The per-hour cap of automatic answers (`loop_guard_per_hour`) stays as a backstop for
loops these rules cannot see. Pure functions: the policy reads the lines and asks here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from relaydesk.core.i18n import N_

WINDOW = timedelta(minutes=30)  # how far back the conversation is looked at
LINES = 40  # at most this many earlier messages of the conversation
REPEATS = 3  # the third time the same exchange comes is a loop
LONG_TEXT = 20  # characters (normalised) from which a repeated text alone is telling
ECHO_TEXT = 10  # a shorter answer of ours ("OK") may come back from a person too

_NOT_WORDS = re.compile(r"[\W\d_]+")


@dataclass(frozen=True)
class Line:
    """One earlier message of the conversation."""

    inbound: bool
    automatic: bool  # an answer of the bot (auto-reply, AI, assistant)
    text: str


def normalised(text: str | None) -> str:
    """The words of a text: case, digits, punctuation and spacing left out."""
    return " ".join(_NOT_WORDS.sub(" ", (text or "").casefold()).split())


def loop_reason(text: str | None, earlier: Sequence[Line]) -> str | None:
    """Why the message `text` is part of a loop, given the earlier lines (oldest first)."""
    current = normalised(text)
    if not current:
        return None
    ours = {normalised(line.text) for line in earlier if not line.inbound and line.automatic}
    if len(current) >= ECHO_TEXT and current in ours:
        return N_("the customer's message repeats our own automatic answer")
    answered: list[str] = []  # what we answered each earlier copy of this message
    waiting = False
    for line in earlier:
        if line.inbound:
            waiting = normalised(line.text) == current
        elif waiting and line.automatic:
            answered.append(normalised(line.text))
            waiting = False
    if len(answered) < REPEATS - 1:
        return None
    if len(set(answered)) == 1:
        same = N_("the same message %(count)d times, answered the same way each time")
        return same % {"count": len(answered) + 1}
    if len(current) >= LONG_TEXT:
        minutes = int(WINDOW.total_seconds() // 60)
        within = N_("the same message %(count)d times within %(minutes)d minutes")
        return within % {"count": len(answered) + 1, "minutes": minutes}
    return None
