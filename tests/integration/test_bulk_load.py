"""`bulk_load` writes what creates write; `deferred_indexes` drops and rebuilds the indexes."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.db.schema import SEARCH_TABLES, resource_version
from ipt_core.fhir.bulk import bulk_load, deferred_indexes
from ipt_core.fhir.store import ResourceStore

NOW = datetime(2026, 3, 4, 12, tzinfo=UTC)


async def _index_names(engine: AsyncEngine) -> set[str]:
    tables = [t.name for t in (*SEARCH_TABLES, resource_version)]
    async with engine.connect() as conn:
        found = await conn.exec_driver_sql(
            "SELECT indexname FROM pg_indexes WHERE tablename = ANY($1)", (tables,)
        )
        return {row.indexname for row in found}


async def test_loaded_resources_read_and_search_like_created_ones(db: AsyncEngine) -> None:
    expected = {i.name for t in (*SEARCH_TABLES, resource_version) for i in t.indexes}
    assert expected <= await _index_names(db)
    patients = [
        {"resourceType": "Patient", "id": f"p{n}", "gender": "female" if n % 2 else "male"}
        for n in range(5)
    ]
    async with deferred_indexes(db):
        assert not expected & await _index_names(db)
        async with db.begin() as conn:
            assert await bulk_load(conn, patients, now=NOW, batch_size=2) == 5
    assert expected <= await _index_names(db)
    async with db.connect() as conn:
        store = ResourceStore(conn)
        stored = await store.read("Patient", "p3")
        assert stored.version_id == 1
        assert stored.last_updated == NOW
        history = await conn.scalar(select(func.count()).select_from(resource_version))
        assert history == 5
    async with db.begin() as conn:
        updated = await ResourceStore(conn).update(
            "Patient", "p3", {**patients[3], "gender": "male"}
        )
    assert updated.stored.version_id == 2
