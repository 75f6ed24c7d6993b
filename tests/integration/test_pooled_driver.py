"""`pooled_driver` takes an idle connection without SQLAlchemy's greenlet bridge, and falls
back to the bridge whenever the pool must wait or connect (ipt_core/db/driver.py).

Each test uses an engine of its own (`create_engine`, as every process builds it), so the
pool's state is the test's alone. A coroutine made and never awaited would fail the test
(pytest turns warnings into errors).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

import ipt_core.db.driver as driver_module
from ipt_core.db.driver import connect_in_bridge, pooled_driver
from ipt_core.db.engine import create_engine


@pytest.fixture
async def small(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=2, pool_timeout_s=5)
    yield engine
    await engine.dispose()


@pytest.fixture
def spawns(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of what `pooled_driver` ran through the bridge."""
    seen: list[str] = []

    async def counting(fn: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(getattr(fn, "__name__", repr(fn)))
        return await greenlet_spawn(fn, *args, **kwargs)

    monkeypatch.setattr(driver_module, "greenlet_spawn", counting)
    return seen


async def _select_one(engine: AsyncEngine) -> int:
    async with pooled_driver(engine) as driver:
        return int(await driver.fetchval("SELECT 1"))


def _settled(engine: AsyncEngine) -> tuple[int, int, int]:
    """Idle connections, connections out, and the pool's count of its connections against
    its size (-1: one fewer open than `pool_size`): a checkout refused without the bridge
    must leave all three as a successful one would."""
    pool: Any = engine.sync_engine.pool
    return pool.checkedin(), pool.checkedout(), pool.overflow()


async def test_an_idle_connection_is_taken_and_returned_without_the_bridge(
    small: AsyncEngine, spawns: list[str]
) -> None:
    assert await _select_one(small) == 1  # the pool is empty: it connects, in the bridge
    assert spawns == ["connect"]
    for _ in range(20):
        assert await _select_one(small) == 1
    assert spawns == ["connect"]  # every later checkout and return went without it
    assert _settled(small) == (1, 0, -1)


async def test_concurrent_reads_open_connections_through_the_bridge_then_reuse_them(
    small: AsyncEngine, spawns: list[str]
) -> None:
    async def held() -> None:
        async with pooled_driver(small) as driver:
            await driver.execute("SELECT pg_sleep(0.05)")

    await asyncio.gather(*(held() for _ in range(2)))
    opened = list(spawns)
    assert opened == ["connect", "connect"]
    await asyncio.gather(*(held() for _ in range(2)))
    assert spawns == opened  # both connections idle: no bridge
    assert _settled(small) == (2, 0, 0)


async def test_a_full_pool_is_waited_for_through_the_bridge(
    small: AsyncEngine, spawns: list[str]
) -> None:
    async with pooled_driver(small), pooled_driver(small):
        waiting = asyncio.create_task(_select_one(small))
        await asyncio.sleep(0.1)
        assert not waiting.done()  # every connection is out: it waits, it does not fail
    assert await waiting == 1
    assert spawns.count("connect") == 3  # two opened, one waited for
    assert _settled(small) == (2, 0, 0)


async def test_an_idle_connection_closed_by_the_server_is_replaced_through_the_bridge(
    small: AsyncEngine, engine: AsyncEngine, spawns: list[str]
) -> None:
    async with pooled_driver(small) as driver:
        first = await driver.fetchval("SELECT pg_backend_pid()")
    async with engine.connect() as conn:  # another engine's connection ends it
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
    await asyncio.sleep(0.2)  # the socket's close reaches asyncpg
    spawns.clear()
    async with pooled_driver(small) as driver:
        second = await driver.fetchval("SELECT pg_backend_pid()")
    assert second != first
    assert spawns == ["connect"]  # refused without the bridge, then connected in it
    gc.collect()  # a coroutine made and dropped would warn (an error here) when collected
    assert _settled(small) == (1, 0, -1)  # the same record, connected again


async def test_an_invalidated_pool_reconnects_through_the_bridge(
    small: AsyncEngine, spawns: list[str]
) -> None:
    async with pooled_driver(small) as driver:
        first = await driver.fetchval("SELECT pg_backend_pid()")
    await greenlet_spawn(small.sync_engine.pool._invalidate, None)  # as after a disconnect
    spawns.clear()
    async with pooled_driver(small) as driver:
        second = await driver.fetchval("SELECT pg_backend_pid()")
    assert second != first
    assert spawns == ["connect"]
    gc.collect()
    assert _settled(small) == (1, 0, -1)


def test_connecting_outside_the_bridge_is_refused_before_a_coroutine_exists() -> None:
    # Called outside the bridge (no event loop either): refused without calling the driver,
    # so nothing is left unawaited.
    with pytest.raises(driver_module._OutsideBridge):
        connect_in_bridge(host="127.0.0.1", port=1)
