"""The resource store's reads and locks of current rows and versions.

Writes are one set-based statement, in `_writes.py`; search SQL is in `search/`, history's
in `history.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ARRAY, Text, bindparam, column, func, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.db.schema import resource, resource_version
from ipt_core.fhir.model import StoredResource

__all__ = ["current", "lock_for_update", "lock_key", "lock_many", "version"]


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


# The keys arrive as two arrays, so the statement's text is the same for any number of rows.
_KEYS = (
    func.unnest(bindparam("types", type_=ARRAY(Text)), bindparam("ids", type_=ARRAY(Text)))
    .table_valued(column("resource_type", Text), column("id", Text))
    .render_derived(name="keys")
)
_LOCK_MANY = (
    select(resource)
    .where(tuple_(resource.c.resource_type, resource.c.id).in_(select(_KEYS)))
    .order_by(resource.c.resource_type, resource.c.id)
    .with_for_update()
)


async def lock_many(
    conn: AsyncConnection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], StoredResource]:
    """Lock the current rows of `keys` (type, id) in one deterministic order; return them.

    Every set-based writer locks in `(type, id)` order, so two of them never deadlock.
    """
    params = {"types": [t for t, _ in keys], "ids": [i for _, i in keys]}
    found = [_stored(row) for row in await conn.execute(_LOCK_MANY, params)]
    return {(s.resource_type, s.id): s for s in found}


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


async def lock_key(conn: AsyncConnection, key: str) -> None:
    """Serialize transactions that use the same `key` until they end (conditional writes)."""
    await conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key}
    )
