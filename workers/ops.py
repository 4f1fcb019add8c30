"""Operational read-outs shared by the CLI, the API and metrics."""

from __future__ import annotations

from workers.app import QUEUES, app


def queue_depths(queues: tuple[str, ...] = QUEUES, timeout: float = 3.0) -> dict[str, int | None]:
    """Messages waiting per queue, on any broker kombu speaks (Redis, RabbitMQ,
    the embedded SQLAlchemy transport). None where the broker did not answer."""
    out: dict[str, int | None] = {q: None for q in queues}
    try:
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
            channel = conn.default_channel
            for q in queues:
                try:
                    out[q] = channel.queue_declare(queue=q, passive=True).message_count
                except Exception:
                    out[q] = 0  # a queue never declared holds nothing
    except Exception:
        pass
    return out
