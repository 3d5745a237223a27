"""Assistants per phone number (document 002): CRUD, number bindings, sessions, end words."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, contains_eager, selectinload

from relaydesk.automation.grounding import knowledge_index_or_none
from relaydesk.automation.models import Assistant, AssistantSession, PhoneNumber
from relaydesk.channels.twilio.numbers import InvalidNumber, normalize
from relaydesk.contacts.consent import HELP_WORDS, START_WORDS, STOP_WORDS
from relaydesk.core import settings_store
from relaydesk.core.audit import record
from relaydesk.core.config import get_settings
from relaydesk.core.db import utcnow
from relaydesk.core.errors import Conflict, Invalid, NotFound
from relaydesk.core.i18n import N_

# Document 002 ended sessions on "end, stop, goodbye, bye, quit, exit, cancel"; four of
# those are Twilio opt-out words, which unsubscribe the customer instead (opt-out wins).
DEFAULT_END_KEYWORDS = ["goodbye", "bye", "exit", "koniec", "do widzenia"]
RESERVED_WORDS = frozenset(w.lower() for w in STOP_WORDS | START_WORDS | HELP_WORDS)
MAX_KEYWORDS = 30


@dataclass
class AssistantData:
    """The fields a person edits."""

    name: str
    first_message: str = ""
    system_prompt: str = ""
    model: str | None = None
    temperature: float | None = None
    session_timeout_minutes: int = 30
    end_keywords: list[str] | None = None
    knowledge_index: str | None = None
    voice_replies: bool = False


def clean_keywords(words: list[str] | None) -> list[str]:
    """Lower-cased, de-duplicated end keywords; opt-out words are refused with a reason."""
    if words is None:
        return list(DEFAULT_END_KEYWORDS)
    out: list[str] = []
    for raw in words:
        word = " ".join(raw.split()).lower()
        if not word:
            continue
        if word in RESERVED_WORDS:
            raise Invalid(
                N_(
                    "'%(word)s' is one of Twilio's opt-out keywords: a customer texting it is "
                    "unsubscribed (or helped), so it cannot also end an assistant session"
                ),
                params={"word": word},
                field="end_keywords",
            )
        if len(word) > 40:
            raise Invalid(
                N_("End keyword '%(word)s…' is too long"),
                params={"word": word[:40]},
                field="end_keywords",
            )
        if word not in out:
            out.append(word)
    if len(out) > MAX_KEYWORDS:
        raise Invalid(
            N_("At most %(count)s end keywords"),
            params={"count": MAX_KEYWORDS},
            field="end_keywords",
        )
    return out


def ends_session(body: str, keywords: list[str]) -> str | None:
    """The end keyword `body` contains as whole word(s), if any ("weekend" is not "end")."""
    text = " ".join(body.lower().split())
    for word in keywords:
        if re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text):
            return word
    return None


def _validate(data: AssistantData) -> AssistantData:
    name = data.name.strip()
    if not name:
        raise Invalid(N_("An assistant needs a name"), params={}, field="name")
    if len(name) > 100:
        raise Invalid(N_("The name is longer than 100 characters"), params={}, field="name")
    if len(data.first_message) > 1000:
        raise Invalid(
            N_("The first message is longer than 1,000 characters"),
            params={},
            field="first_message",
        )
    if len(data.system_prompt) > 8000:
        raise Invalid(
            N_("The instructions are longer than 8,000 characters"),
            params={},
            field="system_prompt",
        )
    if data.temperature is not None and not 0 <= data.temperature <= 2:
        raise Invalid(N_("Temperature must be between 0 and 2"), params={}, field="temperature")
    if not 1 <= data.session_timeout_minutes <= 24 * 60:
        raise Invalid(
            N_("The session timeout must be between 1 and 1,440 minutes"),
            params={},
            field="session_timeout_minutes",
        )
    model = (data.model or "").strip() or None
    return AssistantData(
        name=name,
        first_message=data.first_message.strip(),
        system_prompt=data.system_prompt.strip(),
        model=model,
        temperature=data.temperature,
        session_timeout_minutes=data.session_timeout_minutes,
        end_keywords=clean_keywords(data.end_keywords),
        knowledge_index=knowledge_index_or_none(data.knowledge_index),
        voice_replies=bool(data.voice_replies),
    )


def list_assistants(session: Session) -> Sequence[Assistant]:
    """Every assistant with the numbers bound to it."""
    query = select(Assistant).options(selectinload(Assistant.bindings)).order_by(Assistant.name)
    return session.scalars(query).all()


def get(session: Session, assistant_id: int) -> Assistant:
    """One assistant, or NotFound."""
    assistant = session.get(Assistant, assistant_id)
    if assistant is None:
        raise NotFound(N_("Assistant %(id)s does not exist"), params={"id": assistant_id})
    return assistant


def numbers_of(session: Session, assistant_id: int) -> list[str]:
    """The numbers bound to an assistant."""
    return list(
        session.scalars(
            select(PhoneNumber.number)
            .where(PhoneNumber.assistant_id == assistant_id)
            .order_by(PhoneNumber.number)
        )
    )


def create(session: Session, data: AssistantData, actor: str) -> Assistant:
    """A new assistant; names are unique."""
    clean = _validate(data)
    if session.scalar(select(Assistant.id).where(Assistant.name == clean.name)) is not None:
        raise Conflict(
            N_("An assistant called '%(name)s' already exists"),
            params={"name": clean.name},
            field="name",
        )
    assistant = Assistant(**clean.__dict__)
    session.add(assistant)
    session.flush()
    record(session, actor, "assistant.create", f"assistant:{assistant.id}", {"name": clean.name})
    return assistant


def update(session: Session, assistant_id: int, data: AssistantData, actor: str) -> Assistant:
    """Replace an assistant's fields."""
    assistant = get(session, assistant_id)
    clean = _validate(data)
    clash = session.scalar(
        select(Assistant.id).where(Assistant.name == clean.name, Assistant.id != assistant_id)
    )
    if clash is not None:
        raise Conflict(
            N_("An assistant called '%(name)s' already exists"),
            params={"name": clean.name},
            field="name",
        )
    for key, value in clean.__dict__.items():
        setattr(assistant, key, value)
    assistant.updated_at = utcnow()
    session.flush()
    record(session, actor, "assistant.update", f"assistant:{assistant.id}", {"name": clean.name})
    return assistant


def delete(session: Session, assistant_id: int, actor: str) -> None:
    """Delete an assistant; its numbers are unbound (the global modes answer there again)."""
    assistant = get(session, assistant_id)
    numbers = numbers_of(session, assistant_id)
    session.query(PhoneNumber).filter(PhoneNumber.assistant_id == assistant_id).delete()
    session.query(AssistantSession).filter(AssistantSession.assistant_id == assistant_id).delete()
    session.delete(assistant)
    record(
        session,
        actor,
        "assistant.delete",
        f"assistant:{assistant_id}",
        {"name": assistant.name, "numbers": numbers},
    )
    settings_store.mark_changed(session)


def our_number(raw: str) -> str:
    """One of our numbers in E.164 (a `whatsapp:` prefix is accepted and dropped)."""
    value = raw.strip()
    if value.lower().startswith("whatsapp:"):
        value = value[len("whatsapp:") :]
    try:
        return normalize(value, get_settings().default_region)
    except InvalidNumber as exc:
        raise Invalid(exc.template, params=exc.params, field="number") from None


def list_numbers(session: Session) -> Sequence[PhoneNumber]:
    """Every bound number with its assistant (for the name)."""
    return session.scalars(
        select(PhoneNumber)
        .join(PhoneNumber.assistant)
        .options(contains_eager(PhoneNumber.assistant))
        .order_by(PhoneNumber.number)
    ).all()


def bind(session: Session, raw_number: str, assistant_id: int, actor: str) -> PhoneNumber:
    """Bind one of our numbers to an assistant (rebinding moves it; answers start now)."""
    number = our_number(raw_number)
    get(session, assistant_id)
    row = session.scalar(select(PhoneNumber).where(PhoneNumber.number == number))
    if row is None:
        row = PhoneNumber(number=number, assistant_id=assistant_id, bound_at=utcnow())
        session.add(row)
        try:
            with session.begin_nested():
                session.flush()
        except IntegrityError:
            raise Conflict(
                N_("%(number)s was bound at the same moment; reload and retry"),
                params={"number": number},
            ) from None
    elif row.assistant_id != assistant_id:
        row.assistant_id, row.bound_at = assistant_id, utcnow()
    record(session, actor, "phone_number.bind", f"number:{number}", {"assistant_id": assistant_id})
    session.flush()
    return row


def unbind(session: Session, number_id: int, actor: str) -> None:
    """Remove a number's binding."""
    row = session.get(PhoneNumber, number_id)
    if row is None:
        raise NotFound(N_("Phone number binding %(id)s does not exist"), params={"id": number_id})
    record(session, actor, "phone_number.unbind", f"number:{row.number}", None)
    settings_store.mark_changed(session)
    session.delete(row)


def binding_for(session: Session, our_address: str) -> tuple[PhoneNumber, Assistant] | None:
    """The assistant answering on the number a customer wrote to, if any."""
    return bindings_for(session, {our_address})[our_address]


def bindings_for(
    session: Session, our_addresses: set[str]
) -> dict[str, tuple[PhoneNumber, Assistant] | None]:
    """`binding_for` each of these addresses (WhatsApp's too), in one query."""
    numbers = {address: address.removeprefix("whatsapp:") for address in our_addresses}
    bound: dict[str, tuple[PhoneNumber, Assistant]] = {}
    if numbers:
        for number, assistant in session.execute(
            select(PhoneNumber, Assistant)
            .join(Assistant, Assistant.id == PhoneNumber.assistant_id)
            .where(PhoneNumber.number.in_(set(numbers.values())))
        ):
            bound.setdefault(number.number, (number, assistant))
    return {address: bound.get(number) for address, number in numbers.items()}


def open_session(
    session: Session, conversation_id: int, assistant: Assistant, at: datetime
) -> AssistantSession | None:
    """The conversation's live session with this assistant at time `at`, if any."""
    current = session.scalar(
        select(AssistantSession)
        .where(
            AssistantSession.conversation_id == conversation_id,
            AssistantSession.ended_at.is_(None),
        )
        .order_by(AssistantSession.id.desc())
        .limit(1)
    )
    if current is None or current.assistant_id != assistant.id:
        return None
    timeout = timedelta(minutes=assistant.session_timeout_minutes)
    if current.last_activity_at + timeout < at:
        return None
    return current


def close_stale(session: Session, conversation_id: int, keep_id: int | None, at: datetime) -> None:
    """End every other open session of the conversation (timed out or reassigned)."""
    for stale in session.scalars(
        select(AssistantSession).where(
            AssistantSession.conversation_id == conversation_id,
            AssistantSession.ended_at.is_(None),
        )
    ):
        if stale.id != keep_id:
            stale.ended_at, stale.end_reason = at, "timeout"


def session_count(session: Session, assistant_id: int) -> int:
    """How many sessions an assistant has had."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(AssistantSession)
            .where(AssistantSession.assistant_id == assistant_id)
        )
        or 0
    )
