"""What the API's handlers share: the error body, the client's token, the
request's JSON body and a ``limit`` parameter.

Kept apart from ``s2s.api`` so that the handler modules (``s2s.api``,
``s2s.api_push``) each stay small and import these without a cycle.
Functions here that read the database are called in the threadpool.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from hub import queries
from hub.db import session_scope
from hub.models import Client
from workers.sources import hash_token


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def let_in(request: Request, client: Client | None) -> Client | JSONResponse:
    """The URL's client if the request carries its own token: 404 for an
    unknown client, 401 for a missing token or another's."""
    if client is None:
        return error(404, f"no client {request.path_params['client']!r}")
    if not token_matches(request, client):
        return error(401, "missing or wrong bearer token for this client")
    return client


def authorised_client(request: Request) -> Client | JSONResponse:
    with session_scope() as s:
        return let_in(request, queries.client_by_code(s, request.path_params["client"]))


def token_matches(request: Request, client: Client) -> bool:
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    return bool(
        token
        and client.api_token_hash
        and hmac.compare_digest(hash_token(token), client.api_token_hash)
    )


def json_body(raw: bytes) -> Any | JSONResponse:
    """The parsed body, or a 400 saying why not: never a 500 for what a caller sent."""
    try:
        return json.loads(raw)
    except RecursionError:
        return error(400, "the body is not valid JSON: it is nested too deeply")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = (
            f" at line {exc.lineno} column {exc.colno}"
            if isinstance(exc, json.JSONDecodeError)
            else ""
        )
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        return error(400, f"the body is not valid JSON: {reason}{where}")


def query_limit(request: Request) -> int | JSONResponse:
    raw = request.query_params.get("limit", "100")
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= 1000:
        return error(400, f"limit must be a whole number from 1 to 1000, not {raw!r}")
    return limit
