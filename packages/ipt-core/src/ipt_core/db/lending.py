"""Lending connections one request at a time, and waiting in line for one: what the API's two
pools of its own share (`db/read_pool.py`: driver connections for reads; `db/kept.py`:
SQLAlchemy connections kept for the requests' transactions).

Both exist because SQLAlchemy's pool costs more than the work on a fast path: its checkout and
return (a proxy object, weak references, events, a reset on return, an asyncio queue, the
greenlet bridge) were ~25 µs of a read and ~65 µs of a write's CPU (bench/PROFILE.md,
"Fifteenth round"). Taking an idle connection here and giving it back is a list's `pop` and
`append`.

A pool opens up to `size` connections as requests need them and keeps them. A request that
finds every connection out waits in line, first come first served, for at most `timeout_s`,
then fails with `PoolExhausted` (a 503, overloaded). A connection found dead when taken from
the idle list, or given back unusable, is dropped: its place is free for a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any, Generic, TypeVar

__all__ = ["LendingPool", "PoolExhausted"]

Lent = TypeVar("Lent")


class PoolExhausted(Exception):
    """No connection came free in time: the database is overloaded."""


class LendingPool(Generic[Lent]):
    """Up to `size` connections, lent one request at a time; subclasses make and check them."""

    def __init__(self, *, size: int, timeout_s: float) -> None:
        """Lend at most `size` connections; wait at most `timeout_s` for a free one."""
        if size < 1:
            raise ValueError("a pool needs room for one connection")
        self.size = size
        self._timeout_s = timeout_s
        self._idle: list[Lent] = []  # last in, first out: the warmest connection first
        self._open = 0  # connections idle, lent, or being made
        # Requests waiting for a connection, first come first served. Each gets a connection,
        # or None: a place came free, make a connection in it.
        self._waiting: deque[asyncio.Future[Lent | None]] = deque()
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

    async def acquire(self) -> Lent:
        """An open connection; give it back whatever happens (the subclass says how)."""
        while self._idle:
            lent = self._idle.pop()
            if self._alive(lent):
                return lent
            self._drop()  # closed by the server while idle
            await self._end_quietly(lent)
        if self._closed:
            raise RuntimeError("the pool is closed")
        if self._open < self.size and not self._waiting:
            return await self._connect()
        return await self._wait()

    async def close(self) -> None:
        """End the idle connections; those still lent are ended when they come back."""
        self._closed = True
        idle, self._idle = self._idle, []
        self._open -= len(idle)
        await asyncio.gather(*(self._end(lent) for lent in idle), return_exceptions=True)

    # What a subclass provides.

    async def _make(self) -> Lent:
        """A new connection (its failure to connect is the caller's error)."""
        raise NotImplementedError

    def _alive(self, lent: Lent) -> bool:
        """Whether an idle connection is still open (no I/O)."""
        raise NotImplementedError

    async def _end(self, lent: Lent) -> None:
        """Close a connection this pool no longer lends."""
        raise NotImplementedError

    # For the subclasses' `release`.

    def _keep(self, lent: Lent) -> None:
        """Take a usable connection back: to the first request in line, else idle."""
        self._hand_on(lent)

    def _drop(self) -> None:
        """Forget a connection that is closed or being ended: its place is free again."""
        self._open -= 1
        self._hand_on(None)

    async def _end_quietly(self, lent: Lent) -> None:
        # Ending a connection that failed may fail too; its place is free either way.
        with contextlib.suppress(Exception):
            await self._end(lent)

    def _hand_on(self, lent: Lent | None) -> None:
        # To the first request in line, else idle. A waiter cancelled (its request's task
        # was) but not yet out of line is skipped.
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(lent)
                return
        if lent is not None:
            self._idle.append(lent)

    async def _wait(self) -> Lent:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Lent | None] = loop.create_future()
        self._waiting.append(waiter)
        # A timer that fails the waiter, not `asyncio.timeout`: the timeout's context (the
        # current task, a reschedule, cancelling the task and taking the cancellation back)
        # was 4% of a search's CPU when most requests wait in line (bench/PROFILE.md,
        # "Thirteenth round").
        timer = loop.call_later(self._timeout_s, _expire, waiter, self._timeout_s)
        try:
            lent = await waiter
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
        if lent is None:  # a place came free: make a connection in it
            return await self._connect()
        return lent

    async def _connect(self) -> Lent:
        self._open += 1
        try:
            return await self._make()
        except BaseException:
            self._open -= 1
            self._hand_on(None)  # the place is free again: the next in line may try
            raise


def _expire(waiter: asyncio.Future[Any], timeout_s: float) -> None:
    """Fail a wait in line that lasted `timeout_s` (unless it was served meanwhile)."""
    if not waiter.done():
        waiter.set_exception(
            PoolExhausted(f"no database connection came free within {timeout_s:g} s")
        )
