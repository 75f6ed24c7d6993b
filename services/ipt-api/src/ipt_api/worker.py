"""The worker's loops inside the API process, for single-process deployments and `make run`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_worker.exports import Exporter, run_export_loop
from ipt_worker.listeners import default_listeners
from ipt_worker.loop import run_recompute_loop
from ipt_worker.recompute import Recomputer
from ipt_worker.relay import build_relay
from ipt_worker.settings import WorkerSettings

__all__ = ["EmbeddedWorker", "embedded_worker"]


@dataclass
class EmbeddedWorker:
    """The running recompute and relay loops, and the means to stop them."""

    task: asyncio.Task[None]
    stop_event: asyncio.Event

    async def stop(self) -> None:
        """Ask the loop to stop and wait for its current batch to finish."""
        self.stop_event.set()
        await self.task


def embedded_worker(
    engine: AsyncEngine,
    clock: Callable[[], datetime],
    *,
    poll_interval_s: float = 0.5,
    settings: WorkerSettings | None = None,
) -> EmbeddedWorker:
    """Start the recompute, relay and export loops as a background task of the event loop.

    The relay's publishers and timings come from `settings` (default: the worker's
    environment variables, read now, as `ipt-worker` would read them).
    """
    stop = asyncio.Event()
    settings = settings or WorkerSettings()
    recomputer = Recomputer(engine, clock=clock, listeners=default_listeners())
    relay = build_relay(engine, settings, clock)
    recompute = run_recompute_loop(recomputer, stop, poll_interval_s=poll_interval_s)
    exporter = Exporter(
        engine,
        clock=clock,
        page_size=settings.export_page_size,
        lease=timedelta(seconds=settings.export_lease_s),
        expiry=timedelta(seconds=settings.export_expiry_s),
    )
    exports = run_export_loop(exporter, stop, poll_interval_s=poll_interval_s)
    return EmbeddedWorker(asyncio.create_task(_together(recompute, relay.run(stop), exports)), stop)


async def _together(*loops: Coroutine[Any, Any, None]) -> None:
    await asyncio.gather(*loops)
