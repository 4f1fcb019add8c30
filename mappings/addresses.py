"""Customer addresses from an ERP's columns: a billing and a shipping address.

The hub's customer has a list of addresses, but a map row writes one hub
path, and ``addresses.city`` cannot say *which* address. So a customers map
that knows an ERP's address columns (SYSPRO's ``SoldToAddr1-5`` and
``ShipToAddr1-5``, the SQL template's ``billing_*`` / ``shipping_*``
aliases) declares them as ``AddressColumns``, one per address ``type``.
``AddressesMap`` applies them after its rows and hands ``build_customers``
the finished list, each address marked ``billing`` or ``shipping``.

The same declarations render the map's table (one row per field), so the
documentation is the code here as everywhere else in the maps.

Rules, the same for every ERP:

* A value is text, stripped (SYSPRO's CHAR columns arrive space-padded); a
  blank one is dropped. A value that is not text (a list, a flag) is the
  record's error, naming the column, and the customer is quarantined.
* An address is emitted only when it has at least one line (``LINE_FIELDS``):
  a postal code or a telephone alone does not make an address.
* A column the record does not carry is simply absent: an older schema or a
  query without the alias loses that field, never the customer.
* ``shared`` fields (a customer's one telephone) go on every emitted address
  that has no value of its own for that field.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from mappings.maps import Map
from mappings.paths import ADDRESS_FIELDS
from mappings.rows import Flat, RawRecord, Row
from mappings.scalars import MappingError, text

ADDRESS_TYPES: Final = ("billing", "shipping")
# The fields that make an address: one of them must be there to emit it.
LINE_FIELDS: Final = frozenset({"address1", "address2", "city"})
# What joins several ERP lines that fill one field ("Claremont, Cape Town").
JOIN: Final = ", "
_LOOSE: Final = "addresses."


@dataclass(frozen=True)
class AddressField:
    """One field of an address and the ERP columns that fill it.

    With ``joined`` the non-blank values of all the columns are joined with
    ``", "`` (several address lines into one field); else the first
    non-blank one wins (``billing_phone`` before ``phone``). ``shown`` is the
    left column of the rendered table (default: the columns, named).
    """

    name: str
    columns: tuple[str, ...]
    description: str
    joined: bool = False
    shown: str = ""

    def __post_init__(self) -> None:
        if self.name not in ADDRESS_FIELDS:
            raise ValueError(f"{self.name!r} is not a field of an address")
        if not self.columns:
            raise ValueError(f"address field {self.name!r} reads no column")

    def value(self, record: Mapping[str, Any], errors: list[tuple[str, str]]) -> str | None:
        """The field's text, or None when every column is absent or blank."""
        found: list[str] = []
        for column in self.columns:
            raw = record.get(column)
            try:
                value = text(raw, column)
            except MappingError as exc:
                errors.append((f"addresses.{self.name}", str(exc)))
                continue
            if value is not None:
                found.append(value)
                if not self.joined:
                    break
        return JOIN.join(found) or None

    def row(self, prefix: str) -> Row:
        label = self.shown or (" + " if self.joined else " or ").join(self.columns)
        return Row(label, f"addresses.{self.name}", f"{prefix}{self.description}")


@dataclass(frozen=True)
class AddressColumns:
    """One address of a customer (``type`` billing or shipping) and its fields."""

    type: str
    fields: tuple[AddressField, ...]

    def __post_init__(self) -> None:
        if self.type not in ADDRESS_TYPES:
            raise ValueError(f"address type {self.type!r} is not one of {ADDRESS_TYPES}")
        if not LINE_FIELDS & {f.name for f in self.fields}:
            raise ValueError(f"the {self.type} address has none of {sorted(LINE_FIELDS)}")

    def read(self, record: Mapping[str, Any], errors: list[tuple[str, str]]) -> dict[str, Any]:
        """The address's non-blank fields (``type`` not yet added)."""
        out: dict[str, Any] = {}
        for part in self.fields:
            value = part.value(record, errors)
            if value is not None:
                out[part.name] = value
        return out


@dataclass(frozen=True)
class AddressesMap(Map):
    """A customers map whose records also carry typed addresses.

    ``addresses`` are applied after the rows and rendered after them; an
    alias a SQL query gives straight to ``addresses.<field>`` (one address
    of no type, as before typed addresses existed) still comes through, after
    the typed ones.
    """

    addresses: tuple[AddressColumns, ...] = ()
    shared: tuple[AddressField, ...] = ()
    _documented: tuple[Row, ...] = field(init=False, repr=False, compare=False, default=())

    def __post_init__(self) -> None:
        if self.stream != "customers":
            raise ValueError("only a customers map has addresses")
        super().__post_init__()
        types = [a.type for a in self.addresses]
        if len(set(types)) != len(types):
            raise ValueError(f"an address type appears twice: {types}")
        rows = [f.row(f"{a.type.capitalize()} address: ") for a in self.addresses for f in a.fields]
        rows += [f.row("") for f in self.shared]
        object.__setattr__(self, "_documented", tuple(rows))

    def apply(
        self, record: Mapping[str, Any], settings: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        out = super().apply(record, settings)
        if isinstance(out, Flat):
            found = self.addresses_of(record, out.errors)
            loose = [path for path in out if isinstance(path, str) and path.startswith(_LOOSE)]
            if loose:
                found.append({path[len(_LOOSE) :]: out.pop(path) for path in loose})
            if found:
                out["addresses"] = found
        return out

    def addresses_of(
        self, record: Mapping[str, Any], errors: list[tuple[str, str]]
    ) -> list[dict[str, Any]]:
        """The record's typed addresses, in declaration order; failures go to ``errors``."""
        view = record if isinstance(record, RawRecord) else RawRecord(record)
        common: dict[str, Any] = {}
        for part in self.shared:
            value = part.value(view, errors)
            if value is not None:
                common[part.name] = value
        found: list[dict[str, Any]] = []
        for spec in self.addresses:
            address = spec.read(view, errors)
            if not LINE_FIELDS & address.keys():
                continue
            for name, value in common.items():
                address.setdefault(name, value)
            found.append({"type": spec.type, **address})
        return found

    def render(self, *args: Any, **kwargs: Any) -> str:
        """`Map.render` of the rows followed by one row per address field."""
        if not self._documented:
            return super().render(*args, **kwargs)
        shown = copy.copy(self)
        object.__setattr__(shown, "rows", self.rows + self._documented)
        return Map.render(shown, *args, **kwargs)
