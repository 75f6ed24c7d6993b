"""Rows that ride in another statement: a write listener's rows in the write's own statement.

A create used to cost five round trips: `BEGIN`, the resource write, the outbox append, the
audit record, `COMMIT`. Each statement costs the API ~65 µs and PostgreSQL ~95 µs beyond its
own work (binding, the executor's start and end, the socket both ways), more than the
outbox's and the audit's inserts themselves (bench/PROFILE.md, "Twelfth round"). A listener
whose reaction is rows to insert can instead hand the store a `RowsPart`: the store adds it
to the write's statement as data-modifying CTEs (docs/architecture.md#write-path).

The SQL of a part is built once per combination of parts and cached with the write's
statement; each write only binds its values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.sql.selectable import CTE

__all__ = ["PartBuilder", "PartSql", "RowsPart"]


@dataclass(frozen=True)
class PartSql:
    """A part's SQL: CTEs, and columns for the statement's result (e.g. a `pg_notify`)."""

    ctes: Sequence[CTE]
    columns: Sequence[ColumnElement[Any]] = ()


PartBuilder = Callable[[str, "ColumnElement[bool] | None"], PartSql]
"""`build(prefix, written)`: the part's SQL, its parameters bound as `<prefix>_<name>` and its
CTEs named after `prefix`; with `written`, it inserts rows only where that holds (the
resource write happened: a creation that lost its race writes nothing). A module-level
function: it is the composed statement's cache key."""


@dataclass(frozen=True)
class RowsPart:
    """Rows a listener adds in the write's statement: its SQL, and this write's values.

    `done` is called once the write is complete: its statement ran and every other listener
    took the change (the point where a listener told last would have run). A listener keeps
    its bookkeeping there, so a refusal after the statement leaves it untouched.
    """

    build: PartBuilder
    params: Mapping[str, Any]  # by name without the prefix: `{"rows": "[{…}]"}`
    done: Callable[[], None] | None = None

    def bound(self, prefix: str) -> dict[str, Any]:
        """`params` named as `build(prefix, …)` binds them."""
        return {f"{prefix}_{name}": values for name, values in self.params.items()}
