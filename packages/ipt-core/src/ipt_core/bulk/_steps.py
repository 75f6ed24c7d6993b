"""The worker's side of an export: claim a job, write one chunk per step, finish or fail.

Each step is one transaction: it re-checks that this worker still holds the job (a worker
whose lease ran out cannot write), stores one chunk of NDJSON and moves the checkpoint
(type, last id, chunk number, count) with it. A worker killed between steps loses nothing:
another claims the job when the lease expires and goes on from the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.bulk._jobs import ExportJob
from ipt_core.bulk._selection import selection

__all__ = ["StepResult", "claim_export", "export_step", "fail_export", "purge_expired"]


@dataclass(frozen=True)
class StepResult:
    """What a step did: resources written, and whether the job is finished or lost."""

    written: int
    finished: bool = False
    lost: bool = False


async def claim_export(
    conn: AsyncConnection, *, worker: str, now: datetime, lease: timedelta
) -> str | None:
    """Lease the oldest queued export, or a running one whose worker's lease ran out."""
    claimed = await conn.scalar(
        text(
            "UPDATE bulk_export SET claimed_by = :worker, claimed_until = :until, "
            "state = 'running' WHERE id = (SELECT id FROM bulk_export "
            "WHERE state IN ('queued', 'running') "
            "AND (claimed_until IS NULL OR claimed_until < :now) "
            "ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id"
        ),
        {"worker": worker, "now": now, "until": now + lease},
    )
    return None if claimed is None else str(claimed)


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
    row = (
        await conn.execute(
            text(
                "SELECT * FROM bulk_export WHERE id = :id AND claimed_by = :worker "
                "AND state = 'running' FOR UPDATE"
            ),
            {"id": export_id, "worker": worker},
        )
    ).first()
    if row is None:
        return StepResult(0, lost=True)
    job = ExportJob.from_row(row)
    if job.type_index >= len(job.types):
        await _complete(conn, job, now, expiry)
        return StepResult(0, finished=True)
    resource_type = job.types[job.type_index]
    statement = selection(job, resource_type, after_id=job.after_id, limit=page_size)
    page = (await conn.execute(statement)).all()
    if page:
        data = "\n".join(row.content for row in page).encode() + b"\n"
        await conn.execute(
            text(
                "INSERT INTO bulk_export_chunk (export_id, chunk, resource_type, resources, data) "
                "VALUES (:id, :chunk, :type, :count, :data)"
            ),
            {
                "id": job.id,
                "chunk": job.next_chunk,
                "type": resource_type,
                "count": len(page),
                "data": data,
            },
        )
    type_done = len(page) < page_size
    await conn.execute(
        text(
            "UPDATE bulk_export SET type_index = :type_index, after_id = :after_id, "
            "next_chunk = :next_chunk, exported = exported + :count, claimed_until = :until "
            "WHERE id = :id"
        ),
        {
            "id": job.id,
            "type_index": job.type_index + 1 if type_done else job.type_index,
            "after_id": None if type_done else page[-1].id,
            "next_chunk": job.next_chunk + (1 if page else 0),
            "count": len(page),
            "until": now + lease,
        },
    )
    return StepResult(len(page))


async def _complete(
    conn: AsyncConnection, job: ExportJob, now: datetime, expiry: timedelta
) -> None:
    await conn.execute(
        text(
            "UPDATE bulk_export SET state = 'completed', completed_at = :now, "
            "expires_at = :expires, claimed_by = NULL, claimed_until = NULL WHERE id = :id"
        ),
        {"id": job.id, "now": now, "expires": now + expiry},
    )


async def fail_export(
    conn: AsyncConnection, export_id: str, *, error: str, now: datetime, expiry: timedelta
) -> None:
    """Stop an export for good; `error` is an error type name, never patient data."""
    await conn.execute(
        text(
            "UPDATE bulk_export SET state = 'failed', error = :error, completed_at = :now, "
            "expires_at = :expires, claimed_by = NULL, claimed_until = NULL WHERE id = :id"
        ),
        {"id": export_id, "error": error, "now": now, "expires": now + expiry},
    )


async def purge_expired(conn: AsyncConnection, now: datetime, *, limit: int = 100) -> int:
    """Delete up to `limit` expired exports with their files; return how many."""
    deleted = await conn.execute(
        text(
            "DELETE FROM bulk_export WHERE id IN (SELECT id FROM bulk_export "
            "WHERE expires_at <= :now LIMIT :limit FOR UPDATE SKIP LOCKED)"
        ),
        {"now": now, "limit": limit},
    )
    return int(deleted.rowcount)
