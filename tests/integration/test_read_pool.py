"""The read pool lends driver connections the engine made, reuses them, and never loses one
(ipt_core/db/read_pool.py).

Each test has an engine of its own (`create_engine`, as every process builds it), so the
pools' counts are the test's alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.db.driver import driver_statement
from ipt_core.db.engine import create_engine
from ipt_core.db.faults import DATABASE_ERRORS, DatabaseFault, database_fault
from ipt_core.db.lending import PoolExhausted
from ipt_core.db.read_pool import ReadPool
from tests.support.waiting import poll_until


@pytest.fixture
async def own(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=2, pool_timeout_s=5, statement_timeout_ms=4321)
    yield engine
    await engine.dispose()


@pytest.fixture
async def pool(own: AsyncEngine) -> AsyncIterator[ReadPool]:
    pool = ReadPool(own, size=2)
    yield pool
    await pool.close()


async def _backend(pool: ReadPool) -> int:
    async with pool.connection() as driver:
        return int(await driver.fetchval("SELECT pg_backend_pid()"))


def _engine_counts(engine: AsyncEngine) -> tuple[int, int]:
    """The engine's pool: connections checked out, and its count against its size."""
    engine_pool: Any = engine.sync_engine.pool
    return engine_pool.checkedout(), engine_pool.overflow()


async def test_one_connection_serves_requests_in_turn(pool: ReadPool, own: AsyncEngine) -> None:
    backends = {await _backend(pool) for _ in range(20)}
    assert len(backends) == 1
    assert (pool.open, pool.idle) == (1, 1)
    # Detached from the engine: its pool lends nothing and may open its own again.
    assert _engine_counts(own) == (0, -1)


async def test_connections_are_made_as_the_engine_makes_them(pool: ReadPool) -> None:
    async with pool.connection() as driver:
        assert await driver.fetchval("SHOW statement_timeout") == "4321ms"
        assert await driver.fetchval("SELECT '{\"a\": [1]}'::jsonb") == {"a": [1]}  # its codecs


async def test_no_more_than_size_connections_and_the_next_request_waits(pool: ReadPool) -> None:
    async def held() -> int:
        async with pool.connection() as driver:
            await driver.execute("SELECT pg_sleep(0.1)")
            return int(await driver.fetchval("SELECT pg_backend_pid()"))

    backends = await asyncio.gather(*(held() for _ in range(5)))
    assert len(set(backends)) == 2  # the other three waited for one of the two
    assert (pool.open, pool.idle) == (2, 2)


async def test_a_wait_in_vain_is_pool_exhausted_an_overload(own: AsyncEngine) -> None:
    pool = ReadPool(own, size=1, timeout_s=0.2)
    try:
        async with pool.connection():
            with pytest.raises(PoolExhausted) as raised:
                await pool.acquire()
        assert database_fault(raised.value) == DatabaseFault("overloaded")
        assert await _backend(pool) > 0  # the connection came back; nothing is left waiting
        assert (pool.open, pool.idle) == (1, 1)
    finally:
        await pool.close()


async def test_a_cancelled_wait_leaves_no_one_in_line(own: AsyncEngine) -> None:
    pool = ReadPool(own, size=1)
    try:
        async with pool.connection():
            waiting = asyncio.create_task(pool.acquire())
            await poll_until(lambda: pool.waiting == 1, what="the request to wait in line")
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            assert pool.waiting == 0
        # Had the cancelled request stayed in line, the connection would go to it and be lost.
        assert await asyncio.wait_for(_backend(pool), timeout=2) > 0
        assert (pool.open, pool.idle) == (1, 1)
    finally:
        await pool.close()


async def test_a_connection_handed_over_as_its_wait_is_cancelled_is_passed_on(
    own: AsyncEngine,
) -> None:
    pool = ReadPool(own, size=1)
    try:
        driver = await pool.acquire()
        waiting = asyncio.create_task(pool.acquire())
        await poll_until(lambda: pool.waiting == 1, what="the request to wait in line")
        pool.release(driver)  # handed to the waiting request …
        waiting.cancel()  # … which is cancelled before it resumes
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert (pool.open, pool.idle) == (1, 1)  # given back, not lost
    finally:
        await pool.close()


async def test_an_idle_connection_closed_by_the_server_is_replaced(
    pool: ReadPool, engine: AsyncEngine
) -> None:
    async with pool.connection() as idle:
        first = await idle.fetchval("SELECT pg_backend_pid()")
    async with engine.connect() as conn:  # another engine's connection ends it
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
    await poll_until(idle.is_closed, what="asyncpg to see the server close the connection")
    second = await _backend(pool)
    assert second != first
    assert (pool.open, pool.idle) == (1, 1)


async def test_a_connection_that_failed_mid_statement_is_not_lent_again(
    pool: ReadPool, engine: AsyncEngine
) -> None:
    first = await _backend(pool)

    async def ended_mid_statement() -> None:
        async with pool.connection() as driver, driver_statement(driver):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
            await driver.fetchval("SELECT 1")

    # The server's admin_shutdown (57P01), or, when asyncpg saw the socket close first, a
    # closed connection: either way it is closed by `driver_statement`, then dropped.
    with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError)):
        await ended_mid_statement()
    assert (pool.open, pool.idle) == (0, 0)
    assert await _backend(pool) != first


async def test_a_connection_given_back_in_a_transaction_is_closed(pool: ReadPool) -> None:
    driver = await pool.acquire()
    await driver.execute("BEGIN")
    pool.release(driver)
    assert driver.is_closed()
    assert (pool.open, pool.idle) == (0, 0)


async def test_a_refused_connection_frees_its_place(database_url: str) -> None:
    unreachable = create_engine(_on_port_1(database_url), pool_size=1)
    pool = ReadPool(unreachable, size=1)
    try:
        for _ in range(2):  # the place is free again after each failure
            with pytest.raises(DATABASE_ERRORS) as raised:  # here the socket's own error
                await pool.acquire()
            assert database_fault(raised.value) == DatabaseFault("unavailable", None, True)
        assert pool.open == 0
    finally:
        await pool.close()
        await unreachable.dispose()


async def test_close_ends_the_idle_connections_and_those_given_back_later(
    own: AsyncEngine, engine: AsyncEngine
) -> None:
    pool = ReadPool(own, size=2)
    idle_pid = await _backend(pool)
    lent = await pool.acquire()
    lent_pid = await lent.fetchval("SELECT pg_backend_pid()")
    await pool.close()
    pool.release(lent)
    assert lent.is_closed()
    assert pool.open == 0

    async def alive() -> int:
        async with engine.connect() as conn:
            return int(
                await conn.scalar(
                    text("SELECT count(*) FROM pg_stat_activity WHERE pid IN (:a, :b)"),
                    {"a": idle_pid, "b": lent_pid},
                )
            )

    await poll_until(alive, until=lambda n: n == 0, what="both backends to end")


def _on_port_1(url: str) -> str:
    """`url` on a port nobody listens on: by host and port, or by Unix socket (the embedded
    server's `?host=<dir>&port=<n>`: no socket file for port 1)."""
    parsed = make_url(url)
    if parsed.port is not None:
        return parsed.set(port=1).render_as_string(hide_password=False)
    return parsed.update_query_dict({"port": "1"}).render_as_string(hide_password=False)
