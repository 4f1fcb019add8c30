"""The Celery app: explicit queues, routes, delivery guarantees and beat.

Delivery rests on the facts in the project's Celery notes: Redis has no
acknowledgements of its own, so tasks ack late and are re-queued when a
worker child dies; time limits stay well below the visibility timeout so a
running task is never delivered twice; the broker carries only ids and the
database decides what is still to do.

Importing this module does nothing but declare: the configuration is a
promise (``app.add_defaults``) kept the first time Celery needs it, so the
settings are read, and the embedded broker's transport registered, only by
a process that talks to the broker; and the raise queues come from the
registry of kinds, which imports no connector.
"""

from __future__ import annotations

from celery import Celery
from celery.signals import (
    after_setup_logger,
    task_postrun,
    worker_process_init,
    worker_ready,
    worker_shutdown,
)
from kombu import Queue, pools

from hub.db import dispose_all
from hub.logs import configure as configure_logging
from hub.settings import Settings, get_settings
from workers import kinds
from workers.broker import register as register_embedded_broker
from workers.sources import release_connectors

SYNC_QUEUES = ("fetch", "map", "upsert")
# One raise queue per ERP type: a slow or failing ERP only backs up its own.
RAISE_QUEUES = tuple(f"raise.{kind}" for kind in kinds.names())
ORDER_QUEUES = ("orders", *RAISE_QUEUES)
# One push queue per channel kind the hub pushes to: a slow store backs up
# only its own kind.
PUSH_QUEUES = tuple(f"push.{kind}" for kind in kinds.pushing_channel_names())
QUEUES = ("maintenance", *SYNC_QUEUES, *ORDER_QUEUES, *PUSH_QUEUES)

# Named worker profiles (``s2s worker --profile``): the sync pipeline and the
# order path can then be scaled, and fail, separately. Both serve
# ``maintenance`` so beat's small dispatcher and sweeper run wherever any
# worker runs.
PROFILES: dict[str, tuple[str, ...]] = {
    "sync": ("maintenance", *SYNC_QUEUES),
    "orders": ("maintenance", *ORDER_QUEUES),
    "push": ("maintenance", *PUSH_QUEUES),
    "all": QUEUES,
}

ROUTES = {
    "s2s.sync.fetch_page": {"queue": "fetch"},
    "s2s.sync.map_page": {"queue": "map"},
    "s2s.sync.upsert_page": {"queue": "upsert"},
    "s2s.orders.route_order": {"queue": "orders"},
    "s2s.maintenance.*": {"queue": "maintenance"},
}


def config_for(settings: Settings) -> dict[str, object]:
    transport: dict[str, object] = {"visibility_timeout": settings.visibility_timeout}
    if settings.broker_url.startswith(("redis://", "rediss://")):
        # A broker cut off by the network (no FIN, no reset) must not hold the
        # worker's main loop: found by the partition test, where a heartbeat
        # PUBLISH waited for the whole cut, the loop's time limits fired late
        # and killed a child while it wrote its result, and the pool's pipe
        # was corrupted ("Unrecoverable error: UnpicklingError").
        transport.update(
            socket_timeout=settings.broker_timeout,
            socket_connect_timeout=settings.broker_timeout,
            socket_keepalive=True,
        )
    if settings.broker_url.startswith(("amqp://", "amqps://", "pyamqp://")):
        # RabbitMQ confirms each publish once the message is safe in the
        # queue (durable queues, persistent messages): a publish the broker
        # did not take raises instead of being lost in a buffer.
        transport["confirm_publish"] = True
    if settings.broker_url.startswith("sqla+"):
        # The SQLAlchemy transport polls; a short interval keeps the embedded
        # default responsive at the cost of a few idle queries a second.
        transport["polling_interval"] = 0.2
    return {
        "broker_url": settings.broker_url,
        "broker_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_time_limit": settings.task_time_limit,
        # A soft limit first, so a task can end cleanly before the hard kill.
        "task_soft_time_limit": max(settings.task_time_limit - 30, settings.task_time_limit * 0.8),
        "task_queues": [Queue(q) for q in QUEUES],
        "task_default_queue": "maintenance",
        "task_routes": ROUTES,
        "task_send_sent_event": True,
        "worker_hijack_root_logger": False,
        "enable_utc": True,
        "beat_schedule": {
            "dispatch-due": {
                "task": "s2s.maintenance.dispatch_due",
                "schedule": float(settings.dispatch_every),
                "options": {"expires": float(settings.dispatch_every)},
            },
            "sweep": {
                "task": "s2s.maintenance.sweep",
                "schedule": float(settings.sweep_every),
                "options": {"expires": float(settings.sweep_every)},
            },
            "prune-history": {
                "task": "s2s.maintenance.prune_history",
                "schedule": float(settings.prune_every),
                "options": {"expires": float(settings.prune_every)},
            },
        },
    }


def _configuration() -> dict[str, object]:
    """The promise Celery keeps when it first needs its configuration.

    The embedded broker's transport is registered here, just before a
    broker URL can be used, rather than when this module is imported.
    """
    register_embedded_broker()
    return config_for(get_settings())


app = Celery(
    "s2s", include=["workers.tasks", "workers.orders", "workers.retention", "workers.pushing"]
)
app.add_defaults(_configuration)


def reconfigure() -> None:
    """Re-read settings (tests change the environment between cases)."""
    get_settings.cache_clear()
    app.conf.update(_configuration())
    # Drop pooled broker connections made with the old URL. kombu keeps its
    # pools in a process-wide registry keyed by URL, so closing one pool in
    # place would hand a closed pool to the next user of the same URL:
    # reset the registry instead; Celery builds new pools on the next publish.
    pools.reset()
    # Celery's private pool attributes, not in its type stubs: setting them to
    # None is how its own fork handler makes it build fresh pools.
    app._pool = None  # type: ignore[attr-defined]
    app.amqp._producer_pool = None  # type: ignore[attr-defined]


@after_setup_logger.connect
def _logging(**_: object) -> None:
    s = get_settings()
    configure_logging(s.log_format, s.log_level)


@worker_process_init.connect
def _fresh_engines(**_: object) -> None:
    # Engines are per process already (hub.db keys them by pid); dropping any
    # inherited from the parent makes that explicit.
    dispose_all()


@task_postrun.connect
def _release_connectors(**_: object) -> None:
    # No ERP connection, keep-alive socket or session outlives the task that
    # needed it (see workers.sources.ConnectorCache): a worker serving many
    # tenants would otherwise hold one idle connection per tenant and pool
    # process, and ERP servers refuse new ones long before a thousand.
    release_connectors()


_heartbeat: object | None = None


@worker_ready.connect
def _start_heartbeat(sender: object = None, **_: object) -> None:
    # Worker events for Flower (off the event loop), or, on the embedded
    # broker (which cannot broadcast a ping), a heartbeat file.
    global _heartbeat
    # Imported here: workers.ops reads the queues and the app from this module.
    from workers.ops import start_heartbeat

    _heartbeat = start_heartbeat(sender)


@worker_shutdown.connect
def _stop_heartbeat(**_: object) -> None:
    if _heartbeat is not None:
        _heartbeat.stop()  # type: ignore[attr-defined]
