"""What each endpoint does to the store, shared by single requests and batches.

Every operation validates its parameters, prepares a copy of the object,
and saves it only when nothing refused it, so each item commits on its own
(core commits batch items one by one; earlier items stay when a later one
fails). Errors are :class:`RestError` with core's codes and statuses; a
batch turns each into its ``{"id", "error"}`` element.

Batches are checked here against the same schema as single requests: core
skips that check for batch items, so this shop is stricter than a live one
about types there (a JSON number for a price is refused, not coerced).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from . import render
from .errors import RestError, invalid_id, invalid_params
from .faults import Faults
from .schema import DELETE, PRODUCT, VARIATION, collection, parse_date, validate
from .store import Item, Product, Store, Variation
from .writes import apply_product, apply_variation

Data = dict[str, Any]
VARIATION_VIA_PRODUCTS = (
    "To manipulate product variations you should use the "
    "/products/&lt;product_id&gt;/variations/&lt;id&gt; endpoint."
)


class Page:
    """One page of a list and what the pagination headers need."""

    def __init__(self, items: list[Data], total: int, page: int, per_page: int) -> None:
        self.items, self.total, self.page, self.per_page = items, total, page, per_page

    @property
    def pages(self) -> int:
        return -(-self.total // self.per_page)


class Shop:
    """The store, the faults a test set, and the site's settings that change answers."""

    def __init__(
        self,
        store: Store,
        faults: Faults,
        *,
        batch_limit: int = 100,
        trash_supported: bool = True,
    ) -> None:
        self.store = store
        self.faults = faults
        self.batch_limit = batch_limit
        self.trash_supported = trash_supported

    # ------------------------------------------------------------ products

    def list_products(self, query: Data, base: str) -> Page:
        q = collection(query)
        items: list[Product | Variation] = list(self.store.products.values())
        if q.get("sku"):
            items += list(self.store.variations.values())
        if q.get("type"):
            items = [p for p in items if isinstance(p, Product) and p.type == q["type"]]
        if q.get("slug"):
            items = [p for p in items if isinstance(p, Product) and p.slug == q["slug"]]
        return self._page(items, q, lambda i: self._as_product(i, base))

    def get_product(self, number: int, base: str) -> Data:
        item = self.store.get(number)
        if item is None:
            raise invalid_id("product", 404)
        return self._as_product(item, base)

    def create_product(self, params: Data, base: str) -> Data:
        clean = validate(params, PRODUCT)
        if params.get("id"):
            raise RestError(
                "woocommerce_rest_product_exists", "Cannot create existing product.", 400
            )
        product = Product(id=0)
        apply_product(self.store, product, clean)
        self._refused(product)
        self.store.save(product)
        self.faults.wrote("product.created")
        return render.product(self.store, product, base)

    def update_product(self, number: Any, params: Data, base: str) -> Data:
        clean = validate(params, PRODUCT)
        existing = self.store.get(_as_int(number))
        if existing is None:
            raise invalid_id("product", 400)
        if isinstance(existing, Variation):
            raise RestError("woocommerce_rest_invalid_product_id", VARIATION_VIA_PRODUCTS, 404)
        product = copy.deepcopy(existing)
        apply_product(self.store, product, clean)
        self._refused(product)
        self.store.save(product)
        self.faults.wrote("product.updated")
        return render.product(self.store, product, base)

    def delete_product(self, number: int, force: bool, base: str) -> Data:
        item = self.store.get(number)
        if item is None:
            raise invalid_id("product", 404)
        return self._delete(item, force, "product", lambda: self._as_product(item, base))

    def batch_products(self, body: Any, base: str) -> Data:
        return self._batch(
            body,
            lambda item: self.create_product(item, base),
            lambda number, item: self.update_product(number, item, base),
            lambda number: self.delete_product(number, True, base),
        )

    # ------------------------------------------------------------ variations

    def list_variations(self, product_id: int | None, query: Data, base: str) -> Page:
        """A product's variations, or (``product_id`` None) every variation with its parent id."""
        q = collection(query)
        items: list[Product | Variation] = [
            v
            for v in self.store.variations.values()
            if product_id is None or v.parent_id == product_id
        ]
        if product_id is None:
            return self._page(items, q, lambda v: self._variation_with_parent(v, base))
        return self._page(items, q, lambda v: self._variation(v, base))

    def get_variation(self, number: int, base: str) -> Data:
        return self._variation(self._find_variation(number, 404), base)

    def create_variation(self, product_id: int, params: Data, base: str) -> Data:
        clean = validate(params, VARIATION)
        if params.get("id"):
            raise RestError(
                "woocommerce_rest_product_variation_exists",
                "Cannot create existing product_variation.",
                400,
            )
        parent = self.store.products.get(product_id)
        if parent is None:
            raise RestError(
                "woocommerce_rest_product_variation_invalid_parent",
                "Cannot set attributes due to invalid parent product.",
                404,
            )
        variation = Variation(id=0, parent_id=product_id)
        apply_variation(self.store, variation, parent, clean)
        self._refused(variation)
        self.store.save(variation)
        self.faults.wrote("variation.created")
        return render.variation(self.store, variation, base)

    def update_variation(
        self, product_id: int, number: Any, params: Data, base: str, *, check_parent: bool
    ) -> Data:
        """``check_parent`` is the permission check of a single PUT; a batch item skips it
        and, as core's v3 controller does, moves the variation to the URL's product."""
        clean = validate(params, VARIATION)
        existing = self._find_variation(_as_int(number), 400)
        if check_parent and existing.parent_id != product_id:
            raise RestError(
                "woocommerce_rest_cannot_edit",
                "Parent product does not match current variation.",
                403,
            )
        variation = copy.deepcopy(existing)
        variation.parent_id = product_id
        apply_variation(self.store, variation, self.store.products.get(product_id), clean)
        self._refused(variation)
        self.store.save(variation)
        self.faults.wrote("variation.updated")
        return render.variation(self.store, variation, base)

    def delete_variation(self, number: int, force: bool, base: str) -> Data:
        item = self._find_variation(number, 404)
        return self._delete(item, force, "product_variation", lambda: self._variation(item, base))

    def batch_variations(self, product_id: int, body: Any, base: str) -> Data:
        return self._batch(
            body,
            lambda item: self.create_variation(product_id, item, base),
            lambda number, item: self.update_variation(
                product_id, number, item, base, check_parent=False
            ),
            lambda number: self.delete_variation(number, True, base),
        )

    # ------------------------------------------------------------ shared

    def delete_params(self, query: Data) -> bool:
        return bool(validate(query, DELETE).get("force", False))

    def _find_variation(self, number: int, status: int) -> Variation:
        found = self.store.variations.get(number)
        if found is None:
            raise invalid_id("product_variation", status)
        return found

    def _as_product(self, item: Product | Variation, base: str) -> Data:
        if isinstance(item, Variation):
            return render.variation_as_product(self.store, item, base)
        return render.product(self.store, item, base)

    def _variation(self, item: Product | Variation, base: str) -> Data:
        assert isinstance(item, Variation)
        return render.variation(self.store, item, base)

    def _variation_with_parent(self, item: Product | Variation, base: str) -> Data:
        assert isinstance(item, Variation)
        return render.with_parent(render.variation(self.store, item, base), item)

    def _refused(self, item: Item) -> None:
        refusal = self.faults.refusal(item.sku)
        if refusal is not None:
            raise RestError(refusal.code, refusal.message, refusal.status)

    def _delete(
        self, item: Product | Variation, force: bool, post_type: str, answer: Callable[[], Data]
    ) -> Data:
        kind = "product" if isinstance(item, Product) else "variation"
        if force:
            data = answer()
            self.store.remove(item)
            self.faults.wrote(f"{kind}.deleted")
            return data
        if not self.trash_supported:
            raise RestError(
                "woocommerce_rest_trash_not_supported",
                f"The {post_type} does not support trashing.",
                501,
            )
        if item.status == "trash":
            raise RestError(
                "woocommerce_rest_already_trashed",
                f"The {post_type} has already been deleted.",
                410,
            )
        self.store.trash(item)
        self.faults.wrote(f"{kind}.trashed")
        return answer()

    def _batch(
        self,
        body: Any,
        create: Callable[[Data], Data],
        update: Callable[[Any, Data], Data],
        delete: Callable[[int], Data],
    ) -> Data:
        sections = _sections(body)
        total = sum(len(items) for items in sections.values())
        if total > self.batch_limit:
            raise RestError(
                "woocommerce_rest_request_entity_too_large",
                f"Unable to accept more than {self.batch_limit} items for this request.",
                413,
            )
        self.faults.count("batches")
        answer: Data = {}
        for item in sections.get("create", []):
            given = item if isinstance(item, dict) else {}
            answer.setdefault("create", []).append(_attempt(0, create, given))
        for item in sections.get("update", []):
            given = item if isinstance(item, dict) else {}
            number = given.get("id")
            answer.setdefault("update", []).append(_attempt(number, update, number, given))
        for raw in sections.get("delete", []):
            number = _as_int(raw)
            if number:
                answer.setdefault("delete", []).append(_attempt(number, delete, number))
        return answer

    def _page(
        self,
        items: list[Product | Variation],
        q: Data,
        show: Callable[[Product | Variation], Data],
    ) -> Page:
        chosen = [item for item in items if self._matches(item, q)]
        chosen.sort(key=self._sort_key(q), reverse=q["order"] == "desc")
        start = q["offset"] if q.get("offset") is not None else (q["page"] - 1) * q["per_page"]
        shown = chosen[start : start + q["per_page"]]
        return Page([show(item) for item in shown], len(chosen), q["page"], q["per_page"])

    def _matches(self, item: Product | Variation, q: Data) -> bool:
        status = q["status"]
        if status == "any" and item.status in ("trash", "auto-draft"):
            return False
        if status != "any" and item.status != status:
            return False
        if q.get("sku"):
            skus = q["sku"].split(",")
            if len(skus) > 1:
                skus.append(q["sku"])
            if item.sku == "" or item.sku not in skus:
                return False
        if q["include"] and item.id not in q["include"]:
            return False
        if item.id in q["exclude"]:
            return False
        if q.get("stock_status") and self.store.stock_status(item) != q["stock_status"]:
            return False
        if q.get("search") and not self._found(item, q["search"]):
            return False
        return _in_dates(item, q)

    def _found(self, item: Product | Variation, search: str) -> bool:
        text = " ".join(
            [render.title(self.store, item), item.description]
            + ([item.short_description] if isinstance(item, Product) else [])
        ).lower()
        return all(term in text for term in search.lower().split())

    def _sort_key(self, q: Data) -> Callable[[Product | Variation], Any]:
        orderby: str = q["orderby"]
        if orderby == "id":
            return lambda i: i.id
        if orderby == "include":
            order = {n: k for k, n in enumerate(q["include"])}
            return lambda i: (order.get(i.id, len(order)), i.id)
        if orderby == "title":
            return lambda i: (render.title(self.store, i).lower(), i.id)
        if orderby == "slug":
            return lambda i: (i.slug if isinstance(i, Product) else "", i.id)
        if orderby == "modified":
            return lambda i: (i.modified, i.id)
        if orderby == "price":
            return lambda i: (Decimal(self.store.price(i) or 0), i.id)
        return lambda i: (i.created, i.id)


def _sections(body: Any) -> dict[str, list[Any]]:
    given = body if isinstance(body, dict) else {}
    sections = {name: given[name] for name in ("create", "update", "delete") if given.get(name)}
    wrong = {
        name: ("rest_invalid_type", f"{name} is not of type array.")
        for name, items in sections.items()
        if not isinstance(items, list)
    }
    if wrong:
        raise invalid_params(wrong)
    return sections


def _attempt(number: Any, run: Callable[..., Data], *args: Any) -> Data:
    """One batch item: its resource, or ``{"id", "error"}`` when it was refused."""
    try:
        return run(*args)
    except RestError as exc:
        return {"id": number, "error": exc.error()}


def _as_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _in_dates(item: Item, q: Data) -> bool:
    checks: Sequence[tuple[str, float, bool]] = (
        ("after", item.created, True),
        ("before", item.created, False),
        ("modified_after", item.modified, True),
        ("modified_before", item.modified, False),
    )
    for name, stamp, after in checks:
        if q.get(name):
            parsed = parse_date(q[name])
            limit = parsed.timestamp() if parsed else 0.0
            if (after and stamp <= limit) or (not after and stamp >= limit):
                return False
    return True
