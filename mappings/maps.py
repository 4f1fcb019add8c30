"""`Map`: one ERP's seed table for one stream, made executable.

The same rows transform raw records (`apply`, `key_of`) and print the
documentation (`render`). `apply` is the sync's hot path (it runs once per
raw row, ~100,000 per full products sync), which is why it walks a plan
unpacked at construction instead of the rows themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from mappings.paths import INBOUND, KEY_PATHS, STREAMS, Parser, hub_paths, parser_for
from mappings.rows import _MISSING, UNSET, Compute, Flat, RawRecord, Row, Transform
from mappings.scalars import AMOUNT_LIMIT, MappingError, text

_EMPTY: Final[Mapping[str, Any]] = {}


@dataclass(frozen=True)
class Choice:
    """A per-source setting that changes how one row maps.

    The ERPs' public material leaves some questions open (does a site key
    order lines by SKU or by its own line id; is stock on hand less what
    sales orders hold); each answer is a value of a source setting, and
    `Map.render` lists them under the seed's table so that `s2s mappings
    show` tells an operator what a site may choose. `target` is what the
    row writes (a hub path inbound, an ERP field outbound); `options` pairs
    each value with where the row then takes it from; the first is the
    default.
    """

    setting: str
    target: str
    options: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        if not self.options:
            raise ValueError(f"the choice {self.setting} has no options")

    @property
    def default(self) -> str:
        return self.options[0][0]

    def chosen(self, settings: Mapping[str, Any]) -> str:
        """The source's value when it is one of the options, else the default."""
        value = settings.get(self.setting)
        text = str(value).strip().lower() if value is not None else ""
        known = {name.lower(): name for name, _ in self.options}
        return known.get(text, self.default)

    def line(self, settings: Mapping[str, Any]) -> str:
        """``target ← source (setting=value; other: its source)``."""
        chosen = self.chosen(settings)
        meaning = dict(self.options)
        others = "; ".join(f"{name}: {what}" for name, what in self.options if name != chosen)
        mark = ", the default" if chosen == self.default else ""
        rest = f"; {others}" if others else ""
        return f"{self.target} ← {meaning[chosen]} ({self.setting}={chosen}{mark}{rest})"


@dataclass(frozen=True)
class Map:
    """One ERP's map of one stream: the rows of its seed table.

    `passthrough` names hub paths a raw record may carry directly as keys
    (a custom SQL query aliasing a column `AS "variants.qty"`); such a key
    wins over the row that reads the template's column. Entries ending in
    "*" are prefixes ("meta.*").

    Outbound maps (orders) go from the hub to the ERP: their rows document
    the ERP columns, and `build(order, settings)` makes the ERP payload.
    A build that needs what the hub keeps about each line's variant (the
    ERP's own line id, say) names those variant meta keys with
    `line_meta(settings)`: the raise task looks them up among the source's
    stored variants and hands them to `build` on each line item as
    ``variant_meta`` ({key: value}), so that the map itself does no I/O.

    `choices` are the per-source settings that change a row (`Choice`),
    listed under the table by `render`.
    """

    erp: str
    erp_title: str
    stream: str
    rows: tuple[Row, ...]
    passthrough: frozenset[str] = frozenset()
    build: Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, Any]] | None = None
    line_meta: Callable[[Mapping[str, Any]], tuple[str, ...]] | None = None
    choices: tuple[Choice, ...] = ()
    _plan: tuple[tuple[Row, Parser, int], ...] = field(init=False, repr=False, compare=False)
    _key_plan: tuple[tuple[Row, Parser, int], ...] = field(init=False, repr=False, compare=False)
    # `_plan` unpacked for `apply`'s loop: (hub, erp, parse, kind, transform, constant, compute).
    _steps: tuple[tuple[str, str, Parser, int, Transform | None, Any, Compute | None], ...] = field(
        init=False, repr=False, compare=False
    )
    _exact: frozenset[str] = field(init=False, repr=False, compare=False)
    _prefixes: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.stream not in STREAMS:
            raise ValueError(f"stream {self.stream!r} is not one of {', '.join(STREAMS)}")
        if not self.rows:
            raise ValueError(f"the {self.erp} {self.stream} map has no rows")
        plan: list[tuple[Row, Parser, int]] = []
        if self.stream in INBOUND:
            if self.build is not None:
                raise ValueError("only outbound (orders) maps take a build function")
            for row in self.rows:
                parse = parser_for(self.stream, row.hub)
                if parse is None:
                    raise ValueError(f"{row.hub!r} is not a hub path of {self.stream}")
                kind = 2 if row.compute is not None else 1 if row.constant is not UNSET else 0
                plan.append((row, parse, kind))
            known = hub_paths(self.stream)
            for path in self.passthrough:
                if path not in known:
                    raise ValueError(f"passthrough {path!r} is not a hub path of {self.stream}")
        elif self.build is None:
            raise ValueError(f"the {self.erp} orders map needs a build function")
        if self.line_meta is not None and self.build is None:
            raise ValueError("only outbound (orders) maps read the hub's variant meta")
        targets = {r.hub if self.build is None else r.erp for r in self.rows}
        for choice in self.choices:
            if choice.target not in targets:
                raise ValueError(
                    f"choice {choice.setting}: no row of this map writes {choice.target!r}"
                )
        object.__setattr__(self, "_plan", tuple(plan))
        object.__setattr__(
            self,
            "_steps",
            tuple(
                (row.hub, row.erp, parse, kind, row.transform, row.constant, row.compute)
                for row, parse, kind in plan
            ),
        )
        key_path = KEY_PATHS.get(self.stream)
        object.__setattr__(self, "_key_plan", tuple(p for p in plan if p[0].hub == key_path))
        object.__setattr__(
            self, "_exact", frozenset(p for p in self.passthrough if not p.endswith("*"))
        )
        object.__setattr__(
            self, "_prefixes", tuple(p[:-1] for p in self.passthrough if p.endswith("*"))
        )

    def _aliases(self, record: Mapping[str, Any]) -> dict[str, tuple[str, Any]]:
        found: dict[str, tuple[str, Any]] = {}
        exact, prefixes = self._exact, self._prefixes
        for key, value in record.items():
            if not isinstance(key, str):
                continue
            low = key.lower()
            if low in exact:
                found[low] = (key, value)
            elif prefixes and "." in low and low.startswith(prefixes):
                # Keep the meta key's own spelling: "Meta.Brand" -> meta key "Brand".
                cut = max(len(p) for p in prefixes if low.startswith(p))
                found[low[:cut] + key[cut:]] = (key, value)
        return found

    def apply(
        self, record: Mapping[str, Any], settings: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Map one record; never raises for bad data.

        Inbound: returns a `Flat` (hub path -> value); fields that failed are
        left out and listed in its `.errors`, for `build_products` to
        quarantine. A field the record does not carry at all is left out
        without error: the hub's schema decides whether it was required.
        Outbound: returns the ERP payload from `build` (which may raise
        ValueError for a missing setting: that is the source's fault, not
        the order's, and the raise task turns it into a permanent error).
        """
        settings = settings if settings is not None else _EMPTY
        if self.build is not None:
            try:
                return self.build(record, settings)
            except ArithmeticError:
                # Decimal arithmetic past its 28 digits (an amount of 1e30 or
                # a total that large): the order's fault, said as such.
                raise MappingError(_too_large(record, self.erp_title)) from None
        out = Flat(record)
        errors = out.errors
        aliases = self._aliases(record) if self._exact or self._prefixes else _EMPTY
        view = RawRecord(record)
        # A plain dict is read directly (what `view.get` tries first); the
        # view's case-insensitive lookup only runs when that misses.
        exact_get = record.get if record.__class__ is dict else view.get
        view_get = view.get
        for hub, erp, parse, kind, transform, constant, compute in self._steps:
            if hub in aliases:
                continue
            try:
                if kind == 0:
                    value = exact_get(erp, _MISSING)
                    if value is _MISSING:
                        value = view_get(erp, _MISSING)
                        if value is _MISSING:
                            continue
                elif kind == 1:
                    value = constant
                else:
                    value = compute(view, settings)  # type: ignore[misc]  # kind 2 has one
                if transform is not None:
                    value = transform(value)
                out[hub] = parse(value, erp)
            except MappingError as exc:
                errors.append((hub, str(exc)))
            except Exception as exc:  # a map's own function failed on this record
                errors.append((hub, f"{erp} could not be mapped: {exc}"))
        for hub, (key, value) in aliases.items():
            parse = parser_for(self.stream, hub) or text
            try:
                out[hub] = parse(value, key)
            except MappingError as exc:
                out.errors.append((hub, str(exc)))
        return out

    def key_of(self, record: Mapping[str, Any], settings: Mapping[str, Any] | None = None) -> Any:
        """The record's key (its `KEY_PATHS` value) exactly as `apply` maps it,
        or None when that would not come out as a clean, non-blank value.

        The sync groups a page's raw rows by record with this before mapping
        anything, to skip records whose rows have not changed; so it reads
        only the key's rows (or a passthrough alias, which wins, as in
        `apply`), and anything doubtful is None: such rows are simply mapped.
        """
        path = KEY_PATHS.get(self.stream)
        if path is None or self.build is not None:
            return None
        settings = settings if settings is not None else _EMPTY
        if path in self._exact:
            alias: tuple[str, Any] | None = None
            for key, value in record.items():
                if isinstance(key, str) and key.lower() == path:
                    alias = (key, value)
            if alias is not None:
                parse = parser_for(self.stream, path) or text
                try:
                    return parse(alias[1], alias[0]) or None
                except Exception:
                    return None
        view = RawRecord(record)
        out: Any = None
        for row, parse, kind in self._key_plan:
            try:
                if kind == 0:
                    value = view.get(row.erp, _MISSING)
                    if value is _MISSING:
                        continue
                elif kind == 1:
                    value = row.constant
                else:
                    value = row.compute(view, settings)  # type: ignore[misc]
                if row.transform is not None:
                    value = row.transform(value)
                out = parse(value, row.erp)
            except Exception:
                return None
        return out or None

    def keys_of(
        self, records: Sequence[Mapping[str, Any]], settings: Mapping[str, Any] | None = None
    ) -> list[Any]:
        """`key_of` of each record, for a whole page at once.

        The same answers, with what `key_of` works out per record worked out
        once: whether a record carries a passthrough alias of the key depends
        only on its column names, which a page's rows share; and the key's
        column is read straight from the row before the case-insensitive view
        is built for a miss. An unchanged resync groups every row it fetches
        by key on its one sequential path.
        """
        path = KEY_PATHS.get(self.stream)
        if path is None or self.build is not None:
            return [None for _ in records]
        settings = settings if settings is not None else _EMPTY
        plan = self._key_plan
        if not (len(plan) == 1 and plan[0][2] == 0 and plan[0][0].transform is None):
            # A key made of several rows, a constant or a computation.
            return [self.key_of(record, settings) for record in records]
        ((row, parse, _),) = plan
        erp = row.erp
        aliased = path in self._exact
        aliases: dict[tuple[Any, ...], Any] = {}
        out: list[Any] = []
        for record in records:
            if aliased:
                names = tuple(record)
                alias = aliases.get(names, _MISSING)
                if alias is _MISSING:
                    alias = None
                    for key in names:
                        if isinstance(key, str) and key.lower() == path:
                            alias = key
                    aliases[names] = alias
                if alias is not None:
                    out.append(self.key_of(record, settings))
                    continue
            value = record.get(erp, _MISSING)
            if value is _MISSING:
                value = RawRecord(record).get(erp, _MISSING)
                if value is _MISSING:
                    out.append(None)
                    continue
            try:
                out.append(parse(value, erp) or None)
            except Exception:
                out.append(None)
        return out

    def line_meta_keys(self, settings: Mapping[str, Any] | None = None) -> tuple[str, ...]:
        """The variant meta keys `build` reads from each line item under
        these settings; () when it reads none (the raise task then looks
        nothing up)."""
        if self.line_meta is None:
            return ()
        return self.line_meta(settings if settings is not None else _EMPTY)

    def render(self, settings: Mapping[str, Any] | None = None) -> str:
        """The seed's markdown table for these rows, then the rows a source
        setting changes (`choices`), each with the value ``settings`` choose
        (the default without settings) and its alternatives."""
        header = (self.erp_title, "Stock2Shop", "Description")
        body = [(r.erp, r.hub, r.description) for r in self.rows]
        widths = [max(len(line[i]) for line in [header, *body]) for i in range(3)]
        widths = [max(w, 3) for w in widths]

        def line(cells: tuple[str, str, str]) -> str:
            return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

        sep = "| " + " | ".join("-" * w for w in widths) + " |"
        table = "\n".join([line(header), sep, *(line(b) for b in body)]) + "\n"
        if not self.choices:
            return table
        chosen = settings if settings is not None else _EMPTY
        notes = [f"- {choice.line(chosen)}" for choice in self.choices]
        return "\n".join([table, "Per-source settings:", *notes]) + "\n"


def _too_large(order: Mapping[str, Any], erp_title: str) -> str:
    """Which amount of an order is too large to compute with, for the dead letter."""
    label = f"order {order.get('channel_order_code')}"
    erp_title = "the ERP" if "{" in erp_title else erp_title
    places: list[tuple[str, Any]] = []
    for name in ("line_items", "shipping_lines"):
        for index, line in enumerate(order.get(name) or ()):
            if isinstance(line, Mapping):
                for part in ("qty", "price", "total_discount"):
                    places.append((f"{name}[{index}].{part}", line.get(part)))
    for path, value in places:
        if isinstance(value, int | float) and not abs(value) < AMOUNT_LIMIT:
            return (
                f"{label}: {path} {value!r} is too large to raise into {erp_title} "
                "(at most 15 digits before the point)"
            )
    return f"{label}: its amounts add up to more than {erp_title} can be sent"
