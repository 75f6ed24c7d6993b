"""All SQL of the resource store: current rows, versions and search-index rows."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.db.schema import SEARCH_TABLES, resource, resource_version
from ipt_core.fhir.index import IndexEntries
from ipt_core.fhir.model import StoredResource

__all__ = [
    "current",
    "insert_current",
    "insert_version",
    "lock_for_update",
    "lock_key",
    "replace_index",
    "update_current",
    "version",
]

_TABLES = {table.name: table for table in SEARCH_TABLES}


def _stored(row: Any) -> StoredResource:
    return StoredResource(
        resource_type=row.resource_type,
        id=row.id,
        version_id=row.version_id,
        last_updated=row.last_updated,
        deleted=row.deleted,
        content=row.content,
    )


async def current(conn: AsyncConnection, resource_type: str, id_: str) -> StoredResource | None:
    """Return the current row of a resource, deleted or not."""
    row = (
        await conn.execute(
            select(resource).where(resource.c.resource_type == resource_type, resource.c.id == id_)
        )
    ).first()
    return None if row is None else _stored(row)


async def lock_for_update(
    conn: AsyncConnection, resource_type: str, id_: str
) -> StoredResource | None:
    """Return the current row locked until the transaction ends (writers queue here)."""
    query = (
        select(resource)
        .where(resource.c.resource_type == resource_type, resource.c.id == id_)
        .with_for_update()
    )
    row = (await conn.execute(query)).first()
    return None if row is None else _stored(row)


async def version(
    conn: AsyncConnection, resource_type: str, id_: str, version_id: int
) -> StoredResource | None:
    """Return one historical version of a resource."""
    query = select(resource_version).where(
        resource_version.c.resource_type == resource_type,
        resource_version.c.id == id_,
        resource_version.c.version_id == version_id,
    )
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    return StoredResource(
        resource_type=row.resource_type,
        id=row.id,
        version_id=row.version_id,
        last_updated=row.last_updated,
        deleted=row.method == "DELETE",
        content=row.content,
    )


async def insert_current(conn: AsyncConnection, stored: StoredResource) -> bool:
    """Insert the first row of a resource; False when a concurrent writer created it first."""
    values = _values(stored)
    statement = (
        pg_insert(resource).values(**values).on_conflict_do_nothing().returning(resource.c.id)
    )
    return (await conn.execute(statement)).first() is not None


async def update_current(conn: AsyncConnection, stored: StoredResource) -> None:
    """Replace the current row of a resource (already locked by `lock_for_update`)."""
    await conn.execute(
        update(resource)
        .where(resource.c.resource_type == stored.resource_type, resource.c.id == stored.id)
        .values(**_values(stored))
    )


async def insert_version(conn: AsyncConnection, stored: StoredResource, method: str) -> None:
    """Append a version to the resource's history."""
    values = _values(stored)
    del values["deleted"]
    await conn.execute(insert(resource_version).values(**values, method=method))


async def replace_index(
    conn: AsyncConnection,
    resource_type: str,
    id_: str,
    entries: IndexEntries | None,
    *,
    had_index: bool = True,
) -> None:
    """Replace the search-index rows of a resource (None: remove them, as on delete).

    One statement removes the old rows from every index table (skipped for a new resource),
    then one insert per table that has rows: a write costs few round trips.
    """
    if had_index:
        await conn.execute(_DELETE_INDEX, {"type": resource_type, "id": id_})
    for name, rows in (entries or {}).items():
        if rows:
            await conn.execute(
                insert(_TABLES[name]),
                [{"resource_type": resource_type, "resource_id": id_, **asdict(r)} for r in rows],
            )


_DELETE_INDEX = text(
    "WITH "
    + ", ".join(
        f"d{n} AS (DELETE FROM {table.name} WHERE resource_type = :type AND resource_id = :id)"
        for n, table in enumerate(SEARCH_TABLES)
    )
    + " SELECT 1"
)


async def lock_key(conn: AsyncConnection, key: str) -> None:
    """Serialize transactions that use the same `key` until they end (conditional writes)."""
    await conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key}
    )


def _values(stored: StoredResource) -> dict[str, Any]:
    return {
        "resource_type": stored.resource_type,
        "id": stored.id,
        "version_id": stored.version_id,
        "last_updated": stored.last_updated,
        "deleted": stored.deleted,
        "content": stored.content,
    }
