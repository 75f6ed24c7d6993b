"""A throwaway embedded PostgreSQL with the migrations applied, for the store benchmarks."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.db.embedded import EmbeddedPostgres
from ipt_core.db.engine import create_engine
from ipt_core.db.migrate import upgrade

__all__ = ["migrated_engine"]


@asynccontextmanager
async def migrated_engine(name: str, pool_size: int = 2) -> AsyncIterator[AsyncEngine]:
    """An engine on a fresh cluster under `.bench/<name>`, stopped and dropped at the end."""
    data = Path(".bench") / name
    cluster = EmbeddedPostgres(data, throwaway=True)
    cluster.stop()
    shutil.rmtree(data, ignore_errors=True)
    engine = create_engine(cluster.start().url("postgres"), pool_size=pool_size)
    try:
        await upgrade(engine)
        yield engine
    finally:
        await engine.dispose()
        cluster.stop()
