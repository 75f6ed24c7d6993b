"""SQL of `ehr_push_item` while it is work to do: enqueue, lease, finish, back off, count.

Dead letters (the rows the EHR refused) are in `_dead_letters.py` (docs/ehr-sync.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import any_, case, delete, func, literal, null, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.db.schema import ehr_endpoint, ehr_push_item, is_pending
from ipt_core.ehr.repository._endpoints import ERROR_CHARS

__all__ = [
    "PushItem",
    "claim_push_items",
    "enqueue_push",
    "finish_push_item",
    "queue_counts",
    "reschedule_push_item",
]

_ITEM_KEY = ("endpoint", "kind", "resource_type", "resource_id")


@dataclass(frozen=True)
class PushItem:
    """A claimed unit of push work."""

    id: int
    endpoint: str
    kind: str  # resource | course-summary
    resource_type: str
    resource_id: str
    generation: int
    attempts: int
    enqueued_at: datetime


async def enqueue_push(
    conn: AsyncConnection,
    *,
    kind: str,
    resource_type: str,
    resource_id: str,
    push_type: str,
    now: datetime,
    exclude: Sequence[str] = (),
) -> None:
    """Queue push work for every configured endpoint that pushes `push_type`.

    A pending row is kept (its backoff too) and its generation bumped, so a push in flight
    is sent again with the newer content; a dead letter becomes pending again, due now.
    """
    e, p = ehr_endpoint, ehr_push_item
    wanted = literal(push_type)
    at = literal(now, p.c.due_at.type)  # typed: an untyped datetime binds as a naive timestamp
    endpoints = select(
        e.c.name,
        literal(kind),
        literal(resource_type),
        literal(resource_id),
        literal("pending"),
        literal(1),
        literal(0),
        at,
        at,
    ).where(
        e.c.configured,
        wanted == any_(e.c.push_types),
        or_(e.c.accepted_types.is_(None), wanted == any_(e.c.accepted_types)),
        e.c.name.not_in(list(exclude)),
    )
    columns = [*_ITEM_KEY, "status", "generation", "attempts", "enqueued_at", "due_at"]
    statement = insert(p).from_select(columns, endpoints)
    dead = p.c.status == "dead"
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=list(_ITEM_KEY),
            set_={
                "generation": p.c.generation + 1,
                "attempts": case((dead, 0), else_=p.c.attempts),
                "due_at": case((dead, statement.excluded.due_at), else_=p.c.due_at),
                "enqueued_at": case((dead, statement.excluded.enqueued_at), else_=p.c.enqueued_at),
                "status": "pending",
                "operation_outcome": null(),  # SQL NULL (None would be JSON null)
                "dead_at": null(),
            },
        )
    )


async def claim_push_items(
    conn: AsyncConnection, endpoint: str, now: datetime, lease: timedelta, limit: int
) -> list[PushItem]:
    """Lease up to `limit` due items of `endpoint` (SKIP LOCKED: workers never wait)."""
    p = ehr_push_item
    due = (
        select(p.c.id)
        .where(
            p.c.endpoint == endpoint,
            is_pending(p.c.status),
            p.c.due_at <= now,
            or_(p.c.claimed_until.is_(None), p.c.claimed_until < now),
        )
        .order_by(p.c.due_at, p.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = await conn.execute(
        update(p)
        .where(p.c.id.in_(due))
        .values(claimed_until=now + lease)
        .returning(
            p.c.id,
            p.c.endpoint,
            p.c.kind,
            p.c.resource_type,
            p.c.resource_id,
            p.c.generation,
            p.c.attempts,
            p.c.enqueued_at,
        )
    )
    items = [PushItem(**dict(row)) for row in rows.mappings()]
    return sorted(items, key=lambda item: (item.enqueued_at, item.id))


async def finish_push_item(conn: AsyncConnection, item: PushItem) -> None:
    """Drop a pushed (or skipped) item, unless a newer write asked for it again meanwhile."""
    p = ehr_push_item
    deleted = await conn.execute(
        delete(p).where(p.c.id == item.id, p.c.generation == item.generation)
    )
    if not deleted.rowcount:
        await conn.execute(update(p).where(p.c.id == item.id).values(claimed_until=None))


async def reschedule_push_item(
    conn: AsyncConnection, item: PushItem, due_at: datetime, error: str
) -> None:
    """Try the item again at `due_at` (backoff), counting the failed attempt."""
    p = ehr_push_item
    await conn.execute(
        update(p)
        .where(p.c.id == item.id)
        .values(
            due_at=due_at,
            claimed_until=None,
            attempts=p.c.attempts + 1,
            last_error=error[:ERROR_CHARS],
        )
    )


async def queue_counts(conn: AsyncConnection, endpoint: str) -> tuple[int, int, datetime | None]:
    """Pending items, dead letters, and the oldest pending item's enqueue time (the lag)."""
    p = ehr_push_item
    pending, dead = p.c.status == "pending", p.c.status == "dead"
    query = select(
        func.count().filter(pending).label("pending"),
        func.count().filter(dead).label("dead"),
        func.min(p.c.enqueued_at).filter(pending).label("oldest"),
    ).where(p.c.endpoint == endpoint)
    row = (await conn.execute(query)).one()
    return int(row.pending), int(row.dead), row.oldest
