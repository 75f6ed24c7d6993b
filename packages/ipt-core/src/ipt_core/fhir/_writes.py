"""The SQL of resource writes: current rows, history rows and search-index rows, set-based.

One statement writes any number of resources (docs/architecture.md#write-path): the rows of
each table arrive as one JSON parameter (`ipt_core.db.json_rows`), so the statement's text
never changes with the number of rows (asyncpg prepares it once per connection). In that
statement:

- `cur` upserts the current rows. A row is written only when it is new, or when the stored
  version is the one before it (`ON CONFLICT … DO UPDATE … WHERE version_id + 1 = new`): a
  create that loses a race to a concurrent creator of the same id writes nothing and is told
  so (its caller then writes it as an update of the winner's version);
- the history rows, the deletion of the old index rows and the new index rows are written
  only for the rows `cur` wrote, the index rows only for those that `reindex` (a write whose
  searchable elements are those of the version it replaces keeps that version's rows). All
  parts see one snapshot, so deleting a resource's old index rows never touches the new ones.

A write of one resource may carry its listeners' rows (`ipt_core.db.parts`: the outbox's
event, the audit record) as further CTEs, inserted only when `cur` wrote the row; the
statement for each combination of parts is composed once and cached.

When every row is a version 1 there are no old index rows to delete: a version 1 is written
only where no row of its id existed, and nothing else writes index rows. That statement
leaves the deletions out, whose index probes were ~30 µs of PostgreSQL's time per
create (bench/PROFILE.md, "Twelfth round"). Likewise a search-index table none of the
writes has rows for gets no insert (a Patient has no number or reference rows): each insert
costs its executor start and its rows' parameter even when empty (bench/PROFILE.md,
"Nineteenth round").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Select,
    Table,
    and_,
    delete,
    exists,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.selectable import CTE

from ipt_core.db.fixed import FixedStatement
from ipt_core.db.json_rows import json_rows, rows_json
from ipt_core.db.parts import PartBuilder, RowsPart
from ipt_core.db.schema import SEARCH_TABLES, resource, resource_version
from ipt_core.fhir.index import IndexEntries
from ipt_core.fhir.model import StoredResource

__all__ = ["RowWrite", "write_rows"]


@dataclass(frozen=True)
class RowWrite:
    """One resource version to store: its current row, its history method, its index rows."""

    stored: StoredResource
    method: str  # POST | PUT | DELETE, as history Bundles show it
    index: IndexEntries | None  # empty for a deletion; None: the stored index rows stay


def _rows_in(name: str, columns: Sequence[Column[Any]]) -> CTE:
    """The rows bound as `<name>_json` (`rows_json` of `columns`), as the CTE `<name>_in`."""
    types = {str(c.name): c.type for c in columns}
    return select(json_rows(f"{name}_rows", f"{name}_json", **types)).cte(f"{name}_in")


_CURRENT = [resource.c[name] for name in ("resource_type", "id", "version_id", "last_updated")]
_CURRENT += [
    resource.c.deleted,
    resource.c.content,
    Column("method", resource_version.c.method.type),
    Column("reindex", Boolean()),
]


def _statement(
    *, replaces: bool, filled: tuple[str, ...], builders: tuple[PartBuilder, ...] = ()
) -> Select[Any]:
    w = _rows_in("w", _CURRENT)
    upsert = pg_insert(resource).from_select(
        [c.name for c in resource.columns], select(*(w.c[c.name] for c in resource.columns))
    )
    cur = (
        upsert.on_conflict_do_update(
            index_elements=[resource.c.resource_type, resource.c.id],
            set_={c.name: upsert.excluded[c.name] for c in resource.columns if not c.primary_key},
            where=resource.c.version_id + 1 == upsert.excluded.version_id,
        )
        .returning(resource.c.resource_type, resource.c.id)
        .cte("cur")
    )
    written = and_(cur.c.resource_type == w.c.resource_type, cur.c.id == w.c.id)
    history_columns = [c.name for c in resource_version.columns if c.name != "seq"]
    reindexed = (
        select(cur.c.resource_type, cur.c.id).join(w, written).where(w.c.reindex).cte("reindexed")
    )
    parts: list[CTE] = [
        insert(resource_version)
        .from_select(history_columns, select(*(w.c[n] for n in history_columns)).join(cur, written))
        .cte("history")
    ]
    for table in SEARCH_TABLES:
        parts.extend(
            _replace_index(table, reindexed, replaces=replaces, inserts=table.name in filled)
        )
    columns: list[Any] = [cur.c.resource_type, cur.c.id]
    written = exists(select(cur.c.id))
    for number, build in enumerate(builders):
        part = build(f"p{number}", written)
        parts.extend(part.ctes)
        columns.extend(part.columns)
    return select(*columns).add_cte(*parts)


def _replace_index(table: Table, reindexed: CTE, *, replaces: bool, inserts: bool) -> list[CTE]:
    """The CTEs that delete the old rows of `table` (`replaces`) and insert the new ones."""
    old = delete(table).where(
        table.c.resource_type == reindexed.c.resource_type, table.c.resource_id == reindexed.c.id
    )
    deletion = [old.cte(f"old_{table.name}")] if replaces else []
    if not inserts:
        return deletion
    rows = _rows_in(table.name, list(table.columns))
    names = [c.name for c in table.columns]
    ours = and_(
        reindexed.c.resource_type == rows.c.resource_type, reindexed.c.id == rows.c.resource_id
    )
    new = insert(table).from_select(
        names, select(*(rows.c[n] for n in names)).join(reindexed, ours)
    )
    return [*deletion, new.cte(f"new_{table.name}")]


_Key = tuple[bool, tuple[str, ...], tuple[PartBuilder, ...]]
_STATEMENTS: dict[_Key, FixedStatement] = {}


def _composed(
    replaces: bool, filled: tuple[str, ...], builders: tuple[PartBuilder, ...]
) -> FixedStatement:
    """The write's statement with `builders`' parts; `replaces`: with the deletions;
    `filled`: the search-index tables it inserts rows into."""
    key = (replaces, filled, builders)
    statement = _STATEMENTS.get(key)
    if statement is None:
        statement = _STATEMENTS[key] = FixedStatement(
            _statement(replaces=replaces, filled=filled, builders=builders)
        )
    return statement


_CURRENT_NAMES = tuple(c.name for c in _CURRENT)
_INDEX_NAMES = {table.name: tuple(c.name for c in table.columns) for table in SEARCH_TABLES}


_FIELDS: dict[type, Callable[[Any], tuple[Any, ...]]] = {}


def _values(entry: Any) -> tuple[Any, ...]:
    """An index entry's field values in order; `dataclasses.astuple` deep-copies each value
    and was 15% of a create's `write_rows` (py-spy). Every entry has a `param` and at least
    one value, so `attrgetter` of its fields answers a tuple."""
    getter = _FIELDS.get(type(entry))
    if getter is None:
        getter = _FIELDS[type(entry)] = attrgetter(*(f.name for f in fields(entry)))
    return getter(entry)


async def write_rows(
    conn: AsyncConnection, writes: Sequence[RowWrite], parts: Sequence[RowsPart] = ()
) -> set[tuple[str, str]]:
    """Write `writes` in one statement; return the `(type, id)` of the ones written.

    A version-1 write of an id that exists already is left out (a lost creation race). A
    resource must appear at most once in `writes`. `parts` (its listeners' rows) go with a
    write of one resource, and are inserted only if it is written.
    """
    if parts and len(writes) != 1:
        raise ValueError("listeners' rows ride only with the write of one resource")
    current: list[tuple[Any, ...]] = []
    # Each index table's rows: the resource's type and id, then the entry's fields in order.
    index: dict[str, list[tuple[Any, ...]]] = {table: [] for table in _INDEX_NAMES}
    for write in writes:
        s = write.stored
        row = (s.resource_type, s.id, s.version_id, s.last_updated, s.deleted, s.content)
        current.append((*row, write.method, write.index is not None))
        for table, entries in (write.index or {}).items():
            index[table].extend((s.resource_type, s.id, *_values(e)) for e in entries)
    params: dict[str, Any] = {"w_json": rows_json(_CURRENT_NAMES, current)}
    filled = tuple(table for table, rows in index.items() if rows)
    for table in filled:
        params[f"{table}_json"] = rows_json(_INDEX_NAMES[table], index[table])
    for number, part in enumerate(parts):
        params.update(part.bound(f"p{number}"))
    replaces = any(write.stored.version_id > 1 for write in writes)
    statement = _composed(replaces, filled, tuple(part.build for part in parts))
    rows = await statement.execute(conn, params)
    return {(row["resource_type"], row["id"]) for row in rows}
