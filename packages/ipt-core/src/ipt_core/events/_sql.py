"""A piece of SQL the outbox and webhook repositories share: many rows bound as arrays."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, func
from sqlalchemy.dialects.postgresql import ARRAY

__all__ = ["unnest_rows"]


def unnest_rows(name: str, **types: Any) -> Any:
    """`unnest(:each_a, :each_b, …) AS name(a, b, …)`: many rows as one array per column.

    A statement built once with it serves any number of rows (docs/architecture.md#events-
    outbox-and-relay). The parameters are named apart from the columns: SQLAlchemy would take
    a parameter named like a column of an INSERT or UPDATE for a value of that column.
    """
    params = [bindparam(f"each_{column}", type_=ARRAY(type_)) for column, type_ in types.items()]
    return func.unnest(*params).table_valued(*types).render_derived(name=name)
