"""The webhook delivery loop's queries keep their partial indexes under a generic plan.

asyncpg reuses prepared statements, and PostgreSQL plans one generically after five runs.
A generic plan can use an index `WHERE status = 'pending'` only if the query says
`'pending'` in its text: with `status = $1` the loop's query (one statement then) walked
every delivery of the endpoint for each queue head (300 ms a call at 5,000 rows, then
webhook p99 of 45 s in `make bench`; docs/architecture.md, "Events, outbox and relay").
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.events.webhooks._repository.deliveries import _LOCK_SENDABLE, _QUEUED
from tests.support.plans import generic_plan


# The queues' heads (each checked for an earlier pending row), then the locked queues' rows.
@pytest.mark.parametrize("statement", [_LOCK_SENDABLE, _QUEUED], ids=["heads", "rows"])
async def test_the_delivery_queue_queries_use_the_pending_indexes_when_generic(
    db: AsyncEngine, statement: Any
) -> None:
    async with db.connect() as conn:
        await conn.execute(text("SET enable_seqscan = off"))  # the tables are empty here
        plan = await generic_plan(conn, statement)  # EXPLAIN only: no lock is taken
        await conn.rollback()
    assert "ix_webhook_delivery_queue" in plan, plan
    assert "ix_webhook_delivery_endpoint_id_id" not in plan, plan  # not every delivery
