"""The EHR sync loops: per endpoint, capabilities now and then, push continuously, pull on
its interval. They run in `ipt-worker` and, for `make run`, inside the API process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.ehr import repository as repo
from ipt_core.ehr.endpoints import EhrEndpoint
from ipt_core.ehr.errors import RemoteError, RemoteUnavailable
from ipt_core.ehr.remote import RemoteEhr, ehr_http_client
from ipt_core.fhir.store import WriteListener
from ipt_core.net.destinations import DestinationPolicy
from ipt_worker.ehr import metrics
from ipt_worker.ehr.context import EhrTiming, EndpointSync, backoff
from ipt_worker.ehr.pull import pull_once
from ipt_worker.ehr.push import push_due

__all__ = ["open_endpoint", "register_endpoints", "run_ehr_sync", "run_endpoint"]

_log = logging.getLogger(__name__)


async def register_endpoints(engine: AsyncEngine, endpoints: Sequence[EhrEndpoint]) -> None:
    """Write the endpoint rows the write listener reads (every process does this at start)."""
    async with engine.begin() as conn:
        await repo.sync_endpoints(conn, endpoints)


@contextlib.asynccontextmanager
async def open_endpoint(
    engine: AsyncEngine,
    endpoint: EhrEndpoint,
    listeners: Sequence[WriteListener],
    timing: EhrTiming,
    *,
    destinations: DestinationPolicy,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> AsyncIterator[EndpointSync]:
    """An endpoint's sync context with its own connection pool (closed on exit).

    Connections go only where `destinations` (`IPT_OUTBOUND_ALLOW`) allows; `transport`
    replaces the network (fault tests). Both are handed to `ehr_http_client`, the one place
    every EHR connection is made.
    """
    rng = random.Random()
    async with ehr_http_client(
        timeout_s=timing.timeout_s, destinations=destinations, transport=transport
    ) as http:
        remote = RemoteEhr(
            endpoint, http, attempts=timing.attempts, retry_delay=backoff(timing, rng)
        )
        yield EndpointSync(endpoint, remote, engine, listeners, timing, clock, rng=rng)


async def run_endpoint(sync: EndpointSync, stop: asyncio.Event) -> None:
    """Sync one endpoint until `stop` is set; failures are recorded, never fatal."""
    next_pull = 0.0
    failures = 0  # consecutive: an unreachable EHR is asked again after a growing pause
    while not stop.is_set():
        now = time.monotonic()
        claimed = 0
        wait = sync.timing.poll_interval_s
        try:
            if sync.capabilities_due(now):
                await sync.refresh_capabilities(now)
            claimed = await push_due(sync)
            if now >= next_pull:
                await pull_once(sync)
                next_pull = time.monotonic() + sync.endpoint.pull_interval_s
            await report(sync)
            failures = 0
        except RemoteError as error:
            _log.warning("EHR %s: %s %s", sync.name, error.outcome, error)
            metrics.count_failure(sync.name, "capabilities", error.outcome)
            failures += 1
            wait = sync.remote.retry_delay(failures, RemoteUnavailable(error.outcome))
        except Exception as error:  # the database may be restarting: retry, do not die
            _log.warning("EHR %s loop: %s; retrying", sync.name, type(error).__name__)
            failures += 1
            wait = sync.remote.retry_delay(failures, RemoteUnavailable("loop"))
        if claimed == 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=wait)


async def report(sync: EndpointSync) -> None:
    """Set the queue, dead-letter and lag gauges of the endpoint."""
    now = sync.clock()
    async with sync.engine.connect() as conn:
        pending, dead, oldest = await repo.queue_counts(conn, sync.name)
        row = await repo.endpoint_row(conn, sync.name)
    push_lag = (now - oldest).total_seconds() if oldest else 0.0
    last_pull = row.last_pull_at if row else None
    pull_lag = (now - last_pull).total_seconds() if last_pull else 0.0
    metrics.report_queue(sync.name, pending, dead, push_lag, pull_lag)


async def run_ehr_sync(
    engine: AsyncEngine,
    endpoints: Sequence[EhrEndpoint],
    listeners: Sequence[WriteListener],
    timing: EhrTiming,
    stop: asyncio.Event,
    *,
    destinations: DestinationPolicy,
    transport: httpx.AsyncBaseTransport | None = None,
) -> None:
    """Run every endpoint's loop until `stop` is set (returns at once when none is configured)."""
    if not endpoints:
        return
    while not stop.is_set():  # the database may not be up yet: keep trying, do not die
        try:
            await register_endpoints(engine, endpoints)
            break
        except Exception as error:
            _log.warning("EHR endpoints not registered: %s; retrying", type(error).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=timing.poll_interval_s)

    async def one(endpoint: EhrEndpoint) -> None:
        async with open_endpoint(
            engine, endpoint, listeners, timing, destinations=destinations, transport=transport
        ) as sync:
            await run_endpoint(sync, stop)

    await asyncio.gather(*(one(endpoint) for endpoint in endpoints))
