"""Shopify's calculated query cost and the leaky bucket that limits it.

From the GraphQL Admin API rate-limit reference: a scalar or enum field
costs 0, an object 1, a connection 2 plus one node's cost for every node
asked for (``first``/``last``), a mutation 10; a single query may not cost
more than 1000. Before a query runs the bucket must hold its *requested*
cost; afterwards the difference to the *actual* cost (connections counted by
the nodes really returned) is refunded. The bucket refills continuously at
the restore rate up to its maximum.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    is_leaf_type,
)
from graphql.execution.values import get_argument_values

MUTATION_COST = 10
SINGLE_QUERY_MAX_COST = 1000
# The standard plan: 100 points restored per second (the reference's table of
# rate limits by plan); the bucket holds 20 seconds of that, 2000 points, the
# maximumAvailable the API reports on that plan (older pages said 1000 and 50/s).
DEFAULT_MAXIMUM = 2000.0
DEFAULT_RESTORE_RATE = 100.0


class CostBucket:
    """The app-and-shop bucket of cost points; thread-safe, clock injectable."""

    def __init__(
        self,
        maximum: float = DEFAULT_MAXIMUM,
        restore_rate: float = DEFAULT_RESTORE_RATE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.maximum = maximum
        self.restore_rate = restore_rate
        self.clock = clock
        self._available = maximum
        self._at = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self.clock()
        self._available = min(self.maximum, self._available + (now - self._at) * self.restore_rate)
        self._at = now

    def take(self, points: float) -> bool:
        """Take ``points`` if the bucket holds them; False (nothing taken) if not."""
        with self._lock:
            self._refill()
            if points > self._available:
                return False
            self._available -= points
            return True

    def refund(self, points: float) -> None:
        with self._lock:
            self._refill()
            self._available = min(self.maximum, self._available + points)

    def drain(self, points: float | None = None) -> None:
        """Empty the bucket (or take ``points`` regardless): a test's way to start throttled."""
        with self._lock:
            self._refill()
            self._available = 0.0 if points is None else max(0.0, self._available - points)

    @property
    def available(self) -> float:
        with self._lock:
            self._refill()
            return self._available

    def status(self) -> dict[str, float]:
        return {
            "maximumAvailable": float(self.maximum),
            "currentlyAvailable": float(int(self.available)),
            "restoreRate": float(self.restore_rate),
        }


class CostCalculator:
    """The requested and actual cost of one operation against the schema."""

    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: dict[str, Any] | None,
    ) -> None:
        self.schema = schema
        self.operation = operation
        self.variables = variables or {}
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }

    def requested(self) -> int:
        return self._cost(None)

    def actual(self, data: dict[str, Any] | None) -> int:
        return self._cost(data if data is not None else {})

    def _cost(self, data: dict[str, Any] | None) -> int:
        if self.operation.operation == OperationType.MUTATION:
            root = self.schema.mutation_type
            return MUTATION_COST * len(self._fields(self.operation.selection_set, root))
        return self._selection(self.operation.selection_set, self.schema.query_type, data)

    def _fields(
        self, selection_set: SelectionSetNode, parent: Any, condition: str | None = None
    ) -> list[tuple[FieldNode, GraphQLField, str | None]]:
        """The fields selected, each with its definition and the fragment type it sits under."""
        out: list[tuple[FieldNode, GraphQLField, str | None]] = []
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode) and not sel.name.value.startswith("__"):
                field = _field_of(self.schema, parent, sel.name.value)
                if field is not None:
                    out.append((sel, field, condition))
                continue
            if isinstance(sel, InlineFragmentNode):
                inner, on = sel.selection_set, sel.type_condition
            elif isinstance(sel, FragmentSpreadNode) and sel.name.value in self.fragments:
                fragment = self.fragments[sel.name.value]
                inner, on = fragment.selection_set, fragment.type_condition
            else:
                continue
            name = on.name.value if on is not None else None
            target = self.schema.get_type(name) if name else parent
            out.extend(self._fields(inner, target, name if target is not parent else condition))
        return out

    def _selection(
        self, selection_set: SelectionSetNode, parent: Any, data: dict[str, Any] | None
    ) -> int:
        """Fields on the type itself, plus the dearest of the per-type fragments."""
        common = 0
        per_type: dict[str, int] = {}
        for node, field, condition in self._fields(selection_set, parent):
            cost = self._field(node, field, data)
            if condition is None:
                common += cost
            else:
                per_type[condition] = per_type.get(condition, 0) + cost
        return common + max(per_type.values(), default=0)

    def _field(self, node: FieldNode, field: GraphQLField, data: dict[str, Any] | None) -> int:
        named = get_named_type(field.type)
        if is_leaf_type(named):
            return 0
        child: Any = None
        if data is not None:
            child = data.get(node.alias.value if node.alias else node.name.value)
            if child is None:
                return 0
        if named.name.endswith("Connection") and node.selection_set is not None:
            per_node = self._per_node(node.selection_set, named)
            if isinstance(child, dict):
                count = len(child.get("nodes") or child.get("edges") or [])
            else:
                args = get_argument_values(field, node, self.variables)
                count = int(args.get("first") or args.get("last") or 0)
            return 2 + count * per_node
        if node.selection_set is None:
            return 1
        inner = child if isinstance(child, dict) else None
        return 1 + self._selection(node.selection_set, named, inner)

    def _per_node(self, selection_set: SelectionSetNode, connection: Any) -> int:
        """One node's cost, whether asked for through ``nodes`` or ``edges { node }``."""
        best = 0
        for node, field, _ in self._fields(selection_set, connection):
            name = node.name.value
            if node.selection_set is None:
                continue
            if name == "nodes":
                node_type = get_named_type(field.type)
                best = max(best, 1 + self._selection(node.selection_set, node_type, None))
            elif name == "edges":
                edge = get_named_type(field.type)
                for inner, inner_field, _ in self._fields(node.selection_set, edge):
                    if inner.name.value == "node" and inner.selection_set is not None:
                        node_type = get_named_type(inner_field.type)
                        best = max(best, 1 + self._selection(inner.selection_set, node_type, None))
        return best


def _field_of(schema: GraphQLSchema, parent: Any, name: str) -> GraphQLField | None:
    if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
        found: GraphQLField | None = parent.fields.get(name)
        return found
    return None
