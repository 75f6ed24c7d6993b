"""Rows passed as one JSON array of objects: a whole batch in one parameter.

`json_to_recordset(:rows) AS name(a type, b type, …)` reads rows from one JSON text, so a
statement keeps one parameter per table whatever the number of rows, as `unnest` of one
array per column does (`ipt_core.db.unnest`). It is the cheaper of the two on the write
path: asyncpg spends ~2 µs of the caller's CPU on each array parameter, however short, while
`orjson` serializes a row in well under one, and PostgreSQL reads a short JSON text faster
than it receives a dozen arrays (bench/PROFILE.md, "Nineteenth round"). A create bound 66
arrays before; its rows now travel as four JSON parameters.

Values are what `orjson` writes: strings, numbers, booleans, null, instants in ISO 8601
(PostgreSQL reads them exactly), and `Decimal`s as strings (read exactly by `NUMERIC`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import JSON, Text, bindparam, cast, column, func
from sqlalchemy.sql.selectable import TableValuedAlias
from sqlalchemy.types import TypeEngine

__all__ = ["json_rows", "rows_json"]


def json_rows(name: str, param: str, /, **types: TypeEngine[Any] | type) -> TableValuedAlias:
    """`json_to_recordset(:param) AS name(column type, …)`, the JSON text bound when executed.

    Each keyword is a column and its type (`name` and `param` are positional only, so a
    column may be called either); bind `param` to `rows_json(those columns, rows)`.
    (No `WITH ORDINALITY`: PostgreSQL refuses it beside a column definition list; a caller
    that needs the rows' order sends each row's position as a column.)
    """
    rows = func.json_to_recordset(cast(bindparam(param, type_=Text), JSON))
    columns = (column(column_name, type_) for column_name, type_ in types.items())
    return rows.table_valued(*columns).render_derived(name=name, with_types=True)


def rows_json(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """`rows` (each a value per column of `columns`, in order) as the JSON `json_rows` reads."""
    keys = [str(c) for c in columns]  # orjson takes no `str` subclass (`quoted_name`) as a key
    objects = [dict(zip(keys, row, strict=True)) for row in rows]
    return orjson.dumps(objects, default=_exact).decode()


def _exact(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} cannot be sent as a JSON row value")
