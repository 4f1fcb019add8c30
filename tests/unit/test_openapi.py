"""The OpenAPI document matches the app's routes and is a valid OpenAPI 3.1 document.

A route added to ``s2s.api`` without documentation, or documentation left
behind for a removed route, fails here.
"""

from __future__ import annotations

import re

from openapi_spec_validator import validate
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from s2s.api import create_app
from s2s.openapi import document

# Starlette answers HEAD for every GET by itself; the document lists GET only.
_IMPLIED = {"HEAD"}


def _app_operations() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for route in create_app().routes:
        if isinstance(route, Mount) and route.path == "/console":
            continue  # the operations console: HTML pages for people, not the API
        assert isinstance(route, Route), f"not a plain Route: {route!r}"
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        for method in (route.methods or set()) - _IMPLIED:
            found.add((path, method.lower()))
    return found


def _documented_operations() -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, item in document()["paths"].items()
        for method in item
        if method in {"get", "put", "post", "delete", "patch", "options", "head", "trace"}
    }


def test_every_route_is_documented_and_nothing_else() -> None:
    app, documented = _app_operations(), _documented_operations()
    assert app - documented == set(), "routes without documentation"
    assert documented - app == set(), "documentation of routes the app does not have"


def test_the_path_converter_is_dropped() -> None:
    assert ("/api/v1/clients/{client}/orders/{order_id}", "get") in _app_operations()


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = document()
    assert doc["openapi"].startswith("3.1")
    validate(doc)


def test_every_reference_resolves() -> None:
    doc = document()
    text = repr(doc)
    names = set(re.findall(r"#/components/schemas/(\w+)", text))
    assert names, "the document references no schemas"
    assert names <= set(doc["components"]["schemas"]), "dangling $ref"
    schemes = {
        name
        for item in doc["paths"].values()
        for op in item.values()
        for req in op.get("security", doc["security"])
        for name in req
    }
    assert schemes <= set(doc["components"]["securitySchemes"])


def test_served_without_a_token() -> None:
    answer = TestClient(create_app()).get("/openapi.json")
    assert answer.status_code == 200
    assert answer.json() == document()
