"""The console's POSTs: sign-in and sign-out, and the actions.

Each action calls the function ``s2s`` calls for the same command
(``s2s.actions``), in the threadpool, then answers 303 back to its page with
a flash message saying what happened, or what to change. A client, source
or letter the viewer may not see is 404, and nothing is done.
"""

from __future__ import annotations

import math
import secrets
from urllib.parse import quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from hub import users
from hub.db import session_scope
from hub.orders import ReplayError
from s2s import actions
from s2s.console import auth, views
from s2s.console.auth import Viewer
from s2s.console.web import action, back, base, csrf_refused, not_found, redirect, render
from workers.sources import SetupError

WRONG = "Wrong username or password."


def _safe_next(request: Request, target: str | None) -> str | None:
    """A console path to go to after sign-in; anything else (another site,
    a scheme, the sign-in page itself) is ignored."""
    if not target:
        return None
    parts = urlsplit(target)
    root = base(request)
    if parts.scheme or parts.netloc or "\\" in target or target.startswith("//"):
        return None
    if not target.startswith(f"{root}/") or parts.path.startswith(f"{root}/log"):
        return None
    return target


def _login_page(
    request: Request,
    *,
    error: str | None = None,
    status: int = 200,
    username: str = "",
    target: str | None = None,
) -> Response:
    """The sign-in form, its CSRF token bound to the pre-session cookie."""
    nonce = auth.pre_nonce(request) or secrets.token_urlsafe(18)
    response = render(
        request,
        "login.html",
        None,
        http_status=status,
        title="Sign in",
        error=error,
        csrf=auth.csrf_token(nonce),
        username=username,
        next=_safe_next(request, target or request.query_params.get("next")) or "",
    )
    auth.keep_pre(response, request, nonce)
    return response


async def login_form(request: Request) -> Response:
    viewer = await run_in_threadpool(auth.viewer_of, request)
    if viewer is not None:
        return redirect(f"{base(request)}/")
    return _login_page(request)


async def login(request: Request) -> Response:
    """Good: 303 to the overview (or ``next``) with a new session; wrong: the
    form again; over the limit: 429 with Retry-After."""
    try:
        form = await auth.form_of(request)
    except auth.FormTooLarge:
        return csrf_refused(request)
    if not auth.csrf_ok(auth.pre_nonce(request), form.get("csrf_token")):
        return csrf_refused(request)
    username, target = form.get("username", "").strip(), form.get("next")
    outcome = await run_in_threadpool(
        auth.sign_in, username, form.get("password", ""), auth.client_address(request)
    )
    if outcome.wait > 0:
        seconds = max(1, math.ceil(outcome.wait))
        response = _login_page(
            request,
            error=f"Too many sign-in attempts: try again in {seconds} seconds.",
            status=429,
            username=username,
            target=target,
        )
        response.headers["Retry-After"] = str(seconds)
        return response
    if outcome.user_id is None:
        return _login_page(request, error=WRONG, username=username, target=target)
    response = redirect(_safe_next(request, target) or f"{base(request)}/")
    auth.start_session(response, request, outcome.user_id, outcome.stamp)
    return response


@action
async def logout(request: Request, viewer: Viewer, form: dict[str, str]) -> Response:
    """Sign out: this user's every session ends, here and on other devices."""
    await run_in_threadpool(_sign_out, viewer.user_id)
    response = redirect(f"{base(request)}/login")
    auth.clear(response, auth.SESSION_COOKIE)
    return response


def _sign_out(user_id: int) -> None:
    with session_scope() as s:
        users.sign_out(s, user_id)


# ---------------------------------------------------------------- sources
def _source_page(request: Request, stream: str) -> str:
    return f"{request.url.path.rsplit('/', 1)[0]}?stream={quote(stream)}"


@action
async def resync(request: Request, viewer: Viewer, form: dict[str, str]) -> Response:
    """``s2s resync`` (``--full``, or ``--since``): from the form's stream."""
    code, source_code = request.path_params["client"], request.path_params["source"]
    if not await run_in_threadpool(views.source_visible, viewer, code, source_code):
        return not_found(request, viewer)
    stream = form.get("stream") or "products"
    to = _source_page(request, stream)
    full, since = form.get("full") == "1", form.get("since", "").strip()
    if not full and not since:
        return back(request, "Give the date and time to read changes from.", "error", to)
    try:
        since = actions.parse_since(since, "since") if since else ""
        done = await run_in_threadpool(
            lambda: actions.resync(
                code, source_code, stream, full=full, since=since or None, requested_by="console"
            )
        )
    except (actions.ActionError, SetupError) as exc:
        return back(request, str(exc), "error", to)
    return back(request, done.sentence(hint="start another once it ends"), to=to)


async def _pause(request: Request, viewer: Viewer, form: dict[str, str], paused: bool) -> Response:
    code, source_code = request.path_params["client"], request.path_params["source"]
    if not await run_in_threadpool(views.source_visible, viewer, code, source_code):
        return not_found(request, viewer)
    stream = form.get("stream") or "products"
    to = _source_page(request, stream)
    try:
        done = await run_in_threadpool(actions.set_paused, code, source_code, stream, paused)
    except (actions.ActionError, SetupError) as exc:
        return back(request, str(exc), "error", to)
    return back(request, "; ".join(done.sentences()), to=to)


@action
async def pause(request: Request, viewer: Viewer, form: dict[str, str]) -> Response:
    """``s2s pause CLIENT SOURCE --stream STREAM``."""
    return await _pause(request, viewer, form, True)


@action
async def resume(request: Request, viewer: Viewer, form: dict[str, str]) -> Response:
    """``s2s resume CLIENT SOURCE --stream STREAM``."""
    return await _pause(request, viewer, form, False)


# ----------------------------------------------------------- dead letters
@action
async def replay(request: Request, viewer: Viewer, form: dict[str, str]) -> Response:
    """``s2s dlq replay LETTER``."""
    code, letter_id = request.path_params["client"], request.path_params["letter_id"]
    client_id = await run_in_threadpool(views.letter_of, viewer, code, letter_id)
    if client_id is None:
        return not_found(request, viewer)
    note = f"replayed in the console by {viewer.username}"
    try:
        done = await run_in_threadpool(actions.replay_letter, letter_id, note, client_id)
    except ReplayError as exc:
        return back(request, str(exc), "error")
    return back(request, done.sentence())


@action
async def discard(request: Request, viewer: Viewer, form: dict[str, str]) -> Response:
    """``s2s dlq discard LETTER --reason TEXT``; the reason is required."""
    code, letter_id = request.path_params["client"], request.path_params["letter_id"]
    client_id = await run_in_threadpool(views.letter_of, viewer, code, letter_id)
    if client_id is None:
        return not_found(request, viewer)
    reason = " ".join(form.get("reason", "").split())
    if not reason:
        return back(request, "Say why the order will not be raised: the reason is kept.", "error")
    reason = f"{reason} (discarded in the console by {viewer.username})"
    try:
        sentence = await run_in_threadpool(actions.discard_letter, letter_id, reason, client_id)
    except (ReplayError, actions.ActionError) as exc:
        return back(request, str(exc), "error")
    return back(request, sentence)
