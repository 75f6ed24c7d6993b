"""Delivery queues are shared out among worker processes by session advisory locks.

`lock_sendable` locks queues that no session holds; a lock goes with `unlock` or with its
session, and the queue can then be taken by another (docs/architecture.md, "Events: outbox
and relay").
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ipt_core.db.advisory import session_of_its_own
from ipt_core.events.webhooks import QUEUE_LOCKS, hold, lock_sendable, queued, set_enabled, unlock
from tests.integration.events_support import (
    WebhookReceiver,
    append_course_events,
    fan_out_all,
    subscribe,
)

# Each test ends with the queue table matching the deliveries.
pytestmark = pytest.mark.usefixtures("queues_checked")

COURSES = ("course-a", "course-b", "course-c", "course-d")


@asynccontextmanager
async def session(db: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection of its own, as a worker's lock connection (its session ends on exit)."""
    async with session_of_its_own(db) as conn:
        yield await conn.execution_options(isolation_level="AUTOCOMMIT")


async def _queued_for_a_subscriber(db: AsyncEngine, per_course: int = 2) -> str:
    endpoint = await subscribe(db, WebhookReceiver())  # not started: nothing is sent here
    await append_course_events(db, COURSES, per_course)
    await fan_out_all(db)  # by hand: no delivery loop runs
    return endpoint


def _later() -> datetime:
    return datetime.now(UTC) + timedelta(seconds=1)


async def test_a_queue_one_session_holds_is_not_taken_by_another(db: AsyncEngine) -> None:
    endpoint = await _queued_for_a_subscriber(db)
    async with session(db) as first, session(db) as second:
        mine = await lock_sendable(first, _later(), queues=2)
        theirs = await lock_sendable(second, _later(), queues=10)
        assert len(mine) == 2
        assert sorted(mine + theirs) == [(endpoint, key) for key in COURSES]  # what is free
        assert await lock_sendable(second, _later(), queues=10) == []
        assert await lock_sendable(first, _later(), queues=10) == []  # not twice, either

        await unlock(first, mine[:1])
        assert await lock_sendable(second, _later(), queues=10) == mine[:1]
    async with session(db) as third:  # the first two sessions ended: their locks went
        again = await lock_sendable(third, _later(), queues=10)
        assert sorted(key for _, key in again) == list(COURSES)


async def test_the_rows_of_locked_queues_come_in_order(db: AsyncEngine) -> None:
    endpoint = await _queued_for_a_subscriber(db, per_course=3)
    async with session(db) as conn:
        locked = await lock_sendable(conn, _later(), queues=2)
        rows = await queued(conn, locked, per_queue=2)
    assert [row.id for row in rows] == sorted(row.id for row in rows)  # oldest first
    for queue in locked:  # two of each locked queue's three, its first two
        assert queue[0] == endpoint
        sequences = [int(row.envelope["sequence"]) for row in rows if row.partition_key == queue[1]]
        assert sequences == [1, 2]
    assert len(rows) == 4


async def test_only_due_heads_of_enabled_endpoints_are_locked(db: AsyncEngine) -> None:
    endpoint = await _queued_for_a_subscriber(db)
    async with db.begin() as conn:  # course-a's head failed and waits for its retry
        await hold(conn, (endpoint, "course-a"), datetime.now(UTC) + timedelta(hours=1))
    async with session(db) as conn:
        locked = await lock_sendable(conn, _later(), queues=10)
        assert sorted(key for _, key in locked) == ["course-b", "course-c", "course-d"]
        held = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 "
                "AND classid::bigint = :class AND pid = pg_backend_pid()"
            ),
            {"class": QUEUE_LOCKS},
        )
        assert held == 3  # nothing locked beyond what was returned
        await unlock(conn, locked)
        async with db.begin() as write:
            await set_enabled(write, endpoint, False, datetime.now(UTC))
        assert await lock_sendable(conn, _later(), queues=10) == []
        async with db.begin() as write:  # on again: its queues are due now, the held one too
            await set_enabled(write, endpoint, True, datetime.now(UTC))
        locked = await lock_sendable(conn, _later(), queues=10)
        assert sorted(key for _, key in locked) == list(COURSES)
