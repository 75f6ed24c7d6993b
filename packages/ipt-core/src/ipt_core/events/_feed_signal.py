"""`FeedSignal`: wakes waiting feed readers when the relay publishes (LISTEN on `ipt_feed`).

The relay NOTIFYs `ipt_feed` in the transaction that gives events their feed positions, so the
notification arrives exactly when new events become readable. One listening connection per
process serves every waiting reader: a long-poll or SSE reader takes the current `Wake` before
it reads a page and, when the page is empty, waits on it. A notification between the read and
the wait is not lost (the `Wake` was taken first). Notifications sent while the listening
connection is being re-opened are: readers also wake after `fallback_s` and look again, so a
lost connection delays an event by at most that much (docs/architecture.md#events-outbox-and-relay).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.events._repository import FEED_CHANNEL

__all__ = ["FeedSignal", "Wake"]

_log = logging.getLogger(__name__)
_RECONNECT_S: Final = 1.0


class Wake:
    """One generation of the signal: set once, at the next publication after it was taken."""

    def __init__(self) -> None:
        """An unset wake-up."""
        self._event = asyncio.Event()

    async def wait(self, timeout_s: float) -> bool:
        """Wait until set or `timeout_s` passed; return whether it was set."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout_s)
        return self._event.is_set()

    def set(self) -> None:
        """Wake every reader waiting on this generation."""
        self._event.set()


class FeedSignal:
    """Listens on `ipt_feed` with one connection, opened when the first reader waits."""

    def __init__(self, engine: AsyncEngine, *, fallback_s: float = 5.0) -> None:
        """Listen through `engine`; readers look again after `fallback_s` without a signal."""
        self.engine = engine
        self.fallback_s = fallback_s
        self._wake = Wake()
        self._task: asyncio.Task[None] | None = None

    def current(self) -> Wake:
        """The wake-up of the next publication; take it *before* reading the feed."""
        if self._task is None:
            self._task = asyncio.create_task(self._listen())
        return self._wake

    async def wait(self, wake: Wake, timeout_s: float) -> bool:
        """Wait on `wake` at most `timeout_s` (and at most the fallback interval)."""
        return await wake.wait(min(timeout_s, self.fallback_s))

    async def close(self) -> None:
        """Stop listening and release the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _publish(self, *_: Any) -> None:
        woken, self._wake = self._wake, Wake()
        woken.set()

    async def _listen(self) -> None:
        while True:
            try:
                await self._listen_once()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the database went away: listen again shortly
                _log.warning("feed signal: listening failed: %s", type(error).__name__)
            await asyncio.sleep(_RECONNECT_S)

    async def _listen_once(self) -> None:
        async with self.engine.connect() as conn:
            driver: Any = (await conn.get_raw_connection()).driver_connection
            lost = asyncio.Event()
            driver.add_termination_listener(lambda *_: lost.set())
            await driver.add_listener(FEED_CHANNEL, self._publish)
            # Listening now: readers that looked before this instant look once more.
            self._publish()
            try:
                await lost.wait()
            finally:
                with contextlib.suppress(Exception):
                    await driver.remove_listener(FEED_CHANNEL, self._publish)
