"""Map a page of raw ERP records to store items: mapping, then validation.

The mapping (pure, per ERP) turns raw rows into nested canonical records;
the hub's schema applies the canonical coercion rules and the tri-state flag.
Anything either stage rejects becomes a quarantine entry naming the record
and the field, and the rest of the page goes on.

Before any of that, a fetched page is split by record (`raw_groups`) and
each record's raw rows are hashed (`raw_hasher`): a record whose raw hash is
the one stored with it last time would map to the same canonical record, so
it is not mapped, validated or written again. The hash covers the map's
code and the source's settings too, so a new map or a changed setting maps
everything once more.

Two ways map a page, with the same result. A products map that compiles
to columns (`mappings.columnar`: the SQL template's) maps and validates
the page in columns (`hub.schemas.columnar`), and only its doubtful
products record by record; any other map, page or S2S_COLUMNAR=0 goes
record by record alone (`_reference`), the way every page went before.
tests/property/test_columnar_equal.py holds the two equal: the same items,
canonical records, canonical hashes, raw hashes and quarantine entries in
the same order. The canonical hashes of stored records do not change; the
raw-hash prefix does (it covers these modules' code), so the first sync
after upgrading maps every record once and writes only their raw hashes.
"""

from __future__ import annotations

import gc
import hashlib
import importlib.util
import json
import marshal
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from hub.schemas import Action, canonical_hash, load_customer, load_product, stored_json
from hub.schemas.columnar import load_products
from hub.schemas.scalars import not_unicode, not_unicode_message
from hub.store import StoreItem
from mappings import Map, get_map
from mappings import map_records as build_records
from mappings.columnar import ColumnarMap, compile_map
from workers import kinds

LOADERS = {
    "products": (load_product, "source_product_code"),
    "customers": (load_customer, "source_customer_code"),
}

# Raw rows are serialised with marshal's version 2 format: written in C,
# several times faster than sorted JSON on the sync's one sequential path,
# deterministic for the same values (no back-references, which arrived in
# version 3 and depend on object identity), and decodable, so different rows
# never serialise alike. Dicts are written in their key order: a driver that
# returned the same columns in another order, or a Python whose marshal
# wrote differently, would only make every record look changed once.
_MARSHAL_VERSION = 2


def kind_map(kind: str, stream: str) -> Map:
    """The kind's map of ``stream``, its map module imported first through the
    registry of kinds (a kind's maps may live outside the mappings package)."""
    kinds.load_maps(kind)
    return get_map(kind, stream)


@lru_cache(maxsize=1)
def map_version() -> str:
    """A digest of the code that turns raw rows into canonical records.

    Every map module (the mappings package's and each registered kind's),
    the mapping vocabulary, the canonical schema and this module: a change
    to any of them (a new map row, a new coercion rule) gives every raw hash
    a new prefix, so the next sync maps everything once instead of trusting
    hashes made by the old code.
    """
    import hub.schemas
    import mappings

    files = sorted(Path(mappings.__file__).parent.glob("*.py"))
    files += sorted({_module_file(kinds.get(kind).maps) for kind in kinds.names()} - set(files))
    schemas = Path(hub.schemas.__file__)
    # hub.schemas may be one module or a package of several.
    files += sorted(schemas.parent.glob("*.py")) if schemas.name == "__init__.py" else [schemas]
    files.append(Path(__file__))
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _module_file(module: str) -> Path:
    """Where a module's source is, without importing (and so registering) it."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise LookupError(f"no source file for module {module!r}")
    return Path(spec.origin)


def raw_prefix(kind: str, stream: str, settings: Mapping[str, Any]) -> bytes:
    """What every raw hash of one source and stream starts with."""
    try:
        shown = json.dumps(settings, sort_keys=True, default=str)
    except (TypeError, ValueError):
        shown = repr(sorted(settings.items(), key=lambda kv: str(kv[0])))
    return f"{map_version()}|{kind}|{stream}|{shown}|".encode()


RawHash = Callable[[Sequence[Mapping[str, Any]]], "str | None"]


def raw_hasher(kind: str, stream: str, settings: Mapping[str, Any]) -> RawHash:
    """The raw hash of one source and stream: sha256 of the prefix (map code,
    source settings) and one record's raw rows, or None when the rows hold
    values other than plain JSON ones (then the record is always mapped).

    The prefix, which holds the source's settings and can be long (a SQL
    ERP's query), is hashed once; each record copies that state.
    """
    base = hashlib.sha256(raw_prefix(kind, stream, settings))

    def digest(rows: Sequence[Mapping[str, Any]]) -> str | None:
        try:
            payload = marshal.dumps(rows if type(rows) is list else list(rows), _MARSHAL_VERSION)
        except ValueError:  # not a plain value (a Decimal, a Mapping view)
            return None
        h = base.copy()
        h.update(payload)
        return h.hexdigest()

    return digest


def raw_groups(
    kind: str, stream: str, records: Sequence[Mapping[str, Any]], settings: Mapping[str, Any]
) -> tuple[dict[str, list[Mapping[str, Any]]], list[Mapping[str, Any]]]:
    """The page's raw rows by record key (first-seen order), and the rows
    without a clean key, which always go to the mapping (to be quarantined
    with the reason there)."""
    m = kind_map(kind, stream)
    groups: dict[str, list[Mapping[str, Any]]] = {}
    unkeyed: list[Mapping[str, Any]] = []
    for record, key in zip(records, m.keys_of(records, settings), strict=True):
        if key is None:
            unkeyed.append(record)
        else:
            groups.setdefault(str(key), []).append(record)
    return groups, unkeyed


# (key, action, canonical record, canonical hash, stored JSON) of one
# record, before its raw hash is attached; the last three only for "active".
Entry = tuple[str, Action, dict[str, Any] | None, str | None, str | None]

# Set to 0 (false, no, off) to map every page the per-record way, the
# reference; to "all" to map every page that compiles in columns, however
# small (the equality tests do, on small generated pages).
COLUMNAR_ENV = "S2S_COLUMNAR"
# Fewer rows than this go the per-record way even when the map compiles: a
# Polars query costs about 2-4 ms a page whatever its size (planning and
# setting up the frame), against 25-45 µs a product saved per record, so a
# resync's inline handful of changed rows, or a small tenant's page, maps
# faster per record (measured with ``python -m bench.columnar --page-size
# 10 / 50 / 200``: columns 0.1x / 0.4x / 1.1-1.2x the per-record speed).
COLUMNAR_MIN_ROWS = 200
# A page is a few hundred rows: Polars' threads would cost more to hand the
# work around than they save, and a worker already runs a process per core.
# Set before Polars is first imported (mappings.columnar imports it on first
# use); an explicit setting wins.
os.environ.setdefault("POLARS_MAX_THREADS", "1")


def columnar_enabled() -> bool:
    """Whether pages of maps that compile to columns are mapped in columns."""
    value = os.environ.get(COLUMNAR_ENV, "1").strip().lower()
    return value not in {"0", "false", "no", "off"}


def _columnar_min_rows() -> int:
    """The fewest rows a page maps in columns with (0 with S2S_COLUMNAR=all)."""
    return 0 if os.environ.get(COLUMNAR_ENV, "").strip().lower() == "all" else COLUMNAR_MIN_ROWS


_COMPILED: dict[int, tuple[Map, ColumnarMap | None]] = {}


def compiled_map(m: Map) -> ColumnarMap | None:
    """The map compiled to columns (once per map object), None if it does not compile."""
    found = _COMPILED.get(id(m))
    if found is None or found[0] is not m:
        found = (m, compile_map(m))
        _COMPILED[id(m)] = found
    return found[1]


def map_records(
    kind: str,
    stream: str,
    records: Sequence[Mapping[str, Any]],
    settings: Mapping[str, Any],
    raw_hashes: Mapping[str, str] | None = None,
) -> tuple[list[StoreItem], list[dict[str, Any]]]:
    """Return the page's valid items and its quarantine entries.

    A page of a map that compiles to columns (`mappings.columnar`), of at
    least ``COLUMNAR_MIN_ROWS`` rows, is mapped and validated in columns,
    and only its doubtful products the per-record way; any other page, or
    every page with S2S_COLUMNAR=0, the per-record way alone (`_reference`).
    Both give the same items and entries in the same order
    (tests/property/test_columnar_equal.py).

    ``raw_hashes`` (record key → raw hash, from the fetch) ride along on the
    items so the store can keep them; a key that also has a quarantine entry
    gets none, so that its rows are mapped again next time.
    """
    m = kind_map(kind, stream)
    with collector_paused():
        mapped = _columnar(m, stream, records, settings) if columnar_enabled() else None
        if mapped is None:
            mapped = _reference(m, stream, records, settings)
    entries, errors = mapped
    failed = {str(e["key"]) for e in errors} if raw_hashes and errors else set()
    items: list[StoreItem] = []
    for key, action, record, digest, text in entries:
        rh = raw_hashes.get(key) if raw_hashes and key not in failed else None
        items.append(StoreItem(key, action, record, digest, rh, text))
    return items, errors


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector held off while a page is mapped
    (and, by the sync tasks, while it is stored or written).

    Mapping a page allocates some thousands of dicts and lists that live
    until the page is written, none in a cycle; each 700 allocations start
    a collection, and now and then one that walks every object of the
    process (the worker's imports and the page): about a third of the
    mapping's time, measured, on either path. Reference counting frees the
    page's garbage as before; a cycle, if any, waits for the next
    collection after the page. Nested pauses are one pause: only the
    outermost turns the collector back on, once the page's objects are
    gone, so that the collection that follows has little left to walk.
    """
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def _reference(
    m: Map, stream: str, records: Sequence[Mapping[str, Any]], settings: Mapping[str, Any]
) -> tuple[list[Entry], list[dict[str, Any]]]:
    """The per-record way: map each record, build, load and hash each one."""
    built, record_errors = build_records(m, records, settings)
    errors: list[dict[str, Any]] = [
        {"key": e.key, "field": e.field, "message": e.message, "raw": e.raw} for e in record_errors
    ]
    load, key_field = LOADERS[stream]
    entries: list[Entry] = []
    for raw in built:
        record, action, problems = load(raw)
        key = str(raw.get(key_field) or "<unknown>")
        if record is None or action is None:
            for field, message in problems or [("record", "could not be read")]:
                errors.append({"key": key, "field": field, "message": message, "raw": raw})
            continue
        if action != "active":
            entries.append((key, action, None, None, None))
            continue
        try:
            entries.append((key, "active", record, canonical_hash(record), stored_json(record)))
        except UnicodeEncodeError:
            field = not_unicode(record) or "record"
            message = f"{not_unicode_message(field)}; correct it in the ERP"
            errors.append({"key": key, "field": field, "message": message, "raw": raw})
    return entries, errors


def _columnar(
    m: Map, stream: str, records: Sequence[Mapping[str, Any]], settings: Mapping[str, Any]
) -> tuple[list[Entry], list[dict[str, Any]]] | None:
    """The page in columns, its doubtful products the per-record way, the
    two put back in the page's product order; None when the map or the
    page does not go in columns."""
    if len(records) < _columnar_min_rows():
        return None
    compiled = compiled_map(m) if stream == "products" else None
    page = compiled.build(records, settings) if compiled is not None else None
    if page is None:
        return None
    loaded = load_products(page.frame, page.columns)
    entries: list[Entry] = loaded.products
    again = set(loaded.doubtful)
    doubtful: list[int] = []
    first_row: dict[str, int] = {}
    for i, key in enumerate(loaded.keys):
        if key is None or key in again:
            doubtful.append(i)
            if key is not None and key not in first_row:
                first_row[key] = i
    if not doubtful:
        return entries, []  # already in the page's product order
    # Clean products add no entries to the quarantine and take no part in
    # another product's grouping, so the reference over the doubtful rows
    # alone gives the page's quarantine entries in the page's order.
    more, errors = _reference(m, stream, [records[i] for i in doubtful], settings)
    if any(entry[0] not in first_row for entry in more):
        return None  # a key the columns did not foresee: the page the reference way
    # Both halves are in page order already: merge them by first row.
    merged: list[Entry] = []
    rows = iter(zip(loaded.first_rows, entries, strict=True))
    pending = next(rows, None)
    for entry in more:
        at = first_row[entry[0]]
        while pending is not None and pending[0] < at:
            merged.append(pending[1])
            pending = next(rows, None)
        merged.append(entry)
    if pending is not None:
        merged.append(pending[1])
        merged.extend(e for _, e in rows)
    entries = merged
    return entries, errors
