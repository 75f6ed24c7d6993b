"""Shorthand for the migrations' DDL: a table's columns in one string, derived names.

History is not rewritten: the migrations emit the same statements as when they were written
out column by column (docs/architecture.md#where-things-live); only the Python is shorter.

A column is `name type`, `type!` for NOT NULL; types: text, int, bigint, bool, numeric,
bytes, jsonb, tz (timestamp with time zone), text[] and identity (a NOT NULL bigint
GENERATED ALWAYS AS IDENTITY).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

__all__ = ["columns", "index", "table"]

_TYPES: Final[dict[str, Callable[[], Any]]] = {
    "text": sa.Text,
    "int": sa.Integer,
    "bigint": sa.BigInteger,
    "bool": sa.Boolean,
    "numeric": sa.Numeric,
    "bytes": sa.LargeBinary,
    "jsonb": postgresql.JSONB,
    "tz": lambda: sa.DateTime(timezone=True),
    "text[]": lambda: postgresql.ARRAY(sa.Text()),
}


def columns(spec: str) -> list[sa.Column[Any]]:
    """The columns of `spec`: whitespace-separated `name type` pairs, in order."""
    words = spec.split()
    made: list[sa.Column[Any]] = []
    for name, kind in zip(words[::2], words[1::2], strict=True):
        if kind == "identity":
            made.append(sa.Column(name, sa.BigInteger(), sa.Identity(always=True), nullable=False))
        else:
            made.append(
                sa.Column(name, _TYPES[kind.rstrip("!")](), nullable=not kind.endswith("!"))
            )
    return made


def table(name: str, spec: str, *constraints: Any, key: Sequence[str]) -> None:
    """Create table `name` with the columns of `spec` and primary key `pk_<name>` on `key`."""
    op.create_table(
        name, *columns(spec), sa.PrimaryKeyConstraint(*key, name=f"pk_{name}"), *constraints
    )


def index(
    table_name: str,
    *column_names: str,
    unique: bool = False,
    where: str | None = None,
    name: str | None = None,
) -> None:
    """Create an index, named `ix_<table>_<columns>` unless `name` says otherwise."""
    op.create_index(
        name or f"ix_{table_name}_{'_'.join(column_names)}",
        table_name,
        list(column_names),
        unique=unique,
        postgresql_where=sa.text(where) if where is not None else None,
    )
