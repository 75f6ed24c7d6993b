"""The API's pool of driver connections for statements in autocommit: reads and searches.

A read by id or version, a GET search and the audit trail's batched COPY need nothing but
asyncpg statements in autocommit (docs/architecture.md, "Read path"). They take their
connection here rather than from SQLAlchemy's pool, whose checkout and return (a proxy
object, weak references, events, a reset on return, an asyncio queue) cost ~25 µs of CPU per
request, a tenth of a read; taking an idle connection here and giving it back is a list's
`pop` and `append`.

The connections are made by the engine, exactly as it makes its own (URL, server settings
such as the statement timeout, JSON codecs): checked out of the engine's pool and detached
from it, so the engine's pool opens another in its place when it needs one. The API gives the
engine `IPT_DATABASE_POOL_SIZE` less this pool's size, so the process still holds at most
`IPT_DATABASE_POOL_SIZE` connections (README, "Configuration").

A connection the server closed while it sat idle is dropped at its next checkout (asyncpg
reads its socket all the time, so it knows); one that failed mid-statement was closed by
`driver_statement` and is dropped when it is given back. Either frees a place for a new one.
A request that finds every connection out waits in line for at most `timeout_s`, then fails
with `PoolExhausted` (a 503, overloaded).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy.exc
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

__all__ = ["PoolExhausted", "ReadPool"]


class PoolExhausted(Exception):
    """No connection of the read pool came free in time: the database is overloaded."""


class ReadPool:
    """Up to `size` asyncpg connections made by `engine`, lent one request at a time."""

    def __init__(self, engine: AsyncEngine, *, size: int, timeout_s: float | None = None) -> None:
        """Lend connections of `engine`'s making; wait at most `timeout_s` for a free one
        (default: as long as the engine's pool waits)."""
        if size < 1:
            raise ValueError("a read pool needs room for one connection")
        self.size = size
        self._engine = engine
        pool: Any = engine.sync_engine.pool
        self._timeout_s: float = pool.timeout() if timeout_s is None else timeout_s
        self._idle: list[Any] = []  # last in, first out: the warmest connection first
        self._open = 0  # connections idle, lent, or being made
        # Requests waiting for a connection, first come first served. Each gets a connection,
        # or None: a place came free, make a connection in it.
        self._waiting: deque[asyncio.Future[Any]] = deque()
        self._closed = False

    @property
    def open(self) -> int:
        """The connections this pool holds now, idle or lent."""
        return self._open

    @property
    def idle(self) -> int:
        """The connections waiting to be lent."""
        return len(self._idle)

    @property
    def waiting(self) -> int:
        """The requests in line for a connection."""
        return sum(not waiter.done() for waiter in self._waiting)

    async def acquire(self) -> Any:
        """An open connection; give it back with `release` whatever happens."""
        while self._idle:
            driver = self._idle.pop()
            if not driver.is_closed():
                return driver
            self._open -= 1  # closed by the server while idle
        if self._closed:
            raise RuntimeError("the read pool is closed")
        if self._open < self.size and not self._waiting:
            return await self._connect()
        return await self._wait()

    def release(self, driver: Any) -> None:
        """Take `driver` back: lent to the next in line, kept idle, or closed if unusable."""
        if self._closed or driver.is_closed() or driver.is_in_transaction():
            # Closed after a failure, or left in a transaction (never, for statements in
            # autocommit): not handed on. PostgreSQL rolls back what was not committed.
            if not driver.is_closed():
                driver.terminate()
            self._open -= 1
            self._hand_on(None)
        else:
            self._hand_on(driver)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        """A connection for the duration of the block."""
        driver = await self.acquire()
        try:
            yield driver
        finally:
            self.release(driver)

    async def close(self) -> None:
        """Close the idle connections; those still lent are closed when they come back."""
        self._closed = True
        idle, self._idle = self._idle, []
        self._open -= len(idle)
        await asyncio.gather(*(driver.close(timeout=5) for driver in idle), return_exceptions=True)
        for driver in idle:
            if not driver.is_closed():
                driver.terminate()

    def _hand_on(self, driver: Any) -> None:
        # To the first request in line, else idle. A waiter cancelled (its request's task
        # was) but not yet out of line is skipped.
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(driver)
                return
        if driver is not None:
            self._idle.append(driver)

    async def _wait(self) -> Any:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Any] = loop.create_future()
        self._waiting.append(waiter)
        # A timer that fails the waiter, not `asyncio.timeout`: the timeout's context (the
        # current task, a reschedule, cancelling the task and taking the cancellation back)
        # was 4% of a search's CPU when most requests wait in line (bench/PROFILE.md,
        # "Thirteenth round").
        timer = loop.call_later(self._timeout_s, _expire, waiter, self._timeout_s)
        try:
            driver = await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Handed a connection (or a place) just as the wait was cancelled: pass it on.
                self._hand_on(waiter.result())
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):  # `_hand_on` may have skipped it already
                    self._waiting.remove(waiter)
            raise
        finally:
            timer.cancel()
        if driver is None:  # a place came free: make a connection in it
            return await self._connect()
        return driver

    async def _connect(self) -> Any:
        self._open += 1
        try:
            return await greenlet_spawn(self._detached)
        except BaseException:
            self._open -= 1
            self._hand_on(None)  # the place is free again: the next in line may try
            raise

    def _detached(self) -> Any:
        # In SQLAlchemy's greenlet bridge: its pool connects (or waits) through it. Checked
        # out as `engine.connect()` would (the same timeout, and its driver's failure to
        # connect wrapped as DBAPIError, which the API answers as a 503), then detached.
        sync_engine = self._engine.sync_engine
        try:
            proxied = sync_engine.raw_connection()
        except sync_engine.dialect.loaded_dbapi.Error as error:
            dialect = sync_engine.dialect
            raise sqlalchemy.exc.DBAPIError.instance(
                None,
                None,
                error,
                dialect.loaded_dbapi.Error,
                connection_invalidated=dialect.is_disconnect(error, None, None),
                dialect=dialect,
            ) from error
        driver = proxied.driver_connection
        proxied.detach()  # the engine's pool forgets it; its place there is free again
        return driver


def _expire(waiter: asyncio.Future[Any], timeout_s: float) -> None:
    """Fail a wait in line that lasted `timeout_s` (unless it was served meanwhile)."""
    if not waiter.done():
        waiter.set_exception(
            PoolExhausted(f"no database connection came free within {timeout_s:g} s")
        )
