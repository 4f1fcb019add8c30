"""A task's ack that lands while the worker re-establishes a lost Redis
connection is a logged connection error (the message is delivered again),
not the AttributeError that stopped the worker ("Unrecoverable error")."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from kombu.message import Message

from workers.broker import RedisChannel

pytestmark = [pytest.mark.services]


def test_an_ack_on_a_closed_connection_is_a_connection_error(
    pg_hub: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from workers.app import app

    with app.connection_for_write() as conn:
        channel = conn.channel()
        assert isinstance(channel, RedisChannel)
        message = Message(body=b"{}", delivery_tag="tag-1", channel=channel)
        # What kombu leaves behind when the connection is lost mid-flight.
        conn.transport.client = None
        log = logging.getLogger("test.ack")
        with caplog.at_level(logging.CRITICAL, logger="test.ack"):
            message.ack_log_error(log, conn.connection_errors + conn.channel_errors)
        assert "Couldn't ack" in caplog.text
        assert "connection was closed" in caplog.text
