"""The webhook delivery loop's queries keep their partial indexes under a generic plan, and a
claim reads only the queues it claims, whatever waits behind them.

asyncpg reuses prepared statements, and PostgreSQL plans one generically after five runs.
A generic plan can use an index `WHERE status = 'pending'` only if the query says
`'pending'` in its text: with `status = $1` the loop's query (one statement then) walked
every delivery of the endpoint for each queue head (300 ms a call at 5,000 rows, then
webhook p99 of 45 s in `make bench`; docs/architecture.md, "Events, outbox and relay").
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.db.advisory import session_of_its_own
from ipt_core.events.webhooks import hold, set_enabled
from ipt_core.events.webhooks._repository.queues import _LOCK_SENDABLE, _QUEUED
from ipt_worker.publishers._leases import QueueLeases
from tests.integration.events_support import (
    WebhookReceiver,
    append_course_events,
    fan_out_all,
    subscribe,
)
from tests.support.plans import generic_plan

# Each test ends with the queue table matching the deliveries.
pytestmark = pytest.mark.usefixtures("queues_checked")


# The due queues, then the locked queues' rows.
@pytest.mark.parametrize(
    ("statement", "index"),
    [(_LOCK_SENDABLE, "ix_webhook_queue_due"), (_QUEUED, "ix_webhook_delivery_queue")],
    ids=["queues", "rows"],
)
async def test_the_delivery_queue_queries_use_their_partial_indexes_when_generic(
    db: AsyncEngine, statement: Any, index: str
) -> None:
    async with db.connect() as conn:
        await conn.execute(text("SET enable_seqscan = off"))  # the tables are empty here
        plan = await generic_plan(conn, statement)  # EXPLAIN only: no lock is taken
        await conn.rollback()
    assert index in plan, plan
    assert "ix_webhook_delivery_endpoint_id_id" not in plan, plan  # not every delivery


async def test_the_claiming_session_plans_each_claim_with_its_values(db: AsyncEngine) -> None:
    # A generic plan made while the tables were new read each claimed queue's rows through
    # the endpoint's delivery-log index, walking all its deliveries (20-300 ms a claim in the
    # events benchmark; `plan_each_claim`). The claiming session plans every call afresh.
    async with QueueLeases.opened(db, asyncio.Event()) as leases:
        setting = await leases._conn.scalar(text("SHOW plan_cache_mode"))
    assert setting == "force_custom_plan"


async def test_a_claim_reads_what_it_claims_whatever_the_backlog_and_statistics(
    db: AsyncEngine,
) -> None:
    # 3,000 courses' events wait for an endpoint that keeps failing (each queue held back for
    # its retry) and for a disabled one: the backlog of an endpoint down for hours. Walking the
    # pending deliveries oldest first, each claim read all of them before reaching the due
    # queues (6,000 rows here); a plain join found and sorted every pending head while the
    # table had no statistics. A claim reads the due queues only, before ANALYZE and after.
    failing = await subscribe(db, WebhookReceiver())  # not started: nothing is sent here
    disabled = await subscribe(db, WebhookReceiver())
    backlog = [f"course-{n}" for n in range(3000)]
    await append_course_events(db, backlog, 1)
    await fan_out_all(db)
    retry = datetime.now(UTC) + timedelta(hours=1)
    async with db.begin() as conn:
        for course in backlog:
            await hold(conn, (failing, course), retry)
        await set_enabled(conn, disabled, False, datetime.now(UTC))
    await subscribe(db, WebhookReceiver())  # healthy
    await append_course_events(db, ["new-1", "new-2"], 1)  # due for `healthy` and `failing`
    await fan_out_all(db)
    for analyzed in (False, True):
        if analyzed:
            async with db.connect() as conn:
                await conn.execute(text("ANALYZE webhook_queue"))
                await conn.execute(text("ANALYZE webhook_delivery"))
                await conn.commit()
        plan = await _claim_plan(db, queues=4)
        assert _rows_of(plan, "webhook_delivery") == 0, analyzed
        assert _rows_of(plan, "webhook_queue") <= 4, analyzed
        assert _rows_of(plan, "due") == 4, analyzed  # the four due queues, all claimed


async def _claim_plan(db: AsyncEngine, *, queues: int) -> dict[str, Any]:
    """One claim's plan as EXPLAIN ANALYZE ran it (its locks go with its session)."""
    compiled = _LOCK_SENDABLE.compile(dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
    values = {**compiled.params, "now": datetime.now(UTC), "queues": queues}
    async with session_of_its_own(db) as conn:
        driver: Any = (await conn.get_raw_connection()).driver_connection
        (plan,) = await driver.fetchval(  # json, decoded by the engine's codec
            "EXPLAIN (ANALYZE, FORMAT JSON) " + str(compiled),
            *[values[name] for name in compiled.positiontup or ()],
        )
    return dict(plan["Plan"])


def _rows_of(node: dict[str, Any], relation: str) -> int:
    name = node.get("Relation Name") or node.get("CTE Name")
    here = node["Actual Rows"] * node["Actual Loops"] if name == relation else 0
    return int(here) + sum(_rows_of(child, relation) for child in node.get("Plans", []))
