"""What each console page shows, read from the hub (blocking: every function
here runs in the threadpool, never on the event loop).

The questions are ``hub.queries``' (the same the CLI and the API ask); this
module only picks the rows a viewer may see and shapes them for a template
or for the JSON the pages poll. A client the viewer may not see is None,
exactly as a missing one is, so the page answers 404 either way.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from hub import queries, schedule
from hub.db import session_scope
from hub.models import Client, DeadLetter, Order, Source, SyncRun
from hub.runs import RECORD_OUTCOMES
from hub.settings import get_settings
from s2s import actions
from s2s.console.auth import Viewer
from workers.ops import queue_depths, workers_online
from workers.sources import connector_class

RUNS_SHOWN = 20
QUARANTINE_SHOWN = 500
ORDERS_SHOWN = 100
ORDER_STATES = ("received", "stored", "queued", "raising", "raised", "dead", "discarded")


def visible_client(s: Session, viewer: Viewer, code: str) -> Client | None:
    client = queries.client_by_code(s, code)
    return client if viewer.may_see(client) else None


Owned = TypeVar("Owned", SyncRun, Order, DeadLetter)


def owned_row(
    s: Session, viewer: Viewer, code: str, model: type[Owned], row_id: int
) -> Owned | None:
    """The row if it belongs to a client the viewer may see under ``code``:
    another client's row is "not found", as a missing one is."""
    client = visible_client(s, viewer, code)
    row = s.get(model, row_id)
    if client is None or row is None or row.client_id != client.id:
        return None
    return row


def when(at: Any) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") if at is not None else ""


def _n(value: int) -> str:
    return f"{value:,}"


def progress(run: SyncRun) -> str:
    """A running run's progress: '3/10 pages, 1,500 fetched' ('3/?' while the
    ERP is still being read); empty once it ended."""
    if run.status != "running":
        return ""
    total = run.pages_total if run.pages_total is not None else "?"
    return f"{run.pages_done}/{total} pages, {_n(run.fetched)} fetched"


def run_view(run: SyncRun) -> dict[str, Any]:
    """A run as the pages and their JSON show it."""
    counts = {o: getattr(run, o) for o in RECORD_OUTCOMES}
    return {
        "id": run.id,
        "stream": run.stream,
        "status": run.status,
        "requested_by": run.requested_by,
        "counts": counts,
        "counts_text": " · ".join(f"{_n(n)} {name}" for name, n in counts.items()),
        "progress": progress(run),
        "pages": f"{run.pages_done}/{run.pages_total if run.pages_total is not None else '?'}",
        "error": run.error or "",
        "created_at": when(run.created_at),
        "finished_at": when(run.finished_at),
    }


# -------------------------------------------------------------- overview
_broker_lock = threading.Lock()
_broker_seen: dict[str, Any] = {}


def broker_facts() -> dict[str, Any]:
    """Queue depths and workers online, asked of the broker at most every
    ``S2S_CONSOLE_BROKER_EVERY`` seconds per process (one asker at a time)."""
    with _broker_lock:
        if time.monotonic() - _broker_seen.get("at", -1e9) >= get_settings().console_broker_every:
            workers = workers_online(timeout=1.0)
            _broker_seen.update(
                at=time.monotonic(),
                queues=queue_depths(timeout=2.0),
                workers=None if workers is None else dict(sorted(workers.items())),
            )
        return {"queues": _broker_seen["queues"], "workers": _broker_seen["workers"]}


def _stream_view(row: queries.StreamStatus) -> dict[str, Any]:
    last = row.last_run
    paused = "yes" if row.stream.paused else ("source disabled" if not row.source.enabled else "no")
    return {
        "client": row.client_code,
        "source": row.source.code,
        "stream": row.stream.stream,
        "schedule": schedule.of(row.stream).describe(),
        "paused": paused,
        "next_due": when(row.stream.next_due_at),
        "last_run_id": last.id if last else None,
        "last_run_status": (last.status if last else "never run")
        + (" (+1 queued)" if row.stream.queued_at is not None else ""),
        "last_run_counts": run_view(last)["counts_text"] if last else "",
        "running": progress(last) if last else "",
        "error": (last.error or "") if last else "",
    }


def _channel_view(code: str, summary: dict[str, Any]) -> dict[str, Any]:
    last = summary["last_push"]
    return {
        "client": code,
        "channel": summary["channel"],
        "kind": summary["kind"],
        "paused": "yes" if summary["paused"] else "no",
        "waiting": summary["waiting"],
        "refused": summary["refused"],
        "last_push_status": last["status"] if last else "never pushed",
        "last_push_error": (last.get("error") or "") if last else "",
    }


def overview(viewer: Viewer) -> dict[str, Any]:
    """Every stream the viewer may see with its last run, open dead letters
    per client, channels' push lag and refusals, queues and workers."""
    with session_scope() as s:
        streams = [_stream_view(r) for r in queries.stream_statuses(s, viewer.client_id)]
        letters = queries.open_letters_by_client(s, viewer.client_id)
        clients = (
            [c.code for c, _ in queries.clients_with_sources(s)]
            if viewer.operator
            else [viewer.client_code or ""]
        )
        channels = [
            _channel_view(code, summary)
            for code, _, summary in actions.pushing_channels(s, viewer.client_id)
        ]
    broker = broker_facts()
    if not viewer.operator and broker["workers"] is not None:
        # A worker's name carries its host's: the hub's machines are the
        # operators' business, so a client user sees how many and what they serve.
        serving = broker["workers"].values()
        broker["workers"] = {f"worker {n}": qs for n, qs in enumerate(serving, 1)}
    return {
        "streams": streams,
        "open_letters": {code: letters.get(code, 0) for code in clients},
        "channels": channels,
        **broker,
    }


# ---------------------------------------------------------------- sources
def _source(s: Session, viewer: Viewer, code: str, source_code: str) -> Source | None:
    found = queries.client_and_source(s, code, source_code)
    if found is None or not viewer.may_see(found[0]):
        return None
    return found[1]


def source_runs(viewer: Viewer, code: str, source_code: str) -> list[dict[str, Any]] | None:
    with session_scope() as s:
        source = _source(s, viewer, code, source_code)
        if source is None:
            return None
        return [run_view(r) for r in queries.recent_runs(s, source.id, RUNS_SHOWN)]


def source_page(viewer: Viewer, code: str, source_code: str) -> dict[str, Any] | None:
    with session_scope() as s:
        source = _source(s, viewer, code, source_code)
        if source is None:
            return None
        runs = [run_view(r) for r in queries.recent_runs(s, source.id, RUNS_SHOWN)]
        streams = [
            {
                "stream": row.stream,
                "schedule": schedule.of(row).describe(),
                "paused": row.paused,
                "next_due": when(row.next_due_at),
            }
            for row in schedule.streams_of(s, source.id)
        ]
        return {
            "client": code,
            "source": source.code,
            "kind": source.kind,
            "source_name": source.name,
            "streams": streams,
            "supported": list(connector_class(source.kind).streams),
            "runs": runs,
        }


def run_page(viewer: Viewer, code: str, run_id: int) -> dict[str, Any] | None:
    with session_scope() as s:
        run = owned_row(s, viewer, code, SyncRun, run_id)
        if run is None:
            return None
        source = s.get(Source, run.source_id)
        held = queries.quarantined_in(s, run.id, limit=QUARANTINE_SHOWN)
        return {
            "client": code,
            "source": source.code if source else "",
            "run": run_view(run),
            "quarantine": [
                {"key": q.record_key, "field": q.field, "reason": q.message} for q in held
            ],
            "more": run.quarantined > len(held),
        }


# ----------------------------------------------------------------- orders
def orders_page(viewer: Viewer, code: str, status: str | None) -> dict[str, Any] | None:
    with session_scope() as s:
        client = visible_client(s, viewer, code)
        if client is None:
            return None
        status = status if status in ORDER_STATES else None
        rows = queries.orders_listing(s, client_id=client.id, status=status, limit=ORDERS_SHOWN)
        return {
            "client": code,
            "chosen": status,
            "states": ORDER_STATES,
            "orders": [
                {
                    "id": o.id,
                    "channel": o.channel,
                    "reference": o.channel_order_code,
                    "state": o.status,
                    "source": scode or "",
                    "erp_document": o.document_number or "",
                    "attempts": o.attempts,
                    "updated_at": when(o.updated_at),
                    "last_error": o.last_error or "",
                }
                for o, _, scode in rows
            ],
        }


def order_page(viewer: Viewer, code: str, order_id: int) -> dict[str, Any] | None:
    with session_scope() as s:
        order = owned_row(s, viewer, code, Order, order_id)
        if order is None:
            return None
        source = s.get(Source, order.source_id) if order.source_id else None
        return {
            "client": code,
            "order": order,
            "source": f"{source.code} ({source.kind})" if source else "",
            "times": {
                k: when(getattr(order, k)) for k in ("created_at", "updated_at", "raised_at")
            },
            "history": [
                {"at": when(e.at), "status": e.status, "message": e.message}
                for e in queries.order_history(s, order.id)
            ],
            "letters": queries.letters_of_order(s, order.id),
        }


# ----------------------------------------------------------- dead letters
def letters_page(viewer: Viewer, code: str) -> dict[str, Any] | None:
    with session_scope() as s:
        client = visible_client(s, viewer, code)
        if client is None:
            return None
        found = queries.dead_letters(s, client_id=client.id, open_only=False)
        return {
            "client": code,
            "letters": [
                {
                    "id": letter.id,
                    "order_id": order.id,
                    "reference": order.channel_order_code,
                    "stage": letter.stage,
                    "status": letter.status,
                    "reason": letter.message,
                    "created_at": when(letter.created_at),
                }
                for letter, order, _ in found
            ],
        }


def letter_of(viewer: Viewer, code: str, letter_id: int) -> int | None:
    """The client id a visible letter belongs to, or None (404)."""
    with session_scope() as s:
        letter = owned_row(s, viewer, code, DeadLetter, letter_id)
        return None if letter is None else letter.client_id


def letter_page(viewer: Viewer, code: str, letter_id: int) -> dict[str, Any] | None:
    with session_scope() as s:
        letter = owned_row(s, viewer, code, DeadLetter, letter_id)
        if letter is None:
            return None
        order = s.get(Order, letter.order_id)
        source = s.get(Source, letter.source_id) if letter.source_id else None
        return {
            "client": code,
            "letter": letter,
            "order": order,
            "source": f"{source.code} ({source.kind})" if source else "",
            "created_at": when(letter.created_at),
            "resolved_at": when(letter.resolved_at),
            "payload": json.dumps(
                order.order if order else None, indent=2, default=str, ensure_ascii=False
            ),
        }


def source_visible(viewer: Viewer, code: str, source_code: str) -> bool:
    with session_scope() as s:
        return _source(s, viewer, code, source_code) is not None
