"""Everything a worker does, as one coroutine: the recompute loop, the event relay, the EHR
sync and the Bulk Data exports. `ipt-worker` runs it, and so does `ipt run` (on a thread of its
own, `ipt_api/worker.py`), so the two never compose the loops differently."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.composition import write_listeners
from ipt_core.ehr import EhrEndpoint
from ipt_worker.ehr import run_ehr_sync, timing_from
from ipt_worker.exports import Exporter, run_export_loop
from ipt_worker.loop import run_recompute_loop
from ipt_worker.recompute import Recomputer
from ipt_worker.relay import build_relay
from ipt_worker.settings import WorkerSettings

__all__ = ["run_worker_loops"]

_log = logging.getLogger(__name__)


async def run_worker_loops(
    engine: AsyncEngine,
    settings: WorkerSettings,
    clock: Callable[[], datetime],
    endpoints: Sequence[EhrEndpoint],
    stop: asyncio.Event,
) -> None:
    """Run every loop of the worker on `engine` until `stop` is set."""
    recomputer = Recomputer(
        engine,
        clock=clock,
        listeners=write_listeners(),
        batch_size=settings.batch_size,
        lease=timedelta(seconds=settings.lease_s),
    )
    relay = build_relay(engine, settings, clock)
    _log.info("worker %s started", recomputer.worker_id)
    await asyncio.gather(
        run_recompute_loop(recomputer, stop, poll_interval_s=settings.poll_interval_s),
        relay.run(stop),
        run_ehr_sync(
            engine,
            endpoints,
            write_listeners(),
            timing_from(settings),
            stop,
            destinations=settings.destination_policy,
        ),
        run_export_loop(
            _exporter(engine, settings, clock),
            stop,
            poll_interval_s=settings.export_poll_interval_s,
        ),
    )


def _exporter(
    engine: AsyncEngine, settings: WorkerSettings, clock: Callable[[], datetime]
) -> Exporter:
    return Exporter(
        engine,
        clock=clock,
        page_size=settings.export_page_size,
        lease=timedelta(seconds=settings.export_lease_s),
        expiry=timedelta(seconds=settings.export_expiry_s),
    )
