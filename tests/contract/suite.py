"""The connector contract: what every kind's connector, maps and emulator
must do, checked the same way for each.

``ContractSuite`` holds the checks; a test class inherits it and provides
the ``kind`` fixture (the registered kind's name) and the ``fixtures``
fixture (its ``KindFixtures``). ``test_registered_kinds`` runs it over every
kind of ``workers.kinds``; ``test_new_kind`` runs it over a throw-away kind
registered by the test, to show that a kind needs nothing outside its own
files and its registry line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Connector, ConnectorError, NotSupportedError, SettingsError
from mappings import get_map, supported
from mappings.core import INBOUND
from tests.contract.fixtures import KindFixtures, Served, assert_no_secret, secrets_of
from workers import kinds
from workers.pipeline import map_records


class ContractSuite:
    """The checks. Subclasses provide the ``kind`` and ``fixtures`` fixtures."""

    @pytest.fixture
    def cls(self, kind: str) -> type[Connector]:
        return kinds.connector_class(kind)

    @pytest.fixture
    def served(self, fixtures: KindFixtures, tmp_path: Path) -> Iterator[Served]:
        with fixtures.serve(tmp_path) as running:
            yield running

    # ---- the registry --------------------------------------------------------

    def test_the_class_declares_the_kind_it_is_registered_as(
        self, kind: str, cls: type[Connector], fixtures: KindFixtures
    ) -> None:
        assert cls.kind == kind == fixtures.kind
        assert cls.title.strip() and cls.streams

    def test_every_stream_has_a_map_and_every_map_a_stream(
        self, kind: str, cls: type[Connector]
    ) -> None:
        kinds.load_maps(kind)
        inbound = {stream for stream in supported(kind) if stream in INBOUND}
        assert inbound == set(cls.streams), "the inbound maps and the connector's streams differ"
        assert "orders" in supported(kind), f"{kind} has no orders map for raise_order"
        for stream in supported(kind):
            assert get_map(kind, stream).erp == kind

    # ---- settings ------------------------------------------------------------

    def test_settings_load_idempotently(self, cls: type[Connector], fixtures: KindFixtures) -> None:
        assert set(secrets_of(cls, fixtures.settings)), "the sample settings set no secret"
        once = cls.load_settings(fixtures.settings)
        assert cls.load_settings(once) == once
        assert cls(once).settings == once

    def test_a_bad_setting_names_the_field_and_never_the_secret(
        self, cls: type[Connector], fixtures: KindFixtures
    ) -> None:
        secrets = secrets_of(cls, fixtures.settings)
        cases = [*fixtures.bad_settings, ("no_such_setting", secrets[0])]
        assert len(cases) > 1, "the kind's fixtures name no bad setting"
        for name, value in cases:
            with pytest.raises(SettingsError) as caught:
                cls.load_settings({**fixtures.settings, name: value})
            assert name in str(caught.value), f"{name} is not named: {caught.value}"
            assert name in (caught.value.hint or "")
            assert_no_secret(caught.value, [*secrets, *secrets_of(cls, {name: value})])

    def test_repr_holds_no_secret(self, cls: type[Connector], fixtures: KindFixtures) -> None:
        with cls(fixtures.settings) as connector:
            for text in (repr(connector), str(connector)):
                for secret in secrets_of(cls, fixtures.settings):
                    assert secret not in text

    # ---- streams ---------------------------------------------------------------

    def test_an_unsupported_stream_is_the_one_clear_error(
        self, cls: type[Connector], fixtures: KindFixtures
    ) -> None:
        # The sample settings reach no ERP: an answer other than
        # NotSupportedError would mean the connector tried to.
        offered = ", ".join(sorted(cls.streams))
        unsupported = sorted({"customers", "orders", "stock"} - cls.streams)
        with cls(fixtures.settings) as connector:
            for stream in unsupported:
                with pytest.raises(NotSupportedError) as caught:
                    connector.read(stream, None, 10)
                assert str(caught.value) == (
                    f"{cls.title} does not sync {stream}; it offers {offered}."
                )
                assert caught.value.hint == f"remove the {stream} stream from this source"
                assert_no_secret(caught.value, secrets_of(cls, fixtures.settings))

    def test_a_first_page_of_every_stream_maps(
        self, kind: str, cls: type[Connector], served: Served
    ) -> None:
        with cls(served.settings) as connector:
            for stream in sorted(cls.streams):
                page = connector.read(stream, None, 50)
                assert page.records, f"the emulator gave no {stream}"
                items, _ = map_records(kind, stream, page.records, connector.settings)
                assert items, f"no {stream} record of the first page maps"

    # ---- the ERP -----------------------------------------------------------------

    def test_check_is_one_line(self, cls: type[Connector], served: Served) -> None:
        with cls(served.settings) as connector:
            line = connector.check()
        assert isinstance(line, str) and line.strip()
        assert "\n" not in line
        for secret in secrets_of(cls, served.settings):
            assert secret not in line

    def test_a_refused_connector_says_so_without_its_secrets(
        self, cls: type[Connector], fixtures: KindFixtures, served: Served
    ) -> None:
        refused = {**served.settings, **fixtures.refused}
        assert fixtures.refused, "the kind's fixtures give no settings its ERP refuses"
        with cls(refused) as connector, pytest.raises(ConnectorError) as caught:
            connector.check()
        assert_no_secret(caught.value, secrets_of(cls, served.settings, refused))

    def test_a_raise_returns_a_document_that_find_order_finds(
        self, kind: str, cls: type[Connector], served: Served
    ) -> None:
        order: dict[str, Any] = served.order
        reference = str(order["channel_order_code"])
        with cls(served.settings) as connector:
            # As the raise task does: the stored plain settings, no secret.
            plain = {k: v for k, v in connector.settings.items() if k not in cls.secret_fields()}
            kinds.load_maps(kind)
            payload = get_map(kind, "orders").apply(order, plain)
            number = connector.raise_order(payload)
            assert isinstance(number, str) and number.strip()
            assert connector.find_order(reference) == number
            assert connector.find_order(f"{reference}-never-raised") is None
