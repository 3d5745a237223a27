"""REST routes of assistants' tools and the global AI's tools (admins only)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from relaydesk.automation import tools
from relaydesk.automation.schemas import ToolIn, ToolOut, ToolPatch, ToolTryIn, ToolTryOut
from relaydesk.automation.tool_calls import MAX_TRY_CHARS, try_tool
from relaydesk.deps import Admin, Id, SessionDep, WriteSessionDep

router = APIRouter(tags=["assistants"])
_ERRORS: dict[int | str, dict[str, str]] = {
    409: {"description": "A tool of that name exists, or the limit is reached"},
    422: {"description": "A bad name, schema, URL or header"},
}


def _fields(payload: ToolIn | ToolPatch) -> tools.ToolFields:
    given = payload.model_fields_set
    header = payload.secret_header
    return tools.ToolFields(
        builtin=payload.builtin if isinstance(payload, ToolIn) else None,
        name=payload.name,
        description=payload.description,
        method=payload.method,
        url=payload.url,
        parameters=payload.parameters,
        secret_header=(header.name, header.value) if header is not None else None,
        remove_secret_header="secret_header" in given and header is None,
        confirm=payload.confirm,
        enabled=payload.enabled,
    )


def _list(session: SessionDep, assistant_id: int | None) -> list[ToolOut]:
    return [ToolOut.model_validate(t) for t in tools.list_tools(session, assistant_id)]


@router.get("/api/ai/tools", response_model=list[ToolOut])
def list_ai_tools(principal: Admin, session: SessionDep) -> list[ToolOut]:
    """The global AI's tools (never a secret header's value)."""
    return _list(session, None)


@router.post("/api/ai/tools", response_model=ToolOut, status_code=201, responses=_ERRORS)
def create_ai_tool(payload: ToolIn, principal: Admin, session: WriteSessionDep) -> ToolOut:
    """Give the global AI a tool."""
    return ToolOut.model_validate(tools.create(session, None, _fields(payload), principal.actor))


@router.patch("/api/ai/tools/{tool_id}", response_model=ToolOut, responses=_ERRORS)
def update_ai_tool(
    tool_id: Id, payload: ToolPatch, principal: Admin, session: WriteSessionDep
) -> ToolOut:
    """Change a tool of the global AI (`secret_header: null` removes the header)."""
    changed = tools.update(session, None, tool_id, _fields(payload), principal.actor)
    return ToolOut.model_validate(changed)


@router.delete("/api/ai/tools/{tool_id}", status_code=204)
def delete_ai_tool(tool_id: Id, principal: Admin, session: WriteSessionDep) -> Response:
    """Remove a tool of the global AI."""
    tools.delete(session, None, tool_id, principal.actor)
    return Response(status_code=204)


@router.get("/api/assistants/{assistant_id}/tools", response_model=list[ToolOut])
def list_assistant_tools(assistant_id: Id, principal: Admin, session: SessionDep) -> list[ToolOut]:
    """An assistant's tools (never a secret header's value)."""
    return _list(session, assistant_id)


@router.post(
    "/api/assistants/{assistant_id}/tools",
    response_model=ToolOut,
    status_code=201,
    responses=_ERRORS,
)
def create_assistant_tool(
    assistant_id: Id, payload: ToolIn, principal: Admin, session: WriteSessionDep
) -> ToolOut:
    """Give an assistant a tool."""
    made = tools.create(session, assistant_id, _fields(payload), principal.actor)
    return ToolOut.model_validate(made)


@router.patch(
    "/api/assistants/{assistant_id}/tools/{tool_id}", response_model=ToolOut, responses=_ERRORS
)
def update_assistant_tool(
    assistant_id: Id, tool_id: Id, payload: ToolPatch, principal: Admin, session: WriteSessionDep
) -> ToolOut:
    """Change an assistant's tool (`secret_header: null` removes the header)."""
    changed = tools.update(session, assistant_id, tool_id, _fields(payload), principal.actor)
    return ToolOut.model_validate(changed)


@router.delete("/api/assistants/{assistant_id}/tools/{tool_id}", status_code=204)
def delete_assistant_tool(
    assistant_id: Id, tool_id: Id, principal: Admin, session: WriteSessionDep
) -> Response:
    """Remove an assistant's tool."""
    tools.delete(session, assistant_id, tool_id, principal.actor)
    return Response(status_code=204)


def _tried(assistant_id: int | None, tool_id: int, payload: ToolTryIn) -> ToolTryOut:
    result = try_tool(assistant_id, tool_id, payload.arguments)
    return ToolTryOut(
        status=result.status,
        latency_ms=result.latency_ms,
        content=result.content[:MAX_TRY_CHARS],
        error=result.error,
        truncated=result.truncated or len(result.content) > MAX_TRY_CHARS,
    )


_TRY_ERRORS: dict[int | str, dict[str, str]] = {
    404: {"description": "No such tool"},
    422: {"description": "A built-in tool that acts on a conversation"},
}


@router.post("/api/ai/tools/{tool_id}/try", response_model=ToolTryOut, responses=_TRY_ERRORS)
def try_ai_tool(tool_id: Id, payload: ToolTryIn, principal: Admin) -> ToolTryOut:
    """Call a tool of the global AI now with example arguments and show what it answered
    (a confirm tool is called for real too). The shop's failures are a 200 with `error`."""
    return _tried(None, tool_id, payload)


@router.post(
    "/api/assistants/{assistant_id}/tools/{tool_id}/try",
    response_model=ToolTryOut,
    responses=_TRY_ERRORS,
)
def try_assistant_tool(
    assistant_id: Id, tool_id: Id, payload: ToolTryIn, principal: Admin
) -> ToolTryOut:
    """Call an assistant's tool now with example arguments and show what it answered."""
    return _tried(assistant_id, tool_id, payload)
