"""The relay's batch: one statement when every publisher lives in the database, all or nothing
either way (docs/architecture.md, "Events: outbox and relay")."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ipt_core.db.driver import autocommit_driver
from ipt_core.events import FEED_CHANNEL, OutboxEvent
from ipt_worker.relay import EventRelay
from ipt_worker.relay._relay import PublisherFailed
from tests.integration.events_support import (
    WebhookReceiver,
    append_course_events,
    relay_connection,
    subscribe,
    webhook_relay,
)
from tests.support.clock import utc_now
from tests.support.database import query_rows, query_scalar


async def test_a_batch_of_in_database_publishers_is_one_statement(db: AsyncEngine) -> None:
    await subscribe(db, WebhookReceiver())  # not started: only queued here
    await append_course_events(db, ["course-a", "course-b"], 3)
    relay = webhook_relay(db)  # fans out; its delivery loop is not started
    statements: list[str] = []
    async with relay_connection(db) as conn:
        driver: Any = await autocommit_driver(conn)
        driver.add_query_logger(lambda record: statements.append(record.query))
        assert await relay.publish_batch(conn) == 6
    assert len(statements) == 1, statements  # no BEGIN, no COMMIT, no second statement
    rows = await query_rows(db, "SELECT seq, feed_position FROM outbox ORDER BY seq")
    assert [row.feed_position for row in rows] == [1, 2, 3, 4, 5, 6]  # numbered in seq order
    assert await query_scalar(db, "SELECT count(*) FROM webhook_delivery") == 6
    assert await query_scalar(db, "SELECT sum(pending) FROM webhook_queue") == 6


async def test_an_empty_batch_wakes_no_feed_reader(db: AsyncEngine) -> None:
    # The stamp NOTIFYs feed readers in a scalar subquery that runs only when the batch has
    # a row: a relay polling an empty outbox must not wake every reader at each poll.
    heard: asyncio.Queue[str] = asyncio.Queue()
    relay = EventRelay(db, clock=utc_now)
    async with db.connect() as listening, relay_connection(db) as conn:
        listener: Any = (await listening.get_raw_connection()).driver_connection
        await listener.add_listener(FEED_CHANNEL, lambda *args: heard.put_nowait(args[2]))
        assert await relay.publish_batch(conn) == 0
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(heard.get(), timeout=0.5)
        await append_course_events(db, ["course-a"], 1)
        assert await relay.publish_batch(conn) == 1
        assert await asyncio.wait_for(heard.get(), timeout=5) == FEED_CHANNEL


class Refusing:
    """A publisher outside the database whose destination refuses every batch."""

    name = "refusing"

    def __init__(self) -> None:
        self.seen: list[int] = []

    async def publish(self, conn: AsyncConnection, events: Sequence[OutboxEvent]) -> None:
        self.seen.extend(event.seq for event in events)
        raise ConnectionError("the destination is down")

    async def close(self) -> None:
        pass


async def test_a_batch_an_outside_publisher_refused_is_neither_stamped_nor_queued(
    db: AsyncEngine,
) -> None:
    await subscribe(db, WebhookReceiver())
    await append_course_events(db, ["course-a"], 2)
    refusing = Refusing()
    fanning = webhook_relay(db)
    relay = EventRelay(db, [refusing], clock=utc_now, deliverer=fanning.deliverer)
    async with relay_connection(db) as conn:
        with pytest.raises(PublisherFailed, match="refusing: ConnectionError"):
            await relay.publish_batch(conn)
        driver: Any = await autocommit_driver(conn)
        assert not driver.is_in_transaction()  # rolled back
    assert len(refusing.seen) == 2
    assert await query_scalar(db, "SELECT count(*) FROM outbox WHERE published_at IS NULL") == 2
    assert await query_scalar(db, "SELECT count(*) FROM webhook_delivery") == 0
    assert relay.published == 0


async def test_a_batch_an_outside_publisher_took_is_stamped_and_queued_with_it(
    db: AsyncEngine,
) -> None:
    class Taking(Refusing):
        async def publish(self, conn: AsyncConnection, events: Sequence[OutboxEvent]) -> None:
            self.seen.extend(event.seq for event in events)

    await subscribe(db, WebhookReceiver())
    await append_course_events(db, ["course-a"], 2)
    taking = Taking()
    relay = EventRelay(db, [taking], clock=utc_now, deliverer=webhook_relay(db).deliverer)
    async with relay_connection(db) as conn:
        assert await relay.publish_batch(conn) == 2
    rows = await query_rows(db, "SELECT seq, feed_position FROM outbox ORDER BY seq")
    assert [row.seq for row in rows] == taking.seen
    assert [row.feed_position for row in rows] == [1, 2]
    assert await query_scalar(db, "SELECT count(*) FROM webhook_delivery") == 2
