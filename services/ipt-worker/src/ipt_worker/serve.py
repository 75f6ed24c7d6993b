"""A worker process's body: its loops under its settings, until it is told to stop.

`ipt-worker` runs it (`ipt_worker.__main__`), and so does each of `ipt run`'s worker
processes (`ipt_api/worker.py`).
"""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime

from opentelemetry.sdk.trace import TracerProvider

from ipt_core.db.provision import open_database
from ipt_core.ehr import EhrEndpoint
from ipt_core.heap import freeze_startup_heap
from ipt_core.telemetry import instrument_engine, setup_logging, setup_tracing
from ipt_worker.runner import run_worker_loops
from ipt_worker.settings import WorkerSettings

__all__ = ["serve"]


def serve(
    settings: WorkerSettings, endpoints: tuple[EhrEndpoint, ...], *, parent: int | None = None
) -> None:
    """Run the worker's loops until SIGINT or SIGTERM.

    Given `parent` (a file descriptor that becomes readable when the parent process ends),
    the loops are `ipt run`'s child: they stop at SIGTERM or when the parent ends, and leave
    SIGINT (Ctrl-C in the terminal, sent to both) to the parent, which stops them in turn.
    """
    setup_logging()
    provider = setup_tracing("ipt-worker", otlp_endpoint=settings.otel_exporter_otlp_endpoint)
    asyncio.run(_run(settings, provider, endpoints, parent))


async def _run(
    settings: WorkerSettings,
    provider: TracerProvider | None,
    endpoints: tuple[EhrEndpoint, ...],
    parent: int | None,
) -> None:
    database = await open_database(settings)
    if provider is not None:  # SQL spans only when spans are exported
        instrument_engine(database.engine, provider)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if parent is None:
        loop.add_signal_handler(signal.SIGINT, stop.set)
    else:  # no loops left running for a process that is gone
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        loop.add_reader(parent, stop.set)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    freeze_startup_heap()
    try:
        await run_worker_loops(
            database.engine, settings, lambda: datetime.now(UTC), endpoints, stop
        )
    finally:
        await database.close()
