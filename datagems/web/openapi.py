"""The OpenAPI 3.1 document, built from the routes table (``app[ROUTE_SPECS]``)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from datagems.web.keys import ROUTE_SPECS

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "retryAfter": {"type": "integer", "description": "seconds, with 429 (as Retry-After)"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "required": ["error"],
}
STATUS_TEXT = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    400: "Bad request (malformed or out-of-bounds input)",
    401: "No valid session",
    403: "Forbidden (role, or a cross-origin request with a cookie session)",
    404: "Not found, or not the caller's",
    409: "Conflict",
    413: "Request body too large",
    429: "Rate-limited (see Retry-After)",
    502: "The provider (LLM, SMTP) failed",
    503: "A dependency is not configured or not reachable",
}
CONTENT = {
    "json": {"application/json": {"schema": {"type": "object"}}},
    "html": {"text/html": {"schema": {"type": "string"}}},
    "sse": {"text/event-stream": {"schema": {"type": "string"}}},
    "text": {"text/plain": {"schema": {"type": "string"}}},
    "file": {
        "application/json": {"schema": {"type": "array"}},
        "application/x-ndjson": {"schema": {"type": "string"}},
        "text/csv": {"schema": {"type": "string"}},
    },
}


def build(specs: Any, *, title: str = "DataGems", version: str = "0.1.0") -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    components: dict[str, Any] = {"Error": ERROR_SCHEMA}
    for route in specs:
        operation: dict[str, Any] = {
            "operationId": f"{route.method.lower()}_{_slug(route.path)}",
            "summary": route.summary,
            "tags": [route.tag],
            "responses": {
                str(route.status): {
                    "description": STATUS_TEXT.get(route.status, "OK"),
                    "content": CONTENT[route.kind],
                }
            },
        }
        if route.public:
            operation["security"] = []
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"{(\w+)}", route.path)
        ]
        for param in route.query:
            schema: dict[str, Any] = {"type": param.type}
            if param.enum:
                schema["enum"] = list(param.enum)
            parameters.append(
                {
                    "name": param.name,
                    "in": "query",
                    "required": param.required,
                    "description": param.description,
                    "schema": schema,
                }
            )
        if parameters:
            operation["parameters"] = parameters
        if route.body is not None:
            name = route.body.__name__
            components[name] = route.body.model_json_schema(
                by_alias=True, ref_template="#/components/schemas/{model}"
            )
            for def_name, definition in components[name].pop("$defs", {}).items():
                components[def_name] = definition
            operation["requestBody"] = {
                "required": route.method != "DELETE",
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}
                },
            }
        for status in route.errors or ((401,) if not route.public else ()):
            operation["responses"][str(status)] = {
                "description": STATUS_TEXT.get(status, "Error"),
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    paths["/static/{filename}"] = {
        "get": {
            "operationId": "get_static",
            "summary": "Static files of the dashboard (CSS, JS)",
            "tags": ["pages"],
            "security": [],
            "parameters": [
                {"name": "filename", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {"200": {"description": "The file"}},
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Synthetic datasets, one validated LLM call per record.",
        },
        "servers": [{"url": "/"}],
        "components": {
            "schemas": components,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "datagen_session"},
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
        },
        "security": [{"session": []}, {"bearer": []}],
        "paths": paths,
    }


def _slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", path.lower()).strip("_") or "root"


async def openapi_document(request: web.Request) -> web.Response:
    return web.json_response(build(request.app[ROUTE_SPECS].values()))
