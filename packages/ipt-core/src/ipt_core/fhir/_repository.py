"""The resource store's reads and locks of current rows and versions.

Writes are one set-based statement, in `_writes.py`; search SQL is in `search/`, history's
in `history.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, Text, bindparam, func, select, tuple_
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.db.driver import autocommit_driver, driver_statement
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
_LOCK = _CURRENT.with_for_update()
_VERSION = select(resource_version).where(
    resource_version.c.resource_type == bindparam("type"),
    resource_version.c.id == bindparam("id"),
    resource_version.c.version_id == bindparam("version"),
)


@dataclass(frozen=True)
class _Read:
    """A Core statement, and its SQL as asyncpg runs it (`$1`, `$2` … in `names` order)."""

    statement: Select[Any]
    sql: str
    names: tuple[str, ...]

    @classmethod
    def of(cls, statement: Select[Any]) -> _Read:
        compiled = statement.compile(dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
        return cls(statement, str(compiled), tuple(compiled.positiontup or ()))


_READ_CURRENT = _Read.of(_CURRENT)
_READ_VERSION = _Read.of(_VERSION)


async def _one(conn: AsyncConnection, read: _Read, params: dict[str, Any]) -> StoredResource | None:
    """The one row of a primary-key read; raw asyncpg on autocommit connections.

    The API reads in autocommit (docs/architecture.md#read-path), and there SQLAlchemy costs
    1.8-3.4x the driver's time for the same read, measured side by side
    (bench/store_read_bench.py). The SQL is still Core's, compiled once from schema.py and
    prepared once per connection by asyncpg. Inside a transaction the driver must not be
    used directly (SQLAlchemy opens its transaction at its first statement), so Core runs.
    """
    driver = await autocommit_driver(conn)
    if driver is not None:
        return await _fetch_one(driver, read, params)
    row = (await conn.execute(read.statement, params)).first()
    return None if row is None else _stored(row._mapping)


async def _fetch_one(driver: Any, read: _Read, params: dict[str, Any]) -> StoredResource | None:
    async with driver_statement(driver):
        record = await driver.fetchrow(read.sql, *(params[name] for name in read.names))
    return None if record is None else _stored(record)


async def current(conn: AsyncConnection, resource_type: str, id_: str) -> StoredResource | None:
    """Return the current row of a resource, deleted or not."""
    return await _one(conn, _READ_CURRENT, {"type": resource_type, "id": id_})


async def current_on_driver(driver: Any, resource_type: str, id_: str) -> StoredResource | None:
    """`current`, on an asyncpg connection in autocommit (`ipt_core.db.driver.pooled_driver`)."""
    return await _fetch_one(driver, _READ_CURRENT, {"type": resource_type, "id": id_})


async def lock_for_update(
    conn: AsyncConnection, resource_type: str, id_: str
) -> StoredResource | None:
    """Return the current row locked until the transaction ends (writers queue here)."""
    row = (await conn.execute(_LOCK, {"type": resource_type, "id": id_})).first()
    return None if row is None else _stored(row._mapping)


# The keys arrive as two arrays, so the statement's text is the same for any number of rows.
_KEYS = unnest_params("keys", resource_type=Text, id=Text)
_CURRENT_MANY = (
    select(resource)
    .where(tuple_(resource.c.resource_type, resource.c.id).in_(select(_KEYS)))
    .order_by(resource.c.resource_type, resource.c.id)
)
_LOCK_MANY = _CURRENT_MANY.with_for_update()


async def current_many(
    conn: AsyncConnection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], StoredResource]:
    """Return the current rows of `keys` (type, id), deleted or not, unlocked."""
    return await _many(conn, _CURRENT_MANY, keys)


async def lock_many(
    conn: AsyncConnection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], StoredResource]:
    """Lock the current rows of `keys` (type, id) in one deterministic order; return them.

    Every set-based writer locks in `(type, id)` order, so two of them never deadlock.
    """
    return await _many(conn, _LOCK_MANY, keys)


async def _many(
    conn: AsyncConnection, statement: Select[Any], keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], StoredResource]:
    if not keys:
        return {}
    params = {"each_resource_type": [t for t, _ in keys], "each_id": [i for _, i in keys]}
    found = [_stored(row._mapping) for row in await conn.execute(statement, params)]
    return {(s.resource_type, s.id): s for s in found}


async def version(
    conn: AsyncConnection, resource_type: str, id_: str, version_id: int
) -> StoredResource | None:
    """Return one historical version of a resource."""
    params = {"type": resource_type, "id": id_, "version": version_id}
    return await _one(conn, _READ_VERSION, params)


async def lock_key(conn: AsyncConnection, key: str) -> None:
    """Serialize transactions that use the same `key` until they end (conditional writes)."""
    await conn.execute(_LOCK_KEY, {"key": key})


_LOCK_KEY = select(func.pg_advisory_xact_lock(func.hashtextextended(bindparam("key"), 0)))


async def version_on_driver(
    driver: Any, resource_type: str, id_: str, version_id: int
) -> StoredResource | None:
    """`version`, on an asyncpg connection in autocommit."""
    params = {"type": resource_type, "id": id_, "version": version_id}
    return await _fetch_one(driver, _READ_VERSION, params)
