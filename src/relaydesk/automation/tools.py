"""Tools: the business's own HTTP APIs that an assistant or the global AI may call.

A tool is a name the model calls, a description it reads, GET or POST to a URL with
`{placeholders}` filled from the arguments, the arguments' JSON Schema, an optional
secret header and whether the customer must confirm first. Everything is checked when
it is saved: the model's name rules, a schema that is an object with properties (and a
valid JSON Schema), placeholders that are properties, and a URL outside the server's
own network unless TOOLS_ALLOW_PRIVATE_NETWORKS is set. The secret header's value is
write-only: encrypted at rest, never returned, logged or audited.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from relaydesk.automation import assistants
from relaydesk.automation.builtins import BUILTINS
from relaydesk.automation.models import AssistantTool
from relaydesk.core import audit
from relaydesk.core.config import get_settings
from relaydesk.core.crypto import encrypt
from relaydesk.core.errors import Conflict, Invalid, NotFound
from relaydesk.core.i18n import N_
from relaydesk.core.netguard import BlockedAddress, check_public_url

SETTING = "TOOLS_ALLOW_PRIVATE_NETWORKS"
GLOBAL = "ai"
MAX_TOOLS = 20  # per assistant (and for the global AI): what one model call carries
NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # OpenAI's rule for function names
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,100}$")
# Headers relaydesk sets itself or that would change how the request travels.
RESERVED_HEADERS = frozenset(
    {"host", "content-length", "content-type", "transfer-encoding", "connection", "idempotency-key"}
)
MAX_SCHEMA_CHARS = 20_000


def owner_of(assistant_id: int | None) -> str:
    return GLOBAL if assistant_id is None else f"assistant:{assistant_id}"


def check_url(url: str) -> None:
    """Refuse (Invalid) a URL that is not http(s) or leads into the server's own network.

    Placeholders are checked with a harmless value in their place."""
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise Invalid(N_("A URL cannot hold spaces or control characters"), params={}, field="url")
    if "{" in urlsplit(url).netloc:
        raise Invalid(
            N_("A placeholder may fill the path or the query, not the host"), params={}, field="url"
        )
    probe = PLACEHOLDER.sub("x", url)
    try:
        if get_settings().tools_allow_private_networks:
            parts = urlsplit(probe)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise BlockedAddress(N_("'%(url)s' is not an http(s) address"), params={"url": url})
        else:
            check_public_url(probe, setting=SETTING)
    except BlockedAddress as exc:
        raise Invalid(exc.template or str(exc), params=exc.params, field="url") from None
    except ValueError:
        raise Invalid(N_("'%(url)s' is not an http(s) address"), params={"url": url}) from None


def check_parameters(url: str, schema: dict[str, Any]) -> None:
    """The parameters must be an object schema with properties, valid as JSON Schema,
    holding every placeholder of the URL."""
    if len(str(schema)) > MAX_SCHEMA_CHARS:
        raise Invalid(
            N_("The parameters' schema is too long (at most %(limit)s characters)"),
            params={"limit": MAX_SCHEMA_CHARS},
            field="parameters",
        )
    properties = schema.get("properties")
    if schema.get("type") != "object" or not isinstance(properties, dict) or not properties:
        raise Invalid(
            N_("The parameters must be a JSON Schema of type object with properties"),
            params={},
            field="parameters",
        )
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise Invalid(
            N_("The parameters are not a valid JSON Schema: %(reason)s"),
            params={"reason": exc.message[:200]},
            field="parameters",
        ) from None
    missing = sorted(set(PLACEHOLDER.findall(url)) - set(properties))
    if missing:
        raise Invalid(
            N_("The URL's placeholders must be parameters: %(names)s"),
            params={"names": ", ".join(missing)},
            field="url",
        )


def _check_header(name: str | None) -> None:
    if name is None:
        return
    if not HEADER_NAME.match(name) or name.lower() in RESERVED_HEADERS:
        raise Invalid(
            N_("'%(name)s' cannot be used as the secret header's name"),
            params={"name": name},
            field="secret_header",
        )


def _check_name(session: Session, owner: str, name: str, tool_id: int | None = None) -> None:
    if not NAME.match(name):
        raise Invalid(
            N_("A tool's name has 1-64 letters, digits, '_' or '-' (no spaces)"),
            params={},
            field="name",
        )
    clash = select(AssistantTool.id).where(AssistantTool.owner == owner, AssistantTool.name == name)
    if tool_id is not None:
        clash = clash.where(AssistantTool.id != tool_id)
    if session.scalar(clash) is not None:
        raise Conflict(N_("A tool named '%(name)s' exists already"), params={"name": name})


def _owner(session: Session, assistant_id: int | None) -> str:
    if assistant_id is not None:
        assistants.get(session, assistant_id)  # 404 for an unknown assistant
    return owner_of(assistant_id)


def list_tools(session: Session, assistant_id: int | None) -> list[AssistantTool]:
    owner = _owner(session, assistant_id)
    return list(
        session.scalars(
            select(AssistantTool).where(AssistantTool.owner == owner).order_by(AssistantTool.id)
        )
    )


def get(session: Session, assistant_id: int | None, tool_id: int) -> AssistantTool:
    owner = _owner(session, assistant_id)
    tool = session.get(AssistantTool, tool_id)
    if tool is None or tool.owner != owner:
        raise NotFound(N_("No tool with id %(id)s"), params={"id": tool_id})
    return tool


@dataclass
class ToolFields:
    """What a request sets (None: not given)."""

    builtin: str | None = None
    name: str | None = None
    description: str | None = None
    method: str | None = None
    url: str | None = None
    parameters: dict[str, Any] | None = None
    secret_header: tuple[str, str] | None = None
    remove_secret_header: bool = False
    confirm: bool | None = None
    enabled: bool | None = None


def create(
    session: Session, assistant_id: int | None, fields: ToolFields, actor: str
) -> AssistantTool:
    owner = _owner(session, assistant_id)
    count = session.scalar(
        select(func.count()).select_from(AssistantTool).where(AssistantTool.owner == owner)
    )
    if (count or 0) >= MAX_TOOLS:
        raise Conflict(N_("At most %(limit)s tools each"), params={"limit": MAX_TOOLS})
    if fields.builtin is not None:
        tool = _builtin(owner, assistant_id, fields)
    else:
        _require(fields)
        assert fields.name is not None and fields.url is not None
        assert fields.parameters is not None
        tool = AssistantTool(
            owner=owner,
            assistant_id=assistant_id,
            name=fields.name,
            description=fields.description or "",
            method=fields.method or "GET",
            url=fields.url,
            parameters=fields.parameters,
            confirm=bool(fields.confirm),
            enabled=True if fields.enabled is None else fields.enabled,
        )
    _apply(session, tool, fields)
    session.add(tool)
    session.flush()
    audit.record(session, actor, "tool.created", str(tool.id), _audited(tool))
    return tool


def _require(fields: ToolFields) -> None:
    for name in ("name", "url", "parameters"):
        if getattr(fields, name) is None:
            raise Invalid(N_("A tool needs a %(field)s"), params={"field": name}, field=name)


def _builtin(owner: str, assistant_id: int | None, fields: ToolFields) -> AssistantTool:
    """A built-in tool: relaydesk's parameters, no method, URL or secret header."""
    assert fields.builtin is not None
    _only_builtin_fields(fields)
    spec = BUILTINS[fields.builtin]
    return AssistantTool(
        owner=owner,
        assistant_id=assistant_id,
        builtin=fields.builtin,
        name=fields.name or fields.builtin,
        description=fields.description or spec.description,
        method=None,
        url=None,
        parameters=spec.parameters,
        confirm=bool(fields.confirm),
        enabled=True if fields.enabled is None else fields.enabled,
    )


def _only_builtin_fields(fields: ToolFields) -> None:
    given = [
        name
        for name in ("method", "url", "parameters", "secret_header")
        if getattr(fields, name) is not None
    ]
    if given or fields.remove_secret_header:
        raise Invalid(
            N_("A built-in tool has no method, URL, parameters or secret header of its own"),
            params={},
            field=given[0] if given else "secret_header",
        )


def update(
    session: Session, assistant_id: int | None, tool_id: int, fields: ToolFields, actor: str
) -> AssistantTool:
    tool = get(session, assistant_id, tool_id)
    if tool.builtin is not None:
        _only_builtin_fields(fields)
    for name in ("name", "description", "method", "url", "parameters", "confirm", "enabled"):
        value = getattr(fields, name)
        if value is not None:
            setattr(tool, name, value)
    _apply(session, tool, fields)
    session.flush()
    audit.record(session, actor, "tool.changed", str(tool.id), _audited(tool))
    return tool


def delete(session: Session, assistant_id: int | None, tool_id: int, actor: str) -> None:
    tool = get(session, assistant_id, tool_id)
    audit.record(session, actor, "tool.deleted", str(tool.id), {"name": tool.name})
    session.delete(tool)


def _apply(session: Session, tool: AssistantTool, fields: ToolFields) -> None:
    """Check the tool as it will be stored, and set (or remove) its secret header."""
    _check_name(session, tool.owner, tool.name, tool.id)
    if tool.builtin is not None:
        return
    assert tool.url is not None
    check_url(tool.url)
    check_parameters(tool.url, tool.parameters)
    if fields.remove_secret_header:
        tool.secret_header_name = tool.secret_header_value = None
    if fields.secret_header is not None:
        name, value = fields.secret_header
        _check_header(name)
        tool.secret_header_name, tool.secret_header_value = name, encrypt(value)


def _audited(tool: AssistantTool) -> dict[str, Any]:
    """What the audit log keeps of a tool: never the secret header's value."""
    return {
        "name": tool.name,
        "builtin": tool.builtin,
        "method": tool.method,
        "url": tool.url,
        "confirm": tool.confirm,
        "enabled": tool.enabled,
        "secret_header": tool.secret_header_name,
    }
