"""The panel's tool forms: form values as the service's ToolFields, the parameters as the
form builder's rows, and example arguments for "try it" (the REST API has tools_api)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from relaydesk.automation.builtins import BUILTINS, HAND_OVER, SCHEDULE
from relaydesk.automation.models import AssistantTool
from relaydesk.automation.schemas import ToolOut, ToolPatch
from relaydesk.automation.tools import ToolFields
from relaydesk.core.errors import Invalid
from relaydesk.core.i18n import N_
from relaydesk.web.forms import form_problem

PARAM_TYPES = ("string", "number", "integer", "boolean")
EMPTY_VALUES: dict[str, Any] = {"string": "", "number": 0, "integer": 0, "boolean": False}


@dataclass(frozen=True)
class ParamRow:
    """One parameter as the form builder shows it."""

    name: str
    type: str
    description: str
    required: bool


@dataclass(frozen=True)
class ToolView:
    """A tool as the Tools section shows it (never its secret header's value)."""

    tool: ToolOut
    rows: list[ParamRow] | None  # None: the schema says more than the rows can
    schema: str  # the parameters as indented JSON
    example: str  # arguments to start "try it" from
    triable: bool  # hand_over and schedule_message act on a conversation: the test box


def shown(tool: AssistantTool) -> ToolView:
    """What the panel shows of a tool."""
    return ToolView(
        tool=ToolOut.model_validate(tool),
        rows=param_rows(tool.parameters),
        schema=json.dumps(tool.parameters, ensure_ascii=False, indent=2),
        example=example_arguments(tool.parameters),
        triable=tool.builtin not in (HAND_OVER, SCHEDULE),
    )


def param_rows(schema: Mapping[str, Any]) -> list[ParamRow] | None:
    """The schema as rows of name, type, description and required; None when it holds
    more than that (nested objects, enums, limits): then only its JSON is edited."""
    properties = schema.get("properties")
    required = schema.get("required", [])
    if (
        set(schema) - {"type", "properties", "required"}
        or schema.get("type") != "object"
        or not isinstance(properties, dict)
        or not isinstance(required, list)
        or set(required) - set(properties)
    ):
        return None
    rows = []
    for name, spec in properties.items():
        if (
            not isinstance(spec, dict)
            or set(spec) - {"type", "description"}
            or spec.get("type") not in PARAM_TYPES
            or not isinstance(spec.get("description", ""), str)
        ):
            return None
        rows.append(ParamRow(name, spec["type"], spec.get("description", ""), name in required))
    return rows


def example_arguments(schema: Mapping[str, Any]) -> str:
    """Every parameter with an empty value of its type, as JSON to fill in."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return "{}"
    example = {
        name: EMPTY_VALUES.get(str(spec.get("type")) if isinstance(spec, dict) else "", "")
        for name, spec in properties.items()
    }
    return json.dumps(example, ensure_ascii=False, indent=2)


def _json_object(text: str, field: str, not_object: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Invalid(
            N_("This is not valid JSON (line %(line)s, column %(column)s): %(reason)s"),
            params={"line": exc.lineno, "column": exc.colno, "reason": exc.msg},
            field=field,
        ) from None
    if not isinstance(value, dict):
        raise Invalid(not_object, params={}, field=field)
    return value


def parameters(text: str) -> dict[str, Any]:
    """The parameters' JSON Schema as typed (the builder's rows write it too)."""
    if not text.strip():
        raise Invalid(
            N_("Add at least one parameter (or write the JSON Schema)"),
            params={},
            field="parameters",
        )
    return _json_object(
        text,
        "parameters",
        N_("The parameters must be a JSON Schema of type object with properties"),
    )


def arguments(text: str) -> dict[str, Any]:
    """Example arguments for "try it": a JSON object (empty: none)."""
    if not text.strip():
        return {}
    return _json_object(
        text, "arguments", N_('The arguments must be a JSON object, e.g. {"order_id": "A-123"}')
    )


def _text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _bounded(values: dict[str, Any]) -> None:
    """Refuse what the API refuses too: too long, or a method other than GET and POST."""
    try:
        ToolPatch.model_validate({k: v for k, v in values.items() if v != ""})
    except ValidationError as exc:
        raise form_problem(exc) from None


def http_fields(
    form: Mapping[str, Any], *, new: bool, stored_header: str | None = None
) -> ToolFields:
    """An HTTP tool's form as the service's fields; `stored_header` is the name of the
    secret header the tool has now. The header's value is write-only: left empty, the
    stored one stays."""
    values: dict[str, Any] = {
        "name": _text(form, "name").strip(),
        "description": _text(form, "description").strip(),
        "method": _text(form, "method") or "GET",
        "url": _text(form, "url").strip(),
        "confirm": form.get("confirm") == "on",
        "enabled": form.get("enabled") == "on",
    }
    _bounded(values)
    header_name = _text(form, "secret_header_name").strip()
    header_value = _text(form, "secret_header_value").strip()
    remove = form.get("remove_secret_header") == "on" and stored_header is not None
    secret = None
    if header_value and not remove:
        if not header_name:
            raise Invalid(
                N_("Give the secret header a name, e.g. X-Api-Key"),
                params={},
                field="secret_header",
            )
        if len(header_value) > 4000:
            raise Invalid(
                N_("The secret header's value is longer than 4,000 characters"),
                params={},
                field="secret_header",
            )
        secret = (header_name, header_value)
    elif not remove and header_name != (stored_header or ""):
        raise Invalid(
            N_("Enter the secret header's value too")
            if stored_header is None
            else N_("To rename the secret header, enter its value again (or remove it)"),
            params={},
            field="secret_header",
        )
    return ToolFields(
        # A new tool without a name or URL is refused as such; a saved one keeps neither.
        name=values["name"] or (None if new else ""),
        description=values["description"],
        method=values["method"],
        url=values["url"] or (None if new else ""),
        parameters=parameters(_text(form, "parameters")),
        secret_header=secret,
        remove_secret_header=remove,
        confirm=values["confirm"],
        enabled=values["enabled"],
    )


def builtin_fields(form: Mapping[str, Any], builtin: str) -> ToolFields:
    """A built-in tool's form: its name, description (empty: relaydesk's), confirm and
    enabled."""
    values: dict[str, Any] = {
        "name": _text(form, "name").strip(),
        "description": _text(form, "description").strip(),
    }
    _bounded(values)
    return ToolFields(
        name=values["name"],
        description=values["description"] or BUILTINS[builtin].description,
        confirm=form.get("confirm") == "on",
        enabled=form.get("enabled") == "on",
    )


def new_builtin(name: str) -> ToolFields:
    """One of relaydesk's built-in tools, as it comes."""
    if name not in BUILTINS:
        raise Invalid(N_("There is no built-in tool '%(name)s'"), params={"name": name})
    return ToolFields(builtin=name)
