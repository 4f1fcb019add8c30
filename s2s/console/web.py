"""What the console's handlers share: templates, the answers (a page, 404,
the CSRF refusal, 303 with a flash message) and the decorators that put
every GET behind a session and every POST behind its CSRF token."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from s2s.console import auth
from s2s.console.auth import Viewer

HERE = Path(__file__).parent
templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
# No inline script or style anywhere: the policy can forbid them outright.
HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
}

Handler = Callable[..., Awaitable[Response]]


def base(request: Request) -> str:
    """Where the console is mounted (``/console``, under any proxy's root path)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def render(
    request: Request, template: str, viewer: Viewer | None, http_status: int = 200, **context: Any
) -> HTMLResponse:
    """A page; a flash message left by the last POST is shown once and cleared."""
    flash = auth.flash_of(request)
    html = templates.get_template(template).render(
        base=base(request), viewer=viewer, flash=flash, **context
    )
    response = HTMLResponse(html, status_code=http_status, headers=HEADERS)
    if flash is not None:
        auth.clear(response, auth.FLASH_COOKIE)
    return response


def not_found(request: Request, viewer: Viewer | None) -> HTMLResponse:
    """One answer for a client, source, run, order or letter that does not
    exist and for one the viewer may not see."""
    return render(request, "not_found.html", viewer, http_status=404, title="Not found")


def csrf_refused(request: Request) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><title>Refused</title><h1>Refused: CSRF check failed</h1>"
        "<p>The form's CSRF token is missing or wrong (the page may be old, or the "
        "form did not come from this console). Nothing was changed: reload the page "
        "and try again.</p>",
        status_code=403,
        headers=HEADERS,
    )


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


def page(handler: Handler) -> Handler:
    """A GET that needs a session: 303 to sign-in with ``next`` without one."""

    @wraps(handler)
    async def wrapped(request: Request) -> Response:
        viewer = await run_in_threadpool(auth.viewer_of, request)
        if viewer is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return redirect(f"{base(request)}/login?next={quote(target, safe='')}")
        return await handler(request, viewer)

    return wrapped


def action(handler: Handler) -> Handler:
    """A POST that changes something: a session (else 303 to sign-in) and
    the session's CSRF token (else 403) before the handler sees the form."""

    @wraps(handler)
    async def wrapped(request: Request) -> Response:
        viewer = await run_in_threadpool(auth.viewer_of, request)
        try:
            form = await auth.form_of(request)
        except auth.FormTooLarge:
            return csrf_refused(request)
        if viewer is None:  # signed out (or removed): nothing is done
            return redirect(f"{base(request)}/login")
        if not auth.csrf_ok(viewer.nonce, form.get("csrf_token")):
            return csrf_refused(request)
        return await handler(request, viewer, form)

    return wrapped


def json_page(handler: Handler) -> Handler:
    """A JSON read the pages poll: 401 without a session (the script then
    reloads, and the page sends the viewer to sign in)."""

    @wraps(handler)
    async def wrapped(request: Request) -> Response:
        viewer = await run_in_threadpool(auth.viewer_of, request)
        if viewer is None:
            return JSONResponse({"error": "signed out"}, status_code=401, headers=HEADERS)
        return await handler(request, viewer)

    return wrapped


def back(request: Request, message: str, kind: str = "ok", to: str | None = None) -> Response:
    """303 back to the page the form was on, with a flash message."""
    response = redirect(to or request.url.path.rsplit("/", 1)[0])
    auth.flash(response, request, message, kind)
    return response
