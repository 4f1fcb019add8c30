"""The channel contract suite over every channel kind the registry declares.

Each kind supplies its fixtures in ``channel_kinds/<kind>.py``; a kind
registered without them fails here. The same checks run for every kind:
its settings, its secrets never shown, its webhook signature accepted and
refused, its sample order transformed into a canonical order, a small
catalogue pushed to its emulated store, and a push retried after a lost
answer creating nothing twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet

from connectors.base import SettingsError, TransientError
from connectors.channel import ARCHIVED, Listing, ListingVariant, PushItem
from hub import crypto
from hub.models import Channel
from hub.schemas import load_order
from hub.settings import get_settings
from tests.contract.channel_fixtures import ChannelFixtures, load_all
from workers import channels as records
from workers import kinds

FIXTURES = load_all()
REGISTERED = kinds.channel_names()


@pytest.fixture(params=REGISTERED)
def fixtures(request: pytest.FixtureRequest) -> ChannelFixtures:
    kind: str = request.param
    if kind not in FIXTURES:
        pytest.fail(f"channel kind {kind!r} has no fixtures (tests/contract/channel_kinds/)")
    return FIXTURES[kind]


@pytest.fixture
def secret_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("S2S_SECRET_KEY", Fernet.generate_key().decode())
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_every_fixtures_module_is_for_a_registered_kind() -> None:
    assert set(FIXTURES) - set(REGISTERED) == set()


def test_every_kind_has_a_push_queue_and_a_connector() -> None:
    from workers.app import QUEUES

    for kind in REGISTERED:
        assert f"push.{kind}" in QUEUES
        assert kinds.channel_connector_class(kind).kind == kind


def _schema_errors(fixtures: ChannelFixtures, settings: dict[str, Any]) -> dict[str, Any]:
    plain = {k: v for k, v in settings.items() if k not in _secret_fields(fixtures)}
    schema = records.schema_for(fixtures.kind, "contract")()
    return dict(schema.validate(plain))


def _secret_fields(fixtures: ChannelFixtures) -> frozenset[str]:
    return records.SCHEMAS[fixtures.kind].secret_fields


def test_settings_load_and_bad_ones_are_named(fixtures: ChannelFixtures) -> None:
    assert _schema_errors(fixtures, fixtures.declared) == {}
    for name, value in fixtures.bad_settings:
        errors = _schema_errors(fixtures, {**fixtures.declared, name: value})
        assert name in errors, (name, value, errors)


def test_secrets_are_never_shown(fixtures: ChannelFixtures, secret_key: None) -> None:
    secret_names = _secret_fields(fixtures)
    secrets = {k: v for k, v in fixtures.declared.items() if k in secret_names}
    assert secrets, "the fixtures declare no secret"
    row = Channel(
        code=fixtures.kind,
        kind=fixtures.kind,
        settings={k: v for k, v in fixtures.declared.items() if k not in secret_names},
        secrets=crypto.encrypt(secrets),
    )
    shown = json.dumps(records.public_view(row))
    for value in secrets.values():
        assert value not in shown
        assert row.secrets is not None and value not in row.secrets  # encrypted at rest


def test_the_webhook_signature_is_accepted_and_refused(fixtures: ChannelFixtures) -> None:
    intake = kinds.channel_intake(fixtures.kind)
    body = json.dumps(fixtures.sample_order()).encode()
    signature = intake.sign(body, "the-secret")
    assert intake.verify(body, signature, "the-secret")
    assert not intake.verify(body, signature, "another-secret")
    assert not intake.verify(body + b" ", signature, "the-secret")
    assert not intake.verify(body, None, "the-secret")
    assert not intake.verify(body, signature, "")
    assert not intake.is_ping(body)


def test_the_sample_order_becomes_a_canonical_order(fixtures: ChannelFixtures) -> None:
    intake = kinds.channel_intake(fixtures.kind)
    canonical = intake.order(fixtures.sample_order())
    order, errors = load_order(canonical)
    assert errors == [] and order is not None, errors
    assert order["line_items"] and all(line["sku"] for line in order["line_items"])


def _catalogue(tag: str = "") -> list[Listing]:
    return [
        Listing(
            key="erp:MUG",
            title=f"Mug{tag}",
            variants=(ListingVariant(sku="MUG-1", price="49.00", qty=5),),
        ),
        Listing(
            key="erp:TEE",
            title=f"T-shirt{tag}",
            options=("Size",),
            variants=(
                ListingVariant(
                    sku="TEE-S", price="120.00", compare_at_price="150.00", qty=3, options=("S",)
                ),
                ListingVariant(sku="TEE-M", price="120.00", qty=0, options=("M",)),
            ),
        ),
    ]


def _connector(fixtures: ChannelFixtures, settings: dict[str, Any], secrets: dict[str, str]) -> Any:
    resolved = {"allow_http": True, **settings}
    return kinds.channel_connector_class(fixtures.kind)(resolved, secrets)


def test_a_small_catalogue_is_pushed_and_archived(fixtures: ChannelFixtures) -> None:
    with fixtures.serve() as store, _connector(fixtures, store.settings, store.secrets) as conn:
        outcomes = conn.push([PushItem(listing) for listing in _catalogue()])
        assert [o.error for o in outcomes] == [None, None]
        assert store.skus() == {"MUG-1": 1, "TEE-S": 1, "TEE-M": 1}
        bound = {o.key: o.bound for o in outcomes}
        assert all(b is not None and b.product_id for b in bound.values())
        mug = _catalogue()[0]
        archived = Listing(**{**mug.__dict__, "status": ARCHIVED})
        (outcome,) = conn.push([PushItem(archived, bound["erp:MUG"])])
        assert outcome.confirmed, outcome.error
        assert store.skus() == {"MUG-1": 1, "TEE-S": 1, "TEE-M": 1}


def test_a_push_retried_after_a_lost_answer_creates_nothing_twice(
    fixtures: ChannelFixtures,
) -> None:
    with fixtures.serve() as store:
        store.drop_next_write()
        with _connector(fixtures, store.settings, store.secrets) as conn:
            try:
                first = conn.push([PushItem(listing) for listing in _catalogue()])
            except TransientError:
                first = []
        # The hub may not have recorded anything: the retry knows no ids.
        with _connector(fixtures, store.settings, store.secrets) as conn:
            again = conn.push([PushItem(listing) for listing in _catalogue(" (again)")])
        assert all(o.confirmed for o in again), [o.error for o in again]
        assert store.skus() == {"MUG-1": 1, "TEE-S": 1, "TEE-M": 1}, first


def test_wrong_credentials_are_one_line_naming_the_setting(fixtures: ChannelFixtures) -> None:
    wrong, setting = fixtures.wrong_secrets
    with (
        fixtures.serve() as store,
        _connector(fixtures, store.settings, wrong) as conn,
        pytest.raises(SettingsError) as caught,
    ):
        conn.push([PushItem(listing) for listing in _catalogue()])
    text = f"{caught.value} {caught.value.hint or ''} {caught.value!r} {conn!r}"
    assert setting in text and "\n" not in str(caught.value)
    for value in wrong.values():
        assert value not in text
