"""`ipt-worker`: the status engine's recompute loop, the event relay and the EHR sync."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from datetime import UTC, datetime, timedelta

from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.composition import write_listeners
from ipt_core.db.provision import open_database
from ipt_core.ehr import EhrEndpoint, EndpointsFileError, configured_endpoints
from ipt_core.heap import freeze_startup_heap
from ipt_core.telemetry import instrument_engine, setup_logging, setup_tracing
from ipt_worker.ehr import run_ehr_sync, timing_from
from ipt_worker.exports import Exporter, run_export_loop
from ipt_worker.loop import run_recompute_loop
from ipt_worker.recompute import Recomputer
from ipt_worker.relay import build_relay
from ipt_worker.settings import WorkerSettings

__all__ = ["exporter", "main"]


def main() -> None:
    """Run the worker until SIGINT or SIGTERM."""
    setup_logging()
    settings = WorkerSettings()
    try:  # a bad endpoints file stops the worker here, naming the entry and field
        endpoints = configured_endpoints(settings.ehr_endpoints_file, os.environ)
    except EndpointsFileError as error:
        sys.exit(f"IPT_EHR_ENDPOINTS_FILE: {error}")
    provider = setup_tracing("ipt-worker", otlp_endpoint=settings.otel_exporter_otlp_endpoint)
    asyncio.run(_run(settings, provider, endpoints))


async def _run(
    settings: WorkerSettings, provider: TracerProvider | None, endpoints: tuple[EhrEndpoint, ...]
) -> None:
    database = await open_database(settings)
    if provider is not None:  # SQL spans only when spans are exported
        instrument_engine(database.engine, provider)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    recomputer = Recomputer(
        database.engine,
        clock=lambda: datetime.now(UTC),
        listeners=write_listeners(),
        batch_size=settings.batch_size,
        lease=timedelta(seconds=settings.lease_s),
    )
    relay = build_relay(database.engine, settings, lambda: datetime.now(UTC))
    logging.getLogger(__name__).info("worker %s started", recomputer.worker_id)
    freeze_startup_heap()
    try:
        await asyncio.gather(
            run_recompute_loop(recomputer, stop, poll_interval_s=settings.poll_interval_s),
            relay.run(stop),
            run_ehr_sync(
                database.engine,
                endpoints,
                write_listeners(),
                timing_from(settings),
                stop,
                destinations=settings.destination_policy,
            ),
            run_export_loop(
                exporter(database.engine, settings),
                stop,
                poll_interval_s=settings.export_poll_interval_s,
            ),
        )
    finally:
        await database.close()


def exporter(engine: AsyncEngine, settings: WorkerSettings) -> Exporter:
    """The Bulk Data export runner configured by `settings`."""
    return Exporter(
        engine,
        clock=lambda: datetime.now(UTC),
        page_size=settings.export_page_size,
        lease=timedelta(seconds=settings.export_lease_s),
        expiry=timedelta(seconds=settings.export_expiry_s),
    )


if __name__ == "__main__":
    main()
