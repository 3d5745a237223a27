"""The API's description, kept true: one error schema, and every status a route answers.

FastAPI describes what a route declares. What every route shares is added here, once,
from what the application really does: a token check (401, 403), the body reader (400,
413), request validation (422), ids in the path (404) and the database (503). Every
error answers the same JSON shape (`Error`), also where FastAPI would describe its own
validation error.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from relaydesk.channels.sandbox.deps import require_sandbox_access, require_sandbox_mode
from relaydesk.deps import current_principal

ERROR_REF = {"$ref": "#/components/schemas/Error"}

SHARED: dict[int, str] = {
    400: "The request body could not be read (not UTF-8, not JSON, or a broken upload)",
    401: "No valid credentials: an API token (`Authorization: Bearer …`), the panel's "
    "session, or for the sandbox its account (HTTP Basic)",
    403: "The token's or the user's role does not allow this",
    404: "Nothing with this id (or name) exists (sandbox routes: the sandbox is off)",
    413: "The request body is larger than this route accepts",
    422: "The input is not valid: `detail` says what is wrong, `fields` where",
    503: "The database could not complete the request; nothing was changed",
}


class FieldProblem(BaseModel):
    """One input field and what is wrong with it."""

    field: str
    problem: str


class ErrorOut(BaseModel):
    """Every error the API answers: a sentence for a person and a code for a program."""

    model_config = ConfigDict(extra="allow")

    detail: str = Field(description="what went wrong, in words a person understands")
    code: str = Field(description="a stable code, e.g. invalid, not_found, conflict")
    fields: list[FieldProblem] | None = Field(
        default=None, description="for invalid input: the fields and their problems"
    )


def _uses(dependant: Dependant, call: Any) -> bool:
    return any(d.call is call or _uses(d, call) for d in dependant.dependencies)


def describe(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document of `app`, with the shared statuses and the one error schema."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas["FieldProblem"] = FieldProblem.model_json_schema()
    error = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
    error.pop("$defs", None)
    schemas["Error"] = error
    doc["components"]["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "an API token (rd_…)"}
    }
    for route in _api_routes(app):
        if not route.include_in_schema:
            continue
        for method in route.methods or ():
            operation = doc["paths"].get(route.path_format, {}).get(method.lower())
            if operation is not None:
                _complete(operation, route, method)
    app.openapi_schema = doc
    return doc


def _api_routes(app: FastAPI) -> Iterator[APIRoute]:
    """Every API route, with the prefixes of the routers it was included through."""
    contexts = getattr(routing, "iter_route_contexts", None)
    if contexts is None:  # FastAPI before included routers were kept as they are
        yield from (route for route in app.routes if isinstance(route, APIRoute))
        return
    for context in contexts(app.routes):
        if isinstance(context.original_route, APIRoute):
            yield cast(APIRoute, context)  # it answers for the route, prefixes applied


# Probes that describe their failures in their own body, not the shared error schema.
OWN_ERROR_BODIES = ("/health", "/ready")


def _complete(operation: dict[str, Any], route: APIRoute, method: str) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    statuses = {503}
    if _uses(route.dependant, current_principal):
        statuses |= {401, 403}
        operation["security"] = [{"bearer": []}]
    if _uses(route.dependant, require_sandbox_access):
        statuses.add(401)  # the sandbox account (Basic) or an operator's token
    if _uses(route.dependant, require_sandbox_mode):
        statuses.add(404)  # the panel switched this server to live Twilio
    if "requestBody" in operation:
        statuses |= {400, 413, 422}
    if operation.get("parameters"):
        statuses.add(422)
    if route.dependant.path_params:
        statuses.add(404)
    for shared in statuses:
        responses.setdefault(str(shared), {"description": SHARED[shared]})
    # Outside /api a route also serves the panel's browser, which gets its error as a page.
    browsers = not route.path.startswith(("/api/", "/sandbox/", "/metrics"))
    for status, response in responses.items():
        if status[0] in "45" and route.path not in OWN_ERROR_BODIES:
            response["content"] = {"application/json": {"schema": ERROR_REF}}
            if browsers:
                response["content"]["text/html"] = {"schema": {"type": "string"}}
