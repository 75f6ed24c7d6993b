"""SQL of the dead letters: `ehr_push_item` rows the EHR refused, kept until retried."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, literal, null, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.db.schema import ehr_push_item
from ipt_core.ehr.repository._endpoints import ERROR_CHARS
from ipt_core.ehr.repository._push_queue import PushItem

__all__ = ["DeadLetter", "dead_letter", "dead_letters", "retry_dead_letter"]


@dataclass(frozen=True)
class DeadLetter:
    """Push work the EHR refused, with its OperationOutcome, kept until retried."""

    id: int
    kind: str
    resource_type: str
    resource_id: str
    attempts: int
    last_error: str | None
    operation_outcome: dict[str, Any] | None
    dead_at: datetime | None


async def dead_letter(
    conn: AsyncConnection,
    item: PushItem,
    error: str,
    outcome: dict[str, Any] | None,
    now: datetime,
) -> None:
    """Park the item as a dead letter with the EHR's OperationOutcome.

    A write that came in during this push wins: the item stays pending for its new content.
    """
    p = ehr_push_item
    same = p.c.generation == item.generation
    # Typed binds: an untyped datetime binds as a naive timestamp, an untyped dict not as jsonb.
    kept = null() if outcome is None else literal(outcome, p.c.operation_outcome.type)
    await conn.execute(
        update(p)
        .where(p.c.id == item.id)
        .values(
            claimed_until=None,
            attempts=p.c.attempts + 1,
            last_error=error[:ERROR_CHARS],
            status=case((same, "dead"), else_="pending"),
            dead_at=case((same, literal(now, p.c.dead_at.type))),
            operation_outcome=case((same, kept)),
        )
    )


async def dead_letters(
    conn: AsyncConnection, endpoint: str, *, limit: int = 100
) -> list[DeadLetter]:
    """The endpoint's dead letters, newest first."""
    p = ehr_push_item
    query = (
        select(
            p.c.id,
            p.c.kind,
            p.c.resource_type,
            p.c.resource_id,
            p.c.attempts,
            p.c.last_error,
            p.c.operation_outcome,
            p.c.dead_at,
        )
        .where(p.c.endpoint == endpoint, p.c.status == "dead")
        .order_by(p.c.dead_at.desc(), p.c.id.desc())
        .limit(limit)
    )
    return [DeadLetter(**dict(row)) for row in (await conn.execute(query)).mappings()]


async def retry_dead_letter(
    conn: AsyncConnection, endpoint: str, item_id: int, now: datetime
) -> bool:
    """Make a dead letter pending again, due now; False when there is no such dead letter."""
    p = ehr_push_item
    result = await conn.execute(
        update(p)
        .where(p.c.id == item_id, p.c.endpoint == endpoint, p.c.status == "dead")
        .values(
            status="pending",
            attempts=0,
            due_at=now,
            enqueued_at=now,
            dead_at=None,
            operation_outcome=null(),  # SQL NULL (None would be JSON null)
            generation=p.c.generation + 1,
        )
    )
    return bool(result.rowcount)
