"""The small vocabulary the OpenAPI document is written in.

Shared by ``s2s.openapi`` (the document and most of its groups) and the
modules that hold a group of paths of their own (``s2s.openapi_push``), so
that every group spells a schema, an answer and an error the same way.
"""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]

CLIENT = "/api/v1/clients/{client}"
STRING: Json = {"type": "string"}
INT: Json = {"type": "integer"}
BOOL: Json = {"type": "boolean"}
WHEN: Json = {"type": "string", "format": "date-time"}
WHEN_OR_NULL: Json = {"type": ["string", "null"], "format": "date-time"}
STRING_OR_NULL: Json = {"type": ["string", "null"]}


def ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(name: str) -> Json:
    return {"anyOf": [ref(name), {"type": "null"}]}


def obj(properties: Json, required: list[str] | None = None, closed: bool = True) -> Json:
    """An object schema; ``closed`` when the handler builds exactly these keys."""
    out: Json = {"type": "object", "properties": properties}
    out["required"] = list(properties) if required is None else required
    if closed:
        out["additionalProperties"] = False
    return out


def answer(description: str, schema: Json) -> Json:
    """A JSON response."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def error(description: str) -> Json:
    """A response whose body is ``{"error": "<a sentence>"}``."""
    return answer(description, ref("Error"))


def path_param(name: str, description: str, schema: Json | None = None) -> Json:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema or STRING,
    }


def limit_param(description: str, default: int, maximum: int) -> Json:
    return {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "integer", "minimum": 1, "maximum": maximum, "default": default},
    }


CLIENT_PARAM = path_param("client", "The client's code, as given to `s2s client add`.")
AUTH_ERRORS: Json = {
    "401": error("No bearer token, a wrong one, or another client's."),
    "404": error("No such client (or, below it, no such source, channel, order or record)."),
}
