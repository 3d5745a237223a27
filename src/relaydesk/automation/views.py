"""Panel pages of the automation domain: the Auto-reply, AI and Assistants tabs and tools."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from relaydesk.auth.sessions import SignedIn
from relaydesk.automation import assistants, service, tool_forms, tools
from relaydesk.automation import settings as cfg
from relaydesk.automation.builtins import BUILTINS
from relaydesk.automation.grounding import knowledge_indexes
from relaydesk.automation.models import LLMUsage
from relaydesk.automation.schemas import AIConfigIn, AssistantIn, AssistantOut, RulesIn
from relaydesk.automation.tool_calls import MAX_TRY_CHARS, try_tool
from relaydesk.channels.twilio.account import current_account
from relaydesk.contacts.service import participant_number
from relaydesk.core.db import session_scope
from relaydesk.core.errors import Invalid, NotFound, RelaydeskError
from relaydesk.core.i18n import N_
from relaydesk.deps import Id
from relaydesk.media.transcribe import speech_setup
from relaydesk.messaging import views as messaging_views
from relaydesk.messaging.models import Conversation
from relaydesk.web.deps import PanelAdmin, PanelOperator, PanelViewer
from relaydesk.web.errors import error_text
from relaydesk.web.forms import form_problem
from relaydesk.web.templating import render

router = APIRouter(include_in_schema=False)

Model = TypeVar("Model", bound=BaseModel)
AI_TEXT_FIELDS = (
    "provider",
    "model",
    "temperature",
    "system_prompt",
    "history_limit",
    "max_reply_segments",
    "fallback_message",
    "base_url",
    "knowledge_index",
)
RULE_FIELDS = (
    "help_message",
    "start_message",
    "takeover_minutes",
    "loop_guard_per_hour",
    "debounce_seconds",
)
Participant = Annotated[str, Query(max_length=40)]


async def _read_form(request: Request) -> FormData:
    return await request.form()


# The whole form, so a field sent empty ("clear it") differs from one not sent ("keep it").
FormDep = Annotated[FormData, Depends(_read_form)]


def _fields(form: FormData, names: tuple[str, ...]) -> dict[str, str]:
    return {name: str(form[name]) for name in names if isinstance(form.get(name), str)}


def _validated(schema: type[Model], data: dict[str, Any]) -> Model:
    """The form's values as an API schema; what the schema refuses becomes a panel notice."""
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise form_problem(exc) from None


# --- Auto-reply tab ----------------------------------------------------------------------


def _auto_reply_context() -> dict[str, Any]:
    with session_scope(write=False) as session:
        return {
            "tab": "auto_reply",
            "auto_reply": cfg.read_auto_reply(session),
            "rules": cfg.read_rules(session),
            "ai_enabled": cfg.read_ai(session)[0].enabled,
        }


@router.get("/auto-reply", response_class=HTMLResponse)
def auto_reply_page(request: Request, user: PanelViewer) -> Response:
    """The classic auto-reply, how it works, and the rules for every automatic answer."""
    return render(request, "automation/auto_reply.html", _auto_reply_context(), user=user)


@router.post("/auto-reply", response_class=HTMLResponse)
def save_auto_reply(request: Request, user: PanelOperator, form: FormDep) -> Response:
    """Switch the auto-reply and set its text (switching it on switches AI replies off)."""
    enabled = form.get("enabled") == "on"
    message = str(form.get("message") or "")
    if len(message) > 1600:
        raise Invalid(N_("The message is longer than 1,600 characters"), params={}, field="message")
    with session_scope() as session:
        ai_was_on = cfg.read_ai(session)[0].enabled
        service.update_auto_reply(session, enabled, message, user.actor)
    context = {**_auto_reply_context(), "saved": True, "ai_switched_off": ai_was_on and enabled}
    return render(request, "automation/_auto_reply.html", context, user=user)


@router.post("/auto-reply/rules", response_class=HTMLResponse)
def save_rules(request: Request, user: PanelOperator, form: FormDep) -> Response:
    """Change HELP/START answers, the takeover pause, the loop guard and the debounce."""
    changes = _validated(RulesIn, _fields(form, RULE_FIELDS))
    with session_scope() as session:
        service.update_rules(session, changes, user.actor)
    context = {**_auto_reply_context(), "rules_saved": True}
    return render(request, "automation/_rules.html", context, user=user)


# --- AI tab --------------------------------------------------------------------------------


def _ai_context() -> dict[str, Any]:
    with session_scope(write=False) as session:
        return {
            "tab": "ai",
            "ai": service.ai_view(session),
            "auto_reply": cfg.read_auto_reply(session),
            "knowledge_indexes": knowledge_indexes(),
            "speech": speech_setup(),
        }


def _conversation_context(request: Request, raw: str) -> dict[str, Any]:
    """The AI tab's chat preview for a number (an unusable number says why, in place)."""
    if not raw.strip():
        return {"participant": "", "bubbles": [], "problem": None}
    try:
        number = participant_number(raw)
    except Invalid as exc:
        return {"participant": raw, "bubbles": [], "problem": error_text(request, exc)}
    with session_scope(write=False) as session:
        rows = service.bubbles(session, number)
    return {"participant": number, "bubbles": rows, "problem": None}


@router.get("/ai", response_class=HTMLResponse)
def ai_page(request: Request, user: PanelViewer, participant: Participant = "") -> Response:
    """AI replies: configuration, token usage, a conversation preview and a test box."""
    context = {
        **_ai_context(),
        **_conversation_context(request, participant),
        **_tools_context(None),
    }
    return render(request, "automation/ai.html", context, user=user)


@router.post("/ai", response_class=HTMLResponse)
def save_ai(request: Request, user: PanelOperator, form: FormDep) -> Response:
    """Save the AI form; the provider, base URL and key are for administrators only."""
    data: dict[str, Any] = {
        "enabled": form.get("enabled") == "on",
        "voice_replies": form.get("voice_replies") == "on",
        **_fields(form, AI_TEXT_FIELDS),
    }
    if form.get("clear_api_key") == "on":
        data["api_key"] = ""
    elif form.get("api_key"):
        data["api_key"] = str(form["api_key"])
    changes = _validated(AIConfigIn, data)
    with session_scope() as session:
        service.update_ai(session, changes, user.actor, user.role)
    context = {**_ai_context(), "saved": True}
    return render(request, "automation/_ai_config.html", context, user=user)


@router.get("/ai/conversation", response_class=HTMLResponse)
def ai_conversation(request: Request, user: PanelViewer, participant: Participant = "") -> Response:
    """The conversation with one number as bubbles (what the model would read)."""
    context = _conversation_context(request, participant)
    return render(request, "automation/_conversation.html", context, user=user)


async def _preview(
    request: Request, user: SignedIn, form: FormData, assistant_id: int | None = None
) -> Response:
    """Run a preview in a worker thread (it waits for the model) and show what came back."""
    participant = str(form.get("participant") or "").strip() or None
    message = str(form.get("message") or "").strip()
    context: dict[str, Any] = {"assistant_id": assistant_id}
    status = 200
    try:
        if not message:
            raise Invalid(N_("Type a message to test with"), params={}, field="message")
        if len(message) > 1600 or len(participant or "") > 40:
            raise Invalid(N_("The message or the number is too long"), params={})
        context["result"] = await run_in_threadpool(
            service.preview, participant, message, assistant_id=assistant_id
        )
        if assistant_id is None:  # the AI tab's token table shows the test's tokens too
            context["ai"] = {"usage": await run_in_threadpool(_usage)}
    except RelaydeskError as exc:
        context["error"], context["code"] = error_text(request, exc), exc.code
        status = exc.status_code
    return render(request, "automation/_preview.html", context, status_code=status, user=user)


def _usage() -> Sequence[LLMUsage]:
    with session_scope(write=False) as session:
        return service.usage(session)


@router.post("/ai/test", response_class=HTMLResponse)
async def test_ai(request: Request, user: PanelOperator, form: FormDep) -> Response:
    """What the AI would answer; nothing is sent."""
    return await _preview(request, user, form)


# --- Assistants tab ------------------------------------------------------------------------


def _our_numbers(session: Session) -> list[str]:
    """Numbers customers have written to, for the binding form's suggestions."""
    found = [current_account().default_from or ""]
    found += session.scalars(select(Conversation.our_address).distinct().limit(50)).all()
    numbers = (n.removeprefix("whatsapp:") for n in found if n and not n.startswith("MG"))
    return sorted(dict.fromkeys(numbers))


def _assistants_context() -> dict[str, Any]:
    with session_scope(write=False) as session:
        return {
            "tab": "assistants",
            "assistants": assistants.list_assistants(session),
            "numbers": assistants.list_numbers(session),
            "our_numbers": _our_numbers(session),
            "defaults": {
                "session_timeout_minutes": 30,
                "end_keywords": assistants.DEFAULT_END_KEYWORDS,
            },
            "knowledge_indexes": knowledge_indexes(),
        }


def _assistants_section(request: Request, user: SignedIn, notice: str) -> Response:
    context = {**_assistants_context(), "notice": notice}
    return render(request, "automation/_assistants.html", context, user=user)


def _assistant_data(form: FormData) -> assistants.AssistantData:
    """The assistant form as the service's data; end keywords are comma-separated."""
    data: dict[str, Any] = _fields(
        form, ("name", "first_message", "system_prompt", "model", "knowledge_index")
    )
    data["model"] = data.get("model", "").strip() or None
    temperature = str(form.get("temperature") or "").strip()
    data["temperature"] = temperature or None
    timeout = str(form.get("session_timeout_minutes") or "").strip()
    if timeout:
        data["session_timeout_minutes"] = timeout
    words = str(form.get("end_keywords") or "")
    data["end_keywords"] = [w.strip() for w in words.split(",") if w.strip()]
    data["voice_replies"] = form.get("voice_replies") == "on"
    return assistants.AssistantData(**_validated(AssistantIn, data).model_dump())


@router.get("/assistants", response_class=HTMLResponse)
def assistants_page(request: Request, user: PanelViewer) -> Response:
    """Assistants, the numbers they answer on, and a form for a new one."""
    return render(request, "automation/assistants.html", _assistants_context(), user=user)


@router.post("/assistants", response_class=HTMLResponse)
def create_assistant(request: Request, user: PanelOperator, form: FormDep) -> Response:
    """Add an assistant."""
    data = _assistant_data(form)
    with session_scope() as session:
        assistants.create(session, data, user.actor)
    return _assistants_section(request, user, "created")


@router.post("/assistants/numbers", response_class=HTMLResponse)
def bind_number(request: Request, user: PanelOperator, form: FormDep) -> Response:
    """Bind one of our numbers to an assistant (a bound number moves)."""
    chosen = str(form.get("assistant_id") or "")
    if not chosen.isdigit():
        raise Invalid(N_("Choose an assistant"), params={}, field="assistant_id")
    with session_scope() as session:
        assistants.bind(session, str(form.get("number") or ""), int(chosen), user.actor)
    return _assistants_section(request, user, "bound")


@router.post("/assistants/numbers/{number_id}/delete", response_class=HTMLResponse)
def unbind_number(request: Request, number_id: Id, user: PanelOperator) -> Response:
    """Remove a number's binding."""
    with session_scope() as session:
        assistants.unbind(session, number_id, user.actor)
    return _assistants_section(request, user, "unbound")


def _assistant_context(assistant_id: int) -> dict[str, Any]:
    with session_scope(write=False) as session:
        found = assistants.get(session, assistant_id)
        return {
            "tab": "assistants",
            "assistant": AssistantOut.model_validate(found),
            "knowledge_indexes": knowledge_indexes(),
        }


@router.get("/assistants/{assistant_id}", response_class=HTMLResponse)
def assistant_page(request: Request, assistant_id: Id, user: PanelViewer) -> Response:
    """One assistant: its settings, its tools and a test box."""
    context = {**_assistant_context(assistant_id), **_tools_context(assistant_id)}
    return render(request, "automation/assistant.html", context, user=user)


@router.post("/assistants/{assistant_id}", response_class=HTMLResponse)
def update_assistant(
    request: Request, assistant_id: Id, user: PanelOperator, form: FormDep
) -> Response:
    """Save an assistant's settings."""
    data = _assistant_data(form)
    with session_scope() as session:
        assistants.update(session, assistant_id, data, user.actor)
    context = {**_assistant_context(assistant_id), "saved": True}
    return render(request, "automation/_assistant_form.html", context, user=user)


@router.post("/assistants/{assistant_id}/delete", response_class=HTMLResponse)
def delete_assistant(request: Request, assistant_id: Id, user: PanelOperator) -> Response:
    """Delete an assistant (asked to confirm in the browser first); its numbers are unbound."""
    with session_scope() as session:
        assistants.delete(session, assistant_id, user.actor)
    return _assistants_section(request, user, "deleted")


@router.post("/assistants/{assistant_id}/test", response_class=HTMLResponse)
async def test_assistant(
    request: Request, assistant_id: Id, user: PanelOperator, form: FormDep
) -> Response:
    """What the assistant would answer (its greeting first on a new session); nothing is sent."""
    return await _preview(request, user, form, assistant_id)


# --- Tools of the AI and of each assistant (administrators change and try them) ---------


def _tools_context(assistant_id: int | None) -> dict[str, Any]:
    base = "/ai/tools" if assistant_id is None else f"/assistants/{assistant_id}/tools"
    with session_scope(write=False) as session:
        found = tools.list_tools(session, assistant_id)
        added = {tool.builtin for tool in found}
        return {
            "tools": [tool_forms.shown(tool) for tool in found],
            "tools_base": base,
            "builtins_left": [name for name in BUILTINS if name not in added],
            "param_types": tool_forms.PARAM_TYPES,
            # Only the OpenAI-compatible provider calls tools.
            "tools_provider": cfg.read_ai(session)[0].provider,
        }


def _tools_section(
    request: Request, user: SignedIn, assistant_id: int | None, notice: str
) -> Response:
    context = {**_tools_context(assistant_id), "tools_notice": notice}
    return render(request, "automation/_tools.html", context, user=user)


def _add_tool(request: Request, user: SignedIn, form: FormData, owner: int | None) -> Response:
    builtin = form.get("builtin")
    if isinstance(builtin, str) and builtin:
        fields = tool_forms.new_builtin(builtin)
    else:
        fields = tool_forms.http_fields(form, new=True)
    with session_scope() as session:
        tools.create(session, owner, fields, user.actor)
    return _tools_section(request, user, owner, "added")


def _save_tool(
    request: Request, user: SignedIn, form: FormData, owner: int | None, tool_id: int
) -> Response:
    with session_scope() as session:
        tool = tools.get(session, owner, tool_id)
        if tool.builtin is not None:
            fields = tool_forms.builtin_fields(form, tool.builtin)
        else:
            fields = tool_forms.http_fields(form, new=False, stored_header=tool.secret_header_name)
        tools.update(session, owner, tool_id, fields, user.actor)
    return _tools_section(request, user, owner, "saved")


def _delete_tool(request: Request, user: SignedIn, owner: int | None, tool_id: int) -> Response:
    with session_scope() as session:
        tools.delete(session, owner, tool_id, user.actor)
    return _tools_section(request, user, owner, "deleted")


async def _try_tool(
    request: Request, user: SignedIn, form: FormData, owner: int | None, tool_id: int
) -> Response:
    """Call the tool now with the example arguments (no database session is open while
    it runs) and show what came back, or why it could not be called, in place."""
    context: dict[str, Any] = {"tool_id": tool_id}
    status = 200
    try:
        arguments = tool_forms.arguments(str(form.get("arguments") or ""))
        result = await run_in_threadpool(try_tool, owner, tool_id, arguments)
        context["result"] = result
        context["content"] = result.content[:MAX_TRY_CHARS]
        context["cut"] = result.truncated or len(result.content) > MAX_TRY_CHARS
    except RelaydeskError as exc:
        context["error"] = error_text(request, exc)
        status = exc.status_code
    return render(request, "automation/_tool_try.html", context, status_code=status, user=user)


@router.post("/ai/tools", response_class=HTMLResponse)
def add_ai_tool(request: Request, user: PanelAdmin, form: FormDep) -> Response:
    """Give the AI a tool: an HTTP API, or one of the built-in tools."""
    return _add_tool(request, user, form, None)


@router.post("/ai/tools/{tool_id}", response_class=HTMLResponse)
def save_ai_tool(request: Request, tool_id: Id, user: PanelAdmin, form: FormDep) -> Response:
    """Change one of the AI's tools (its secret header's value only when typed again)."""
    return _save_tool(request, user, form, None, tool_id)


@router.post("/ai/tools/{tool_id}/delete", response_class=HTMLResponse)
def delete_ai_tool(request: Request, tool_id: Id, user: PanelAdmin) -> Response:
    """Remove one of the AI's tools (asked to confirm in the browser first)."""
    return _delete_tool(request, user, None, tool_id)


@router.post("/ai/tools/{tool_id}/try", response_class=HTMLResponse)
async def try_ai_tool(request: Request, tool_id: Id, user: PanelAdmin, form: FormDep) -> Response:
    """Call one of the AI's tools now with example arguments."""
    return await _try_tool(request, user, form, None, tool_id)


@router.post("/assistants/{assistant_id}/tools", response_class=HTMLResponse)
def add_assistant_tool(
    request: Request, assistant_id: Id, user: PanelAdmin, form: FormDep
) -> Response:
    """Give an assistant a tool: an HTTP API, or one of the built-in tools."""
    return _add_tool(request, user, form, assistant_id)


@router.post("/assistants/{assistant_id}/tools/{tool_id}", response_class=HTMLResponse)
def save_assistant_tool(
    request: Request, assistant_id: Id, tool_id: Id, user: PanelAdmin, form: FormDep
) -> Response:
    """Change one of an assistant's tools."""
    return _save_tool(request, user, form, assistant_id, tool_id)


@router.post("/assistants/{assistant_id}/tools/{tool_id}/delete", response_class=HTMLResponse)
def delete_assistant_tool(
    request: Request, assistant_id: Id, tool_id: Id, user: PanelAdmin
) -> Response:
    """Remove one of an assistant's tools (asked to confirm in the browser first)."""
    return _delete_tool(request, user, assistant_id, tool_id)


@router.post("/assistants/{assistant_id}/tools/{tool_id}/try", response_class=HTMLResponse)
async def try_assistant_tool(
    request: Request, assistant_id: Id, tool_id: Id, user: PanelAdmin, form: FormDep
) -> Response:
    """Call one of an assistant's tools now with example arguments."""
    return await _try_tool(request, user, form, assistant_id, tool_id)


# --- The chat view's bot line ------------------------------------------------------------


def answering_mode(session: Session, number: str) -> dict[str, Any]:
    """Which automatic answer applies to this customer: their number's assistant, AI or text."""
    our_address = session.scalar(
        select(Conversation.our_address)
        .where(Conversation.participant == number)
        .order_by(Conversation.last_message_at.desc().nulls_last())
        .limit(1)
    )
    bound = assistants.binding_for(session, our_address) if our_address else None
    if bound is not None:
        return {"kind": "assistant", "name": bound[1].name, "id": bound[1].id}
    if cfg.read_ai(session)[0].enabled:
        return {"kind": "ai"}
    if cfg.read_auto_reply(session).enabled:
        return {"kind": "auto_reply"}
    return {"kind": "none"}


# The chat page (messaging's) shows the bot's state and which knowledge an answer used.
@messaging_views.chat_part
def _bot_context(number: str) -> dict[str, Any]:
    """Whether the bot answers this customer now (None before any conversation exists)."""
    with session_scope(write=False) as session:
        try:
            state = service.conversation_state(session, number)
        except NotFound:
            return {"participant": number, "bot": None}
        return {"participant": number, "bot": state, "answering": answering_mode(session, number)}


@router.get("/chat/{participant}/bot", response_class=HTMLResponse)
def chat_bot(request: Request, participant: str, user: PanelViewer) -> Response:
    """The bot's status line and switch (reloaded live)."""
    number = participant_number(participant)
    return render(request, "messages/_bot.html", _bot_context(number), user=user)


@router.post("/chat/{participant}/bot", response_class=HTMLResponse)
def chat_bot_switch(
    request: Request,
    participant: str,
    user: PanelOperator,
    enabled: Annotated[str | None, Form(max_length=10)] = None,
) -> Response:
    """Switch automatic answers on or off for this customer (on also ends a takeover pause)."""
    number = participant_number(participant)
    with session_scope() as session:
        service.set_conversation_automation(session, number, enabled == "on", user.actor)
    return render(request, "messages/_bot.html", _bot_context(number), user=user)


@messaging_views.thread_part
def _grounding(session: Session, number: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Which knowledge each automatic answer in the thread was grounded in, and which
    tools it called."""
    answers = [m["id"] for m in items if m["direction"] == "outbound"]
    behind = service.behind_answers(session, number, answers)
    for item in items:
        item["knowledge"], item["tool_calls"] = behind.get(item["id"], (None, None))
    return {}
