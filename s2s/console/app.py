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

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, Router
from starlette.staticfiles import StaticFiles

from s2s.console import forms, views
from s2s.console.auth import Viewer
from s2s.console.web import HEADERS, HERE, json_page, not_found, page, render


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


@page
async def run(request: Request, viewer: Viewer) -> Response:
    code, run_id = request.path_params["client"], request.path_params["run_id"]
    data = await run_in_threadpool(views.run_page, viewer, code, run_id)
    if data is None:
        return not_found(request, viewer)
    return render(request, "run.html", viewer, title=f"Run {run_id}", **data)


@page
async def orders(request: Request, viewer: Viewer) -> Response:
    code = request.path_params["client"]
    status = request.query_params.get("status") or None
    data = await run_in_threadpool(views.orders_page, viewer, code, status)
    if data is None:
        return not_found(request, viewer)
    return render(request, "orders.html", viewer, title=f"{code} orders", **data)


@page
async def order(request: Request, viewer: Viewer) -> Response:
    code, order_id = request.path_params["client"], request.path_params["order_id"]
    data = await run_in_threadpool(views.order_page, viewer, code, order_id)
    if data is None:
        return not_found(request, viewer)
    return render(request, "order.html", viewer, title=f"Order {order_id}", **data)


@page
async def letters(request: Request, viewer: Viewer) -> Response:
    code = request.path_params["client"]
    data = await run_in_threadpool(views.letters_page, viewer, code)
    if data is None:
        return not_found(request, viewer)
    return render(request, "letters.html", viewer, title=f"{code} dead letters", **data)


@page
async def letter(request: Request, viewer: Viewer) -> Response:
    code, letter_id = request.path_params["client"], request.path_params["letter_id"]
    data = await run_in_threadpool(views.letter_page, viewer, code, letter_id)
    if data is None:
        return not_found(request, viewer)
    return render(request, "letter.html", viewer, title=f"Dead letter {letter_id}", **data)


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
