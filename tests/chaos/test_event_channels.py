"""Event channels through faults: the relay's connection cut under it, the delivery loop's
lock connection cut under it, a webhook receiver that flaps. Events resume, every one
arrives, each course's events in order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ipt_core.events import OutboxEvent
from ipt_core.events.webhooks import QUEUE_LOCKS
from ipt_worker.relay import LEADER_LOCK, EventRelay
from tests.chaos.support import FIGURES
from tests.integration.events_support import (
    QUEUE_LOCK_HOLDERS,
    Reply,
    WebhookReceiver,
    append_course_events,
    assert_in_order_per_course,
    fast_policy,
    fast_timing,
    running,
    subscribe,
    webhook_relay,
)
from tests.support.database import query_scalar
from tests.support.waiting import poll_until

# Each test ends with the queue table matching the deliveries.
pytestmark = [pytest.mark.chaos, pytest.mark.usefixtures("queues_checked")]

COURSES = ("course-a", "course-b", "course-c")


class RecordingPublisher:
    """A publisher that keeps every envelope it was given, in order."""

    name = "recording"

    def __init__(self) -> None:
        self.envelopes: list[dict[str, Any]] = []
        self.at: list[float] = []

    async def publish(self, conn: AsyncConnection, events: Sequence[OutboxEvent]) -> None:
        self.envelopes += [event.envelope for event in events]
        self.at += [time.monotonic()] * len(events)

    async def close(self) -> None:
        pass

    def ids(self) -> list[str]:
        return [str(e["id"]) for e in self.first_sightings()]

    def first_sightings(self) -> list[dict[str, Any]]:
        firsts: dict[str, dict[str, Any]] = {}
        for envelope in self.envelopes:
            firsts.setdefault(str(envelope["id"]), envelope)
        return list(firsts.values())


async def _cut_the_leader(db: AsyncEngine) -> int:
    """pg_terminate_backend of the session holding the relay's leader lock; return how many."""
    cut = await query_scalar(
        db,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' "
        "AND granted AND objsubid = 1 "
        "AND classid::bigint = (CAST(:key AS bigint) >> 32) & 4294967295 "
        "AND objid::bigint = CAST(:key AS bigint) & 4294967295 "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        key=LEADER_LOCK,
    )
    return int(cut or 0)


def _caught_up(publisher: RecordingPublisher, appended: list[dict[str, Any]]) -> bool:
    return len(publisher.ids()) == len(appended)


async def test_the_relay_resumes_in_order_after_its_connection_is_cut(db: AsyncEngine) -> None:
    publisher = RecordingPublisher()
    relay = EventRelay(db, [publisher], clock=lambda: datetime.now(UTC), timing=fast_timing())
    appended: list[dict[str, Any]] = []
    resumed_after: list[float] = []
    async with running(relay):
        await poll_until(lambda: relay.is_leader, what="the relay to lead")
        for _ in range(3):
            appended.extend(await append_course_events(db, COURSES, 3))
            await poll_until(lambda: _caught_up(publisher, appended), what="publication")
            assert await _cut_the_leader(db) == 1
            cut_at = time.monotonic()
            appended.extend(await append_course_events(db, COURSES, 2))  # while it reconnects
            await poll_until(
                lambda: _caught_up(publisher, appended), within_s=15, what="resumption"
            )
            resumed_after.append(publisher.at[-1] - cut_at)
    FIGURES["relay connection cut x3"] = {
        "events": len(appended),
        "resumed_after_cut_s": [round(s, 2) for s in resumed_after],
        "republished_duplicates": len(publisher.envelopes) - len(publisher.ids()),
    }
    assert publisher.ids() == [e["id"] for e in appended], "an event was lost or reordered"
    # A cut between a batch's hand-over and its commit republishes the batch (at least once):
    # a consumer that drops ids it has seen must find each course in order.
    assert_in_order_per_course(publisher.first_sightings())


async def test_a_flapping_receiver_gets_every_event_once_it_is_back(
    db: AsyncEngine, receiver: WebhookReceiver
) -> None:
    await subscribe(db, receiver)
    answer = {"status": 204}
    receiver.plan = lambda envelope, attempt: Reply(answer["status"])
    sent: list[dict[str, Any]] = []
    async with running(webhook_relay(db)):
        for _ in range(3):  # down (connection refused), then up but failing, then healthy
            receiver.stop()
            sent += await append_course_events(db, COURSES, 2)
            await asyncio.sleep(0.3)
            receiver.start()
            answer["status"] = 503
            sent += await append_course_events(db, COURSES, 2)
            await asyncio.sleep(0.3)
            answer["status"] = 204
            await asyncio.sleep(0.2)
        back = time.monotonic()
        expected = {e["id"] for e in sent}
        await poll_until(lambda: receiver.accepted_ids() == expected, within_s=20, what="delivery")
        delivered_after = time.monotonic() - back
    refused = sum(r.status == 503 for r in receiver.receipts)
    FIGURES["webhook receiver flapping x3"] = {
        "events": len(sent),
        "attempts": len(receiver.receipts),
        "answered_503": refused,
        "all_delivered_after_back_s": round(delivered_after, 2),
    }
    assert refused > 0, "the receiver never failed: nothing was tested"
    assert all(r.signature_ok for r in receiver.receipts)
    assert_in_order_per_course(receiver.accepted())


async def _cut_the_delivery_locks(db: AsyncEngine) -> int:
    """pg_terminate_backend of every session holding webhook queue locks; return how many."""
    cut = await query_scalar(
        db,
        f"SELECT count(pg_terminate_backend(pid)) FROM ({QUEUE_LOCK_HOLDERS}) AS holders",
        queue_locks=QUEUE_LOCKS,
    )
    return int(cut or 0)


async def test_delivery_resumes_in_order_after_its_lock_connection_is_cut(
    db: AsyncEngine, receiver: WebhookReceiver
) -> None:
    # The receiver takes 30 ms an answer, so queues are held (and requests in flight) when the
    # lock connection goes: the loop stops its senders, reconnects and sends on, in order.
    receiver.plan = lambda envelope, attempt: Reply(delay_s=0.03)
    await subscribe(db, receiver)
    courses = [f"course-{n}" for n in range(6)]
    sent: list[dict[str, Any]] = []
    cuts = 0
    async with running(webhook_relay(db, fast_policy(concurrency=2))):
        for _ in range(3):
            sent += await append_course_events(db, courses, 3)
            some = len(sent) - 12  # most of this round still to send
            await poll_until(lambda: len(receiver.accepted()) >= some, what="delivery")  # noqa: B023
            cuts += await _cut_the_delivery_locks(db)
        cut_at = time.monotonic()
        expected = {e["id"] for e in sent}
        await poll_until(lambda: receiver.accepted_ids() == expected, within_s=20, what="all")
        resumed_after = time.monotonic() - cut_at
    FIGURES["delivery lock connection cut x3"] = {
        "events": len(sent),
        "cuts": cuts,
        "attempts": len(receiver.receipts),
        "all_delivered_after_last_cut_s": round(resumed_after, 2),
    }
    assert cuts >= 1, "no lock was held when cut: nothing was tested"
    assert all(r.signature_ok for r in receiver.receipts)
    assert_in_order_per_course(receiver.accepted())
