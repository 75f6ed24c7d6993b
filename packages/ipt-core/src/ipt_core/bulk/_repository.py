"""All SQL of the export tables, `bulk_export` and `bulk_export_chunk` (docs/analytics.md).

The API creates, finds, lists and deletes jobs and reads their chunks; the worker leases a
job, locks it for a step, stores a chunk with the checkpoint, and closes or purges jobs.
Which resources a step selects is built in `_selection.py` and run here.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.bulk._jobs import ExportJob, ExportRequest, OutputFile
from ipt_core.db.schema import bulk_export, bulk_export_chunk

__all__ = [
    "claim_export",
    "close_export",
    "create_export",
    "delete_export",
    "find_export",
    "has_rows",
    "lock_running",
    "output_files",
    "purge_expired",
    "read_chunk",
    "read_page",
    "store_step",
]

_JOB_COLUMNS = [bulk_export.c[f.name] for f in fields(ExportJob)]


async def create_export(conn: AsyncConnection, request: ExportRequest, now: datetime) -> str:
    """Queue an export; return its id (random: the status URL is not guessable)."""
    export_id = secrets.token_urlsafe(24)
    # The request's fields are named like their columns.
    request_columns = asdict(request) | {"types": list(request.types)}
    await conn.execute(
        insert(bulk_export).values(
            id=export_id,
            **request_columns,
            state="queued",
            transaction_time=now,
            created_at=now,
            type_index=0,
            next_chunk=0,
            exported=0,
        )
    )
    return export_id


async def find_export(
    conn: AsyncConnection, export_id: str, *, owner: str, now: datetime
) -> ExportJob | None:
    """The caller's export, or None when it does not exist, expired, or is someone else's."""
    b = bulk_export
    query = select(*_JOB_COLUMNS).where(
        b.c.id == export_id,
        b.c.owner == owner,
        or_(b.c.expires_at.is_(None), b.c.expires_at > now),
    )
    row = (await conn.execute(query)).first()
    return ExportJob.from_row(row) if row is not None else None


async def delete_export(conn: AsyncConnection, export_id: str, *, owner: str) -> bool:
    """Delete the caller's export and its files (cascade); False when there is none."""
    b = bulk_export
    deleted = await conn.execute(delete(b).where(b.c.id == export_id, b.c.owner == owner))
    return bool(deleted.rowcount)


async def output_files(conn: AsyncConnection, export_id: str) -> list[OutputFile]:
    """The files of an export: one per resource type that has at least one resource."""
    c = bulk_export_chunk
    query = (
        select(c.c.resource_type, func.sum(c.c.resources).label("resources"))
        .where(c.c.export_id == export_id)
        .group_by(c.c.resource_type)
        .order_by(c.c.resource_type)
    )
    return [OutputFile(row.resource_type, int(row.resources)) for row in await conn.execute(query)]


async def read_chunk(
    conn: AsyncConnection, export_id: str, resource_type: str, *, after_chunk: int
) -> tuple[int, bytes] | None:
    """The next chunk of a file after chunk number `after_chunk`, or None at the end.

    One chunk at a time, so a download of any size holds one chunk in memory.
    """
    c = bulk_export_chunk
    query = (
        select(c.c.chunk, c.c.data)
        .where(c.c.export_id == export_id, c.c.resource_type == resource_type)
        .where(c.c.chunk > after_chunk)
        .order_by(c.c.chunk)
        .limit(1)
    )
    row = (await conn.execute(query)).first()
    return (int(row.chunk), bytes(row.data)) if row is not None else None


async def has_rows(conn: AsyncConnection, query: Select[Any]) -> bool:
    """Whether a selection (e.g. a derived Group's patients) has at least one row."""
    return (await conn.execute(query.limit(1))).first() is not None


async def claim_export(
    conn: AsyncConnection, *, worker: str, now: datetime, lease: timedelta
) -> str | None:
    """Lease the oldest queued export, or a running one whose worker's lease ran out."""
    b = bulk_export
    oldest = (
        select(b.c.id)
        .where(b.c.state.in_(("queued", "running")))
        .where(or_(b.c.claimed_until.is_(None), b.c.claimed_until < now))
        .order_by(b.c.created_at)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    claimed = await conn.scalar(
        update(b)
        .where(b.c.id == oldest)
        .values(claimed_by=worker, claimed_until=now + lease, state="running")
        .returning(b.c.id)
    )
    return None if claimed is None else str(claimed)


async def lock_running(conn: AsyncConnection, export_id: str, worker: str) -> ExportJob | None:
    """Lock the job for a step; None when this worker no longer holds it (lease lost)."""
    b = bulk_export
    query = (
        select(*_JOB_COLUMNS)
        .where(b.c.id == export_id, b.c.claimed_by == worker, b.c.state == "running")
        .with_for_update()
    )
    row = (await conn.execute(query)).first()
    return ExportJob.from_row(row) if row is not None else None


async def read_page(conn: AsyncConnection, query: Select[Any]) -> list[Any]:
    """The rows (id, content) of one page of a selection."""
    return list(await conn.execute(query))


async def store_step(
    conn: AsyncConnection,
    job: ExportJob,
    page: list[Any],
    *,
    resource_type: str,
    type_done: bool,
    until: datetime,
) -> None:
    """Store a page as the job's next chunk, and move its checkpoint with it."""
    if page:
        data = "\n".join(row.content for row in page).encode() + b"\n"
        await conn.execute(
            insert(bulk_export_chunk).values(
                export_id=job.id,
                chunk=job.next_chunk,
                resource_type=resource_type,
                resources=len(page),
                data=data,
            )
        )
    b = bulk_export
    await conn.execute(
        update(b)
        .where(b.c.id == job.id)
        .values(
            type_index=job.type_index + 1 if type_done else job.type_index,
            after_id=None if type_done else page[-1].id,
            next_chunk=job.next_chunk + (1 if page else 0),
            exported=b.c.exported + len(page),
            claimed_until=until,
        )
    )


async def close_export(
    conn: AsyncConnection,
    export_id: str,
    *,
    state: str,
    error: str | None,
    now: datetime,
    expiry: timedelta,
) -> None:
    """End a job as `completed` or `failed` (`error`: a type name, never patient data)."""
    b = bulk_export
    await conn.execute(
        update(b)
        .where(b.c.id == export_id)
        .values(
            state=state,
            error=error,
            completed_at=now,
            expires_at=now + expiry,
            claimed_by=None,
            claimed_until=None,
        )
    )


async def purge_expired(conn: AsyncConnection, now: datetime, *, limit: int = 100) -> int:
    """Delete up to `limit` expired exports with their files; return how many."""
    b = bulk_export
    expired = (
        select(b.c.id).where(b.c.expires_at <= now).limit(limit).with_for_update(skip_locked=True)
    )
    deleted = await conn.execute(delete(b).where(b.c.id.in_(expired)))
    return int(deleted.rowcount)
