"""The sort order of a search as a tuple of SQL columns, ending with the resource id.

Every order is total (the id breaks ties, in the direction of the last key), so a page
boundary is one position and keyset paging neither skips nor repeats. A resource with
several values sorts by its lowest (ascending) or highest (descending) one, as the spec
says; one without a value sorts last in either direction (a `missing` flag column first).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    DateTime,
    FromClause,
    Numeric,
    Table,
    Text,
    and_,
    func,
    literal,
    or_,
    select,
    tuple_,
)
from sqlalchemy.types import TypeEngine

from ipt_core.db.schema import (
    search_date,
    search_number,
    search_reference,
    search_string,
    search_token,
)
from ipt_core.fhir.index import index_entries
from ipt_core.fhir.registry import COMMON_PARAMS, REGISTRY
from ipt_core.fhir.search._model import SearchQuery, SortKey

__all__ = ["Component", "SortPlan", "sort_plan"]

_ID_KEY = SortKey(COMMON_PARAMS["_id"], descending=False)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Per parameter type: index table, the column sorted on (ascending, descending), SQL type,
# and the stand-in value of a resource that has none (its `missing` flag already orders it).
_SORTED: dict[str, tuple[Table, str, str, TypeEngine[Any], object]] = {
    "date": (search_date, "low", "high", DateTime(timezone=True), _EPOCH),
    "token": (search_token, "code", "code", Text(), ""),
    "string": (search_string, "value", "value", Text(), ""),
    "reference": (search_reference, "target_id", "target_id", Text(), ""),
    "number": (search_number, "value", "value", Numeric(), Decimal(0)),
    "quantity": (search_number, "value", "value", Numeric(), Decimal(0)),
}


@dataclass(frozen=True)
class Component:
    """One column of the order: its SQL type and direction (before any paging reversal)."""

    type: TypeEngine[Any]
    descending: bool


@dataclass(frozen=True)
class SortPlan:
    """The order of one search: its keys and the components they expand to."""

    resource_type: str
    keys: tuple[SortKey, ...]

    @property
    def components(self) -> tuple[Component, ...]:
        """The order's columns, in order (a key with an index value has a `missing` flag)."""
        found: list[Component] = []
        for key in self.keys:
            if key.param.name == "_id":
                found.append(Component(Text(), key.descending))
            elif key.param.name == "_lastUpdated":
                found.append(Component(DateTime(timezone=True), key.descending))
            else:
                found.append(Component(Boolean(), False))
                found.append(Component(_SORTED[key.param.type][3], key.descending))
        return tuple(found)

    def columns(self, row: FromClause) -> tuple[FromClause, list[ColumnElement[Any]]]:
        """Return `row` joined with what the order needs, and the order's SQL columns."""
        joined = row
        columns: list[ColumnElement[Any]] = []
        for number, key in enumerate(self.keys):
            if key.param.name == "_id":
                columns.append(row.c.id)
            elif key.param.name == "_lastUpdated":
                columns.append(row.c.last_updated)
            else:
                value = self._lateral(key, row, f"sort_{number}")
                joined = joined.outerjoin(value, literal(True))
                columns.append(value.c.v.is_(None))
                columns.append(func.coalesce(value.c.v, literal(_SORTED[key.param.type][4])))
        return joined, columns

    def order_by(self, columns: list[ColumnElement[Any]], *, reverse: bool) -> list[Any]:
        """Return ORDER BY terms of `columns` (reversed when paging backwards)."""
        return [
            c.desc() if part.descending != reverse else c.asc()
            for c, part in zip(columns, self.components, strict=True)
        ]

    def after(
        self, columns: list[ColumnElement[Any]], position: tuple[Any, ...], *, reverse: bool
    ) -> ColumnElement[bool]:
        """The condition that a row comes strictly after `position` in the (reversed) order."""
        values = [literal(v, part.type) for v, part in zip(position, self.components, strict=True)]
        downward = [part.descending != reverse for part in self.components]
        if len(set(downward)) == 1:  # one direction: a row comparison the index can serve
            left, right = tuple_(*columns), tuple_(*values)
            return left < right if downward[0] else left > right
        alternatives = []
        for i, column in enumerate(columns):
            step = column < values[i] if downward[i] else column > values[i]
            alternatives.append(and_(*(columns[j] == values[j] for j in range(i)), step))
        return or_(*alternatives)

    def key_of(self, id_: str, last_updated: datetime, content: dict[str, Any]) -> tuple[Any, ...]:
        """Compute a resource's position in Python from its JSON (for snapshot versions)."""
        definition = REGISTRY[self.resource_type]
        entries = index_entries(definition, content)
        key: list[Any] = []
        for sort_key in self.keys:
            if sort_key.param.name == "_id":
                key.append(id_)
            elif sort_key.param.name == "_lastUpdated":
                key.append(last_updated)
            else:
                table, ascending, descending, _, neutral = _SORTED[sort_key.param.type]
                attribute = descending if sort_key.descending else ascending
                found = [
                    getattr(entry, attribute)
                    for entry in entries[table.name]
                    if entry.param == sort_key.param.name and getattr(entry, attribute) is not None
                ]
                value = (max if sort_key.descending else min)(found) if found else None
                key.extend([value is None, neutral if value is None else value])
        return tuple(key)

    def _lateral(self, key: SortKey, row: FromClause, name: str) -> Any:
        table, ascending, descending, _, _ = _SORTED[key.param.type]
        column = table.c[descending if key.descending else ascending]
        aggregate = func.max(column) if key.descending else func.min(column)
        return (
            select(aggregate.label("v"))
            .where(
                table.c.resource_type == self.resource_type,
                table.c.resource_id == row.c.id,
                table.c.param == key.param.name,
            )
            .lateral(name)
        )


def sort_plan(query: SearchQuery) -> SortPlan:
    """Return the total order of `query`: its `_sort` keys, then the id (default: the id)."""
    keys = query.sort
    if not any(k.param.name == "_id" for k in keys):
        last_descending = keys[-1].descending if keys else False
        keys = (*keys, SortKey(_ID_KEY.param, last_descending))
    else:  # nothing sorts after the id: it is unique
        cut = next(i for i, k in enumerate(keys) if k.param.name == "_id")
        keys = keys[: cut + 1]
    return SortPlan(query.resource_type, keys)
