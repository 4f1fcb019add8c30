"""The operations console's routes, mounted at ``/console`` by ``s2s.api``.

Server-rendered pages (Jinja2, autoescaped), one small script that polls
JSON for progress, and forms for the actions, each of which calls the same
function the ``s2s`` command does (``s2s.actions``). Every page needs a
session (``s2s.console.auth``); every POST needs the session's CSRF token;
every client's page and form answers 404 to a user of another client, as
for a client that does not exist. Every database read runs in the
threadpool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, Router
from starlette.staticfiles import StaticFiles

from s2s.console import forms, views
from s2s.console.auth import Viewer
from s2s.console.web import HEADERS, HERE, Handler, json_page, not_found, page, render


# ------------------------------------------------------------------ pages
@page
async def overview(request: Request, viewer: Viewer) -> Response:
    data = await run_in_threadpool(views.overview, viewer)
    return render(request, "overview.html", viewer, title="Overview", **data)


@json_page
async def overview_json(request: Request, viewer: Viewer) -> Response:
    data = await run_in_threadpool(views.overview, viewer)
    return JSONResponse(data, headers=HEADERS)


def _stream(request: Request) -> str:
    return request.query_params.get("stream") or "products"


@page
async def source(request: Request, viewer: Viewer) -> Response:
    code, source_code = request.path_params["client"], request.path_params["source"]
    data = await run_in_threadpool(views.source_page, viewer, code, source_code)
    if data is None:
        return not_found(request, viewer)
    return render(
        request,
        "source.html",
        viewer,
        title=f"{code}/{source_code}",
        stream=_stream(request),
        **data,
    )


@json_page
async def source_runs_json(request: Request, viewer: Viewer) -> Response:
    code, source_code = request.path_params["client"], request.path_params["source"]
    runs = await run_in_threadpool(views.source_runs, viewer, code, source_code)
    if runs is None:
        return JSONResponse({"error": "not found"}, status_code=404, headers=HEADERS)
    return JSONResponse({"runs": runs}, headers=HEADERS)


def _client_page(
    view: Callable[..., dict[str, Any] | None], template: str, title: str, param: str = ""
) -> Handler:
    """A page of one client's (``param`` names its row's id in the path, if
    any): the view's data rendered, or the not-found page for a client or
    row the viewer may not see. ``title`` is formatted with the client's
    code and the id."""

    async def handler(request: Request, viewer: Viewer) -> Response:
        args = [request.path_params["client"]]
        if param:
            args.append(request.path_params[param])
        data = await run_in_threadpool(view, viewer, *args)
        if data is None:
            return not_found(request, viewer)
        return render(request, template, viewer, title=title.format(*args), **data)

    return handler


run = page(_client_page(views.run_page, "run.html", "Run {1}", "run_id"))
order = page(_client_page(views.order_page, "order.html", "Order {1}", "order_id"))
letters = page(_client_page(views.letters_page, "letters.html", "{0} dead letters"))
letter = page(_client_page(views.letter_page, "letter.html", "Dead letter {1}", "letter_id"))


@page
async def orders(request: Request, viewer: Viewer) -> Response:
    code = request.path_params["client"]
    status = request.query_params.get("status") or None
    data = await run_in_threadpool(views.orders_page, viewer, code, status)
    if data is None:
        return not_found(request, viewer)
    return render(request, "orders.html", viewer, title=f"{code} orders", **data)


def create_console() -> Router:
    """The console's routes (``s2s.console.forms`` holds sign-in and the actions)."""
    prefix_source = "/clients/{client}/sources/{source}"
    prefix_letter = "/clients/{client}/dead-letters/{letter_id:int}"
    return Router(
        routes=[
            Route("/", overview),
            Route("/overview.json", overview_json),
            Route("/login", forms.login_form, methods=["GET"]),
            Route("/login", forms.login, methods=["POST"]),
            Route("/logout", forms.logout, methods=["POST"]),
            Route(prefix_source, source),
            Route(f"{prefix_source}/runs.json", source_runs_json),
            Route(f"{prefix_source}/resync", forms.resync, methods=["POST"]),
            Route(f"{prefix_source}/pause", forms.pause, methods=["POST"]),
            Route(f"{prefix_source}/resume", forms.resume, methods=["POST"]),
            Route("/clients/{client}/runs/{run_id:int}", run),
            Route("/clients/{client}/orders", orders),
            Route("/clients/{client}/orders/{order_id:int}", order),
            Route("/clients/{client}/dead-letters", letters),
            Route(prefix_letter, letter),
            Route(f"{prefix_letter}/replay", forms.replay, methods=["POST"]),
            Route(f"{prefix_letter}/discard", forms.discard, methods=["POST"]),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
    )
