"""WordPress REST errors: ``{code, message, data: {status, …}}`` as a WP_Error is sent.

A handler raises :class:`RestError`; the app turns it into the response, and
a batch turns it into that item's ``{"id", "error"}`` element, so one rule
produces both shapes the way core's ``batch_items`` does.
"""

from __future__ import annotations

from typing import Any


class RestError(Exception):
    """A refusal with WordPress's error code, HTTP status and extra ``data`` keys."""

    def __init__(self, code: str, message: str, status: int, **data: Any) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.data = data

    def error(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "data": {"status": self.status, **self.data},
        }


def invalid_params(problems: dict[str, tuple[str, str]]) -> RestError:
    """``rest_invalid_param`` naming each parameter, as WP_REST_Request::has_valid_params does."""
    return RestError(
        "rest_invalid_param",
        f"Invalid parameter(s): {', '.join(problems)}",
        400,
        params={name: message for name, (_, message) in problems.items()},
        details={
            name: {"code": code, "message": message, "data": None}
            for name, (code, message) in problems.items()
        },
    )


def invalid_id(kind: str, status: int) -> RestError:
    """``woocommerce_rest_{post_type}_invalid_id``: 404 on read and delete, 400 on update."""
    return RestError(f"woocommerce_rest_{kind}_invalid_id", "Invalid ID.", status)


NO_ROUTE = RestError(
    "rest_no_route", "No route was found matching the URL and request method.", 404
)
