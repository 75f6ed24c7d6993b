"""The worker's loops inside the API process, for single-process deployments and `make run`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_worker.listeners import default_listeners
from ipt_worker.loop import run_recompute_loop
from ipt_worker.recompute import Recomputer

__all__ = ["EmbeddedWorker", "embedded_worker"]


@dataclass
class EmbeddedWorker:
    """A running recompute loop and the means to stop it."""

    task: asyncio.Task[None]
    stop_event: asyncio.Event

    async def stop(self) -> None:
        """Ask the loop to stop and wait for its current batch to finish."""
        self.stop_event.set()
        await self.task


def embedded_worker(
    engine: AsyncEngine, clock: Callable[[], datetime], *, poll_interval_s: float = 0.5
) -> EmbeddedWorker:
    """Start the recompute loop as a background task of the running event loop."""
    stop = asyncio.Event()
    recomputer = Recomputer(engine, clock=clock, listeners=default_listeners())
    loop = run_recompute_loop(recomputer, stop, poll_interval_s=poll_interval_s)
    return EmbeddedWorker(asyncio.create_task(loop), stop)
