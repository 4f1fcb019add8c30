"""The channels' part of the OpenAPI document: a channel's push state, its
push runs, the products its store refused, and starting a push.

Kept apart from ``s2s.openapi`` so that each module stays small; the
document assembles it with the other groups. The run's counts are taken
from ``hub.pushes.COUNTS``, so a count added there is documented here.
"""

from __future__ import annotations

from hub.pushes import COUNTS
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
    limit_param,
    nullable,
    obj,
    path_param,
    ref,
)

CHANNEL = f"{CLIENT}/channels/{{channel}}"
_CHANNEL_PARAM = path_param(
    "channel", "One of the client's channels, by code (as given to `s2s channel add`)."
)
RECENT_PUSHES = 10


def _push_run() -> Json:
    return obj(
        {
            "id": INT,
            "status": {"type": "string", "examples": ["running", "succeeded", "failed"]},
            "full": {"type": "boolean", "description": "Every product sent again."},
            "requested_by": {"type": "string", "examples": ["schedule", "sync", "api", "cli"]},
            "position": {
                "type": "integer",
                "description": "How far along the client's change feed the store is brought.",
            },
            "target": {
                "type": "integer",
                "description": "The feed's last change when the run started; the run ends there.",
            },
            **{name: INT for name in COUNTS},
            "error": STRING_OR_NULL,
            "started_at": WHEN,
            "finished_at": WHEN_OR_NULL,
        }
    )


def _summary_properties() -> Json:
    return {
        "channel": {"type": "string", "description": "The channel's code."},
        "kind": {"type": "string", "examples": ["shopify", "woocommerce"]},
        "pushes": {
            "type": "boolean",
            "description": "False for a channel that takes orders only (no store_url).",
        },
        "paused": BOOL,
        "waiting": {
            "type": "integer",
            "description": "Products changed since the store was last brought up to date.",
        },
        "refused": {"type": "integer", "description": "Products the store refused."},
        "next_push_at": WHEN_OR_NULL,
        "last_push": nullable("PushRun"),
    }


def schemas() -> Json:
    problem = obj(
        {
            "source": {"type": "string", "description": "The source (ERP) of the product."},
            "code": {"type": "string", "description": "The product's code in that source."},
            "key": {"type": "string", "description": "The product's key in the store."},
            "refused_at": WHEN_OR_NULL,
            "error": {"type": ["string", "null"], "description": "The store's own words."},
            "in_store": {
                "type": "boolean",
                "description": "The store holds an earlier listing of the product.",
            },
        }
    )
    return {
        "PushRun": _push_run(),
        "ChannelSummary": obj(_summary_properties()),
        "Channel": obj(
            {
                **_summary_properties(),
                "recent_pushes": {
                    "type": "array",
                    "items": ref("PushRun"),
                    "maxItems": RECENT_PUSHES,
                    "description": "The latest push runs, newest first.",
                },
            }
        ),
        "Problem": problem,
        "ProblemList": obj({"problems": {"type": "array", "items": ref("Problem")}}),
        "PushRequest": obj(
            {
                "full": {
                    "type": "boolean",
                    "default": False,
                    "description": "Send every product again, whatever the store holds.",
                },
                "retry_refused": {
                    "type": "boolean",
                    "default": False,
                    "description": "Send the products the store refused once more first.",
                },
            },
            required=[],
        ),
        "PushAnswer": obj({"push": INT, "started": BOOL, "message": STRING}),
    }


def paths() -> Json:
    return {
        CHANNEL: {
            "get": {
                "summary": "A channel's push state (feed lag, refusals, next push) and "
                f"its last {RECENT_PUSHES} push runs.",
                "parameters": [CLIENT_PARAM, _CHANNEL_PARAM],
                "responses": {"200": answer("The channel.", ref("Channel")), **AUTH_ERRORS},
            }
        },
        f"{CHANNEL}/push": {
            "post": {
                "summary": "Push the client's products, prices and stock to the channel's "
                "store now.",
                "description": "Sends what changed since the store was last brought up to "
                "date; a worker serving `push.<kind>` does the work. Follow the run with "
                "GET on the channel.",
                "parameters": [CLIENT_PARAM, _CHANNEL_PARAM],
                "requestBody": {
                    "required": False,
                    "description": "Optional; an empty body is a push of what changed.",
                    "content": {"application/json": {"schema": ref("PushRequest")}},
                },
                "responses": {
                    "202": answer("A push started.", ref("PushAnswer")),
                    "200": answer(
                        "A push of this channel is already running (named in `push`): "
                        "nothing started.",
                        ref("PushAnswer"),
                    ),
                    "400": error("Not JSON, not an object, an unknown key, a flag not boolean."),
                    **AUTH_ERRORS,
                    "409": error(
                        "The channel takes orders only (no store_url): there is no store to "
                        "push to."
                    ),
                },
            }
        },
        f"{CHANNEL}/problems": {
            "get": {
                "summary": "Products the store refused, newest first, with the store's words.",
                "description": "They are sent again when they change in the ERP, or by a "
                'push with `"retry_refused": true`.',
                "parameters": [
                    CLIENT_PARAM,
                    _CHANNEL_PARAM,
                    limit_param("How many, at most.", 100, 1000),
                ],
                "responses": {
                    "200": answer("The refusals.", ref("ProblemList")),
                    "400": error("limit is not a whole number from 1 to 1000."),
                    **AUTH_ERRORS,
                },
            }
        },
    }
