"""The push over the HTTP API: start a push, a channel's state, its refusals.

Real PostgreSQL and Redis (``pg_hub``); no worker runs, so a push started
here stays active: what is checked is the answer, the run row the database
holds and the step published on the kind's queue. Every answer is held to
the OpenAPI document with the validator of ``tests/integration/test_openapi.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from sqlalchemy import select
from starlette.testclient import TestClient

from hub import pushes
from hub.db import session_scope
from hub.models import Channel, Client, Product, PushRun, Source
from hub.schemas import canonical_hash
from hub.store import StoreItem, upsert_products
from s2s.api import create_app
from tests.conftest import Hub
from tests.integration.test_openapi import _conforms
from workers.channels import get_channel
from workers.sources import set_channels, upsert_client, upsert_source

pytestmark = [pytest.mark.services]

C = "/api/v1/clients/{client}"
CHANNEL = f"{C}/channels/{{channel}}"
PUSH = f"{CHANNEL}/push"
PROBLEMS = f"{CHANNEL}/problems"
STORE_WORDS = "Title can't be blank"


@dataclass(frozen=True)
class Api:
    http: TestClient
    acme: dict[str, str]
    other: dict[str, str]
    broker: str


def _shop(store: str) -> dict[str, Any]:
    return {
        "kind": "shopify",
        "secret": f"whsec_{store}",
        "store_url": f"https://{store}.myshopify.com",
        "access_token": f"shpat_{store}_api_test",
    }


def _products(s: Any, client: Client, source: Source, codes: list[str]) -> None:
    items = []
    for code in codes:
        data = {
            "source_product_code": code,
            "title": f"Product {code}",
            "variants": [{"source_variant_code": code, "sku": code, "qty": 3, "price": 9.5}],
        }
        items.append(StoreItem(code, "active", data, canonical_hash(data)))
    upsert_products(s, client_id=client.id, source_id=source.id, run_id=1, items=items)


@pytest.fixture
def api(pg_hub: Hub) -> Api:
    """acme: a Shopify channel that pushes (three products, one refused by
    the store) and a WooCommerce channel that takes orders only; other: a
    client with a channel of its own."""
    erp = f"sqlite:///{pg_hub.var_dir / 'erp.sqlite'}"
    with session_scope() as s:
        acme, acme_token = upsert_client(s, "acme")
        other, other_token = upsert_client(s, "other")
        source = upsert_source(s, acme, "erp", "sql", {"url": erp})
        set_channels(s, acme, {"shop": _shop("acme-test"), "woocommerce": {"secret": "wc"}})
        set_channels(s, other, {"outlet": _shop("other-test")})
        s.flush()
        _products(s, acme, source, ["P-1", "P-2", "P-3"])
        shop = get_channel(s, acme, "shop")
        assert shop is not None
        p2 = s.scalars(select(Product).where(Product.source_product_code == "P-2")).one()
        pushes.record(s, shop.id, [], [pushes.Refused(p2.id, "erp:P-2", STORE_WORDS, "h")])
    assert acme_token and other_token
    return Api(
        TestClient(create_app()),
        {"Authorization": f"Bearer {acme_token}"},
        {"Authorization": f"Bearer {other_token}"},
        pg_hub.env["S2S_BROKER_URL"],
    )


def _runs(channel_code: str = "shop") -> list[PushRun]:
    with session_scope() as s:
        rows = list(
            s.scalars(
                select(PushRun)
                .join(Channel, Channel.id == PushRun.channel_id)
                .where(Channel.code == channel_code)
                .order_by(PushRun.id)
            )
        )
        for row in rows:
            s.expunge(row)
        return rows


def _published(broker: str, queue: str) -> list[int]:
    """The run ids of the push steps waiting on ``queue`` in Redis."""
    found: list[int] = []
    for raw in redis.Redis.from_url(broker).lrange(queue, 0, -1):
        headers = json.loads(raw)["headers"]
        assert headers["task"] == "s2s.push.batch"
        found.append(int(headers["argsrepr"].strip("(,)")))
    return found


def _finish(run_id: int) -> None:
    with session_scope() as s:
        assert pushes.finish(s, run_id)


def test_a_push_starts_once_and_a_second_request_names_it(api: Api) -> None:
    url = "/api/v1/clients/acme/channels/shop/push"
    started = api.http.post(url, headers=api.acme)
    assert started.status_code == 202
    body = _conforms(started, PUSH, "post")
    assert body["started"] is True
    (run,) = _runs()
    assert body["push"] == run.id
    assert (run.status, run.requested_by, run.full, run.retry_refused) == (
        "running",
        "api",
        False,
        False,
    )
    assert run.target >= 3, "the run reads the feed to its end (three products written)"
    assert _published(api.broker, "push.shopify") == [run.id]

    again = api.http.post(url, headers=api.acme, json={"full": True})
    assert again.status_code == 200
    body = _conforms(again, PUSH, "post")
    assert body["started"] is False and body["push"] == run.id
    assert str(run.id) in body["message"]
    assert len(_runs()) == 1, "no second run while one is active"
    assert _published(api.broker, "push.shopify") == [run.id], "nothing published again"

    _finish(run.id)
    full = api.http.post(url, headers=api.acme, json={"full": True, "retry_refused": True})
    assert full.status_code == 202
    newer = _runs()[-1]
    assert _conforms(full, PUSH, "post")["push"] == newer.id != run.id
    assert (newer.full, newer.retry_refused, newer.position) == (True, True, 0)


def test_the_channel_shows_its_state_and_the_last_ten_pushes(api: Api) -> None:
    url = "/api/v1/clients/acme/channels/shop"
    fresh = api.http.get(url, headers=api.acme)
    assert fresh.status_code == 200
    body = _conforms(fresh, CHANNEL)
    assert (body["channel"], body["kind"], body["pushes"]) == ("shop", "shopify", True)
    assert (body["waiting"], body["refused"]) == (3, 1)
    assert body["last_push"] is None and body["recent_pushes"] == []

    ids = []
    for _ in range(12):
        answer = api.http.post(f"{url}/push", headers=api.acme)
        assert answer.status_code == 202
        ids.append(answer.json()["push"])
        _finish(ids[-1])
    body = _conforms(api.http.get(url, headers=api.acme), CHANNEL)
    assert [r["id"] for r in body["recent_pushes"]] == ids[::-1][:10]
    assert body["last_push"]["id"] == ids[-1]
    assert body["last_push"]["status"] == "succeeded"
    assert body["last_push"]["requested_by"] == "api"


def test_the_status_lists_every_channel_beside_the_streams(api: Api) -> None:
    answer = api.http.get("/api/v1/clients/acme/status", headers=api.acme)
    assert answer.status_code == 200
    body = _conforms(answer, f"{C}/status")
    assert body["client"] == "acme"
    assert {(r["source"], r["stream"]) for r in body["streams"]} >= {("erp", "products")}
    by_code = {c["channel"]: c for c in body["channels"]}
    assert set(by_code) == {"shop", "woocommerce"}, "only acme's channels"
    assert (by_code["shop"]["pushes"], by_code["shop"]["waiting"]) == (True, 3)
    assert by_code["shop"]["refused"] == 1
    assert by_code["woocommerce"]["pushes"] is False


def test_problems_name_the_product_and_give_the_stores_words(api: Api) -> None:
    url = "/api/v1/clients/acme/channels/shop/problems"
    answer = api.http.get(url, headers=api.acme)
    assert answer.status_code == 200
    (problem,) = _conforms(answer, PROBLEMS)["problems"]
    assert (problem["source"], problem["code"], problem["error"]) == ("erp", "P-2", STORE_WORDS)
    assert problem["in_store"] is False
    assert _conforms(api.http.get(f"{url}?limit=1", headers=api.acme), PROBLEMS)["problems"]
    for bad in ("0", "x", "1001"):
        wrong = api.http.get(f"{url}?limit={bad}", headers=api.acme)
        assert wrong.status_code == 400, bad
        assert "limit" in _conforms(wrong, PROBLEMS)["error"]


def test_bad_bodies_and_intake_only_channels_start_nothing(api: Api) -> None:
    url = "/api/v1/clients/acme/channels/shop/push"
    for body, words in (
        (b"{x", "not valid JSON"),
        (b"[true]", "JSON object"),
        (b'{"full": "yes"}', "'full' must be true or false"),
        (b'{"retry_refused": 1}', "'retry_refused' must be true or false"),
        (b'{"ful": true}', "unknown key 'ful'"),
    ):
        answer = api.http.post(url, headers=api.acme, content=body)
        assert answer.status_code == 400, body
        assert words in _conforms(answer, PUSH, "post")["error"]
    intake = api.http.post("/api/v1/clients/acme/channels/woocommerce/push", headers=api.acme)
    assert intake.status_code == 409
    assert "'woocommerce' has no store_url" in _conforms(intake, PUSH, "post")["error"]
    assert _runs() == [] and _runs("woocommerce") == []
    assert _published(api.broker, "push.shopify") == []


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", CHANNEL), ("post", PUSH), ("get", PROBLEMS), ("get", f"{C}/status")],
)
def test_unknown_and_unauthorised_requests(api: Api, method: str, path: str) -> None:
    def call(client: str, channel: str, headers: dict[str, str]) -> Any:
        url = path.format(client=client, channel=channel)
        return getattr(api.http, method)(url, headers=headers)

    for answer, status in (
        (call("acme", "shop", {}), 401),
        (call("acme", "shop", {"Authorization": "Bearer nope"}), 401),
        (call("acme", "shop", api.other), 401),  # another client's token
        (call("nobody", "shop", api.acme), 404),
    ):
        assert answer.status_code == status, (path, answer.text)
        _conforms(answer, path, method)
    if "{channel}" in path:
        # The other client's channel is not reachable under acme's URL.
        missing = call("acme", "outlet", api.acme)
        assert missing.status_code == 404
        assert "no channel 'outlet'" in _conforms(missing, path, method)["error"]
    assert _runs() == [] and _runs("outlet") == []


def test_a_client_sees_only_its_own_channel(api: Api) -> None:
    own = api.http.get("/api/v1/clients/other/channels/outlet", headers=api.other)
    body = _conforms(own, CHANNEL)
    assert (body["waiting"], body["refused"]) == (0, 0), "acme's products are not other's"
    assert (
        api.http.get("/api/v1/clients/other/channels/outlet", headers=api.acme).status_code == 401
    )
    started = api.http.post("/api/v1/clients/other/channels/outlet/push", headers=api.other)
    assert started.status_code == 202
    assert [r.id for r in _runs("outlet")] == [started.json()["push"]]
    assert _runs() == [], "acme's channel untouched"
    status = api.http.get("/api/v1/clients/other/status", headers=api.other).json()
    assert [c["channel"] for c in status["channels"]] == ["outlet"]
