"""Storing a fetched page: hashing its raw rows, writing the few changed
records at once or leaving them on the page row for ``map_page``.

Shared by the fetch loop (``workers.fetching``) and the map tasks
(``workers.tasks``). The names keep the leading underscore they had when
this lived in ``workers.tasks``: they are the sync pipeline's internals,
used only inside ``workers`` and by the unit tests that drive them directly.
"""

from __future__ import annotations

import marshal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connectors.base import Connector, Page
from hub import runs
from hub.db import session_scope
from hub.models import Quarantined, Source, SyncPage, SyncRun, utcnow
from hub.schemas.scalars import kept_text, kept_value
from hub.store import UPSERTS, Counts, StoreItem, stored_raw_hashes
from workers.pipeline import collector_paused, map_records, raw_groups, raw_hasher
from workers.sources import connector_class

# A fetched page whose records still to map are at most this share of the
# page is mapped and written by the fetch task itself. On a resync most
# pages hold a handful of changed, ignored or faulty records; handing each
# such page to map_page would cost a message, a task and a transaction per
# page on the run's sequential path, for a millisecond of mapping. A full
# sync's pages (everything new) still go to map_page, in parallel, except the
# run's last page: nothing of the run is left to overlap with its mapping,
# so a message, a task, a transaction and the records' round trip through
# the page row would buy nothing. (A small tenant's whole run is one page.)
INLINE_SHARE = 0.1


# A packed page: this tag, then marshal's version 2 format of (records, raw
# hashes). marshal is written in C, several times cheaper both ways than the
# JSON (and JSONB) it replaces, for values that are plain (None, bool, int,
# float, str, bytes, lists, tuples, dicts), as a connector's records are;
# version 2 is read by every later Python (the workers of a fleet may
# differ), and loading it runs no code, unlike pickle. A page whose records
# hold anything else is stored as JSON, as before.
_PACKED_TAG = b"s2s-m2:"
_MARSHAL_VERSION = 2


def pack_page(records: list[dict[str, Any]], raw_hashes: dict[str, str] | None) -> bytes | None:
    """A page's records to map and their raw hashes as bytes; None when the
    records hold a value marshal cannot write (then they go as JSON)."""
    try:
        return _PACKED_TAG + marshal.dumps((records, raw_hashes), _MARSHAL_VERSION)
    except ValueError:
        return None


def unpack_page(packed: bytes) -> tuple[list[dict[str, Any]], dict[str, str] | None]:
    """What ``pack_page`` packed."""
    data = bytes(packed)
    if not data.startswith(_PACKED_TAG):
        raise ValueError("a packed page of an unknown format")
    records, raw_hashes = marshal.loads(data[len(_PACKED_TAG) :])
    return records, raw_hashes


@dataclass(frozen=True)
class _Target:
    """What mapping and writing a page need of its run and source, read once
    (so the fetch task can write a page after its session has closed)."""

    run_id: int
    client_id: int
    source_id: int
    stream: str
    page_size: int
    kind: str
    settings: dict[str, Any]
    # Incremental reads of ERPs that return only changed variant lines are
    # merged into the stored product (see hub.store).
    merge_variants: bool
    # The source held no record of the stream when the run began
    # (``SyncRun.fresh``): only this run writes them, each from the one page
    # that holds it, so no record can be unchanged (see ``_store_page``).
    fresh: bool = False

    @property
    def by_hash(self) -> bool:
        """Whether records are told unchanged by their raw hash: not for
        incremental reads of ERPs that return only changed variant lines
        (merged into the stored product, see hub.store): their rows do not
        describe a whole record."""
        return self.stream in UPSERTS and not self.merge_variants

    @classmethod
    def of(cls, run: SyncRun, source: Source) -> _Target:
        return cls(
            run_id=run.id,
            client_id=run.client_id,
            source_id=run.source_id,
            stream=run.stream,
            page_size=run.page_size,
            kind=source.kind,
            settings=dict(source.settings or {}),
            merge_variants=bool(
                run.stream == "products"
                and run.since
                and connector_class(source.kind).partial_incremental
            ),
            fresh=bool(run.fresh),
        )


def _map_and_write(
    s: Session,
    target: _Target,
    page_id: int,
    records: list[dict[str, Any]],
    raw_hashes: dict[str, str] | None,
) -> tuple[Counts, int]:
    """Map, validate and write a page's records in the caller's transaction;
    quarantine the ones that fail. Returns the write's counts and how many
    were quarantined."""
    items, errors = map_records(target.kind, target.stream, records, target.settings, raw_hashes)
    if errors:
        # Core, not the ORM: a resync quarantines the same bad rows on every
        # page it maps, and the unit of work's flush of them was about a
        # tenth of an unchanged resync's sequential path.
        s.execute(
            insert(Quarantined.__table__),
            [
                {
                    "run_id": target.run_id,
                    "page_id": page_id,
                    "client_id": target.client_id,
                    "source_id": target.source_id,
                    "stream": target.stream,
                    "record_key": kept_text(str(e["key"]))[:255],
                    "field": kept_text(str(e["field"]))[:255],
                    "message": kept_text(e["message"]),
                    "raw": kept_value(e.get("raw")),
                }
                for e in errors
            ],
        )
    return _write(s, target, items), len(errors)


def _write(s: Session, target: _Target, items: list[StoreItem]) -> Counts:
    """Write a page's items with the stream's upsert."""
    extra: dict[str, Any] = {"merge_variants": True} if target.merge_variants else {}
    return UPSERTS[target.stream](
        s,
        client_id=target.client_id,
        source_id=target.source_id,
        run_id=target.run_id,
        items=items,
        **extra,
    )


@dataclass(frozen=True)
class _StoredPage:
    """What storing a fetched page did, for the fetch task's log and next step."""

    page_id: int
    to_map: bool  # left ``fetched`` for map_page
    unchanged: int
    written: Counts | None  # the counts when its changed records were written here
    quarantined: int
    finished: bool
    # The run's pages waiting for map_page once this one was stored (counted
    # only when this page went to map_page; otherwise None).
    in_flight: int | None = None


class _RunEnded(Exception):
    """The run is no longer active: the page's transaction is rolled back."""


def _added(written: Counts | None, unchanged: int) -> dict[str, int]:
    """A page's counts for the run: the write's (every outcome of
    ``hub.store.Counts``, skipped included), and what was counted unchanged
    by raw hash."""
    counts = written.as_dict() if written is not None else {}
    counts["unchanged"] = counts.get("unchanged", 0) + unchanged
    return counts


def _store_page(
    target: _Target,
    connector: Connector | None,
    seq: int,
    cursor: Any,
    page: Page,
) -> _StoredPage | None:
    """Store one fetched page in one transaction; None if the run is no longer
    active or another delivery of the same fetch stored the page first.

    Records whose raw rows hash as before are counted unchanged. The rest go
    on the page row for map_page, unless they are few (a resync: see
    ``INLINE_SHARE``) or this is the run's last page; then they are mapped
    and written here, in the same transaction as the page row, so the page
    is done when this commits. ``connector`` gives the page's high-water
    mark (None: the run's mark is left as it is).

    A fresh target (the source held no record of the stream when the run
    began) can have no record unchanged: the page goes to map_page as read,
    and map_page hashes its rows (``raw_hashes_of``), beside the fetch
    instead of on the run's one sequential path (a third of it, measured on
    a first sync of 100,000 products). The run's last page, and a page of
    few records, are still hashed and written here.
    """
    run_id, last, by_hash = target.run_id, page.next_cursor is None, target.by_hash
    few = len(page.records) <= target.page_size * INLINE_SHARE
    defer = target.fresh and by_hash and not last and not few
    try:
        with collector_paused(), session_scope() as s:
            todo, unchanged = page.records, 0
            hashes: dict[str, str] = {}
            if by_hash and not defer:
                todo, hashes, unchanged = _changed(
                    s, target.kind, target.stream, target.source_id, target.settings, page.records
                )
            inline = (
                bool(todo)
                and by_hash
                and not defer
                and (last or len(todo) <= target.page_size * INLINE_SHARE)
            )
            to_map = bool(todo) and not inline
            page_id = _insert_page(
                s, target, seq, cursor, page, todo if to_map else None, hashes if to_map else None
            )
            written, quarantined = None, 0
            in_flight = runs.pages_in_flight(s, run_id) if to_map else None
            if inline:
                written, quarantined = _map_and_write(s, target, page_id, todo, hashes)
            # Last, so that the run's row stays locked only until the commit.
            if not runs.add_counts(
                s,
                run_id,
                active_only=True,
                # Only now, at the last page, is the run's page total known.
                pages_total=seq + 1 if last else None,
                fetched=len(page.records),
                pages_done=0 if to_map else 1,
                quarantined=quarantined,
                **_added(written, unchanged),
            ):
                raise _RunEnded  # failed or cancelled meanwhile: roll back
            if connector is not None:
                runs.raise_high_water(s, run_id, connector.high_water(page.records))
            # Only at the last page can every page have landed.
            finished = last and not to_map and runs.finish_if_done(s, run_id)
    except (IntegrityError, _RunEnded):
        return None  # another delivery stored the page first, or the run ended
    return _StoredPage(page_id, to_map, unchanged, written, quarantined, finished, in_flight)


def _insert_page(
    s: Session,
    target: _Target,
    seq: int,
    cursor: Any,
    page: Page,
    records: list[dict[str, Any]] | None,
    raw_hashes: dict[str, str] | None,
) -> int:
    """The page's row (Core: the ORM's bookkeeping costs more): ``fetched``
    with the records still to map (packed: ``pack_page``), else
    ``upserted``. A second delivery of the same fetch fails here, on the
    unique (run, seq)."""
    table = SyncPage.__table__
    now = utcnow()
    packed = pack_page(records, raw_hashes) if records else None
    if packed is not None:
        records, raw_hashes = None, None
    page_id = s.connection().scalar(
        insert(table)
        .values(
            run_id=target.run_id,
            seq=seq,
            status="fetched" if records or packed else "upserted",
            cursor_in=cursor,
            cursor_out=page.next_cursor,
            record_count=len(page.records),
            records=records or None,
            raw_hashes=raw_hashes or None,
            packed=packed,
            created_at=now,
            updated_at=now,
        )
        .returning(table.c.id)
    )
    assert page_id is not None
    return int(page_id)


def _hashed(
    kind: str, stream: str, settings: dict[str, Any], records: list[dict[str, Any]]
) -> tuple[dict[str, list[Mapping[str, Any]]], list[Mapping[str, Any]], dict[str, str | None]]:
    """The page's rows by record key, the rows without one, and each
    record's raw hash (None: its rows cannot be hashed)."""
    groups, unkeyed = raw_groups(kind, stream, records, settings)
    hash_of = raw_hasher(kind, stream, settings)
    return groups, unkeyed, {key: hash_of(rows) for key, rows in groups.items()}


def raw_hashes_of(
    kind: str, stream: str, settings: dict[str, Any], records: list[dict[str, Any]]
) -> dict[str, str]:
    """{record key: raw hash} of a page's records, as ``_changed`` keeps
    them (records whose rows cannot be hashed have none)."""
    _, _, hashes = _hashed(kind, stream, settings, records)
    return {key: digest for key, digest in hashes.items() if digest is not None}


def _changed(
    session: Session,
    kind: str,
    stream: str,
    source_id: int,
    settings: dict[str, Any],
    records: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], dict[str, str], int]:
    """The page's rows still to map, their records' raw hashes, and how many
    records were passed over as unchanged (one SELECT of stored raw hashes).

    Only a stored record has a raw hash, so a Delete / inactive row for a
    record the hub never stored is mapped at every sync and counted
    ``skipped`` each time (``hub.store.Counts``), never ``unchanged`` here.
    """
    if stream not in UPSERTS or not records:
        return records, {}, 0
    groups, unkeyed, hashes = _hashed(kind, stream, settings, records)
    stored = stored_raw_hashes(session, stream, source_id, list(groups))
    todo: list[dict[str, Any]] = []
    kept: dict[str, str] = {}
    unchanged = 0
    for key, rows in groups.items():
        digest = hashes[key]
        if digest is not None and stored.get(key) == digest:
            unchanged += 1
            continue
        todo.extend(rows)  # type: ignore[arg-type]
        if digest is not None:
            kept[key] = digest
    if todo or unkeyed:
        # Keep the ERP's order: mapping groups variant rows in first-seen order.
        wanted = {id(r) for r in todo} | {id(r) for r in unkeyed}
        todo = [r for r in records if id(r) in wanted]
    return todo, kept, unchanged
