"""The worker's loops, run until asked to stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from opentelemetry import metrics

from ipt_core.db.faults import database_fault
from ipt_core.queue import queue_depth
from ipt_worker.outage import Reconnection
from ipt_worker.recompute import Recomputer

__all__ = ["run_recompute_loop"]

_log = logging.getLogger(__name__)


async def run_recompute_loop(
    recomputer: Recomputer, stop: asyncio.Event, *, poll_interval_s: float
) -> None:
    """Compute due courses until `stop` is set; idle polls cost one index probe each.

    A database outage is waited out with backoff and logged once; on SIGTERM the current
    batch's remaining courses are released and the liveness lock is given up.
    """
    database = Reconnection(_log, "database (recompute loop)", initial_s=poll_interval_s)
    next_depth_report = 0.0
    try:
        while not stop.is_set():
            if time.monotonic() >= next_depth_report:
                await _report_queue_depth(recomputer)
                next_depth_report = time.monotonic() + _DEPTH_REPORT_INTERVAL_S
            try:
                claimed = await recomputer.run_once(stop)
            except Exception as error:  # the database may be restarting: retry, do not die
                await database.failed(error, stop)
                continue
            database.succeeded()
            if claimed == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=poll_interval_s)
    finally:
        await recomputer.close()


_DEPTH_REPORT_INTERVAL_S = 15.0
_meter = metrics.get_meter("ipt_worker.recompute")
_queued = _meter.create_gauge("ipt.recompute.queue", description="Courses with a request")
_due = _meter.create_gauge("ipt.recompute.queue.due", description="Requests due now")


async def _report_queue_depth(recomputer: Recomputer) -> None:
    try:
        async with recomputer.engine.connect() as conn:
            queued, due = await queue_depth(conn, now=recomputer.clock())
    except Exception as error:  # a metric must never stop the loop
        if database_fault(error) is None:  # an outage is logged once, by the loop
            _log.warning("queue depth: %s", type(error).__name__)
        return
    _queued.set(queued)
    _due.set(due)
