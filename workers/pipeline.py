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
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import marshal
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from hub.schemas import canonical_hash, load_customer, load_product
from hub.store import StoreItem
from mappings import Map, get_map
from mappings import map_records as build_records
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
    for record in records:
        key = m.key_of(record, settings)
        if key is None:
            unkeyed.append(record)
        else:
            groups.setdefault(str(key), []).append(record)
    return groups, unkeyed


def map_records(
    kind: str,
    stream: str,
    records: Sequence[Mapping[str, Any]],
    settings: Mapping[str, Any],
    raw_hashes: Mapping[str, str] | None = None,
) -> tuple[list[StoreItem], list[dict[str, Any]]]:
    """Return the page's valid items and its quarantine entries.

    ``raw_hashes`` (record key → raw hash, from the fetch) ride along on the
    items so the store can keep them; a key that also has a quarantine entry
    gets none, so that its rows are mapped again next time.
    """
    built, record_errors = build_records(kind_map(kind, stream), records, settings)
    errors: list[dict[str, Any]] = [
        {"key": e.key, "field": e.field, "message": e.message, "raw": e.raw} for e in record_errors
    ]
    load, key_field = LOADERS[stream]
    items: list[StoreItem] = []
    for raw in built:
        record, action, problems = load(raw)
        key = str(raw.get(key_field) or "<unknown>")
        if record is None or action is None:
            for field, message in problems or [("record", "could not be read")]:
                errors.append({"key": key, "field": field, "message": message, "raw": raw})
            continue
        rh = raw_hashes.get(key) if raw_hashes else None
        if action == "active":
            items.append(StoreItem(key, "active", record, canonical_hash(record), rh))
        else:
            items.append(StoreItem(key, action, raw_hash=rh))
    if raw_hashes and errors:
        failed = {str(e["key"]) for e in errors}
        items = [
            StoreItem(i.key, i.action, i.data, i.hash) if i.key in failed else i for i in items
        ]
    return items, errors
