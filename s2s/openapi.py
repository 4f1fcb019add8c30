"""The OpenAPI 3.1 document of the HTTP API, served at ``/openapi.json``.

Written by hand from the handlers in ``s2s.api`` rather than generated, so
that it says what callers actually get (every status, every error body);
``tests/unit/test_openapi.py`` and ``tests/integration/test_openapi.py`` hold
it to the app's routes and to real answers, so it cannot drift unnoticed.
The vocabulary it is written in is ``s2s.openapi_parts``; the channels' paths
and schemas (the push) are ``s2s.openapi_push``, assembled here.
"""

from __future__ import annotations

from functools import cache

from starlette.requests import Request
from starlette.responses import JSONResponse

from hub.runs import COUNTERS
from hub.schemas.customers import ADDRESS_FIELDS
from hub.schemas.orders import OrderCustomerSchema
from s2s import openapi_push
from s2s.openapi_parts import (
    AUTH_ERRORS,
    BOOL,
    CLIENT,
    CLIENT_PARAM,
    INT,
    STRING,
    STRING_OR_NULL,
    WHEN,
    WHEN_OR_NULL,
    Json,
    answer,
    error,
    nullable,
    obj,
    path_param,
    ref,
)
from s2s.order_example import order_example

# Prices and quantities are read leniently ("12.50" or 12.5), as the order schema does.
_NUMBER_LIKE: Json = {"type": ["number", "string"]}
# Taken from the order schema itself, so that a field added there shows here.
_CUSTOMER_FIELDS = tuple(OrderCustomerSchema().fields)
_SOURCE_PARAM = path_param("source", "One of the client's sources (its ERP), by code.")


# --- components -----------------------------------------------------------------------


def _run_schema() -> Json:
    # The run's counters as the hub names them, so that a count added there shows here.
    counts = COUNTERS
    return obj(
        {
            "id": INT,
            "stream": STRING,
            "status": {"type": "string", "examples": ["running", "succeeded", "failed"]},
            "requested_by": {"type": "string", "examples": ["schedule", "api", "cli"]},
            **{name: INT for name in counts},
            "pages_total": {"type": ["integer", "null"]},
            "error": STRING_OR_NULL,
            "created_at": WHEN,
            "finished_at": WHEN_OR_NULL,
        }
    )


def _status_schemas() -> Json:
    stream = obj(
        {
            "source": STRING,
            "kind": {"type": "string", "description": "The connector kind, e.g. `sql`."},
            "stream": {"type": "string", "examples": ["products", "customers"]},
            "enabled": BOOL,
            "schedule": {"type": "string", "examples": ["every 15m", "cron 0 * * * *"]},
            "paused": BOOL,
            "next_due_at": WHEN_OR_NULL,
            "resync_queued": BOOL,
            "last_run": nullable("Run"),
        }
    )
    return {
        "Run": _run_schema(),
        "RunList": obj({"runs": {"type": "array", "items": ref("Run")}}),
        "StreamStatus": stream,
        "ClientStatus": obj(
            {
                "client": STRING,
                "streams": {"type": "array", "items": ref("StreamStatus")},
                "channels": {
                    "type": "array",
                    "items": ref("ChannelSummary"),
                    "description": "Every channel of the client, intake-only ones too.",
                },
            }
        ),
        "Health": obj(
            {
                "status": {"enum": ["ok", "degraded"]},
                "database": {
                    "type": "string",
                    "description": '"ok" or "unreachable: <exception name>".',
                },
                "broker": {"enum": ["ok", "unreachable"]},
            }
        ),
        "ResyncRequest": obj(
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
        "ResyncAnswer": obj({"run": INT, "started": BOOL, "queued": BOOL, "message": STRING}),
    }


def _order_input_schemas() -> Json:
    tax = obj(
        {"code": STRING_OR_NULL, "title": STRING_OR_NULL, "price": _NUMBER_LIKE},
        required=[],
    )
    tax["properties"]["rate"] = _NUMBER_LIKE
    taxes = {"type": "array", "items": ref("TaxLine")}
    return {
        "TaxLine": tax,
        "Address": obj({f: STRING_OR_NULL for f in ADDRESS_FIELDS}, required=[]),
        "OrderCustomer": obj({f: STRING_OR_NULL for f in _CUSTOMER_FIELDS}, required=[]),
        "LineItem": obj(
            {
                "sku": STRING,
                "title": STRING_OR_NULL,
                "qty": {"type": ["integer", "string"], "description": "Whole, at least 1."},
                "price": _NUMBER_LIKE,
                "total_discount": _NUMBER_LIKE,
                "tax_lines": taxes,
            },
            required=["sku", "qty", "price"],
        ),
        "ShippingLine": obj(
            {"title": STRING_OR_NULL, "price": _NUMBER_LIKE, "tax_lines": taxes}, required=[]
        ),
        "Meta": obj({"key": STRING, "value": STRING_OR_NULL}, required=["key"]),
    }


def _order_schemas() -> Json:
    order = obj(
        {
            "channel_order_code": STRING,
            "channel": {"type": "string", "default": "api"},
            "instruction": {"enum": ["add_order", "sync_order"], "default": "add_order"},
            "ordered_date": {"type": "string", "description": "ISO date and time."},
            "notes": STRING_OR_NULL,
            "customer": nullable("OrderCustomer"),
            "billing_address": nullable("Address"),
            "shipping_address": nullable("Address"),
            "line_items": {"type": "array", "items": ref("LineItem"), "minItems": 1},
            "shipping_lines": {"type": "array", "items": ref("ShippingLine")},
            "total_discount": _NUMBER_LIKE,
            "meta": {"type": "array", "items": ref("Meta")},
        },
        required=["channel_order_code", "line_items"],
    )
    order["description"] = "A canonical order. Unknown keys are refused (422)."
    event = obj({"at": WHEN, "status": STRING, "message": STRING_OR_NULL})
    return {
        "Order": order,
        "OrderStored": obj(
            {
                "order": {"type": "integer", "description": "The hub's order id."},
                "channel_order_code": STRING,
                "status": {"type": "string", "examples": ["received", "stored"]},
                "duplicate": {
                    "type": "boolean",
                    "description": "True when this order was already stored (sent again).",
                },
            }
        ),
        "OrderEvent": event,
        "OrderStatus": obj(
            {
                "order": INT,
                "channel": STRING,
                "channel_order_code": STRING,
                "status": {"type": "string", "examples": ["received", "raised", "failed"]},
                "document_number": STRING_OR_NULL,
                "attempts": INT,
                "last_error": STRING_OR_NULL,
                "history": {"type": "array", "items": ref("OrderEvent")},
            }
        ),
    }


def _catalogue_schemas() -> Json:
    def entry(field: str) -> Json:
        return obj(
            {
                "source": STRING,
                "code": STRING,
                "deleted": {"type": "boolean", "description": "A tombstone: the record is gone."},
                "changed_at": WHEN,
                field: {"type": ["object", "null"], "description": f"The canonical {field}."},
            }
        )

    def feed(item: str) -> Json:
        return obj(
            {
                "items": {"type": "array", "items": ref(item)},
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
        "Error": obj({"error": STRING}),
        "InvalidOrder": obj(
            {
                "error": {"type": "string", "description": "The first five problems, joined."},
                "errors": {
                    "type": "array",
                    "items": obj({"field": STRING, "message": STRING}),
                },
            }
        ),
        "Ping": obj({"ping": {"const": "ok"}}),
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
                    "200": answer("Both reachable.", ref("Health")),
                    "503": answer("One or both unreachable.", ref("Health")),
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
                        "content": {"text/plain": {"schema": STRING}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document.",
                "security": [],
                "responses": {
                    "200": answer("The OpenAPI 3.1 document.", {"type": "object"}),
                },
            }
        },
    }


def _source_paths() -> Json:
    return {
        f"{CLIENT}/status": {
            "get": {
                "summary": "Per source and stream: schedule, pause, next due time, last run; "
                "per channel: the push's state.",
                "parameters": [CLIENT_PARAM],
                "responses": {
                    "200": answer("The client's streams.", ref("ClientStatus")),
                    **AUTH_ERRORS,
                },
            }
        },
        f"{CLIENT}/sources/{{source}}/resync": {
            "post": {
                "summary": "Start a sync run now (or queue it behind the active one).",
                "parameters": [CLIENT_PARAM, _SOURCE_PARAM],
                "requestBody": {
                    "required": False,
                    "description": 'Optional; an empty body means {"stream": "products"}.',
                    "content": {"application/json": {"schema": ref("ResyncRequest")}},
                },
                "responses": {
                    "202": answer("A run started, or was queued.", ref("ResyncAnswer")),
                    "200": answer(
                        "A run is already active and queue was not asked: nothing started.",
                        ref("ResyncAnswer"),
                    ),
                    "400": error("Not JSON, not an object, a flag not boolean, a bad since."),
                    **AUTH_ERRORS,
                    "422": error("The source's connector does not sync that stream."),
                },
            }
        },
        f"{CLIENT}/sources/{{source}}/runs": {
            "get": {
                "summary": "The source's latest runs, newest first.",
                "parameters": [
                    CLIENT_PARAM,
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
                    "200": answer("The runs.", ref("RunList")),
                    "400": error("limit is not a whole number."),
                    **AUTH_ERRORS,
                },
            }
        },
    }


def _order_paths() -> Json:
    return {
        f"{CLIENT}/orders": {
            "post": {
                "summary": "Intake of a canonical order; stored (committed) before the answer.",
                "parameters": [CLIENT_PARAM],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": ref("Order"),
                            "examples": {
                                "complete": {
                                    "summary": "Every field (`s2s orders template` prints it)",
                                    "value": order_example(),
                                }
                            },
                        }
                    },
                },
                "responses": {
                    "201": answer("Stored; it will be routed to the ERP.", ref("OrderStored")),
                    "200": answer("Already stored: the same order again.", ref("OrderStored")),
                    "400": error("The body is not valid JSON."),
                    **AUTH_ERRORS,
                    "422": answer("The order is not valid.", ref("InvalidOrder")),
                },
            }
        },
        f"{CLIENT}/orders/{{order_id}}": {
            "get": {
                "summary": "An order's status, ERP document number and history.",
                "parameters": [
                    CLIENT_PARAM,
                    path_param("order_id", "The hub's order id.", INT),
                ],
                "responses": {"200": answer("The order.", ref("OrderStatus")), **AUTH_ERRORS},
            }
        },
    }


def _feed_path(stream: str, feed: str) -> Json:
    return {
        "get": {
            "summary": f"Change feed of the client's {stream}: each change once, deletions "
            "included as tombstones.",
            "parameters": [
                CLIENT_PARAM,
                {
                    "name": "after",
                    "in": "query",
                    "required": False,
                    "description": "The opaque cursor from a previous answer's `next`; "
                    "absent to start from the beginning.",
                    "schema": STRING,
                },
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                },
            ],
            "responses": {
                "200": answer("The next changes.", ref(feed)),
                "400": error("A bad `after` cursor or `limit`."),
                **AUTH_ERRORS,
            },
        }
    }


def _record_path(stream: str, key: str, entry: str, found_by: str) -> Json:
    return {
        "get": {
            "summary": f"One of the client's {stream}, as the feed shows it.",
            "description": "A code found in several sources gives the first source's record.",
            "parameters": [CLIENT_PARAM, path_param(key, found_by)],
            "responses": {"200": answer("The record.", ref(entry)), **AUTH_ERRORS},
        }
    }


def _catalogue_paths() -> Json:
    return {
        f"{CLIENT}/products": _feed_path("products", "ProductFeed"),
        f"{CLIENT}/products/{{sku}}": _record_path(
            "products",
            "sku",
            "ProductEntry",
            "The product's code, or the SKU of any of its variants.",
        ),
        f"{CLIENT}/customers": _feed_path("customers", "CustomerFeed"),
        f"{CLIENT}/customers/{{code}}": _record_path(
            "customers", "code", "CustomerEntry", "The customer's code."
        ),
    }


def _webhook_paths() -> Json:
    header = {"in": "header", "required": False, "schema": STRING}
    return {
        "/webhooks/{channel}/{client}": {
            "post": {
                "summary": "A sales channel's order webhook, signed with the client's secret.",
                "description": "The signature is checked over the raw body before anything is "
                "read; a bad one stores nothing. WooCommerce's unsigned creation ping "
                "(a form body starting `webhook_id=`) is answered 200 and stores nothing.",
                "security": [{"shopifyHmac": []}, {"woocommerceHmac": []}],
                "parameters": [
                    path_param("channel", "The channel.", {"enum": ["shopify", "woocommerce"]}),
                    CLIENT_PARAM,
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
        "201": answer("The order is stored.", ref("OrderStored")),
        "200": answer(
            "Already stored (a redelivery), or WooCommerce's ping.",
            {"anyOf": [ref("OrderStored"), ref("Ping")]},
        ),
        "400": error("The body is not valid JSON."),
        "401": error("No webhook secret set for this client, or the signature does not match."),
        "404": error("No such channel or client."),
        "422": answer(
            "The channel's order cannot be read, or is not a valid order.",
            {"anyOf": [ref("Error"), ref("InvalidOrder")]},
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
            "description": "Per-client sync control, order intake, the catalogue feed and "
            "the push to the channels. "
            "Each client's URLs need that client's own bearer token.",
        },
        "security": [{"clientToken": []}],
        "paths": {
            **_open_paths(),
            **_source_paths(),
            **_order_paths(),
            **_catalogue_paths(),
            **openapi_push.paths(),
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
                **openapi_push.schemas(),
            },
        },
    }


async def openapi_json(_: Request) -> JSONResponse:
    return JSONResponse(document())
