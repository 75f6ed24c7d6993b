"""Export jobs as the API sees them: create, find (by owner), delete, list files, read chunks."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = [
    "ExportJob",
    "ExportRequest",
    "OutputFile",
    "create_export",
    "delete_export",
    "find_export",
    "output_files",
    "read_chunk",
]


@dataclass(frozen=True)
class ExportRequest:
    """A validated kick-off: what to export, for whom, and since when."""

    owner: str  # the token subject (the client) that alone may read the results
    level: str  # system | patient | group
    types: tuple[str, ...]
    request_url: str
    group_id: str | None = None
    since: datetime | None = None
    type_filters: dict[str, list[str]] = field(default_factory=dict)  # type -> query strings


@dataclass(frozen=True)
class ExportJob:
    """A stored export job and its progress."""

    id: str
    owner: str
    level: str
    group_id: str | None
    types: tuple[str, ...]
    since: datetime | None
    type_filters: dict[str, list[str]]
    request_url: str
    state: str
    transaction_time: datetime
    completed_at: datetime | None
    expires_at: datetime | None
    type_index: int
    after_id: str | None
    next_chunk: int
    exported: int
    error: str | None

    @staticmethod
    def from_row(row: Any) -> ExportJob:
        """Build a job from a `bulk_export` row."""
        return ExportJob(
            id=row.id,
            owner=row.owner,
            level=row.level,
            group_id=row.group_id,
            types=tuple(row.types),
            since=row.since,
            type_filters=dict(row.type_filters),
            request_url=row.request_url,
            state=row.state,
            transaction_time=row.transaction_time,
            completed_at=row.completed_at,
            expires_at=row.expires_at,
            type_index=row.type_index,
            after_id=row.after_id,
            next_chunk=row.next_chunk,
            exported=row.exported,
            error=row.error,
        )


@dataclass(frozen=True)
class OutputFile:
    """One NDJSON file of a completed export: a resource type and how many lines it has."""

    resource_type: str
    count: int


async def create_export(conn: AsyncConnection, request: ExportRequest, now: datetime) -> str:
    """Queue an export; return its id (random: the status URL is not guessable)."""
    export_id = secrets.token_urlsafe(24)
    await conn.execute(
        text(
            "INSERT INTO bulk_export (id, owner, level, group_id, types, since, type_filters, "
            "request_url, state, transaction_time, created_at, type_index, next_chunk, exported) "
            "VALUES (:id, :owner, :level, :group_id, :types, :since, "
            "CAST(:filters AS jsonb), :url, 'queued', :now, :now, 0, 0, 0)"
        ),
        {
            "id": export_id,
            "owner": request.owner,
            "level": request.level,
            "group_id": request.group_id,
            "types": list(request.types),
            "since": request.since,
            "filters": orjson.dumps(request.type_filters).decode(),
            "url": request.request_url,
            "now": now,
        },
    )
    return export_id


async def find_export(
    conn: AsyncConnection, export_id: str, *, owner: str, now: datetime
) -> ExportJob | None:
    """The caller's export, or None when it does not exist, expired, or is someone else's."""
    row = (
        await conn.execute(
            text(
                "SELECT * FROM bulk_export WHERE id = :id AND owner = :owner "
                "AND (expires_at IS NULL OR expires_at > :now)"
            ),
            {"id": export_id, "owner": owner, "now": now},
        )
    ).first()
    return ExportJob.from_row(row) if row is not None else None


async def delete_export(conn: AsyncConnection, export_id: str, *, owner: str) -> bool:
    """Delete the caller's export and its files (cascade); False when there is none."""
    deleted = await conn.execute(
        text("DELETE FROM bulk_export WHERE id = :id AND owner = :owner"),
        {"id": export_id, "owner": owner},
    )
    return bool(deleted.rowcount)


async def output_files(conn: AsyncConnection, export_id: str) -> list[OutputFile]:
    """The files of an export: one per resource type that has at least one resource."""
    rows = await conn.execute(
        text(
            "SELECT resource_type, sum(resources) AS count FROM bulk_export_chunk "
            "WHERE export_id = :id GROUP BY resource_type ORDER BY resource_type"
        ),
        {"id": export_id},
    )
    return [OutputFile(row.resource_type, int(row[1])) for row in rows]


async def read_chunk(
    conn: AsyncConnection, export_id: str, resource_type: str, *, after_chunk: int
) -> tuple[int, bytes] | None:
    """The next chunk of a file after chunk number `after_chunk`, or None at the end.

    One chunk at a time, so a download of any size holds one chunk in memory.
    """
    row = (
        await conn.execute(
            text(
                "SELECT chunk, data FROM bulk_export_chunk WHERE export_id = :id "
                "AND resource_type = :type AND chunk > :after ORDER BY chunk LIMIT 1"
            ),
            {"id": export_id, "type": resource_type, "after": after_chunk},
        )
    ).first()
    return (int(row.chunk), bytes(row.data)) if row is not None else None
