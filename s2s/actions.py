"""What an operator can do to the hub, once, for every door: the ``s2s``
commands and the console's buttons call these same functions.

Replay and discard a dead letter, start a resync, pause and resume a
source's streams: each checks what it is given, changes the hub through
``hub`` and ``workers``, and returns what happened as data with the
sentence that says it; the caller only prints it or shows it. A mistake the
operator made is an ``ActionError`` (or ``hub.orders.ReplayError``,
``workers.sources.SetupError``) whose message is that sentence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from hub import queries, schedule
from hub.db import session_scope
from hub.models import Channel, DeadLetter, Order
from hub.orders import ReplayError, discard, replay
from workers import channels as channel_records
from workers.orders import route_order
from workers.pushing import channel_summary
from workers.sources import connector_class, get_client, get_source, unsupported_stream
from workers.tasks import SyncStart, start_sync


class ActionError(Exception):
    """An action asked for wrongly; the message says what to change."""


# -------------------------------------------------------- dead letters
def enqueue_route(order_id: int) -> str | None:
    """Hand a replayed order to routing; None when sent, else why it was not.

    The order is already committed as ``received``, so a broker that is down
    loses nothing: the sweeper routes received orders it finds stale.
    """
    try:
        route_order.apply_async(args=(order_id,))
    except Exception as exc:  # any broker failure: the database still holds the order
        return " ".join(str(exc).split()) or type(exc).__name__
    return None


def _label(order: Order) -> str:
    return f"order {order.id} {order.channel}/{order.channel_order_code}"


def _letter(s: Session, letter_id: int, client_id: int | None) -> DeadLetter:
    """The letter, which must be ``client_id``'s when one is given (another
    client's letter is "no dead letter", as a missing one is)."""
    letter = s.get(DeadLetter, letter_id)
    if letter is None or (client_id is not None and letter.client_id != client_id):
        raise ReplayError(f"no dead letter {letter_id}")
    return letter


@dataclass(frozen=True)
class Replayed:
    """A dead letter replayed: its order is ``received`` again; ``problem``
    says why it could not be queued for routing (None: it was)."""

    letter_id: int
    order_id: int
    label: str
    problem: str | None

    def sentence(self) -> str:
        if self.problem is None:
            return f"dead letter {self.letter_id} replayed: {self.label} sent to routing again"
        return (
            f"dead letter {self.letter_id} replayed: {self.label} is received but could not be "
            f"queued ({self.problem}); the sweeper will route it"
        )


def replay_letter(letter_id: int, note: str, client_id: int | None = None) -> Replayed:
    """Send a dead-lettered order through routing again, in its own
    transaction, routed only after that commit (a worker never sees the
    order before it is ``received``). Raises ReplayError saying why not."""
    with session_scope() as s:
        _letter(s, letter_id, client_id)
        order = replay(s, letter_id, note=note)
        label, order_id = _label(order), order.id
    return Replayed(letter_id, order_id, label, enqueue_route(order_id))


def letters_to_replay(
    letter_ids: tuple[int, ...], all_open: bool, client_code: str | None
) -> tuple[int, ...]:
    """The ids given, or the client's open letters when ``all_open``; the
    options given together wrongly are one sentence."""
    if all_open == bool(letter_ids):
        raise ActionError("give dead letter ids, or --all-open with --client CODE (not both)")
    if client_code and not all_open:
        raise ActionError("--client goes with --all-open; dead letter ids need no client")
    if not all_open:
        return letter_ids
    if not client_code:
        raise ActionError("--all-open needs --client CODE: replay one client's letters at a time")
    with session_scope() as s:
        return queries.open_letter_ids(s, get_client(s, client_code).id)


def discard_letter(letter_id: int, reason: str, client_id: int | None = None) -> str:
    """Give up on a dead-lettered order, the reason kept as the audit record;
    returns the sentence saying so. Raises ReplayError saying why not."""
    reason = reason.strip()
    if not reason:
        raise ActionError(f"say why dead letter {letter_id} is discarded")
    with session_scope() as s:
        letter = _letter(s, letter_id, client_id)
        discard(s, letter_id, reason)
        order = s.get(Order, letter.order_id)
        assert order is not None  # the foreign key cascades: a letter has its order
        label = _label(order)
    return f"dead letter {letter_id} discarded: {label} will not be raised ({reason})"


# ------------------------------------------------------------ resyncs
def parse_since(value: str, name: str = "--since") -> str:
    """A time as the runs keep it; ``name`` is what the error calls the field."""
    try:
        return datetime.fromisoformat(value.strip()).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise ActionError(
            f"{name} takes a date and time such as 2026-11-01 08:00:00, not {value!r}"
        ) from None


@dataclass(frozen=True)
class Resynced:
    """What a resync did, and where (``client/source stream``)."""

    result: SyncStart
    where: str

    def sentence(self, hint: str = "--queue runs one after it") -> str:
        run, where = self.result.run.id, self.where
        if self.result.created:
            return f"run {run} started for {where}"
        if self.result.queued:
            return f"run {run} is active for {where}; this resync is queued and starts when it ends"
        return f"run {run} is already active for {where}; not starting another ({hint})"


def resync(
    client_code: str,
    source_code: str,
    stream: str,
    *,
    full: bool = False,
    since: str | None = None,
    queue_behind: bool = False,
    requested_by: str = "cli",
) -> Resynced:
    """Start a sync of one stream now (``workers.tasks.start_sync``): a full
    read, one from ``since``, or from the stream's watermark. With a run
    active it is refused (the result says which run) or queued behind it."""
    if full and since:
        raise ActionError(
            "--full reads everything; --since reads what changed since then: pick one"
        )
    with session_scope() as s:
        src = get_source(s, client_code, source_code)
    cls = connector_class(src.kind)
    if stream not in cls.streams:
        raise ActionError(unsupported_stream(cls, stream))
    result = start_sync(
        src.id,
        stream,
        requested_by=requested_by,
        full=full or None,
        since=None if since is None else parse_since(since),
        queue_behind=queue_behind,
    )
    return Resynced(result, f"{client_code}/{source_code} {stream}")


# ----------------------------------------------------- pause / resume
@dataclass(frozen=True)
class Paused:
    """Which streams changed and which already were as asked."""

    where: str
    paused: bool
    changed: list[str]
    already: list[str]

    def sentences(self) -> list[str]:
        verb = "paused" if self.paused else "resumed"
        out = []
        if self.changed:
            out.append(f"{self.where}: {verb} {', '.join(self.changed)}")
        if self.already:
            out.append(f"{self.where}: {', '.join(self.already)} already {verb}")
        return out


def set_paused(client_code: str, source_code: str, stream: str | None, paused: bool) -> Paused:
    """Pause (or resume) a source's scheduled runs, one stream or all of them
    (``hub.schedule.set_paused``: resuming a stream overdue runs it once)."""
    where = f"{client_code}/{source_code}"
    with session_scope() as s:
        src = get_source(s, client_code, source_code)
        rows = schedule.streams_of(s, src.id, stream)
        if not rows:
            raise ActionError(f"source {where} has no stream {stream!r}")
        changed = schedule.set_paused(s, rows, paused)
        names = [r.stream for r in rows]
    return Paused(where, paused, changed, [n for n in names if n not in changed])


# ----------------------------------------------------------- channels
PushingChannel = tuple[str, Channel, dict[str, Any]]


def pushing_channels(s: Session, client_id: int | None) -> list[PushingChannel]:
    """Per pushing channel: its client's code, the row and its summary
    (products waiting, the last push, refusals)."""
    return [
        (code, ch, channel_summary(ch, s))
        for code, ch in queries.channels_with_clients(s, client_id)
        if channel_records.pushes(ch)
    ]
