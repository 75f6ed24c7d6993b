"""A real PostgreSQL for the tests: `TEST_DATABASE_URL`, or an embedded throwaway cluster.

Each test session gets its own database built by the real migrations; tables are emptied
after every test that used them.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Row, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ipt_core.db.embedded import EmbeddedPostgres
from ipt_core.db.engine import asyncpg_url, create_engine, on_database
from ipt_core.db.migrate import upgrade
from ipt_core.db.schema import metadata


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of the server's maintenance database (`postgres`)."""
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        yield asyncpg_url(configured)
        return
    cluster = EmbeddedPostgres(Path(tmp_path_factory.mktemp("pg")) / "data", throwaway=True)
    server = cluster.start()
    try:
        yield server.url("postgres")
    finally:
        cluster.stop()


@contextlib.asynccontextmanager
async def throwaway_database(server_url: str) -> AsyncIterator[str]:
    """A new empty database on the server (its URL), dropped when the block ends."""
    name = f"ipt_test_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield on_database(server_url, name)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        await admin.dispose()


def database_name(url: str) -> str:
    """The database `url` names."""
    return str(make_url(url).database)


@pytest.fixture(scope="session")
async def database_url(server_url: str) -> AsyncIterator[str]:
    """A database of this test session, created and migrated, dropped at the end."""
    async with throwaway_database(server_url) as url:
        yield url


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The session's engine, on a database the migrations have built."""
    engine = create_engine(database_url, pool_size=20)
    await upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
async def db(engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """The engine, with every table emptied after the test."""
    yield engine
    tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


async def query_scalar(db: AsyncEngine, sql: str, **params: Any) -> Any:
    """The first column of the first row of `sql`: a test's look at the database, on its own
    connection (so it sees what other sessions committed)."""
    async with db.connect() as conn:
        return await conn.scalar(text(sql), params)


async def query_rows(db: AsyncEngine, sql: str, **params: Any) -> list[Row[Any]]:
    """The rows of `sql`, on a connection of their own (as `query_scalar`)."""
    async with db.connect() as conn:
        return list(await conn.execute(text(sql), params))
