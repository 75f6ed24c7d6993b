"""The migrations build exactly the schema `ipt_core.db.schema` describes, and can be undone:
upgrade, downgrade to base (nothing left), upgrade again (the same schema)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.audit import AuditRecord, insert_records
from ipt_core.db.engine import create_engine
from ipt_core.db.migrate import alembic_config, downgrade, upgrade
from ipt_core.db.schema import metadata
from tests.support.database import query_rows, throwaway_database


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_migrations_match_the_table_definitions(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        differences = await conn.run_sync(_differences)
    assert differences == []


async def test_upgrade_is_idempotent(engine: AsyncEngine) -> None:
    await upgrade(engine)
    assert await _revision(engine) == _head()


async def test_upgrade_downgrade_to_base_and_upgrade_again(server_url: str) -> None:
    async with throwaway_database(server_url) as url:
        engine = create_engine(url, pool_size=1)
        try:
            await upgrade(engine)
            assert await _revision(engine) == _head()
            assert await _tables(engine) == _expected_tables()

            await downgrade(engine, "base")
            assert await _revision(engine) is None
            assert await _tables(engine) == set()  # every migration undoes all it made

            await upgrade(engine)
            assert await _revision(engine) == _head()
            async with engine.connect() as conn:
                assert await conn.run_sync(_differences) == []
        finally:
            await engine.dispose()


async def test_going_back_past_0006_is_refused_while_records_are_facts_only(
    server_url: str,
) -> None:
    # Such a record has no stored AuditEvent: a version before 0006 could not serve it.
    async with throwaway_database(server_url) as url:
        engine = create_engine(url, pool_size=1)
        try:
            await upgrade(engine)
            async with engine.begin() as conn:
                await insert_records(
                    conn, [AuditRecord("facts", datetime.now(UTC), "read", 0, "someone")]
                )
            with pytest.raises(DBAPIError, match="stored as facts only"):
                await downgrade(engine, "0005")
            assert await _revision(engine) == _head()  # nothing undone
            async with engine.begin() as conn:
                await conn.execute(text("DELETE FROM audit_event"))  # as the purge would
            await downgrade(engine, "0005")
            assert await _revision(engine) == "0005"
        finally:
            await engine.dispose()


def _head() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _expected_tables() -> set[str]:
    return {table.name for table in metadata.sorted_tables}


async def _revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        exists = await conn.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL"))
        if not exists:
            return None
        revision: str | None = await conn.scalar(text("SELECT version_num FROM alembic_version"))
        return revision


async def _tables(engine: AsyncEngine) -> set[str]:
    rows = await query_rows(
        engine,
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
        "AND tablename <> 'alembic_version'",
    )
    return {row.tablename for row in rows}
