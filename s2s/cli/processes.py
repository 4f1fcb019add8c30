"""The hub's long-running processes: ``s2s worker``, ``api``, ``beat``, ``flower``."""

from __future__ import annotations

import importlib.util
import os

import click
import uvicorn

from s2s.cli.common import CliError, friendly
from workers.app import PROFILES, QUEUES, app
from workers.ops import broadcasts

# Gossip and mingle are off: the hub needs neither (the database says what
# is unfinished; no worker elects or syncs with another), and gossip's stop
# on a connection already gone is what made a worker exit, not reconnect,
# when Redis went away ("Unrecoverable error: AttributeError ... 'hostname'":
# the step closes its channel, kombu's Redis channel looks up the dead
# connection's host). Celery's heartbeat is off too: it publishes from the
# worker's event loop and retries forever, so a broker cut off by the network
# froze the loop (time limits and results included) until it came back; the
# worker sends the same events from a thread of its own instead
# (workers.ops.EventHeartbeat), which Flower shows workers by.
WORKER_STEPS_OFF = ("--without-gossip", "--without-mingle", "--without-heartbeat")


@click.command()
@click.option(
    "--profile",
    type=click.Choice(list(PROFILES)),
    default="all",
    show_default=True,
    help="Which queues to serve: sync (maintenance, fetch, map, upsert), orders "
    "(maintenance, orders, raise.*), push (maintenance, push.*) or all.",
)
@click.option("--queues", "-Q", help="Comma-separated queues (overrides --profile).")
@click.option("--concurrency", "-c", type=int, default=2, show_default=True)
@click.option("--name", "-n", help="Worker name (default celery@HOSTNAME); unique per machine.")
@click.option("--loglevel", default="INFO", show_default=True)
@click.option(
    "--events/--no-events",
    default=None,
    help="Send task events for Flower (default: on, except on the embedded broker).",
)
def worker(
    profile: str,
    queues: str | None,
    concurrency: int,
    name: str | None,
    loglevel: str,
    events: bool | None,
) -> None:
    """Run a Celery worker process serving the chosen queues (start as many as you like)."""
    qs = queues or ",".join(PROFILES[profile])
    unknown = [q for q in qs.split(",") if q.strip() and q.strip() not in QUEUES]
    if unknown:
        raise CliError(f"unknown queue {unknown[0]!r} (queues: {', '.join(QUEUES)})")
    if concurrency < 1:
        raise CliError("--concurrency must be at least 1")
    argv = [
        "worker",
        "-Q",
        qs,
        "-c",
        str(concurrency),
        "--loglevel",
        loglevel,
        "-O",
        "fair",
        *WORKER_STEPS_OFF,
    ]
    if name:
        argv += ["-n", name]
    if events if events is not None else broadcasts():
        argv.append("-E")
    app.worker_main(argv)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="API processes sharing the port; one that dies is replaced. Each holds "
    "S2S_API_DB_POOL database connections.",
)
def api(host: str, port: int, workers: int) -> None:
    """Serve the HTTP API (health, metrics, resyncs, status, runs, orders, webhooks).

    More than one worker is uvicorn's own multiprocess mode: a supervisor
    that starts the processes, restarts one that dies and stops them all on
    SIGTERM, with nothing more to install.
    """
    uvicorn.run(
        "s2s.api_process:create_served_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
    )


@click.command()
@click.option("--loglevel", default="INFO", show_default=True)
def beat(loglevel: str) -> None:
    """Run the scheduler (one per deployment; a second one started by mistake is harmless).

    Beat only sends the dispatcher and the sweeper every few seconds; the
    schedules themselves are rows, claimed with a compare-and-set, so beat
    keeps no state file and needs no restart when a schedule changes.
    """
    app.start(["beat", "--loglevel", loglevel, "--scheduler", "celery.beat:Scheduler"])


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--address", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5555, show_default=True)
@click.argument("flower_args", nargs=-1, type=click.UNPROCESSED)
@friendly
def flower(address: str, port: int, flower_args: tuple[str, ...]) -> None:
    """Run Flower against the hub's broker, with task events on.

    Further arguments go to Flower as they are (e.g. --url_prefix=flower).
    Set FLOWER_BASIC_AUTH=user:password in the environment to require a
    login (Flower's API answers only with a login or FLOWER_UNAUTHENTICATED_API).
    """
    # Flower is optional (the 'ops' extra): only looked for, never imported here.
    if importlib.util.find_spec("flower") is None:
        raise CliError("Flower is not installed: pip install 's2s-hub[ops]'")
    if not broadcasts():
        raise CliError(
            "Flower needs a broker that carries events (Redis or RabbitMQ); S2S_BROKER_URL is "
            "the embedded SQLite broker: use 's2s status' there"
        )
    if not os.environ.get("FLOWER_BASIC_AUTH", "x").strip():
        # docker-compose passes an unset variable as "": Flower would then
        # demand a login nobody can give.
        del os.environ["FLOWER_BASIC_AUTH"]
    app.start(
        [
            "flower",
            f"--address={address}",
            f"--port={port}",
            "--enable_events=True",
            *flower_args,
        ]
    )
