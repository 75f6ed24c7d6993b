"""The relay lingers after a wake-up: what commits meanwhile joins the same batch; and it
sleeps only when every writer that did not NOTIFY it has committed.

Published at once after each wake-up, each batch would carry one or two events and pay a
batch's fixed cost for them (`RelayTiming.linger_s`). A writer NOTIFYs only a sleeping relay
(`ipt_core.events.RELAY_ASLEEP_LOCK`), so an awake relay must not fall asleep while such a
writer is in flight, nor spin while it waits for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ipt_core.events import (
    RELAY_ASLEEP_LOCK,
    OutboxEvent,
    append_events,
    cloud_event,
    next_sequence,
)
from ipt_worker.relay import EventRelay
from tests.integration.events_support import append_course_events, fast_timing, running
from tests.support.clock import utc_now
from tests.support.waiting import poll_until


async def _event(conn: AsyncConnection, course: str) -> dict[str, Any]:
    """A course's next event, as the status engine appends it."""
    return cloud_event(
        type_="ipt.course.status.changed",
        subject=f"CarePlan/{course}",
        partition_key=course,
        sequence=await next_sequence(conn, course),
        time=utc_now(),
        data={"course_id": course},
    )


class BatchSizes:
    """A publisher that keeps the size of each batch it was given."""

    name = "batch-sizes"

    def __init__(self) -> None:
        self.sizes: list[int] = []

    async def publish(self, conn: AsyncConnection, events: Sequence[OutboxEvent]) -> None:
        self.sizes.append(len(events))

    async def close(self) -> None:
        pass


async def test_commits_during_the_linger_are_published_in_one_batch(db: AsyncEngine) -> None:
    batches = BatchSizes()
    # Only a NOTIFY wakes the relay here (the poll fallback is far off).
    timing = fast_timing(poll_interval_s=30, linger_s=0.5)
    relay = EventRelay(db, [batches], clock=utc_now, timing=timing)
    async with running(relay):
        await poll_until(lambda: relay.is_leader)
        await asyncio.sleep(0.1)  # its first pass found nothing and waits for a NOTIFY
        for course in ("c1", "c2", "c3", "c4"):  # four commits, four NOTIFYs
            await append_course_events(db, [course], 1)
        await poll_until(lambda: relay.published == 4, within_s=5)
    assert batches.sizes == [4]


async def test_an_event_committed_without_a_notify_is_published_without_the_poll(
    db: AsyncEngine,
) -> None:
    # A writer NOTIFYs only a sleeping relay (ipt_core/events, `RELAY_ASLEEP_LOCK`). This one
    # appends while the relay is awake (lingering after a wake-up) and commits later: the relay
    # must not fall asleep in between, or the event would wait for the poll, 30 s away.
    batches = BatchSizes()
    timing = fast_timing(poll_interval_s=30, linger_s=0.3)
    relay = EventRelay(db, [batches], clock=utc_now, timing=timing)
    async with running(relay):
        await poll_until(lambda: relay.is_leader)
        await asyncio.sleep(0.1)  # asleep: its first pass found nothing
        await append_course_events(db, ["c1"], 1)  # NOTIFYs: the relay wakes and lingers
        await asyncio.sleep(0.1)
        async with db.begin() as conn:  # in the linger: the relay is awake, no NOTIFY
            await append_events(conn, "CarePlan", [await _event(conn, "c2")], utc_now())
            await asyncio.sleep(0.6)  # the relay publishes c1 and tries to sleep meanwhile
        await poll_until(lambda: relay.published == 2, within_s=3)


async def test_without_a_linger_a_writer_in_flight_does_not_spin_the_relay(
    db: AsyncEngine,
) -> None:
    passes = 0

    class Counting(EventRelay):
        async def publish_batch(self, conn: AsyncConnection) -> int:
            nonlocal passes
            passes += 1
            return await super().publish_batch(conn)

    relay = Counting(db, [BatchSizes()], clock=utc_now, timing=fast_timing(linger_s=0))
    async with running(relay):
        await poll_until(lambda: relay.is_leader)
        async with db.begin() as conn:  # as a writer in flight that did not NOTIFY
            await conn.execute(
                text("SELECT pg_advisory_xact_lock_shared(:key)"), {"key": RELAY_ASLEEP_LOCK}
            )  # taken once the relay wakes from its poll: it cannot sleep again meanwhile
            before = passes
            await asyncio.sleep(0.5)
            during = passes - before
    assert 5 <= during <= 100  # it looked again every ~10 ms, not in a tight loop
