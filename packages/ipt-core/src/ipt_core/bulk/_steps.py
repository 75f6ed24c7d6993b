"""The worker's side of an export: claim a job, write one chunk per step, finish or fail.

Each step is one transaction: it re-checks that this worker still holds the job (a worker
whose lease ran out cannot write), stores one chunk of NDJSON and moves the checkpoint
(type, last id, chunk number, count) with it. A worker killed between steps loses nothing:
another claims the job when the lease expires and goes on from the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.bulk import _repository as repo
from ipt_core.bulk._selection import selection

__all__ = ["StepResult", "export_step", "fail_export"]


@dataclass(frozen=True)
class StepResult:
    """What a step did: resources written, and whether the job is finished or lost."""

    written: int
    finished: bool = False
    lost: bool = False


async def export_step(
    conn: AsyncConnection,
    export_id: str,
    *,
    worker: str,
    now: datetime,
    lease: timedelta,
    page_size: int,
    expiry: timedelta,
) -> StepResult:
    """Write the next chunk of `export_id` (in `conn`'s transaction) and move its checkpoint."""
    job = await repo.lock_running(conn, export_id, worker)
    if job is None:
        return StepResult(0, lost=True)
    if job.type_index >= len(job.types):
        await repo.close_export(conn, job.id, state="completed", error=None, now=now, expiry=expiry)
        return StepResult(0, finished=True)
    resource_type = job.types[job.type_index]
    page = await repo.read_page(
        conn, selection(job, resource_type, after_id=job.after_id, limit=page_size)
    )
    await repo.store_step(
        conn,
        job,
        page,
        resource_type=resource_type,
        type_done=len(page) < page_size,
        until=now + lease,
    )
    return StepResult(len(page))


async def fail_export(
    conn: AsyncConnection, export_id: str, *, error: str, now: datetime, expiry: timedelta
) -> None:
    """Stop an export for good; `error` is an error type name, never patient data."""
    await repo.close_export(conn, export_id, state="failed", error=error, now=now, expiry=expiry)
