"""The error answers of each operation in the OpenAPI document, derived from its route:
what its parameters, body and session can fail with, and what its endpoint and
dependencies are known to answer. All of them with the error envelope as schema."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator, Mapping
from http import HTTPStatus
from typing import Any, get_args

import fastapi.routing
from fastapi import FastAPI, params
from fastapi.routing import APIRoute

from tallyhub.core.http import Days, TransactionalRoute

ERROR_SCHEMA_NAME = "Error"
_ERROR_SCHEMA: dict[str, Any] = {
    "title": ERROR_SCHEMA_NAME,
    "description": "Every error answer: a code to act on and a message for people.",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "examples": ["validation_error"]},
                "message": {"type": "string"},
                "fields": {
                    "description": "(validation_error) each field found wrong",
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["field", "message"],
                        "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                    },
                },
            },
        }
    },
}
_ERROR_DESCRIPTIONS = {
    400: "The request cannot be acted on as it stands (the message says why)",
    401: "Missing or wrong credentials",
    403: "Signed in, but not allowed to do this",
    404: "No such resource (or it is not yours)",
    409: "Conflicts with the current state",
    413: "The request body is over the size limit",
    422: "A parameter or field is missing or invalid (each is named)",
    429: "Too many failed attempts from this address; retry after Retry-After seconds",
    503: "Overloaded, or the database is unavailable; retry after Retry-After seconds",
}

Answers = Mapping[Callable[..., Any], Collection[int]]
"""The error statuses a dependency or endpoint function can answer, for OpenAPI."""


def dependency_of(annotated: Any) -> Callable[..., Any]:
    """The function behind an `Annotated[T, Depends(function)]` alias."""
    for extra in get_args(annotated)[1:]:
        if isinstance(extra, params.Depends) and extra.dependency is not None:
            return extra.dependency
    raise TypeError(f"{annotated!r} names no dependency")


def document_errors(app: FastAPI, answers: Answers) -> None:
    """Make `app.openapi()` list the error answers each operation can give, with the error
    envelope as their schema. They are derived from the route: parameters or a body → 422,
    a body → 413, a path parameter → 404, a database session → 503 (pool exhausted); plus
    what `answers` says of its endpoint or any dependency it uses (an auth dependency →
    401/403, a rate-limited one → 429, …), plus what the route declares in `responses`."""
    build = app.openapi
    answers = {dependency_of(Days): (422,), **answers}

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for route, operation in _operations(app, schema):
                _add_errors(operation, _error_statuses(route, operation, answers))
            _use_error_schema(schema)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def _operations(app: FastAPI, schema: dict[str, Any]) -> Iterator[tuple[Any, dict[str, Any]]]:
    """Each API route (its full path, endpoint and dependencies) with its operations."""
    for route in _api_routes(app):
        path = schema["paths"].get(route.path_format, {})
        for method in sorted(route.methods or ()):
            if method.lower() in path:
                yield route, path[method.lower()]


def _api_routes(app: FastAPI) -> Iterator[Any]:
    # FastAPI ≥ 0.160 keeps an included router whole and resolves its routes (with their
    # prefix) through iter_route_contexts; before, `app.routes` listed them flat.
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    for route in contexts(app.routes) if contexts else app.routes:
        if isinstance(_defined(route), APIRoute) and getattr(route, "include_in_schema", True):
            yield route


def _defined(route: Any) -> Any:
    """The route as its router defined it (a TransactionalRoute, say)."""
    return getattr(route, "original_route", route)


def _calls(route: Any) -> Iterator[Callable[..., Any]]:
    """The route's endpoint and every dependency it resolves, however deep."""
    yield route.endpoint
    pending = list(route.dependant.dependencies)
    while pending:
        dependant = pending.pop()
        if dependant.call is not None:
            yield dependant.call
        pending.extend(dependant.dependencies)


def _error_statuses(route: Any, operation: dict[str, Any], answers: Answers) -> set[int]:
    parameters = operation.get("parameters", [])
    found: set[int] = set()
    if parameters or "requestBody" in operation:
        found.add(422)
    if "requestBody" in operation:
        found.add(413)
    if any(p.get("in") == "path" for p in parameters):
        found.add(404)
    if isinstance(_defined(route), TransactionalRoute):
        found.add(503)
    for call in _calls(route):
        found.update(answers.get(call, ()))
    return found


def _add_errors(operation: dict[str, Any], statuses: set[int]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for code in statuses:
        description = _ERROR_DESCRIPTIONS.get(code) or HTTPStatus(code).phrase
        answer = responses.setdefault(str(code), {"description": description})
        if answer.get("description") == "Validation Error":  # FastAPI's, for its own schema
            answer["description"] = description
    envelope = {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}}
    }
    for status, response in responses.items():
        if status.isdigit() and int(status) >= 400 and not _own_schema(response):
            response["content"] = envelope
    operation["responses"] = dict(sorted(responses.items()))


def _own_schema(response: dict[str, Any]) -> bool:
    """Whether a route declared its own body for this error (the call-center API keeps
    the seed's `{"success": false, "error": …}`); FastAPI's validation body is not one."""
    ref = response.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
    return bool(ref) and not str(ref).endswith("/HTTPValidationError")


def _use_error_schema(schema: dict[str, Any]) -> None:
    """Add the envelope's schema; drop FastAPI's 422 schemas that no answer uses now."""
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas[ERROR_SCHEMA_NAME] = _ERROR_SCHEMA
    for unused in ("HTTPValidationError", "ValidationError"):
        text = json.dumps(schema)
        if f'"#/components/schemas/{unused}"' not in text:
            schemas.pop(unused, None)
