"""The export loop: FHIR Bulk Data `$export` jobs, run to completion in checkpointed steps.

Any worker replica may run a job: it is claimed with `FOR UPDATE SKIP LOCKED` and a lease
that every step renews. Each step reads one page of resources (keyset by id, so memory stays
constant for any export size) and stores it as one NDJSON chunk together with the new
checkpoint. A worker killed mid-export leaves its lease to expire; another worker resumes
from the last stored chunk (ipt_core.bulk, docs/analytics.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from opentelemetry import metrics
from sqlalchemy.exc import DBAPIError, InterfaceError
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.bulk import claim_export, export_step, fail_export, purge_expired

__all__ = ["Exporter", "run_export_loop"]

_log = logging.getLogger(__name__)
_exported = metrics.get_meter("ipt_worker.exports").create_counter(
    "ipt.export.resources", description="Resources written to Bulk Data export files"
)


@dataclass
class Exporter:
    """Runs export jobs; safe to run in many processes against one database."""

    engine: AsyncEngine
    clock: Callable[[], datetime]
    page_size: int = 1000
    lease: timedelta = timedelta(seconds=60)
    expiry: timedelta = timedelta(hours=24)
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}")

    async def run_once(
        self, *, stop: asyncio.Event | None = None, max_steps: int | None = None
    ) -> bool:
        """Claim one export and run it; False when none waits.

        Stops early when `stop` is set or after `max_steps` steps (tests): the job stays
        leased to this worker until its lease runs out, then another worker resumes it.
        """
        async with self.engine.begin() as conn:
            export_id = await claim_export(
                conn, worker=self.worker_id, now=self.clock(), lease=self.lease
            )
        if export_id is None:
            return False
        steps = 0
        while (max_steps is None or steps < max_steps) and not (stop and stop.is_set()):
            steps += 1
            if await self._step(export_id):
                break
        return True

    async def purge(self) -> int:
        """Delete expired exports and their files."""
        async with self.engine.begin() as conn:
            return await purge_expired(conn, self.clock())

    async def _step(self, export_id: str) -> bool:
        """One checkpointed step; True when the job is finished, failed or no longer ours."""
        try:
            async with self.engine.begin() as conn:
                result = await export_step(
                    conn,
                    export_id,
                    worker=self.worker_id,
                    now=self.clock(),
                    lease=self.lease,
                    page_size=self.page_size,
                    expiry=self.expiry,
                )
        except (InterfaceError, OSError):
            raise  # the database is unreachable: the loop retries, the lease protects the job
        except DBAPIError as error:
            if error.connection_invalidated:
                raise
            await self._fail(export_id, error)
            return True
        except Exception as error:  # a job that cannot run must not be retried forever
            await self._fail(export_id, error)
            return True
        _exported.add(result.written)
        return result.finished or result.lost

    async def _fail(self, export_id: str, error: Exception) -> None:
        _log.warning("export failed: %s", type(error).__name__)
        async with self.engine.begin() as conn:
            await fail_export(
                conn, export_id, error=type(error).__name__, now=self.clock(), expiry=self.expiry
            )


async def run_export_loop(
    exporter: Exporter, stop: asyncio.Event, *, poll_interval_s: float
) -> None:
    """Run exports until `stop` is set; purge expired ones now and then."""
    next_purge = 0.0
    while not stop.is_set():
        busy = False
        try:
            if time.monotonic() >= next_purge:
                await exporter.purge()
                next_purge = time.monotonic() + _PURGE_INTERVAL_S
            busy = await exporter.run_once(stop=stop)
        except Exception as error:  # the database may be restarting: retry, do not die
            _log.warning("export loop: %s; retrying", type(error).__name__)
        if not busy:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=poll_interval_s)


_PURGE_INTERVAL_S = 300.0
