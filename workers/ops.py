"""Operational read-outs shared by the CLI, the API and metrics.

Queue depths come from the broker itself. Workers online come from a
broadcast ping on brokers that can broadcast (Redis, RabbitMQ); kombu's
SQLAlchemy transport cannot carry a broadcast between processes, so on the
embedded default each worker instead keeps a small heartbeat file under the
var directory (the embedded default is one machine by nature: its database
and broker are files there).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from hub.settings import get_settings
from workers.app import QUEUES, app

HEARTBEAT_EVERY = 5.0
HEARTBEAT_FRESH = 20.0


def queue_depths(queues: tuple[str, ...] = QUEUES, timeout: float = 3.0) -> dict[str, int | None]:
    """Messages waiting per queue, on any broker kombu speaks (Redis, RabbitMQ,
    the embedded SQLAlchemy transport). None where the broker did not answer."""
    out: dict[str, int | None] = {q: None for q in queues}
    try:
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, timeout=int(max(1.0, timeout)))
            channel: Any = conn.default_channel  # queue_declare is not in kombu's stubs
            for q in queues:
                try:
                    out[q] = channel.queue_declare(queue=q, passive=True).message_count
                except Exception:
                    out[q] = 0  # a queue never declared holds nothing
    except Exception:
        pass
    return out


def broadcasts() -> bool:
    """Whether the broker carries broadcasts (remote control, events, Flower)."""
    return not get_settings().broker_url.startswith(("sqla+", "sqlalchemy+"))


def _heartbeat_dir() -> Path:
    return get_settings().var_dir / "workers"


def workers_online(timeout: float = 1.5) -> dict[str, list[str]] | None:
    """Each live worker's name and the queues it consumes; None if unknown
    (the broker did not answer)."""
    if not broadcasts():
        found: dict[str, list[str]] = {}
        now = time.time()
        for path in sorted(_heartbeat_dir().glob("*.json")):
            try:
                if now - path.stat().st_mtime > HEARTBEAT_FRESH:
                    continue
                beat = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if _alive(int(beat.get("pid", 0))):
                found[str(beat["name"])] = list(beat.get("queues", []))
        return found
    try:
        replies = app.control.inspect(timeout=timeout).active_queues()
    except Exception:
        return None
    return {name: sorted(q["name"] for q in qs) for name, qs in (replies or {}).items()}


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Heartbeat:
    """Writes this worker's heartbeat file until stopped (embedded broker only)."""

    def __init__(self, name: str, queues: list[str]) -> None:
        self.path = _heartbeat_dir() / f"{name.replace('/', '_')}.json"
        self.body = json.dumps(
            {"name": name, "queues": queues, "pid": os.getpid(), "host": socket.gethostname()}
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="s2s-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text(self.body)
                tmp.replace(self.path)
            self._stop.wait(HEARTBEAT_EVERY)

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self.path.unlink()


class EventHeartbeat:
    """Celery's worker events (online, heartbeat, offline), sent from a thread
    with a broker connection of its own, so that Flower and event monitors
    see the worker.

    Celery's own heartbeat publishes from the worker's event loop and retries
    until the broker answers: across a network partition that froze the
    loop, so task time limits fired late and all at once and a child killed
    while writing its result corrupted the pool ("Unrecoverable error:
    UnpicklingError"). Here a beat that cannot be sent is skipped; the next
    one tries again.
    """

    def __init__(self, hostname: str, every: float = 2.0) -> None:
        self.hostname = hostname
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="s2s-events", daemon=True)

    def start(self) -> EventHeartbeat:
        self._thread.start()
        return self

    def _send(self, dispatcher: Any, event: str) -> None:
        from celery.worker import state

        dispatcher.send(
            event,
            freq=self.every,
            active=len(state.active_requests),
            processed=state.all_total_count[0],
            loadavg=_loadavg(),
            retry=False,
            **state.SOFTWARE_INFO,
        )

    def _run(self) -> None:
        event = "worker-online"
        while not self._stop.is_set():
            try:
                with app.connection_for_write() as conn:
                    dispatcher = app.events.Dispatcher(
                        conn, hostname=self.hostname, enabled=True, groups=["worker"]
                    )
                    while not self._stop.is_set():
                        self._send(dispatcher, event)
                        event = "worker-heartbeat"
                        self._stop.wait(self.every)
                    self._send(dispatcher, "worker-offline")
            except Exception:
                # The broker is away: the next beat, on a new connection.
                self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _loadavg() -> tuple[float, ...]:
    try:
        return tuple(round(x, 2) for x in os.getloadavg())
    except OSError:
        return ()


def start_heartbeat(consumer: Any) -> Heartbeat | EventHeartbeat | None:
    """Called when a worker is ready: on brokers that broadcast, Celery's
    worker events from a thread; on the embedded one, a heartbeat file."""
    if broadcasts():
        return EventHeartbeat(consumer.hostname if consumer else socket.gethostname()).start()
    queues = sorted(q.name for q in consumer.task_consumer.queues) if consumer else []
    return Heartbeat(consumer.hostname if consumer else socket.gethostname(), queues).start()
