"""Bulk loading of new resources with COPY: the same rows a create writes, much faster.

For seeding, benchmarks and initial migrations into the store. Each resource gets exactly
what `ResourceStore` writes for a first version: the current row (meta stamped by the
store's own `with_meta`), a `POST` history row, and the search-index rows of
`index_entries`. Unlike the store it does not run write listeners (IPT projections,
outbox events), does not take row locks, and expects ids that are not in the store yet
(a duplicate id fails the whole COPY). Validation is on by default and can be skipped for
generated data already known to be valid.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import astuple
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.schema import CreateIndex, DropIndex

from ipt_core.db import schema
from ipt_core.db.schema import SEARCH_TABLES, resource_version
from ipt_core.fhir._versions import definition_or_404, with_meta
from ipt_core.fhir.index import index_entries
from ipt_core.fhir.validation import check_resource
from ipt_core.ids import new_id

__all__ = ["bulk_load", "deferred_indexes"]

# COPY runs on the driver connection (SQLAlchemy has no COPY); names come from schema.py.
_CURRENT_COLUMNS = [c.name for c in schema.resource.columns]
_VERSION_COLUMNS = [c.name for c in resource_version.columns if c.name != "seq"]


async def bulk_load(
    conn: AsyncConnection,
    resources: Iterable[dict[str, Any]],
    *,
    now: datetime,
    validate: bool = True,
    batch_size: int = 5000,
) -> int:
    """COPY `resources` into the store as new version-1 resources; return how many.

    Runs inside `conn`'s transaction. A resource keeps its `id` (one is assigned when absent).

    Raises:
        InvalidResource: when `validate` and a resource is not valid R4.
        ResourceNotFound: for a resource type the store does not serve.
    """
    loaded = 0
    batch: list[dict[str, Any]] = []
    for resource in resources:
        batch.append(resource)
        if len(batch) >= batch_size:
            loaded += await _copy(conn, batch, now, validate)
            batch = []
    if batch:
        loaded += await _copy(conn, batch, now, validate)
    return loaded


@asynccontextmanager
async def deferred_indexes(engine: AsyncEngine) -> AsyncIterator[None]:
    """Drop the search-index and history indexes for a large load, and rebuild them after.

    Building an index once over sorted data is several times faster than growing it row by
    row. Only for a store no one else uses meanwhile (searches would scan whole tables);
    the indexes are rebuilt from `ipt_core.db.schema`, which a test keeps equal to the
    migrations.
    """
    indexes = [index for table in (*SEARCH_TABLES, resource_version) for index in table.indexes]
    async with engine.begin() as conn:
        for index in indexes:
            await conn.execute(DropIndex(index, if_exists=True))
    try:
        yield
    finally:
        async with engine.begin() as conn:
            for index in indexes:
                await conn.execute(CreateIndex(index, if_not_exists=True))


async def _copy(
    conn: AsyncConnection, batch: list[dict[str, Any]], now: datetime, validate: bool
) -> int:
    current: list[tuple[Any, ...]] = []
    versions: list[tuple[Any, ...]] = []
    index: dict[str, list[tuple[Any, ...]]] = {table.name: [] for table in SEARCH_TABLES}
    for resource in batch:
        resource_type = str(resource.get("resourceType"))
        definition = definition_or_404(resource_type)
        if validate:
            check_resource(resource)
        id_ = str(resource.get("id") or new_id())
        body = with_meta(resource, id_, 1, now)
        content = orjson.dumps(body).decode()
        current.append((resource_type, id_, 1, now, False, content))
        versions.append((resource_type, id_, 1, now, "POST", content))
        for table_name, entries in index_entries(definition, body).items():
            index[table_name].extend((resource_type, id_, *astuple(e)) for e in entries)
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    for table, records, columns in (
        (schema.resource, current, _CURRENT_COLUMNS),
        (resource_version, versions, _VERSION_COLUMNS),
    ):
        await driver.copy_records_to_table(table.name, records=records, columns=columns)
    for table in SEARCH_TABLES:
        if index[table.name]:
            columns = [column.name for column in table.columns]
            await driver.copy_records_to_table(
                table.name, records=index[table.name], columns=columns
            )
    return len(batch)
