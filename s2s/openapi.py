"""The OpenAPI 3.1 document of the HTTP API, served at ``/openapi.json``.

Written by hand from the handlers in ``s2s.api`` rather than generated, so
that it says what callers actually get (every status, every error body);
``tests/unit/test_openapi.py`` and ``tests/integration/test_openapi.py`` hold
it to the app's routes and to real answers, so it cannot drift unnoticed.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from hub.schemas.customers import ADDRESS_FIELDS
from hub.schemas.orders import OrderCustomerSchema

Json = dict[str, Any]

_CLIENT = "/api/v1/clients/{client}"
_STRING: Json = {"type": "string"}
_INT: Json = {"type": "integer"}
_BOOL: Json = {"type": "boolean"}
_WHEN: Json = {"type": "string", "format": "date-time"}
_WHEN_OR_NULL: Json = {"type": ["string", "null"], "format": "date-time"}
_STRING_OR_NULL: Json = {"type": ["string", "null"]}
# Prices and quantities are read leniently ("12.50" or 12.5), as the order schema does.
_NUMBER_LIKE: Json = {"type": ["number", "string"]}
# Taken from the order schema itself, so that a field added there shows here.
_CUSTOMER_FIELDS = tuple(OrderCustomerSchema().fields)


def _ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(name: str) -> Json:
    return {"anyOf": [_ref(name), {"type": "null"}]}


def _object(properties: Json, required: list[str] | None = None, closed: bool = True) -> Json:
    """An object schema; ``closed`` when the handler builds exactly these keys."""
    out: Json = {"type": "object", "properties": properties}
    out["required"] = list(properties) if required is None else required
    if closed:
        out["additionalProperties"] = False
    return out


def _json(description: str, schema: Json) -> Json:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> Json:
    return _json(description, _ref("Error"))


def _path_param(name: str, description: str, schema: Json | None = None) -> Json:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema or _STRING,
    }


_CLIENT_PARAM = _path_param("client", "The client's code, as given to `s2s client add`.")
_SOURCE_PARAM = _path_param("source", "One of the client's sources (its ERP), by code.")
_AUTH_ERRORS: Json = {
    "401": _error("No bearer token, a wrong one, or another client's."),
    "404": _error("No such client (or, below it, no such source, order or record)."),
}


# --- components -----------------------------------------------------------------------


def _run_schema() -> Json:
    counts: tuple[str, ...] = ("fetched", "created", "updated", "unchanged", "deleted", "ignored")
    counts += ("quarantined", "pages_done")
    return _object(
        {
            "id": _INT,
            "stream": _STRING,
            "status": {"type": "string", "examples": ["running", "succeeded", "failed"]},
            "requested_by": {"type": "string", "examples": ["schedule", "api", "cli"]},
            **{name: _INT for name in counts},
            "pages_total": {"type": ["integer", "null"]},
            "error": _STRING_OR_NULL,
            "created_at": _WHEN,
            "finished_at": _WHEN_OR_NULL,
        }
    )


def _status_schemas() -> Json:
    stream = _object(
        {
            "source": _STRING,
            "kind": {"type": "string", "description": "The connector kind, e.g. `sql`."},
            "stream": {"type": "string", "examples": ["products", "customers"]},
            "enabled": _BOOL,
            "schedule": {"type": "string", "examples": ["every 15m", "cron 0 * * * *"]},
            "paused": _BOOL,
            "next_due_at": _WHEN_OR_NULL,
            "resync_queued": _BOOL,
            "last_run": _nullable("Run"),
        }
    )
    return {
        "Run": _run_schema(),
        "RunList": _object({"runs": {"type": "array", "items": _ref("Run")}}),
        "StreamStatus": stream,
        "ClientStatus": _object(
            {"client": _STRING, "streams": {"type": "array", "items": _ref("StreamStatus")}}
        ),
        "Health": _object(
            {
                "status": {"enum": ["ok", "degraded"]},
                "database": {
                    "type": "string",
                    "description": '"ok" or "unreachable: <exception name>".',
                },
                "broker": {"enum": ["ok", "unreachable"]},
            }
        ),
        "ResyncRequest": _object(
            {
                "stream": {
                    "type": "string",
                    "default": "products",
                    "description": "A stream the source's connector syncs; others are 422.",
                },
                "full": {"type": "boolean", "default": False},
                "since": {
                    "type": "string",
                    "description": "Fetch rows changed since this ISO date and time.",
                    "examples": ["2026-11-01T08:00:00"],
                },
                "queue": {
                    "type": "boolean",
                    "default": False,
                    "description": "If a run is active, queue this one to start after it.",
                },
            },
            required=[],
            closed=False,
        ),
        "ResyncAnswer": _object(
            {"run": _INT, "started": _BOOL, "queued": _BOOL, "message": _STRING}
        ),
    }


def _order_input_schemas() -> Json:
    tax = _object(
        {"code": _STRING_OR_NULL, "title": _STRING_OR_NULL, "price": _NUMBER_LIKE},
        required=[],
    )
    tax["properties"]["rate"] = _NUMBER_LIKE
    taxes = {"type": "array", "items": _ref("TaxLine")}
    return {
        "TaxLine": tax,
        "Address": _object({f: _STRING_OR_NULL for f in ADDRESS_FIELDS}, required=[]),
        "OrderCustomer": _object({f: _STRING_OR_NULL for f in _CUSTOMER_FIELDS}, required=[]),
        "LineItem": _object(
            {
                "sku": _STRING,
                "title": _STRING_OR_NULL,
                "qty": {"type": ["integer", "string"], "description": "Whole, at least 1."},
                "price": _NUMBER_LIKE,
                "total_discount": _NUMBER_LIKE,
                "tax_lines": taxes,
            },
            required=["sku", "qty", "price"],
        ),
        "ShippingLine": _object(
            {"title": _STRING_OR_NULL, "price": _NUMBER_LIKE, "tax_lines": taxes}, required=[]
        ),
        "Meta": _object({"key": _STRING, "value": _STRING_OR_NULL}, required=["key"]),
    }


def _order_schemas() -> Json:
    order = _object(
        {
            "channel_order_code": _STRING,
            "channel": {"type": "string", "default": "api"},
            "instruction": {"enum": ["add_order", "sync_order"], "default": "add_order"},
            "ordered_date": {"type": "string", "description": "ISO date and time."},
            "notes": _STRING_OR_NULL,
            "customer": _nullable("OrderCustomer"),
            "billing_address": _nullable("Address"),
            "shipping_address": _nullable("Address"),
            "line_items": {"type": "array", "items": _ref("LineItem"), "minItems": 1},
            "shipping_lines": {"type": "array", "items": _ref("ShippingLine")},
            "total_discount": _NUMBER_LIKE,
            "meta": {"type": "array", "items": _ref("Meta")},
        },
        required=["channel_order_code", "line_items"],
    )
    order["description"] = "A canonical order. Unknown keys are refused (422)."
    event = _object({"at": _WHEN, "status": _STRING, "message": _STRING_OR_NULL})
    return {
        "Order": order,
        "OrderStored": _object(
            {
                "order": {"type": "integer", "description": "The hub's order id."},
                "channel_order_code": _STRING,
                "status": {"type": "string", "examples": ["received", "stored"]},
                "duplicate": {
                    "type": "boolean",
                    "description": "True when this order was already stored (sent again).",
                },
            }
        ),
        "OrderEvent": event,
        "OrderStatus": _object(
            {
                "order": _INT,
                "channel": _STRING,
                "channel_order_code": _STRING,
                "status": {"type": "string", "examples": ["received", "raised", "failed"]},
                "document_number": _STRING_OR_NULL,
                "attempts": _INT,
                "last_error": _STRING_OR_NULL,
                "history": {"type": "array", "items": _ref("OrderEvent")},
            }
        ),
    }


def _catalogue_schemas() -> Json:
    def entry(field: str) -> Json:
        return _object(
            {
                "source": _STRING,
                "code": _STRING,
                "deleted": {"type": "boolean", "description": "A tombstone: the record is gone."},
                "changed_at": _WHEN,
                field: {"type": ["object", "null"], "description": f"The canonical {field}."},
            }
        )

    def feed(item: str) -> Json:
        return _object(
            {
                "items": {"type": "array", "items": _ref(item)},
                "next": {"type": "string", "description": "The cursor for the next call."},
                "more": {"type": "boolean", "description": "True when more changes wait."},
            }
        )

    return {
        "ProductEntry": entry("product"),
        "CustomerEntry": entry("customer"),
        "ProductFeed": feed("ProductEntry"),
        "CustomerFeed": feed("CustomerEntry"),
    }


def _common_schemas() -> Json:
    return {
        "Error": _object({"error": _STRING}),
        "InvalidOrder": _object(
            {
                "error": {"type": "string", "description": "The first five problems, joined."},
                "errors": {
                    "type": "array",
                    "items": _object({"field": _STRING, "message": _STRING}),
                },
            }
        ),
        "Ping": _object({"ping": {"const": "ok"}}),
    }


def _security_schemes() -> Json:
    return {
        "clientToken": {
            "type": "http",
            "scheme": "bearer",
            "description": "The client's API token from `s2s client add`; it opens that "
            "client's URLs only.",
        },
        "shopifyHmac": {
            "type": "apiKey",
            "in": "header",
            "name": "X-Shopify-Hmac-Sha256",
            "description": "Base64 HMAC-SHA256 of the raw body with the client's Shopify "
            "webhook secret.",
        },
        "woocommerceHmac": {
            "type": "apiKey",
            "in": "header",
            "name": "X-WC-Webhook-Signature",
            "description": "Base64 HMAC-SHA256 of the raw body with the client's WooCommerce "
            "webhook secret.",
        },
    }


# --- paths ----------------------------------------------------------------------------


def _open_paths() -> Json:
    """Health, metrics and this document: no token, they hold no client's data."""
    return {
        "/health": {
            "get": {
                "summary": "Database and broker reachability, for probes.",
                "security": [],
                "responses": {
                    "200": _json("Both reachable.", _ref("Health")),
                    "503": _json("One or both unreachable.", _ref("Health")),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus scrape: aggregates only, no client names.",
                "security": [],
                "responses": {
                    "200": {
                        "description": "Prometheus text exposition format.",
                        "content": {"text/plain": {"schema": _STRING}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document.",
                "security": [],
                "responses": {
                    "200": _json("The OpenAPI 3.1 document.", {"type": "object"}),
                },
            }
        },
    }


def _source_paths() -> Json:
    return {
        f"{_CLIENT}/status": {
            "get": {
                "summary": "Per source and stream: schedule, pause, next due time, last run.",
                "parameters": [_CLIENT_PARAM],
                "responses": {
                    "200": _json("The client's streams.", _ref("ClientStatus")),
                    **_AUTH_ERRORS,
                },
            }
        },
        f"{_CLIENT}/sources/{{source}}/resync": {
            "post": {
                "summary": "Start a sync run now (or queue it behind the active one).",
                "parameters": [_CLIENT_PARAM, _SOURCE_PARAM],
                "requestBody": {
                    "required": False,
                    "description": 'Optional; an empty body means {"stream": "products"}.',
                    "content": {"application/json": {"schema": _ref("ResyncRequest")}},
                },
                "responses": {
                    "202": _json("A run started, or was queued.", _ref("ResyncAnswer")),
                    "200": _json(
                        "A run is already active and queue was not asked: nothing started.",
                        _ref("ResyncAnswer"),
                    ),
                    "400": _error("Not JSON, not an object, a flag not boolean, a bad since."),
                    **_AUTH_ERRORS,
                    "422": _error("The source's connector does not sync that stream."),
                },
            }
        },
        f"{_CLIENT}/sources/{{source}}/runs": {
            "get": {
                "summary": "The source's latest runs, newest first.",
                "parameters": [
                    _CLIENT_PARAM,
                    _SOURCE_PARAM,
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "description": "How many; clamped to 1..200.",
                        "schema": {"type": "integer", "default": 20},
                    },
                ],
                "responses": {
                    "200": _json("The runs.", _ref("RunList")),
                    "400": _error("limit is not a whole number."),
                    **_AUTH_ERRORS,
                },
            }
        },
    }


def _order_paths() -> Json:
    return {
        f"{_CLIENT}/orders": {
            "post": {
                "summary": "Intake of a canonical order; stored (committed) before the answer.",
                "parameters": [_CLIENT_PARAM],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("Order")}},
                },
                "responses": {
                    "201": _json("Stored; it will be routed to the ERP.", _ref("OrderStored")),
                    "200": _json("Already stored: the same order again.", _ref("OrderStored")),
                    "400": _error("The body is not valid JSON."),
                    **_AUTH_ERRORS,
                    "422": _json("The order is not valid.", _ref("InvalidOrder")),
                },
            }
        },
        f"{_CLIENT}/orders/{{order_id}}": {
            "get": {
                "summary": "An order's status, ERP document number and history.",
                "parameters": [
                    _CLIENT_PARAM,
                    _path_param("order_id", "The hub's order id.", _INT),
                ],
                "responses": {"200": _json("The order.", _ref("OrderStatus")), **_AUTH_ERRORS},
            }
        },
    }


def _feed_path(stream: str, feed: str) -> Json:
    return {
        "get": {
            "summary": f"Change feed of the client's {stream}: each change once, deletions "
            "included as tombstones.",
            "parameters": [
                _CLIENT_PARAM,
                {
                    "name": "after",
                    "in": "query",
                    "required": False,
                    "description": "The opaque cursor from a previous answer's `next`; "
                    "absent to start from the beginning.",
                    "schema": _STRING,
                },
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                },
            ],
            "responses": {
                "200": _json("The next changes.", _ref(feed)),
                "400": _error("A bad `after` cursor or `limit`."),
                **_AUTH_ERRORS,
            },
        }
    }


def _record_path(stream: str, key: str, entry: str, found_by: str) -> Json:
    return {
        "get": {
            "summary": f"One of the client's {stream}, as the feed shows it.",
            "description": "A code found in several sources gives the first source's record.",
            "parameters": [_CLIENT_PARAM, _path_param(key, found_by)],
            "responses": {"200": _json("The record.", _ref(entry)), **_AUTH_ERRORS},
        }
    }


def _catalogue_paths() -> Json:
    return {
        f"{_CLIENT}/products": _feed_path("products", "ProductFeed"),
        f"{_CLIENT}/products/{{sku}}": _record_path(
            "products",
            "sku",
            "ProductEntry",
            "The product's code, or the SKU of any of its variants.",
        ),
        f"{_CLIENT}/customers": _feed_path("customers", "CustomerFeed"),
        f"{_CLIENT}/customers/{{code}}": _record_path(
            "customers", "code", "CustomerEntry", "The customer's code."
        ),
    }


def _webhook_paths() -> Json:
    header = {"in": "header", "required": False, "schema": _STRING}
    return {
        "/webhooks/{channel}/{client}": {
            "post": {
                "summary": "A sales channel's order webhook, signed with the client's secret.",
                "description": "The signature is checked over the raw body before anything is "
                "read; a bad one stores nothing. WooCommerce's unsigned creation ping "
                "(a form body starting `webhook_id=`) is answered 200 and stores nothing.",
                "security": [{"shopifyHmac": []}, {"woocommerceHmac": []}],
                "parameters": [
                    _path_param("channel", "The channel.", {"enum": ["shopify", "woocommerce"]}),
                    _CLIENT_PARAM,
                    {**header, "name": "X-Shopify-Webhook-Id", "description": "Delivery id."},
                    {**header, "name": "X-WC-Webhook-Delivery-ID", "description": "Delivery id."},
                ],
                "requestBody": {
                    "required": True,
                    "description": "The channel's own order JSON, as the channel sends it.",
                    "content": {
                        "application/json": {"schema": {"type": "object"}},
                        "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                    },
                },
                "responses": _webhook_responses(),
            }
        }
    }


def _webhook_responses() -> Json:
    return {
        "201": _json("The order is stored.", _ref("OrderStored")),
        "200": _json(
            "Already stored (a redelivery), or WooCommerce's ping.",
            {"anyOf": [_ref("OrderStored"), _ref("Ping")]},
        ),
        "400": _error("The body is not valid JSON."),
        "401": _error("No webhook secret set for this client, or the signature does not match."),
        "404": _error("No such channel or client."),
        "422": _json(
            "The channel's order cannot be read, or is not a valid order.",
            {"anyOf": [_ref("Error"), _ref("InvalidOrder")]},
        ),
    }


@cache
def document() -> Json:
    """The whole document; built once (it is the same for every caller)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "s2s integration hub",
            "version": "1",
            "description": "Per-client sync control, order intake and the catalogue feed. "
            "Each client's URLs need that client's own bearer token.",
        },
        "security": [{"clientToken": []}],
        "paths": {
            **_open_paths(),
            **_source_paths(),
            **_order_paths(),
            **_catalogue_paths(),
            **_webhook_paths(),
        },
        "components": {
            "securitySchemes": _security_schemes(),
            "schemas": {
                **_common_schemas(),
                **_status_schemas(),
                **_order_input_schemas(),
                **_order_schemas(),
                **_catalogue_schemas(),
            },
        },
    }


async def openapi_json(_: Request) -> JSONResponse:
    return JSONResponse(document())
