"""The webhook delivery loop's queries keep their partial indexes under a generic plan.

asyncpg reuses prepared statements, and PostgreSQL plans one generically after five runs.
A generic plan can use an index `WHERE status = 'pending'` only if the query says
`'pending'` in its text: with `status = $1` the loop's query (one statement then) walked
every delivery of the endpoint for each queue head (300 ms a call at 5,000 rows, then
webhook p99 of 45 s in `make bench`; docs/architecture.md, "Events, outbox and relay").
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.db.advisory import session_of_its_own
from ipt_core.events.webhooks._repository.queues import _LOCK_SENDABLE, _QUEUED
from tests.integration.events_support import WebhookReceiver, subscribe
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


async def test_a_claim_reads_as_many_rows_as_it_claims_with_or_without_statistics(
    db: AsyncEngine,
) -> None:
    # 3,000 one-event queues pending. Written as a plain join, the claim found and sorted every
    # pending head while the table had no statistics (a fresh database, until autovacuum's
    # first ANALYZE): its cost grew with the backlog, and webhook latency with it. The walk
    # reads about as many rows as it claims, before ANALYZE and after.
    await subscribe(db, WebhookReceiver())  # not started: nothing is sent here
    async with db.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, created_at) "
                "SELECT 'event-' || n, 'Patient', 'Patient/' || n, 'fhir.resource.changed', "
                "'{}'::jsonb, now() FROM generate_series(1, 3000) AS n"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO webhook_delivery (endpoint_id, event_seq, event_id, event_type, "
                "partition_key, status, attempts, next_attempt_at, created_at) "
                "SELECT e.id, o.seq, o.id, o.type, o.aggregateid, 'pending', 0, now(), now() "
                "FROM outbox o CROSS JOIN webhook_endpoint e ORDER BY o.seq"
            )
        )
    for analyzed in (False, True):
        if analyzed:
            async with db.connect() as conn:
                await conn.execute(text("ANALYZE webhook_delivery"))
                await conn.commit()
        read = await _delivery_rows_read(db, queues=4)
        assert read <= 20, f"{read} delivery rows read (analyzed: {analyzed})"


async def _delivery_rows_read(db: AsyncEngine, *, queues: int) -> int:
    """Rows of `webhook_delivery` that one claim's plan read, as EXPLAIN ANALYZE counts them."""
    compiled = _LOCK_SENDABLE.compile(dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
    values = {**compiled.params, "now": datetime.now(UTC), "queues": queues}
    async with session_of_its_own(db) as conn:  # the claim's locks go with its session
        driver: Any = (await conn.get_raw_connection()).driver_connection
        (plan,) = await driver.fetchval(  # json, decoded by the engine's codec
            "EXPLAIN (ANALYZE, FORMAT JSON) " + str(compiled),
            *[values[name] for name in compiled.positiontup or ()],
        )
    return _rows_of(plan["Plan"], "webhook_delivery")


def _rows_of(node: dict[str, Any], relation: str) -> int:
    here = (
        node["Actual Rows"] * node["Actual Loops"] if node.get("Relation Name") == relation else 0
    )
    return int(here) + sum(_rows_of(child, relation) for child in node.get("Plans", []))
