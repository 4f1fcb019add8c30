"""The operations console over HTTP, against PostgreSQL and Redis.

Two clients (acme, globex), each with an SQL source; an operator and a user
of acme. Every page and form is driven through the API app as a browser
would (cookies, the forms' CSRF tokens), and what each action changed is
read back from the database and held against what the CLI's command does.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from emulators import sql_erp
from hub import orders as hub_orders
from hub import queries, users
from hub.db import session_scope
from hub.models import DeadLetter, Order, OrderEvent, Source, SourceStream, SyncRun
from hub.settings import get_settings
from s2s.api import create_app
from s2s.demo_acts import order as sample_order
from tests.conftest import ROOT, Hub
from workers.orders import submit
from workers.sources import upsert_client, upsert_source

PASSWORD = "correct-horse-battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Console:
    hub: Hub
    ids: dict[str, int]  # client code -> id
    letters: dict[str, list[int]]  # client code -> open dead letter ids
    runs: dict[str, int]  # client code -> a finished-looking run of its source


def _dead_letter(client_id: int, code: str) -> int:
    """An order of the client, dead-lettered as routing would (unknown SKU)."""
    result, errors = submit(client_id, sample_order(code, ["NO-SUCH-SKU"]))
    assert result is not None, errors
    with session_scope() as s:
        letter = hub_orders.dead_letter(
            s,
            result.order.id,
            stage="route",
            error_class="UnknownSku",
            message="no product has SKU 'NO-SUCH-SKU'",
            fix="sync the product, then replay",
        )
        assert letter is not None
        return letter.id


@pytest.fixture
def console(pg_hub: Hub) -> Console:
    erp = f"sqlite:///{pg_hub.var_dir / 'erp.sqlite'}"
    sql_erp.create_schema(erp)
    sql_erp.seed(erp, products=20, customers=5, seed=3)
    ids: dict[str, int] = {}
    with session_scope() as s:
        for code in ("acme", "globex"):
            client, _ = upsert_client(s, code)
            upsert_source(s, client, "erp", "sql", {"url": erp})
            ids[code] = client.id
        users.add(s, "ops", PASSWORD, None)
        users.add(s, "ann", PASSWORD, ids["acme"])
    letters = {
        code: [_dead_letter(cid, f"{code}-{n}") for n in range(3)] for code, cid in ids.items()
    }
    runs: dict[str, int] = {}
    with session_scope() as s:
        for code, cid in ids.items():
            source = s.scalars(select(Source).where(Source.client_id == cid)).one()
            run = SyncRun(
                client_id=cid,
                source_id=source.id,
                stream="products",
                status="succeeded",
                fetched=20,
                created=18,
                quarantined=2,
                pages_done=1,
                pages_total=1,
            )
            s.add(run)
            s.flush()
            runs[code] = run.id
    return Console(pg_hub, ids, letters, runs)


def browser(https: bool = False, address: str = "testclient") -> TestClient:
    base = "https://testserver" if https else "http://testserver"
    return TestClient(create_app(), base_url=base, follow_redirects=False, client=(address, 5000))


def sign_in(client: TestClient, username: str, password: str = PASSWORD) -> Any:
    page = client.get("/console/login")
    assert page.status_code == 200
    token = CSRF.search(page.text)
    assert token, page.text
    return client.post(
        "/console/login",
        data={"username": username, "password": password, "csrf_token": token.group(1)},
    )


def signed_in(username: str) -> tuple[TestClient, str]:
    """A client with a session, and the session's CSRF token."""
    client = browser()
    answer = sign_in(client, username)
    assert answer.status_code == 303, answer.text
    token = CSRF.search(client.get("/console/").text)
    assert token
    return client, token.group(1)


# ------------------------------------------------------------- sign-in
def test_sign_in_good_and_bad_and_the_cookie(console: Console) -> None:
    client = browser()
    first = client.get("/console/clients/acme/orders")
    assert first.status_code == 303
    assert first.headers["location"] == "/console/login?next=%2Fconsole%2Fclients%2Facme%2Forders"

    bad = sign_in(client, "ops", "wrong-password-1")
    assert bad.status_code == 200 and 'id="error"' in bad.text
    assert "Wrong username or password." in bad.text
    assert "s2s_console=" not in bad.headers.get("set-cookie", "")
    nobody = sign_in(client, "nobody", PASSWORD)
    assert nobody.status_code == 200 and "Wrong username or password." in nobody.text

    good = sign_in(client, "ops")
    assert good.status_code == 303 and good.headers["location"] == "/console/"
    cookie = next(c for c in good.headers.get_list("set-cookie") if c.startswith("s2s_console="))
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert "httponly" in flags and "samesite=lax" in flags and "path=/console" in flags
    assert any(f.startswith("max-age=") for f in flags) and "secure" not in flags
    assert PASSWORD not in cookie

    page = client.get("/console/")
    assert page.status_code == 200 and '<strong id="whoami">ops</strong>' in page.text
    assert 'id="sign-out-form"' in page.text
    token = CSRF.search(page.text)
    assert token
    copied = client.cookies.get("s2s_console")
    elsewhere, _ = signed_in("ops")  # the same user on another device
    out = client.post("/console/logout", data={"csrf_token": token.group(1)})
    assert out.status_code == 303 and out.headers["location"] == "/console/login"
    assert client.get("/console/").status_code == 303
    # The session is over on the server too: a copy of its cookie opens
    # nothing, and signing out ended the user's other sessions as well.
    replayed = browser()
    replayed.cookies.set("s2s_console", copied or "", path="/console")
    assert replayed.get("/console/").status_code == 303
    assert elsewhere.get("/console/").status_code == 303


def test_the_cookie_is_secure_over_https(console: Console) -> None:
    client = browser(https=True)
    good = sign_in(client, "ops")
    assert good.status_code == 303
    cookie = next(c for c in good.headers.get_list("set-cookie") if c.startswith("s2s_console="))
    assert "secure" in cookie.lower()


def test_sign_in_is_rate_limited_per_username_and_per_address(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:

    monkeypatch.setenv("S2S_CONSOLE_LOGIN_LIMIT", "3")
    get_settings.cache_clear()
    try:
        attacker = browser(address="10.0.0.1")
        for _ in range(3):
            assert sign_in(attacker, "ops", "guess-guess-guess").status_code == 200
        limited = sign_in(attacker, "ops")  # even the right password now
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert 'id="error"' in limited.text and "try again in" in limited.text
        assert "s2s_console=" not in limited.headers.get("set-cookie", "")
        # The name is limited from any address.
        assert sign_in(browser(address="10.0.0.2"), "ops").status_code == 429
        # The address is limited for any name.
        assert sign_in(attacker, "ann").status_code == 429
        # Another name from another address is not.
        assert sign_in(browser(address="10.0.0.3"), "ann").status_code == 303
    finally:
        get_settings.cache_clear()


def test_a_session_ends_when_the_password_changes_or_the_user_goes(console: Console) -> None:
    client, _ = signed_in("ann")
    assert client.get("/console/").status_code == 200
    with session_scope() as s:
        users.set_password(s, "ann", "another-password-2")
    assert client.get("/console/").status_code == 303
    client, _ = signed_in("ops")
    with session_scope() as s:
        users.remove(s, "ops")
    assert client.get("/console/").status_code == 303
    forged = browser()
    forged.cookies.set("s2s_console", "WzEsImFiYyIsImRlZiJd.abc.def")
    assert forged.get("/console/").status_code == 303


def test_user_added_with_the_cli_signs_in(console: Console) -> None:
    secret = "cli-given-Password-9"
    added = subprocess.run(
        [
            sys.executable,
            "-m",
            "s2s.cli",
            "user",
            "add",
            "carol",
            "--client",
            "globex",
            "--password-stdin",
        ],
        input=secret + "\n",
        env=console.hub.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert added.returncode == 0, added.stderr
    assert secret not in added.stdout + added.stderr
    listed = console.hub.run_cli("user", "list")
    assert "carol" in listed.stdout and "globex" in listed.stdout
    assert secret not in listed.stdout
    client = browser()
    assert sign_in(client, "carol", secret).status_code == 303
    page = client.get("/console/")
    assert 'data-client="globex"' in page.text and 'data-client="acme"' not in page.text


# ---------------------------------------------------------------- CSRF
def _post_routes(console: Console) -> list[str]:
    letter = console.letters["acme"][0]
    return [
        "/console/logout",
        "/console/clients/acme/sources/erp/resync",
        "/console/clients/acme/sources/erp/pause",
        "/console/clients/acme/sources/erp/resume",
        f"/console/clients/acme/dead-letters/{letter}/replay",
        f"/console/clients/acme/dead-letters/{letter}/discard",
    ]


def _state() -> tuple[Any, ...]:
    """Everything the console's actions could change."""
    with session_scope() as s:
        return (
            sorted((r.id, r.status) for r in s.scalars(select(SyncRun))),
            sorted((r.id, r.paused) for r in s.scalars(select(SourceStream))),
            sorted((d.id, d.status, d.resolution) for d in s.scalars(select(DeadLetter))),
            sorted((o.id, o.status) for o in s.scalars(select(Order))),
            len(list(s.scalars(select(OrderEvent.id)))),
        )


def test_every_post_without_the_right_csrf_token_is_refused(console: Console) -> None:
    client, _token = signed_in("ops")
    _, others = signed_in("ops")  # a token of another session
    before = _state()
    fields = {"stream": "products", "full": "1", "reason": "no"}
    for url in _post_routes(console):
        for given in ({}, {"csrf_token": "0" * 64}, {"csrf_token": others}):
            answer = client.post(url, data={**fields, **given})
            assert answer.status_code == 403, (url, given, answer.status_code)
            assert "CSRF" in answer.text
    assert _state() == before
    # Still signed in: the refused sign-out did nothing.
    assert client.get("/console/").status_code == 200
    login = browser().post("/console/login", data={"username": "ops", "password": PASSWORD})
    assert login.status_code == 403 and "CSRF" in login.text


# ------------------------------------------------------------- tenants
def test_a_client_user_gets_404_on_every_page_and_form_of_another_client(
    console: Console,
) -> None:
    client, token = signed_in("ann")
    letter, run = console.letters["globex"][0], console.runs["globex"]
    with session_scope() as s:
        order_id = s.get(DeadLetter, letter).order_id  # type: ignore[union-attr]
    pages = [
        "/console/clients/globex/sources/erp",
        "/console/clients/globex/sources/erp/runs.json",
        f"/console/clients/globex/runs/{run}",
        f"/console/clients/acme/runs/{run}",  # globex's run under acme's URL
        "/console/clients/globex/orders",
        f"/console/clients/globex/orders/{order_id}",
        f"/console/clients/acme/orders/{order_id}",
        "/console/clients/globex/dead-letters",
        f"/console/clients/globex/dead-letters/{letter}",
        f"/console/clients/acme/dead-letters/{letter}",
    ]
    missing = client.get("/console/clients/nobody/orders")
    assert missing.status_code == 404
    for url in pages:
        answer = client.get(url)
        assert answer.status_code == 404, url
        if not url.endswith(".json"):
            assert answer.text == missing.text, url  # the same page as a missing client
    before = _state()
    posts = [
        "/console/clients/globex/sources/erp/resync",
        "/console/clients/globex/sources/erp/pause",
        "/console/clients/globex/sources/erp/resume",
        f"/console/clients/globex/dead-letters/{letter}/replay",
        f"/console/clients/globex/dead-letters/{letter}/discard",
        f"/console/clients/acme/dead-letters/{letter}/replay",
        f"/console/clients/acme/dead-letters/{letter}/discard",
    ]
    for url in posts:
        data = {"csrf_token": token, "stream": "products", "full": "1", "reason": "not mine"}
        assert client.post(url, data=data).status_code == 404, url
    assert _state() == before
    overview = client.get("/console/overview.json").json()
    assert {row["client"] for row in overview["streams"]} == {"acme"}
    assert overview["open_letters"] == {"acme": 3}
    page = client.get("/console/").text
    assert "globex" not in page
    # Their own client's pages open.
    for url in (
        "/console/clients/acme/orders",
        f"/console/clients/acme/runs/{console.runs['acme']}",
    ):
        assert client.get(url).status_code == 200, url


def test_the_operator_sees_every_client(console: Console) -> None:
    client, _ = signed_in("ops")
    page = client.get("/console/").text
    for code in ("acme", "globex"):
        for stream in ("products", "customers"):
            assert f'data-client="{code}" data-source="erp" data-stream="{stream}"' in page, (
                code,
                stream,
            )
        assert f'<li data-client="{code}">' in page
        assert client.get(f"/console/clients/{code}/dead-letters").status_code == 200
        run = client.get(f"/console/clients/{code}/runs/{console.runs[code]}")
        assert run.status_code == 200 and 'class="count-created">18<' in run.text
    data = client.get("/console/overview.json").json()
    assert data["open_letters"] == {"acme": 3, "globex": 3}
    assert set(data["queues"]) >= {"fetch", "orders"} and "workers" in data
    row = next(r for r in data["streams"] if r["client"] == "globex" and r["stream"] == "products")
    assert row["last_run_status"] == "succeeded" and "18 created" in row["last_run_counts"]


# ------------------------------------------------------------- actions
def _letter_state(letter_id: int) -> tuple[Any, ...]:
    with session_scope() as s:
        letter = s.get(DeadLetter, letter_id)
        assert letter is not None
        order = s.get(Order, letter.order_id)
        assert order is not None
        events = [e.status for e in queries.order_history(s, order.id)]
        return letter.status, order.status, order.attempts, order.source_id, events


def test_replay_and_discard_do_what_the_cli_does(console: Console) -> None:
    client, token = signed_in("ann")
    web, cli = console.letters["acme"][0], console.letters["acme"][1]
    page = client.get(f"/console/clients/acme/dead-letters/{web}")
    assert 'id="replay"' in page.text and 'id="discard"' in page.text
    answer = client.post(
        f"/console/clients/acme/dead-letters/{web}/replay", data={"csrf_token": token}
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/console/clients/acme/dead-letters/{web}"
    shown = client.get(answer.headers["location"])
    assert 'id="flash"' in shown.text and f"dead letter {web} replayed" in shown.text
    assert 'id="replay"' not in shown.text  # no longer open
    by_cli = console.hub.run_cli("dlq", "replay", str(cli))
    assert by_cli.returncode == 0, by_cli.stderr
    web_state, cli_state = _letter_state(web), _letter_state(cli)
    assert web_state[0] == cli_state[0] == "replayed"
    assert web_state[1:] == cli_state[1:]
    assert web_state[1] in ("received", "queued")  # routed again (no worker runs here)
    again = client.post(
        f"/console/clients/acme/dead-letters/{web}/replay", data={"csrf_token": token}
    )
    assert "already replayed" in client.get(again.headers["location"]).text

    gone = console.letters["acme"][2]
    empty = client.post(
        f"/console/clients/acme/dead-letters/{gone}/discard",
        data={"csrf_token": token, "reason": "   "},
    )
    assert empty.status_code == 303 and _letter_state(gone)[0] == "open"
    assert "Say why" in client.get(empty.headers["location"]).text
    done = client.post(
        f"/console/clients/acme/dead-letters/{gone}/discard",
        data={"csrf_token": token, "reason": "customer cancelled by phone"},
    )
    assert "discarded" in client.get(done.headers["location"]).text
    by_cli = console.hub.run_cli("dlq", "discard", str(console.letters["globex"][0]))
    assert by_cli.returncode == 1  # the CLI wants a reason too
    by_cli = console.hub.run_cli(
        "dlq", "discard", str(console.letters["globex"][0]), "--reason", "customer cancelled"
    )
    assert by_cli.returncode == 0, by_cli.stderr
    mine, theirs = _letter_state(gone), _letter_state(console.letters["globex"][0])
    assert mine[:3] == theirs[:3] == ("discarded", "discarded", 0)
    with session_scope() as s:
        resolution = s.get(DeadLetter, gone).resolution  # type: ignore[union-attr]
    assert resolution is not None and resolution.startswith("customer cancelled by phone")
    assert "ann" in resolution


def _stream_row(client_id: int, stream: str) -> SourceStream:
    with session_scope() as s:
        source = s.scalars(select(Source).where(Source.client_id == client_id)).one()
        return s.scalars(
            select(SourceStream).where(
                SourceStream.source_id == source.id, SourceStream.stream == stream
            )
        ).one()


def test_resync_pause_and_resume_do_what_the_cli_does(console: Console) -> None:
    client, token = signed_in("ann")
    base = "/console/clients/acme/sources/erp"
    full = client.post(
        f"{base}/resync", data={"csrf_token": token, "stream": "products", "full": "1"}
    )
    assert full.status_code == 303 and full.headers["location"] == f"{base}?stream=products"
    assert "started for acme/erp products" in client.get(full.headers["location"]).text
    since = client.post(
        f"{base}/resync",
        data={"csrf_token": token, "stream": "customers", "since": "2026-11-01 08:00"},
    )
    assert "started for acme/erp customers" in client.get(since.headers["location"]).text
    bad = client.post(
        f"{base}/resync", data={"csrf_token": token, "stream": "customers", "since": "soon"}
    )
    assert "since takes a date and time" in client.get(bad.headers["location"]).text
    busy = client.post(
        f"{base}/resync", data={"csrf_token": token, "stream": "products", "full": "1"}
    )
    assert "already active" in client.get(busy.headers["location"]).text
    with session_scope() as s:
        runs = list(
            s.scalars(
                select(SyncRun)
                .where(SyncRun.client_id == console.ids["acme"], SyncRun.requested_by == "console")
                .order_by(SyncRun.id)
            )
        )
    assert [(r.stream, r.status, r.full, r.since) for r in runs] == [
        ("products", "running", True, None),
        ("customers", "running", False, "2026-11-01 08:00:00"),
    ]
    # The CLI refuses the same stream for the same reason.
    assert "already active" in console.hub.run_cli("resync", "acme", "erp").stdout
    listed = client.get(f"{base}/runs.json").json()["runs"]
    assert {r["id"] for r in listed} >= {r.id for r in runs}
    assert listed[0]["progress"].endswith("fetched")

    paused = client.post(f"{base}/pause", data={"csrf_token": token, "stream": "products"})
    assert "paused products" in client.get(paused.headers["location"]).text
    assert _stream_row(console.ids["acme"], "products").paused is True
    assert _stream_row(console.ids["acme"], "customers").paused is False
    assert (
        "already paused"
        in console.hub.run_cli("pause", "acme", "erp", "--stream", "products").stdout
    )
    resumed = client.post(f"{base}/resume", data={"csrf_token": token, "stream": "products"})
    assert "resumed products" in client.get(resumed.headers["location"]).text
    assert _stream_row(console.ids["acme"], "products").paused is False
    # globex untouched by all of it.
    assert _stream_row(console.ids["globex"], "products").paused is False


def test_pages_show_runs_quarantine_orders_and_history(console: Console) -> None:
    client, _ = signed_in("ops")
    source = client.get("/console/clients/acme/sources/erp")
    assert source.status_code == 200
    assert f'<tr data-run-id="{console.runs["acme"]}">' in source.text
    for form in ("resync-full", "resync-since", "pause", "resume"):
        assert f'<form id="{form}"' in source.text
    orders = client.get("/console/clients/acme/orders")
    assert orders.status_code == 200 and 'class="reference">acme-0<' in orders.text
    order_id = int(re.findall(r'data-order-id="(\d+)"', orders.text)[0])
    order = client.get(f"/console/clients/acme/orders/{order_id}")
    assert 'id="history"' in order.text and 'class="state">dead<' in order.text
    letters = client.get("/console/clients/acme/dead-letters")
    assert letters.text.count("<tr data-letter-id=") == 3
    assert "no product has SKU" in letters.text
    static = client.get("/console/static/console.js")
    assert static.status_code == 200 and "overview.json" in static.text


def test_a_client_user_sees_how_many_workers_not_their_hosts(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    from s2s.console import views

    seen = {"queues": {"orders": 0}, "workers": {"w1@hub-host-a": ["orders"]}}
    monkeypatch.setattr(views, "broker_facts", lambda: {k: dict(v) for k, v in seen.items()})
    client, _ = signed_in("ann")
    data = client.get("/console/overview.json").json()
    assert data["workers"] == {"worker 1": ["orders"]}
    assert "hub-host-a" not in client.get("/console/").text
    operator, _ = signed_in("ops")
    assert operator.get("/console/overview.json").json()["workers"] == seen["workers"]
