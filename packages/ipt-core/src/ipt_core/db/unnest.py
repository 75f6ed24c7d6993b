"""Rows passed as parallel arrays: one statement for a whole batch, whatever its size.

`unnest(:a, :b, …) AS name(a, b, …)` sends a batch as one array per column, so a set-based
INSERT … SELECT or UPDATE … FROM stays one statement with a fixed number of parameters
(multi-row VALUES would need one parameter per cell, and asyncpg allows at most 32,767).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import DateTime, any_, bindparam, func
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import TableValuedAlias
from sqlalchemy.types import ARRAY, TypeEngine

__all__ = ["INSTANT", "among", "unnest_params", "unnest_rows"]

INSTANT = DateTime(timezone=True)  # the element type of an array of instants


def unnest_rows(name: str, **columns: tuple[TypeEngine[Any], Sequence[Any]]) -> TableValuedAlias:
    """A derived table `name` with one column per keyword: `(element type, values)`.

    Every column must hold the same number of values.
    """
    arrays = [
        bindparam(f"{name}_{column}", list(values), type_=ARRAY(type_))
        for column, (type_, values) in columns.items()
    ]
    return func.unnest(*arrays).table_valued(*columns).render_derived(name)


def unnest_params(name: str, **types: Any) -> TableValuedAlias:
    """`unnest(:each_a, :each_b, …) AS name(a, b, …)`, the arrays bound when executed.

    The form for statements built once at import (compiling a Core statement costs more CPU
    than its round trip on a hot path): pass `each_<column>=[…]` with the parameters. The
    parameters are named apart from the columns, because SQLAlchemy would take a parameter
    named like a column of an INSERT or UPDATE for a value of that column. (The rows that
    ride in a resource write's statement travel as JSON instead: `ipt_core.db.json_rows`.)
    """
    params = [bindparam(f"each_{c}", type_=ARRAY(type_)) for c, type_ in types.items()]
    return func.unnest(*params).table_valued(*types).render_derived(name=name)


def among(column: ColumnElement[Any], values: Sequence[Any], type_: TypeEngine[Any]) -> Any:
    """`column = ANY(:values)`: one array parameter, so one prepared statement for any count.

    (An expanding `IN` renders one parameter per value: a new statement text per batch size.)
    """
    return column == any_(bindparam(None, list(values), type_=ARRAY(type_)))
