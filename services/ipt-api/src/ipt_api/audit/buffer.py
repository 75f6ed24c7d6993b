"""Read audit records, batched: reads hand their records to this buffer and never wait on it.

Flushed every `interval_s` or as soon as `batch_size` records wait, and once more at shutdown.
The same loop purges records older than the retention period (IPT_AUDIT_RETENTION_DAYS)
about once an hour. Logs name counts and error types only, never a record's content.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.audit import AuditRecord, copy_records, purge_before
from ipt_core.db.driver import autocommit_driver, driver_statement

__all__ = ["AuditBuffer"]

_log = logging.getLogger(__name__)
_MAX_PENDING = 100_000  # beyond this (database down for long) the oldest records are dropped
_PURGE_EVERY_S = 3600.0


class AuditBuffer:
    """An in-process queue of audit records written in batches by one background task."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        interval_s: float = 1.0,
        batch_size: int = 500,
        retention_days: int | None = None,
    ) -> None:
        """Configure the buffer; `retention_days` None keeps records forever."""
        self.engine = engine
        self.interval_s = interval_s
        self.batch_size = batch_size
        self.retention_days = retention_days
        self._pending: list[AuditRecord] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._purged_at = 0.0

    def add(self, records: Sequence[AuditRecord]) -> None:
        """Queue `records`; wakes the writer when a batch is full."""
        self._pending.extend(records)
        if len(self._pending) > _MAX_PENDING:
            dropped = len(self._pending) - _MAX_PENDING
            del self._pending[:dropped]
            _log.error("audit buffer full: %d oldest read records dropped", dropped)
        if len(self._pending) >= self.batch_size:
            self._wake.set()

    def start(self) -> None:
        """Start the background writer."""
        self._task = asyncio.create_task(self._run(), name="audit-buffer")

    async def stop(self) -> None:
        """Stop the writer and write what is still queued."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.flush()

    async def flush(self) -> int:
        """Write the records queued now (later arrivals wait for the next tick); return how
        many. On failure they stay queued for the next attempt."""
        taken, self._pending = self._pending, []
        written = 0
        while written < len(taken):
            batch = taken[written : written + self.batch_size]
            try:
                # One COPY per batch on the driver, in autocommit: atomic on its own, and the
                # cheapest way in for many rows (ipt_core/audit, `copy_records`).
                async with self.engine.connect() as conn:
                    await conn.execution_options(isolation_level="AUTOCOMMIT")
                    driver = await autocommit_driver(conn)
                    async with driver_statement(driver):
                        await copy_records(driver, batch)
            except Exception as error:  # the database is away: keep the records, retry later
                self._pending[:0] = taken[written:]
                _log.warning(
                    "audit flush of %d records failed: %s", len(batch), type(error).__name__
                )
                return written
            written += len(batch)
        return written

    async def purge(self) -> int:
        """Delete the records older than the retention period; return how many."""
        if self.retention_days is None:
            return 0
        cutoff = datetime.now(UTC) - timedelta(days=self.retention_days)
        async with self.engine.begin() as conn:
            return await purge_before(conn, cutoff)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval_s)
            self._wake.clear()
            await self.flush()
            if time.monotonic() - self._purged_at > _PURGE_EVERY_S:
                self._purged_at = time.monotonic()
                try:
                    purged = await self.purge()
                except Exception as error:
                    _log.warning("audit purge failed: %s", type(error).__name__)
                else:
                    if purged:
                        _log.info("audit purge removed %d records past retention", purged)
