"""The worker's loops inside the API process, for single-process deployments and `make run`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.composition import write_listeners
from ipt_core.ehr import EhrEndpoint
from ipt_core.settings import CoreSettings
from ipt_worker.ehr import run_ehr_sync, timing_from
from ipt_worker.exports import Exporter, run_export_loop
from ipt_worker.loop import run_recompute_loop
from ipt_worker.recompute import Recomputer
from ipt_worker.relay import build_relay
from ipt_worker.settings import WorkerSettings

__all__ = ["EmbeddedWorker", "embedded_worker", "worker_settings_of"]


def worker_settings_of(process: CoreSettings) -> WorkerSettings:
    """The embedded loops' settings: the worker's own from the environment, and the settings
    every process shares (database, outbound allow-list, secret keys…) as the API was given
    them, so the loops never run under other rules than the API that hosts them.
    """
    shared = {name: getattr(process, name) for name in CoreSettings.model_fields}
    return WorkerSettings(**shared)


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
    """Start the recompute, relay, EHR sync and export loops as a background task.

    The relay's publishers and timings come from `settings` (default: the worker's
    environment variables, read now, as `ipt-worker` would read them).
    """
    settings = settings or WorkerSettings()
    stop = asyncio.Event()
    recomputer = Recomputer(engine, clock=clock, listeners=write_listeners())
    relay = build_relay(engine, settings, clock)
    recompute = run_recompute_loop(recomputer, stop, poll_interval_s=poll_interval_s)
    ehr = run_ehr_sync(
        engine,
        ehr_endpoints,
        write_listeners(),
        timing_from(settings),
        stop,
        destinations=settings.destination_policy,
    )
    exporter = Exporter(
        engine,
        clock=clock,
        page_size=settings.export_page_size,
        lease=timedelta(seconds=settings.export_lease_s),
        expiry=timedelta(seconds=settings.export_expiry_s),
    )
    exports = run_export_loop(exporter, stop, poll_interval_s=poll_interval_s)
    loops = _together(recompute, relay.run(stop), ehr, exports)
    return EmbeddedWorker(asyncio.create_task(loops), stop)


async def _together(*loops: Coroutine[Any, Any, None]) -> None:
    await asyncio.gather(*loops)
