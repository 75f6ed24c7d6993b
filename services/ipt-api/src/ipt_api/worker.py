"""The worker's loops inside the API process, for single-process deployments and `make run`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.composition import write_listeners
from ipt_core.ehr import EhrEndpoint
from ipt_worker.ehr import run_ehr_sync, timing_from
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
    ehr_endpoints: Sequence[EhrEndpoint] = (),
) -> EmbeddedWorker:
    """Start the recompute loop, the event relay and the EHR sync as a background task.

    The relay's publishers and timings come from `settings` (default: the worker's
    environment variables, read now, as `ipt-worker` would read them).
    """
    settings = settings or WorkerSettings()
    stop = asyncio.Event()
    recomputer = Recomputer(engine, clock=clock, listeners=write_listeners())
    relay = build_relay(engine, settings, clock)
    recompute = run_recompute_loop(recomputer, stop, poll_interval_s=poll_interval_s)
    ehr = run_ehr_sync(engine, ehr_endpoints, write_listeners(), timing_from(settings), stop)
    return EmbeddedWorker(asyncio.create_task(_together(recompute, relay.run(stop), ehr)), stop)


async def _together(*loops: Coroutine[Any, Any, None]) -> None:
    await asyncio.gather(*loops)
