"""Routes declared once, as specs: registered on the app *and* rendered as its OpenAPI 3.1
document (``GET /openapi.json``), so the document cannot drift from the routes."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ERROR = {"type": "object", "required": ["error"],
         "properties": {"error": {"type": "string"}, "reason": {"type": "string"}}}
STANDARD_ERRORS = {400: "malformed request", 401: "missing, expired or forged token", 413: "body too large"}


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # aiohttp path, "{name}" parameters
    handler: Handler
    summary: str
    body: dict[str, Any] | None = None  # JSON schema of the request body
    query: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> schema (optional params)
    responses: dict[int, str] = field(default_factory=dict)  # status -> description
    auth: str | None = "bearer"  # "bearer", "ticket" (in the path or query) or None
    produces: str | tuple[str, ...] = "application/json"
    path_patterns: dict[str, str] = field(default_factory=dict)
    returns: dict[str, Any] | None = None  # JSON schema of a JSON success body
    returns_by_status: dict[int, dict[str, Any]] = field(default_factory=dict)  # a success status's own body
    headers: dict[str, str] = field(default_factory=dict)  # success response header -> description
    rejects: dict[int, dict[str, Any]] = field(default_factory=dict)  # error status -> its body, when not Error

    @property
    def operation_id(self) -> str:
        return self.handler.__name__


def add_routes(app: web.Application, routes: Sequence[Route], title: str, description: str) -> None:
    for route in routes:
        app.router.add_route(route.method, route.path, route.handler)
    document = openapi_document(title, description, routes)

    async def openapi_json(request: web.Request) -> web.Response:
        return web.json_response(document)

    app.router.add_get("/openapi.json", openapi_json)


def openapi_document(title: str, description: str, routes: Sequence[Route]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1", "description": description},
        "paths": paths,
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
                       "schemas": {"Error": ERROR}},
    }


def _operation(route: Route) -> dict[str, Any]:
    params = [{"name": name, "in": "path", "required": True,
               "schema": {"type": "string", "pattern": route.path_patterns.get(name, "^[A-Za-z0-9._-]{1,128}$")}}
              for name in re.findall(r"{(\w+)(?::[^}]*)?}", route.path)]
    params += [{"name": name, "in": "query", "required": False, "schema": schema}
               for name, schema in route.query.items()]
    responses: dict[str, Any] = {}
    for status, text in sorted({**STANDARD_ERRORS, **route.responses}.items()):
        response: dict[str, Any] = {"description": text}
        if status >= 400:
            body = route.rejects.get(status, {"$ref": "#/components/schemas/Error"})
            response["content"] = {"application/json": {"schema": body}}
        elif status != 204 and _media_types(route):
            response["content"] = {media: {"schema": route.returns_by_status.get(status) or _body_schema(route, media)}
                                   for media in _media_types(route)}
        if status < 400 and route.headers:
            response["headers"] = {name: {"description": about, "schema": {"type": "string"}}
                                   for name, about in route.headers.items()}
        responses[str(status)] = response
    op: dict[str, Any] = {"operationId": route.operation_id, "summary": route.summary, "responses": responses}
    if params:
        op["parameters"] = params
    if route.body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": route.body}}}
    if route.auth == "bearer":
        op["security"] = [{"bearer": []}]
    return op


def _media_types(route: Route) -> tuple[str, ...]:
    return (route.produces,) if isinstance(route.produces, str) else route.produces


def _body_schema(route: Route, media: str) -> dict[str, Any]:
    if media == "application/json":
        if route.returns is None:
            raise ValueError(f"{route.method} {route.path} answers JSON but declares no 'returns' schema")
        return route.returns
    return {"type": "string", "format": "binary"} if media == "application/octet-stream" else {"type": "string"}


def obj(required: Sequence[str], **properties: dict[str, Any]) -> dict[str, Any]:
    """A JSON-schema object with ``properties``, the ``required`` ones listed."""
    return {"type": "object", "required": list(required), "properties": properties}


def array(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` or JSON null (OpenAPI 3.1: a type list)."""
    return {**schema, "type": [schema["type"], "null"]}


STR = {"type": "string", "minLength": 1, "maxLength": 256}
INT = {"type": "integer", "minimum": 0}
ID = {"type": "string", "minLength": 1}  # an identifier the server made (no request limits apply)
BOOL = {"type": "boolean"}
