"""`webhook_queue` stays in step with the deliveries: under concurrent statements, after the
races only retention can mend, and when migration 0007 builds it from an existing backlog
(docs/architecture.md, "Events: outbox and relay")."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.db.engine import create_engine
from ipt_core.db.migrate import upgrade
from ipt_core.events import stamp_published
from ipt_core.events.webhooks import (
    Attempt,
    Delivered,
    hold,
    reconcile,
    record_delivered,
    record_failure,
    set_enabled,
)
from tests.integration.events_support import (
    Reply,
    WebhookReceiver,
    append_course_events,
    assert_in_order_per_course,
    assert_queues_match_deliveries,
    fan_out_all,
    fast_policy,
    running,
    subscribe,
    webhook_relay,
)
from tests.support.clock import utc_now
from tests.support.database import query_rows, query_scalar, throwaway_database
from tests.support.waiting import poll_until

# Each test ends with the queue table matching the deliveries.
pytestmark = pytest.mark.usefixtures("queues_checked")


async def _queue(db: AsyncEngine, endpoint: str, course: str) -> tuple[int, datetime | None]:
    (row,) = await query_rows(
        db,
        "SELECT pending, due_at FROM webhook_queue WHERE endpoint_id = :e AND partition_key = :c",
        e=endpoint,
        c=course,
    )
    return row.pending, row.due_at


async def test_an_acknowledgement_waits_for_a_fan_out_into_its_queue(db: AsyncEngine) -> None:
    # The relay queues a course's next event while a worker records the course's last
    # delivery: the acknowledgement waits for the fan-out's lock on the queue's row, then
    # counts off the row as committed. Had it read the count before, the new event would be
    # in no due queue (never sent); had the fan-out read it before, counted twice.
    endpoint = await subscribe(db, WebhookReceiver())  # not started: nothing is sent here
    await append_course_events(db, ["course-a"], 1)
    await fan_out_all(db)
    first = await query_scalar(db, "SELECT id FROM webhook_delivery")
    await append_course_events(db, ["course-a"], 1)
    seq = await query_scalar(db, "SELECT max(seq) FROM outbox")
    async with db.connect() as relay, db.connect() as worker:
        await relay.begin()
        await stamp_published(relay, [seq], utc_now(), fan_out=True)  # not committed yet
        assert await relay.scalar(text("SELECT count(*) FROM webhook_delivery")) == 2
        worker = await worker.execution_options(isolation_level="AUTOCOMMIT")
        ack = asyncio.create_task(
            record_delivered(worker, [Delivered(first, endpoint, 204, utc_now())])
        )
        await asyncio.sleep(0.3)
        assert not ack.done()  # waiting for the queue's row
        await relay.commit()
        await asyncio.wait_for(ack, timeout=5)
    pending, due_at = await _queue(db, endpoint, "course-a")
    assert pending == 1  # whichever came first: counted off and emptied, or counted into
    assert due_at is not None  # the new event is sendable


async def test_a_delivery_recorded_twice_is_counted_off_once(db: AsyncEngine) -> None:
    # A worker whose lock connection dropped may still record what it sent after another
    # worker took the queue over, sent it again and recorded it.
    endpoint = await subscribe(db, WebhookReceiver())
    await append_course_events(db, ["course-a"], 2)
    await fan_out_all(db)
    first = await query_scalar(db, "SELECT min(id) FROM webhook_delivery")
    delivered = Delivered(first, endpoint, 204, utc_now())
    for _ in range(2):
        async with db.connect() as conn:
            await record_delivered(conn, [delivered])
            await conn.commit()
    assert (await _queue(db, endpoint, "course-a"))[0] == 1


async def test_retention_rebuilds_what_a_race_or_an_older_version_left(db: AsyncEngine) -> None:
    on = await subscribe(db, WebhookReceiver())
    off = await subscribe(db, WebhookReceiver())
    await append_course_events(db, ["course-a", "course-b", "course-c"], 1)
    await fan_out_all(db)
    retry = datetime.now(UTC) + timedelta(hours=1)
    head = "SELECT id FROM webhook_delivery WHERE endpoint_id = :e AND partition_key = :c"
    failed = await query_scalar(db, head, e=on, c="course-b")
    delivered = await query_scalar(db, head, e=on, c="course-c")
    async with db.begin() as conn:  # course-b's head failed, as the delivery loop records it
        attempt = Attempt(failed, on, "course-b", 503, "http-503", retry)
        await record_failure(conn, attempt, utc_now())
        await hold(conn, (on, "course-b"), retry)
        await set_enabled(conn, off, False, datetime.now(UTC))
    async with db.connect() as conn:
        await record_delivered(conn, [Delivered(delivered, on, 204, utc_now())])
        await conn.commit()
    assert await query_scalar(db, "SELECT count(*) FROM webhook_queue") == 5  # c emptied
    # What the races leave (they cannot be made to happen on demand): an enabled endpoint's
    # queues parked (a replay that read it disabled as it was enabled), and a disabled one's
    # due (a fan-out that read it enabled as it was disabled). And what a worker of a version
    # before the table leaves during a rolling upgrade: a delivery recorded without being
    # counted off (course-a), one queued without being counted in (course-d).
    await append_course_events(db, ["course-d"], 1)
    async with db.begin() as conn:
        for sql in _LEFT_WRONG:
            await conn.execute(text(sql), {"on": on, "off": off})
    with pytest.raises(AssertionError):
        await assert_queues_match_deliveries(db)

    async with db.begin() as conn:
        assert await reconcile(conn)
    await assert_queues_match_deliveries(db)
    assert (await _queue(db, on, "course-b"))[1] == retry  # its head's retry, not sooner
    assert (await _queue(db, on, "course-d"))[0] == 1


_LEFT_WRONG = (
    "UPDATE webhook_queue SET due_at = NULL WHERE endpoint_id = :on",
    "UPDATE webhook_queue SET due_at = now() WHERE endpoint_id = :off",
    "UPDATE webhook_delivery SET status = 'delivered' "
    "WHERE endpoint_id = :on AND partition_key = 'course-a'",
    "INSERT INTO webhook_delivery (endpoint_id, event_seq, event_id, event_type, partition_key,"
    " status, attempts, next_attempt_at, created_at) SELECT :on, seq, id, type, aggregateid,"
    " 'pending', 0, now(), now() FROM outbox WHERE aggregateid = 'course-d'",
)


async def test_retention_leaves_the_rebuild_for_later_when_the_queues_are_busy(
    db: AsyncEngine,
) -> None:
    endpoint = await subscribe(db, WebhookReceiver())
    await append_course_events(db, ["course-a"], 1)
    await fan_out_all(db)
    async with db.connect() as busy, db.connect() as retention:
        await busy.begin()  # a statement about to change a queue holds its row
        await busy.execute(text("SELECT * FROM webhook_queue FOR UPDATE"))
        async with retention.begin():
            assert not await reconcile(retention)  # gave up after 2 s, did nothing
        await busy.rollback()
    assert (await _queue(db, endpoint, "course-a"))[0] == 1


async def test_migration_0007_builds_the_queues_of_an_existing_backlog(server_url: str) -> None:
    async with throwaway_database(server_url) as url:
        engine = create_engine(url, pool_size=2)
        try:
            await upgrade(engine, "0006")
            retry = datetime.now(UTC) + timedelta(hours=1)
            async with engine.begin() as conn:
                await conn.execute(text(_ENDPOINTS))
                await conn.execute(text(_DELIVERIES), {"retry": retry})
            await upgrade(engine)
            await assert_queues_match_deliveries(engine)
            rows = await query_rows(
                engine,
                "SELECT endpoint_id, partition_key, pending, due_at FROM webhook_queue "
                "ORDER BY endpoint_id, partition_key",
            )
            assert [(r.endpoint_id, r.partition_key, r.pending) for r in rows] == [
                ("off", "course-a", 1),
                ("on", "course-a", 2),
                ("on", "course-b", 1),
            ]
            assert [r.due_at for r in rows][:2] == [None, retry]
        finally:
            await engine.dispose()


# At revision 0006, two endpoints: `on` with course-a's head failed and two delivered rows,
# `off` disabled with one pending.
_ENDPOINTS = """
INSERT INTO webhook_endpoint (id, url, secret, event_types, enabled, consecutive_failures,
                              created_at)
VALUES ('on', 'https://a.example', 's', '{}', true, 1, now()),
       ('off', 'https://b.example', 's', '{}', false, 0, now())
"""
_DELIVERIES = """
INSERT INTO webhook_delivery (endpoint_id, event_seq, event_id, event_type, partition_key,
                              status, attempts, next_attempt_at, created_at)
VALUES ('on', 1, 'e1', 't', 'course-a', 'delivered', 1, now(), now()),
       ('on', 2, 'e2', 't', 'course-a', 'pending', 3, :retry, now()),
       ('on', 3, 'e3', 't', 'course-a', 'pending', 0, now(), now()),
       ('on', 4, 'e4', 't', 'course-b', 'pending', 0, now(), now()),
       ('on', 5, 'e5', 't', 'course-c', 'delivered', 1, now(), now()),
       ('off', 6, 'e6', 't', 'course-a', 'pending', 0, now(), now())
"""


async def test_the_queues_stay_in_step_under_concurrent_delivery_failures_and_toggling(
    db: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    # Two worker processes deliver to two endpoints, one of them failing an event in five
    # once, while events keep coming and the other endpoint is disabled and enabled again and
    # again: every statement that keeps the queue table runs against the others. Nothing may
    # fail (a deadlock would: the relay or a delivery loop logs it), nothing may be left
    # pending once it is enabled for good, and the table must match the deliveries.
    flaky, toggled = WebhookReceiver(), WebhookReceiver()
    flaky.plan = lambda envelope, attempt: (
        Reply(503) if attempt == 1 and int(envelope["sequence"]) % 5 == 0 else Reply()
    )
    for receiver in (flaky, toggled):
        receiver.start()
    try:
        await subscribe(db, flaky)
        switched = await subscribe(db, toggled)
        courses = [f"course-{n}" for n in range(10)]
        stop = asyncio.Event()

        async def toggle() -> None:
            enabled = True
            while not stop.is_set():
                enabled = not enabled
                async with db.begin() as conn:
                    await set_enabled(conn, switched, enabled, utc_now())
                await asyncio.sleep(0.03)
            async with db.begin() as conn:
                await set_enabled(conn, switched, True, utc_now())

        caplog.set_level(logging.WARNING, logger="ipt_worker")
        policy = fast_policy(concurrency=3)
        async with running(webhook_relay(db, policy)), running(webhook_relay(db, policy)):
            toggling = asyncio.create_task(toggle())
            for _ in range(6):  # over about a second, while deliveries run
                await append_course_events(db, courses, 2)
                await asyncio.sleep(0.15)
            stop.set()
            await toggling
            await poll_until(
                lambda: _nothing_pending(db), within_s=20, what="every queued event delivered"
            )
        assert [r.getMessage() for r in caplog.records if r.name.startswith("ipt_worker")] == []
        assert_in_order_per_course(flaky.accepted())
        assert_in_order_per_course(toggled.accepted())
        assert len(flaky.accepted_ids()) == 6 * 2 * len(courses)
    finally:
        for receiver in (flaky, toggled):
            receiver.stop()


async def _nothing_pending(db: AsyncEngine) -> bool:
    pending = "SELECT count(*) FROM webhook_delivery WHERE status = 'pending'"
    return int(await query_scalar(db, pending)) == 0


async def test_a_claimed_queue_with_nothing_pending_is_dropped_not_claimed_again(
    db: AsyncEngine, receiver: WebhookReceiver
) -> None:
    # Forty queues counted too high, as a worker of a version before the table leaves them
    # during a rolling upgrade, due for an hour: every claim (up to 32 queues) would take them
    # first, find nothing to send, give them back, and take them again, ahead of the real
    # queue behind them, until retention's rebuild.
    endpoint = await subscribe(db, receiver)
    async with running(webhook_relay(db)):
        first = await append_course_events(db, ["course-0"], 1)  # the relay leads: its
        await poll_until(
            lambda: receiver.accepted_ids() == {e["id"] for e in first}, what="the first event"
        )
        async with db.begin() as conn:  # first retention pass (a rebuild) is behind it
            await conn.execute(
                text(
                    "INSERT INTO webhook_queue (endpoint_id, partition_key, pending, due_at) "
                    "SELECT :e, 'phantom-' || n, 1, now() - interval '1 hour' "
                    "FROM generate_series(1, 40) AS n"
                ),
                {"e": endpoint},
            )
        sent = await append_course_events(db, ["course-a"], 1)
        await poll_until(lambda: {e["id"] for e in sent} <= receiver.accepted_ids())
        count = "SELECT count(*) FROM webhook_queue"
        await poll_until(lambda: query_scalar(db, count), until=lambda n: n == 0)
