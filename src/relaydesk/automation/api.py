"""REST routes: auto-reply, AI configuration and test, assistants, numbers, bot switches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from relaydesk.automation import assistants, service
from relaydesk.automation import settings as cfg
from relaydesk.automation.models import Assistant, AutomationRun, PhoneNumber
from relaydesk.automation.schemas import (
    AIConfigIn,
    AIConfigOut,
    AssistantIn,
    AssistantOut,
    AutoReplyIn,
    AutoReplyOut,
    ConversationAutomationIn,
    ConversationAutomationOut,
    PhoneNumberIn,
    PhoneNumberOut,
    RulesIn,
    RulesOut,
    RunOut,
    TestIn,
    TestOut,
)
from relaydesk.deps import Id, Operator, SessionDep, Viewer, WriteSessionDep

router = APIRouter(tags=["automation"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"description": "The provider is not configured"},
    422: {"description": "Invalid value"},
    502: {"description": "The AI provider failed to answer"},
}


@router.get("/api/auto-reply", response_model=AutoReplyOut)
def read_auto_reply(principal: Viewer, session: SessionDep) -> cfg.AutoReply:
    """The classic auto-reply: switch, text, and since when it answers."""
    return cfg.read_auto_reply(session)


@router.put("/api/auto-reply", response_model=AutoReplyOut, responses=_ERRORS)
def update_auto_reply(
    payload: AutoReplyIn, principal: Operator, session: WriteSessionDep
) -> cfg.AutoReply:
    """Switch the classic auto-reply; switching it on switches AI replies off."""
    return service.update_auto_reply(session, payload.enabled, payload.message, principal.actor)


@router.get("/api/ai/config", response_model=AIConfigOut)
def read_ai_config(principal: Viewer, session: SessionDep) -> AIConfigOut:
    """The AI auto-reply settings; the API key is never shown."""
    return service.ai_view(session)


@router.put("/api/ai/config", response_model=AIConfigOut, responses=_ERRORS)
def update_ai_config(
    payload: AIConfigIn, principal: Operator, session: WriteSessionDep
) -> AIConfigOut:
    """Change the AI settings (provider, base URL and key: administrators only)."""
    return service.update_ai(session, payload, principal.actor, principal.role)


@router.post("/api/ai/test", response_model=TestOut, responses=_ERRORS)
async def test_ai(payload: TestIn, principal: Operator) -> TestOut:
    """What the AI would answer `message` in the participant's conversation; sends nothing."""
    return await run_in_threadpool(service.preview, payload.participant, payload.message)


@router.get("/api/automation/rules", response_model=RulesOut)
def read_rules(principal: Viewer, session: SessionDep) -> cfg.Rules:
    """HELP/START answers, takeover pause, loop guard and debounce window."""
    return cfg.read_rules(session)


@router.put("/api/automation/rules", response_model=RulesOut, responses=_ERRORS)
def update_rules(payload: RulesIn, principal: Operator, session: WriteSessionDep) -> cfg.Rules:
    """Change the rules for every automatic answer."""
    return service.update_rules(session, payload, principal.actor)


@router.get("/api/automation/runs", response_model=list[RunOut])
def list_runs(
    principal: Viewer,
    session: SessionDep,
    participant: str | None = None,
    limit: int = Query(50, ge=1, le=500),
) -> Sequence[AutomationRun]:
    """What the pipeline decided for the newest inbound messages, and why."""
    return service.list_runs(session, participant, limit)


@router.get("/api/conversations/{participant}/automation", response_model=ConversationAutomationOut)
def read_conversation_automation(
    participant: str, principal: Viewer, session: SessionDep
) -> ConversationAutomationOut:
    """Whether the bot answers this customer now: switch, takeover pause, opt-out, failures."""
    return service.conversation_state(session, participant)


@router.put("/api/conversations/{participant}/automation", response_model=ConversationAutomationOut)
def update_conversation_automation(
    participant: str,
    payload: ConversationAutomationIn,
    principal: Operator,
    session: WriteSessionDep,
) -> ConversationAutomationOut:
    """Switch the bot on or off for this customer (on also ends a takeover pause)."""
    return service.set_conversation_automation(
        session, participant, payload.enabled, principal.actor
    )


def _assistant_data(payload: AssistantIn) -> assistants.AssistantData:
    return assistants.AssistantData(**payload.model_dump())


@router.get("/api/assistants", response_model=list[AssistantOut])
def list_assistants(principal: Viewer, session: SessionDep) -> Sequence[Assistant]:
    """Every assistant with the numbers it answers on."""
    return assistants.list_assistants(session)


@router.post("/api/assistants", response_model=AssistantOut, status_code=201, responses=_ERRORS)
def create_assistant(
    payload: AssistantIn, principal: Operator, session: WriteSessionDep
) -> AssistantOut:
    """A new assistant (end keywords default to words that are not opt-out keywords)."""
    created = assistants.create(session, _assistant_data(payload), principal.actor)
    return AssistantOut.model_validate(created)


@router.get("/api/assistants/{assistant_id}", response_model=AssistantOut)
def get_assistant(assistant_id: Id, principal: Viewer, session: SessionDep) -> AssistantOut:
    """One assistant."""
    return AssistantOut.model_validate(assistants.get(session, assistant_id))


@router.put("/api/assistants/{assistant_id}", response_model=AssistantOut, responses=_ERRORS)
def update_assistant(
    assistant_id: Id, payload: AssistantIn, principal: Operator, session: WriteSessionDep
) -> AssistantOut:
    """Replace an assistant's fields."""
    changed = assistants.update(session, assistant_id, _assistant_data(payload), principal.actor)
    return AssistantOut.model_validate(changed)


@router.delete("/api/assistants/{assistant_id}", status_code=204)
def delete_assistant(assistant_id: Id, principal: Operator, session: WriteSessionDep) -> Response:
    """Delete an assistant and unbind its numbers."""
    assistants.delete(session, assistant_id, principal.actor)
    return Response(status_code=204)


@router.post("/api/assistants/{assistant_id}/test", response_model=TestOut, responses=_ERRORS)
async def test_assistant(assistant_id: Id, payload: TestIn, principal: Operator) -> TestOut:
    """What the assistant would answer (with its greeting on a new session); sends nothing."""
    return await run_in_threadpool(
        service.preview, payload.participant, payload.message, assistant_id=assistant_id
    )


@router.get("/api/phone-numbers", response_model=list[PhoneNumberOut])
def list_numbers(principal: Viewer, session: SessionDep) -> Sequence[PhoneNumber]:
    """Our numbers and the assistants answering on them."""
    return assistants.list_numbers(session)


@router.post("/api/phone-numbers", response_model=PhoneNumberOut, status_code=201)
def bind_number(
    payload: PhoneNumberIn, principal: Operator, session: WriteSessionDep
) -> PhoneNumberOut:
    """Bind one of our numbers to an assistant (an existing binding moves)."""
    row = assistants.bind(session, payload.number, payload.assistant_id, principal.actor)
    return PhoneNumberOut.model_validate(row)


@router.delete("/api/phone-numbers/{number_id}", status_code=204)
def unbind_number(number_id: Id, principal: Operator, session: WriteSessionDep) -> Response:
    """Remove a number's binding (the global modes answer there again)."""
    assistants.unbind(session, number_id, principal.actor)
    return Response(status_code=204)
