"""The pieces a map is written in and the shapes it hands on.

A `Row` is one line of a seed's field table; `RawRecord` is how a row reads
an ERP record whatever its key case; `Flat` and `RecordError` are what
applying a map yields, for `build_products` / `build_customers` to nest or
quarantine. Kept apart from `Map` so that the map modules and the builders
share these without depending on each other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from mappings.scalars import MappingError

Compute = Callable[[Mapping[str, Any], Mapping[str, Any]], Any]
Transform = Callable[[Any], Any]


class _Unset:
    """Marks "no constant" so that a constant of None stays expressible."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Final = _Unset()
_MISSING: Final = object()


class MissingSettingError(MappingError):
    """An order needs a source setting that is not set (a cash account, a shipping code).

    Kept apart from bad data because the fix differs: the operator sets
    ``setting`` on the source and replays, instead of correcting the order.
    """

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.setting, str(self)))


class RawRecord(Mapping[str, Any]):
    """A read-only, case-insensitive view of one raw record.

    ERPs disagree on key case (SQL Server keeps the alias as written,
    PostgreSQL folds unquoted aliases to lower case), so maps name a field
    once and find it either way. The lower-cased index is built only when an
    exact lookup misses, which keeps the common path a single dict lookup.
    """

    __slots__ = ("_data", "_lower")

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data
        self._lower: dict[str, Any] | None = None

    def _folded(self) -> dict[str, Any]:
        if self._lower is None:
            self._lower = {k.lower(): v for k, v in self._data.items() if isinstance(k, str)}
        return self._lower

    def __getitem__(self, key: str) -> Any:
        try:
            return self._data[key]
        except KeyError:
            return self._folded()[key.lower()]

    def get(self, key: str, default: Any = None) -> Any:
        value = self._data.get(key, _MISSING)
        if value is _MISSING:
            return self._folded().get(key.lower(), default)
        return value

    def __contains__(self, key: object) -> bool:
        if key in self._data:
            return True
        return isinstance(key, str) and key.lower() in self._folded()

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    @property
    def data(self) -> Mapping[str, Any]:
        return self._data


@dataclass(frozen=True, slots=True)
class Row:
    """One line of a seed's field table.

    `erp` is the left column exactly as the seed shows it ("sellprice1",
    "WebItem", "true"). A row reads that field from the record, unless it is
    a constant (the seeds' `true` rows) or computed from the whole record
    and the source's settings (several ERP fields into one hub field, or a
    field chosen by a setting, like Syspro's active user field).
    """

    erp: str
    hub: str
    description: str = ""
    transform: Transform | None = None
    constant: Any = UNSET
    compute: Compute | None = None

    def __post_init__(self) -> None:
        if self.constant is not UNSET and self.compute is not None:
            raise ValueError(f"row {self.erp} -> {self.hub} is both a constant and computed")
        if "|" in self.erp + self.hub + self.description:
            raise ValueError(f"row {self.erp} -> {self.hub} contains '|', which breaks the table")


def const(erp: str, hub: str, value: Any, description: str = "") -> Row:
    """A row whose value is the same for every record (the seeds' `true`)."""
    return Row(erp, hub, description, constant=value)


def computed(erp: str, hub: str, fn: Compute, description: str = "") -> Row:
    """A row computed from the whole (case-insensitive) record and the settings."""
    return Row(erp, hub, description, compute=fn)


@dataclass(frozen=True, slots=True)
class RecordError:
    """Why one record could not be mapped; becomes a quarantine row.

    `key` is the record's natural key (SKU, product or customer code) so the
    operator can find it in the ERP; `field` is the hub path or ERP field at
    fault; `raw` is the record as the ERP sent it.
    """

    key: str
    field: str
    message: str
    raw: dict[str, Any]


class Flat(dict[str, Any]):
    """The flat result of `Map.apply`: hub path -> value.

    It is a plain dict of hub paths, so it prints and compares like one; the
    raw record and any per-field errors ride along as attributes, so that
    `build_products` can quarantine a record (and its product) with the raw
    data instead of dropping a field and writing a wrong product.
    """

    __slots__ = ("errors", "raw")

    def __init__(self, raw: Mapping[str, Any] | None = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.raw: Mapping[str, Any] = raw if raw is not None else {}
        self.errors: list[tuple[str, str]] = []
