"""The resource store's reads and locks of current rows and versions.

Writes are one set-based statement, in `_writes.py`; search SQL is in `search/`, history's
in `history.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Text, bindparam, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.db.fixed import FixedStatement
from ipt_core.db.schema import resource, resource_version
from ipt_core.db.unnest import unnest_params
from ipt_core.fhir.model import StoredResource

__all__ = [
    "current",
    "current_many",
    "current_on_driver",
    "lock_for_update",
    "lock_key",
    "lock_many",
    "version",
    "version_on_driver",
]


def _stored(row: Any) -> StoredResource:
    return StoredResource(
        resource_type=row["resource_type"],
        id=row["id"],
        version_id=row["version_id"],
        last_updated=row["last_updated"],
        deleted=row["method"] == "DELETE" if "method" in row else row["deleted"],
        content=row["content"],
    )


# Built once: a statement built per call costs more CPU than the primary-key read itself
# (bench/PROFILE.md, finding 3); the values are bound at execution.
_CURRENT = select(resource).where(
    resource.c.resource_type == bindparam("type"), resource.c.id == bindparam("id")
)
_VERSION = select(resource_version).where(
    resource_version.c.resource_type == bindparam("type"),
    resource_version.c.id == bindparam("id"),
    resource_version.c.version_id == bindparam("version"),
)


# Compiled once; run on the driver where SQLAlchemy manages no transaction (db/fixed.py).
_READ_CURRENT = FixedStatement(_CURRENT)
_READ_VERSION = FixedStatement(_VERSION)
_READ_LOCKED = FixedStatement(_CURRENT.with_for_update())


async def _one(
    conn: AsyncConnection, read: FixedStatement, params: dict[str, Any]
) -> StoredResource | None:
    """The one row of a primary-key read; raw asyncpg where SQLAlchemy manages no transaction.

    The API reads in autocommit (docs/architecture.md#read-path) and writes in transactions
    begun on the driver ("Write path"), and there SQLAlchemy costs 1.8-3.4x the driver's time
    for the same read, measured side by side (bench/store_read_bench.py). The SQL is still
    Core's, compiled once from schema.py and prepared once per connection by asyncpg.
    """
    return _first(await read.execute(conn, params))


async def _fetch_one(
    driver: Any, read: FixedStatement, params: dict[str, Any]
) -> StoredResource | None:
    return _first(await read.fetch(driver, params))


def _first(rows: Sequence[Any]) -> StoredResource | None:
    return _stored(rows[0]) if rows else None


async def current(conn: AsyncConnection, resource_type: str, id_: str) -> StoredResource | None:
    """Return the current row of a resource, deleted or not."""
    return await _one(conn, _READ_CURRENT, {"type": resource_type, "id": id_})


async def current_on_driver(driver: Any, resource_type: str, id_: str) -> StoredResource | None:
    """`current`, on an asyncpg connection in autocommit (`ipt_core.db.read_pool`)."""
    return await _fetch_one(driver, _READ_CURRENT, {"type": resource_type, "id": id_})


async def lock_for_update(
    conn: AsyncConnection, resource_type: str, id_: str
) -> StoredResource | None:
    """Return the current row locked until the transaction ends (writers queue here)."""
    return await _one(conn, _READ_LOCKED, {"type": resource_type, "id": id_})


# The keys arrive as two arrays, so the statement's text is the same for any number of rows.
_KEYS = unnest_params("keys", resource_type=Text, id=Text)
_CURRENT_MANY = (
    select(resource)
    .where(tuple_(resource.c.resource_type, resource.c.id).in_(select(_KEYS)))
    .order_by(resource.c.resource_type, resource.c.id)
)
_READ_CURRENT_MANY = FixedStatement(_CURRENT_MANY)
_READ_LOCKED_MANY = FixedStatement(_CURRENT_MANY.with_for_update())


async def current_many(
    conn: AsyncConnection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], StoredResource]:
    """Return the current rows of `keys` (type, id), deleted or not, unlocked."""
    return await _many(conn, _READ_CURRENT_MANY, keys)


async def lock_many(
    conn: AsyncConnection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], StoredResource]:
    """Lock the current rows of `keys` (type, id) in one deterministic order; return them.

    Every set-based writer locks in `(type, id)` order, so two of them never deadlock.
    """
    return await _many(conn, _READ_LOCKED_MANY, keys)


async def _many(
    conn: AsyncConnection, statement: FixedStatement, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], StoredResource]:
    if not keys:
        return {}
    params = {"each_resource_type": [t for t, _ in keys], "each_id": [i for _, i in keys]}
    found = [_stored(row) for row in await statement.execute(conn, params)]
    return {(s.resource_type, s.id): s for s in found}


async def version(
    conn: AsyncConnection, resource_type: str, id_: str, version_id: int
) -> StoredResource | None:
    """Return one historical version of a resource."""
    params = {"type": resource_type, "id": id_, "version": version_id}
    return await _one(conn, _READ_VERSION, params)


async def lock_key(conn: AsyncConnection, key: str) -> None:
    """Serialize transactions that use the same `key` until they end (conditional writes)."""
    await _LOCK_KEY.execute(conn, {"key": key})


_LOCK_KEY = FixedStatement(
    select(func.pg_advisory_xact_lock(func.hashtextextended(bindparam("key"), 0)))
)


async def version_on_driver(
    driver: Any, resource_type: str, id_: str, version_id: int
) -> StoredResource | None:
    """`version`, on an asyncpg connection in autocommit."""
    params = {"type": resource_type, "id": id_, "version": version_id}
    return await _fetch_one(driver, _READ_VERSION, params)
