"""Chaos-test helpers: a PostgreSQL the tests may take down, the API served over real HTTP,
and the figures each test measures (printed at the end of the run by conftest.py).

The embedded server is really stopped and started again on the same port. Against
`TEST_DATABASE_URL` the tests have no control of the server, so the outage is a storm of
`pg_terminate_backend` on every connection to the test's database for the same duration.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ipt_api.app import create_app
from ipt_core.db.embedded import EmbeddedPostgres
from ipt_core.db.engine import asyncpg_url, create_engine, on_database
from ipt_core.db.migrate import upgrade
from tests.support.api import api_settings, served
from tests.support.database import database_name
from tests.support.network import free_port

__all__ = ["FIGURES", "ChaosDatabase", "Outage", "chaos_database", "serve_api"]

FIGURES: dict[str, dict[str, object]] = {}  # test name -> what it measured


@dataclass(frozen=True)
class Outage:
    """When the database went away and when it was back (time.monotonic())."""

    started: float
    back: float
    kind: str


@dataclass
class ChaosDatabase:
    """A migrated database of one test, on a server the test may take down."""

    url: str  # asyncpg URL of the test's database
    engine: AsyncEngine
    cluster: EmbeddedPostgres | None
    port: int | None

    async def outage(self, down_s: float) -> Outage:
        """Take the database away for about `down_s` seconds, then bring it back."""
        started = time.monotonic()
        if self.cluster is not None:
            cluster, port = self.cluster, self.port
            await asyncio.to_thread(cluster.stop)  # fast shutdown: sessions are ended
            await asyncio.sleep(down_s)
            await asyncio.to_thread(cluster.start, port)
            return Outage(started, time.monotonic(), "restart of the embedded server")
        await self._terminate_storm(down_s)
        return Outage(started, time.monotonic(), "pg_terminate_backend of every connection")

    async def _terminate_storm(self, down_s: float) -> None:
        database = database_name(self.url)
        admin = create_async_engine(on_database(self.url, "postgres"), isolation_level="AUTOCOMMIT")
        try:
            async with admin.connect() as conn:
                deadline = time.monotonic() + down_s
                while time.monotonic() < deadline:
                    await conn.execute(
                        text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = :db AND pid <> pg_backend_pid()"
                        ),
                        {"db": database},
                    )
                    await asyncio.sleep(0.02)
        finally:
            await admin.dispose()


@asynccontextmanager
async def chaos_database() -> AsyncIterator[ChaosDatabase]:
    """An own embedded cluster, or a fresh database on `TEST_DATABASE_URL`'s server."""
    with tempfile.TemporaryDirectory(prefix="ipt-chaos-", ignore_cleanup_errors=True) as data:
        async with _chaos_database(Path(data)) as database:
            yield database


@asynccontextmanager
async def _chaos_database(data: Path) -> AsyncIterator[ChaosDatabase]:
    # Not under pytest's tmp_path: a concurrent pytest run resets /tmp/pytest-of-<user> to
    # 0700, and the server's own user (as root) could then no longer reach its data directory.
    configured = os.environ.get("TEST_DATABASE_URL")
    cluster: EmbeddedPostgres | None = None
    if configured:
        server_url, port = asyncpg_url(configured), None
    else:
        cluster = EmbeddedPostgres(data / "pg", throwaway=True)
        running = cluster.start()
        server_url, port = running.url("postgres"), running.port
    name = f"ipt_chaos_{uuid.uuid4().hex[:12]}"
    await _admin(server_url, f'CREATE DATABASE "{name}"')
    url = on_database(server_url, name)
    engine = create_engine(url, pool_size=4)
    try:
        await upgrade(engine)
        yield ChaosDatabase(url, engine, cluster, port)
    finally:
        await engine.dispose()
        await _admin(server_url, f'DROP DATABASE "{name}" WITH (FORCE)')
        if cluster is not None:
            cluster.stop()


async def _admin(server_url: str, statement: str) -> None:
    # A connection of its own each time: the server may have restarted in between.
    admin = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await admin.dispose()


@contextmanager
def serve_api(database_url: str) -> Iterator[str]:
    """The API served by uvicorn on a free port, in its own thread; yields its base URL."""
    port = free_port()
    settings = api_settings(database_url=database_url.replace("+asyncpg", ""), api_port=port)
    with served(create_app(settings), port):
        yield f"http://127.0.0.1:{port}"
