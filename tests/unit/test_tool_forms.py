"""The panel's tool forms: the builder's rows, the write-only secret header, the JSON typed."""

from __future__ import annotations

import json

import pytest

from relaydesk.automation.builtins import BUILTINS, HAND_OVER
from relaydesk.automation.tool_forms import (
    arguments,
    builtin_fields,
    example_arguments,
    http_fields,
    param_rows,
)
from relaydesk.core.errors import Invalid

SCHEMA = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string", "description": "the order number"},
        "express": {"type": "boolean"},
    },
    "required": ["order_id"],
}
FORM = {
    "name": "order_status",
    "description": "Where an order is",
    "method": "GET",
    "url": "https://shop.example.com/api/orders/{order_id}",
    "parameters": json.dumps(SCHEMA),
    "enabled": "on",
}


def test_a_plain_schema_becomes_rows_and_one_the_rows_cannot_hold_does_not() -> None:
    rows = param_rows(SCHEMA)
    assert rows is not None
    assert [(r.name, r.type, r.description, r.required) for r in rows] == [
        ("order_id", "string", "the order number", True),
        ("express", "boolean", "", False),
    ]
    enum = {"type": "object", "properties": {"size": {"type": "string", "enum": ["S", "M"]}}}
    nested = {"type": "object", "properties": {"address": {"type": "object"}}}
    limited = {**SCHEMA, "additionalProperties": False}
    assert param_rows(enum) is None and param_rows(nested) is None and param_rows(limited) is None


def test_try_it_starts_from_every_parameter_with_an_empty_value() -> None:
    assert json.loads(example_arguments(SCHEMA)) == {"order_id": "", "express": False}
    assert arguments("  ") == {}
    with pytest.raises(Invalid, match="line 1, column 2"):
        arguments("{,}")
    with pytest.raises(Invalid, match="must be a JSON object"):
        arguments('["A-123"]')


def test_the_secret_headers_value_is_kept_unless_typed_again_or_removed() -> None:
    kept = http_fields(
        FORM | {"secret_header_name": "X-Api-Key"}, new=False, stored_header="X-Api-Key"
    )
    assert kept.secret_header is None and kept.remove_secret_header is False
    typed = http_fields(
        FORM | {"secret_header_name": "X-Api-Key", "secret_header_value": " sk_new "},
        new=False,
        stored_header="X-Api-Key",
    )
    assert typed.secret_header == ("X-Api-Key", "sk_new")
    removed = http_fields(
        FORM | {"secret_header_name": "X-Api-Key", "remove_secret_header": "on"},
        new=False,
        stored_header="X-Api-Key",
    )
    assert removed.remove_secret_header is True and removed.secret_header is None
    with pytest.raises(Invalid, match="enter its value again"):
        http_fields(FORM | {"secret_header_name": "X-Key"}, new=False, stored_header="X-Api-Key")
    with pytest.raises(Invalid, match="value too"):
        http_fields(FORM | {"secret_header_name": "X-Api-Key"}, new=True)
    with pytest.raises(Invalid, match="a name"):
        http_fields(FORM | {"secret_header_value": "sk"}, new=True)


def test_the_form_is_the_services_fields() -> None:
    made = http_fields(FORM | {"confirm": "on"}, new=True)
    assert (made.name, made.method, made.parameters, made.confirm, made.enabled) == (
        "order_status",
        "GET",
        SCHEMA,
        True,
        True,
    )
    unnamed = http_fields(FORM | {"name": "", "url": "", "enabled": ""}, new=True)
    assert (unnamed.name, unnamed.url, unnamed.enabled) == (None, None, False)  # "needs a name"
    with pytest.raises(Invalid, match="at least one parameter"):
        http_fields(FORM | {"parameters": " "}, new=True)
    with pytest.raises(Invalid):
        http_fields(FORM | {"method": "DELETE"}, new=True)
    with pytest.raises(Invalid):
        http_fields(FORM | {"name": "x" * 65}, new=True)
    builtin = builtin_fields({"name": "call_a_person", "description": ""}, HAND_OVER)
    assert builtin.description == BUILTINS[HAND_OVER].description
    assert builtin.enabled is False and builtin.url is None and builtin.parameters is None
