"""History of resources: one instance, one type, or the whole system, newest first.

Pages are cut by a keyset cursor (the version's global sequence number), so versions written
while a client pages never shift or repeat a page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.db.schema import resource_version
from ipt_core.fhir.model import StoredResource

__all__ = ["HistoryEntry", "HistoryPage", "history_page"]


@dataclass(frozen=True)
class HistoryEntry:
    """A version in a history Bundle, with the HTTP method that wrote it."""

    stored: StoredResource
    method: str
    seq: int


@dataclass(frozen=True)
class HistoryPage:
    """One page of history, and the cursor of the next page when there is one."""

    entries: list[HistoryEntry]
    next_cursor: int | None


async def history_page(
    conn: AsyncConnection,
    *,
    resource_type: str | None = None,
    id_: str | None = None,
    since: datetime | None = None,
    before_seq: int | None = None,
    count: int = 50,
) -> HistoryPage:
    """Return up to `count` versions, newest first, older than `before_seq` when given."""
    v = resource_version
    query = select(v).order_by(v.c.seq.desc()).limit(count + 1)
    if resource_type is not None:
        query = query.where(v.c.resource_type == resource_type)
    if id_ is not None:
        query = query.where(v.c.id == id_)
    if since is not None:
        query = query.where(v.c.last_updated >= since)
    if before_seq is not None:
        query = query.where(v.c.seq < before_seq)
    found = list(await conn.execute(query))
    entries = [
        HistoryEntry(
            StoredResource(
                row.resource_type,
                row.id,
                row.version_id,
                row.last_updated,
                row.method == "DELETE",
                row.content,
            ),
            row.method,
            row.seq,
        )
        for row in found[:count]
    ]
    next_cursor = entries[-1].seq if len(found) > count else None
    return HistoryPage(entries, next_cursor)
