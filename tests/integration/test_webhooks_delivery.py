"""Webhook delivery to a real HTTP receiver: signatures, ordering per course, faults.

Every fault ends the same way: once the receiver recovers, every event has arrived, each
course's events in order, every signature valid (checked by `standardwebhooks`).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.events.webhooks import QUEUE_LOCKS, set_enabled
from tests.integration.events_support import (
    QUEUE_LOCK_HOLDERS,
    Reply,
    WebhookReceiver,
    append_course_events,
    assert_in_order_per_course,
    fan_out_all,
    fast_policy,
    running,
    subscribe,
    webhook_relay,
)
from tests.support.scripted_http import Reply as ScriptedReply
from tests.support.scripted_http import Request, ScriptedServer
from tests.support.waiting import poll_until

# Each test ends with the queue table matching the deliveries.
pytestmark = pytest.mark.usefixtures("queues_checked")

COURSES = ("course-a", "course-b", "course-c")


async def test_events_arrive_signed_as_structured_cloudevents_in_order(
    db: AsyncEngine, receiver: WebhookReceiver
) -> None:
    await subscribe(db, receiver)
    async with running(webhook_relay(db)):
        sent = await append_course_events(db, COURSES, 5)
        await poll_until(lambda: receiver.accepted_ids() == {e["id"] for e in sent})
    assert all(receipt.signature_ok for receipt in receiver.receipts)
    first = receiver.receipts[0]
    assert first.headers["content-type"] == "application/cloudevents+json"
    assert first.headers["webhook-id"] == first.envelope["id"]
    assert first.envelope["specversion"] == "1.0"
    assert len(receiver.receipts) == len(sent)  # no fault, no duplicate
    assert_in_order_per_course(receiver.accepted())


async def test_types_and_therapist_filters_choose_the_events(
    db: AsyncEngine, receiver: WebhookReceiver
) -> None:
    async with db.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO ipt_course (id, patient_id, therapist_ref, status, course_type, "
                "problem_areas, recurrent) VALUES "
                "('course-a', 'p1', 'Practitioner/t1', 'active', 'acute', '{grief}', false), "
                "('course-b', 'p2', 'Practitioner/t2', 'active', 'acute', '{grief}', false)"
            )
        )
    await subscribe(
        db, receiver, event_types=["ipt.course.phase.changed"], therapist="Practitioner/t1"
    )
    async with running(webhook_relay(db)):
        await append_course_events(db, ["course-a", "course-b"], 2)
        wanted = await append_course_events(
            db, ["course-a", "course-b"], 2, type_="ipt.course.phase.changed"
        )
        expected = {e["id"] for e in wanted if e["partitionkey"] == "course-a"}
        await poll_until(lambda: receiver.accepted_ids() == expected)
    assert {e["type"] for e in receiver.accepted()} == {"ipt.course.phase.changed"}


def _fail_course_a_three_times(envelope: dict[str, Any], attempt: int) -> Reply:
    return Reply(500) if envelope["partitionkey"] == "course-a" and attempt <= 3 else Reply()


async def test_a_failing_event_holds_back_its_course_only(
    db: AsyncEngine, receiver: WebhookReceiver
) -> None:
    receiver.plan = _fail_course_a_three_times
    await subscribe(db, receiver)
    async with running(webhook_relay(db)):
        sent = await append_course_events(db, COURSES, 4)
        await poll_until(lambda: receiver.accepted_ids() == {e["id"] for e in sent})
    accepted = receiver.accepted()
    assert_in_order_per_course(accepted)
    # course-b and course-c went on while course-a's first event was being retried.
    first_a = next(i for i, e in enumerate(accepted) if e["partitionkey"] == "course-a")
    assert first_a > 0
    assert sum(r.status == 500 for r in receiver.receipts) == 4 * 3
    # No event of course-a was attempted before the one ahead of it was accepted.
    attempts_a = [
        int(r.envelope["sequence"])
        for r in receiver.receipts
        if r.envelope["partitionkey"] == "course-a"
    ]
    assert attempts_a == sorted(attempts_a)
    assert len(attempts_a) == 4 * 4


FAULTS = {
    "500s": lambda envelope, attempt: Reply(500) if attempt <= 2 else Reply(),
    "503 with Retry-After": lambda envelope, attempt: (
        Reply(503, headers={"Retry-After": "1"}) if attempt == 1 else Reply()
    ),
    "timeouts": lambda envelope, attempt: Reply(delay_s=0.6) if attempt == 1 else Reply(),
}


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_every_event_arrives_once_the_receiver_recovers(
    db: AsyncEngine, receiver: WebhookReceiver, fault: str
) -> None:
    receiver.plan = FAULTS[fault]
    await subscribe(db, receiver)
    async with running(webhook_relay(db, fast_policy(timeout_s=0.3))):
        sent = await append_course_events(db, COURSES, 3)
        await poll_until(lambda: receiver.accepted_ids() == {e["id"] for e in sent}, within_s=8)
    assert_in_order_per_course(receiver.accepted())
    assert all(receipt.signature_ok for receipt in receiver.receipts)


async def test_retry_after_is_honoured(db: AsyncEngine, receiver: WebhookReceiver) -> None:
    receiver.plan = lambda envelope, attempt: (
        Reply(429, headers={"Retry-After": "1"}) if attempt == 1 else Reply()
    )
    await subscribe(db, receiver)
    async with running(webhook_relay(db)):
        (event,) = await append_course_events(db, ["course-a"], 1)
        await poll_until(lambda: receiver.accepted_ids() == {event["id"]})
    refused, accepted = receiver.receipts
    assert refused.status == 429
    assert accepted.at - refused.at >= 0.95  # not before the receiver asked (backoff: 0.05 s)


async def test_a_receiver_down_for_a_while_gets_everything_in_order(
    db: AsyncEngine, receiver: WebhookReceiver
) -> None:
    await subscribe(db, receiver)
    receiver.stop()
    async with running(webhook_relay(db)):
        sent = await append_course_events(db, COURSES, 4)
        await poll_until(lambda: _attempts(db, minimum=3), what="failed attempts")
        receiver.start()
        await poll_until(lambda: receiver.accepted_ids() == {e["id"] for e in sent}, within_s=8)
    assert_in_order_per_course(receiver.accepted())
    async with db.connect() as conn:
        retried = await conn.scalar(text("SELECT max(attempts) FROM webhook_delivery"))
    assert retried > 1


async def _attempts(db: AsyncEngine, *, minimum: int) -> bool:
    async with db.connect() as conn:
        attempts = await conn.scalar(
            text("SELECT coalesce(sum(attempts), 0) FROM webhook_delivery")
        )
    return int(attempts) >= minimum


async def test_410_disables_the_endpoint_and_says_so(
    db: AsyncEngine, receiver: WebhookReceiver
) -> None:
    receiver.plan = lambda envelope, attempt: Reply(410)
    endpoint_id = await subscribe(db, receiver)
    # Both queued before the relay runs: one batch fans both out before the 410 comes back.
    await append_course_events(db, ["course-a"], 2)
    async with running(webhook_relay(db)):
        await poll_until(lambda: _disabled_event(db, endpoint_id), what="the disabled event")
    assert len(receiver.receipts) == 1  # nothing more after the 410
    async with db.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT enabled, disabled_reason FROM webhook_endpoint WHERE id = :id"),
                {"id": endpoint_id},
            )
        ).one()
        pending = await conn.scalar(
            text("SELECT count(*) FROM webhook_delivery WHERE status = 'pending'")
        )
    assert (row.enabled, row.disabled_reason) == (False, "gone")
    assert pending == 2  # kept: enabling the endpoint again sends them


async def test_consecutive_failures_disable_the_endpoint(
    db: AsyncEngine, receiver: WebhookReceiver
) -> None:
    receiver.plan = lambda envelope, attempt: Reply(500)
    endpoint_id = await subscribe(db, receiver)
    async with running(webhook_relay(db, fast_policy(max_failures=4))):
        await append_course_events(db, ["course-a"], 2)  # one queue: attempts one by one
        await poll_until(lambda: _disabled_event(db, endpoint_id), what="the disabled event")
    assert len(receiver.receipts) == 4
    async with db.connect() as conn:
        payload = await conn.scalar(
            text("SELECT payload FROM outbox WHERE type = 'ipt.webhook.endpoint.disabled'")
        )
    assert payload["data"] == {
        "endpoint_id": endpoint_id,
        "reason": "failing",
        "consecutive_failures": 4,
    }


async def _disabled_event(db: AsyncEngine, endpoint_id: str) -> bool:
    """Whether the relay has published the `disabled` event, i.e. fanned it out: queued for
    the endpoints enabled then, not for the one it disabled."""
    async with db.connect() as conn:
        found = await conn.scalar(
            text(
                "SELECT count(*) FROM outbox WHERE type = 'ipt.webhook.endpoint.disabled' "
                "AND published_at IS NOT NULL"
            )
        )
    return bool(found)


async def test_enabling_again_sends_what_waited(db: AsyncEngine, receiver: WebhookReceiver) -> None:
    # Gone for the first request only (not for a wall-clock window, which a loaded machine
    # can miss before the first delivery starts).
    served: list[str] = []

    def gone_once(envelope: dict[str, Any], attempt: int) -> Reply:
        served.append(str(envelope["id"]))
        return Reply(410) if len(served) == 1 else Reply()

    receiver.plan = gone_once
    endpoint_id = await subscribe(db, receiver)
    # Queued before the relay runs, so one batch fans them all out before the 410 comes back:
    # what the relay publishes while an endpoint is off is not queued for it (only what
    # waited is sent when it is enabled again).
    sent = await append_course_events(db, COURSES, 2)
    async with running(webhook_relay(db)):
        # Enabled again once the disabled event is fanned out: enabled before that, the
        # endpoint would be sent its own disabled event too (it asks for every type).
        await poll_until(lambda: _disabled_event(db, endpoint_id), what="the disabled event")
        async with db.begin() as conn:
            await set_enabled(conn, endpoint_id, True, datetime.now(UTC))
        await poll_until(lambda: receiver.accepted_ids() == {e["id"] for e in sent})
    assert_in_order_per_course(receiver.accepted())


async def test_a_connection_broken_mid_response_is_retried(db: AsyncEngine) -> None:
    # The first answer breaks off mid-body (3 of its 10 bytes, then the connection closes):
    # not a delivery. The event is sent again, and the second answer delivers it.
    def script(request: Request, n: int) -> ScriptedReply:
        if n == 1:
            return ScriptedReply(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc", close=True)
        return ScriptedReply(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")

    async with ScriptedServer(script) as server:
        await subscribe(db, server)
        async with running(webhook_relay(db)):
            (event,) = await append_course_events(db, ["course-a"], 1)
            await poll_until(lambda: _attempts(db, minimum=2))
            await poll_until(lambda: len(server.requests) == 2)
    assert [r.headers["webhook-id"] for r in server.requests] == [event["id"], event["id"]]
    async with db.connect() as conn:
        row = (await conn.execute(text("SELECT status, attempts FROM webhook_delivery"))).one()
    assert (row.status, row.attempts) == ("delivered", 2)


async def test_a_sender_goes_on_while_its_successes_are_being_recorded(
    db: AsyncEngine, receiver: WebhookReceiver
) -> None:
    # The recording of successes is blocked (a SHARE lock stops its UPDATE, not the reads):
    # with one sender, course-b is sent anyway, and course-a, delivered but not yet recorded,
    # is not sent again meanwhile. Once the lock goes, both are recorded delivered.
    await subscribe(db, receiver)
    await append_course_events(db, ["course-a", "course-b"], 1)
    await fan_out_all(db)  # fanned out, not yet delivered
    deliverer = webhook_relay(db, fast_policy(concurrency=1)).deliverer
    assert deliverer is not None
    stop, tasks = asyncio.Event(), []
    try:
        async with db.connect() as locker:  # closed (lock released) before the loop stops
            await locker.begin()
            await locker.execute(text("LOCK TABLE webhook_delivery IN SHARE MODE"))
            tasks.append(asyncio.create_task(deliverer.run(stop)))
            await poll_until(lambda: len(receiver.receipts) == 2, what="both sent", within_s=5)
            await asyncio.sleep(0.5)  # five poll intervals: course-a is not claimed again
            sent = {r.headers["webhook-id"] for r in receiver.receipts}
            assert len(sent) == len(receiver.receipts) == 2
        await poll_until(lambda: _delivered(db, 2), what="both recorded delivered")
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)


async def _delivered(db: AsyncEngine, count: int) -> bool:
    async with db.connect() as conn:
        found = await conn.scalar(
            text("SELECT count(*) FROM webhook_delivery WHERE status = 'delivered'")
        )
    return int(found) == count


async def test_two_workers_share_the_queues_and_keep_each_course_in_order(
    db: AsyncEngine, receiver: WebhookReceiver
) -> None:
    # Two worker processes' relays (one leads, both deliver) against a receiver that takes
    # 20 ms an answer: both hold queues while it runs, and still every event arrives once,
    # each course's in order.
    receiver.plan = lambda envelope, attempt: Reply(delay_s=0.02)
    await subscribe(db, receiver)
    courses = [f"course-{n}" for n in range(12)]
    holders: set[int] = set()
    policy = fast_policy(concurrency=2)
    async with running(webhook_relay(db, policy)), running(webhook_relay(db, policy)):
        sent = await append_course_events(db, courses, 4)
        deadline = time.monotonic() + 15
        while receiver.accepted_ids() != {e["id"] for e in sent}:
            assert time.monotonic() < deadline, "not every event arrived"
            holders |= await _queue_lock_holders(db)
            await asyncio.sleep(0.01)
    assert len(holders) == 2, holders  # both processes' lock connections held queues
    assert len(receiver.receipts) == len(sent)  # none sent twice
    assert_in_order_per_course(receiver.accepted())


async def _queue_lock_holders(db: AsyncEngine) -> set[int]:
    async with db.connect() as conn:
        pids = await conn.scalars(text(QUEUE_LOCK_HOLDERS), {"queue_locks": QUEUE_LOCKS})
        return set(pids)


async def test_a_redirect_is_not_followed(db: AsyncEngine, receiver: WebhookReceiver) -> None:
    # A redirect would send the signed event where the subscriber never registered: it is a
    # failed attempt (retried at the registered URL), never a request to the Location.
    elsewhere = WebhookReceiver()
    elsewhere.start()
    try:
        receiver.plan = lambda envelope, attempt: Reply(307, headers={"location": elsewhere.url})
        await subscribe(db, receiver)
        async with running(webhook_relay(db)):
            await append_course_events(db, ["course-a"], 1)
            await poll_until(lambda: len(receiver.receipts) >= 2, what="a retry")
        assert elsewhere.receipts == []
        async with db.connect() as conn:
            error = await conn.scalar(text("SELECT last_error FROM webhook_delivery"))
        assert error == "http-307"
    finally:
        elsewhere.stop()


async def test_a_receiver_cookie_is_not_sent_back(
    db: AsyncEngine, receiver: WebhookReceiver
) -> None:
    # No cookie jar: what one receiver sets is never sent with a later delivery (to it, or
    # to another endpoint's receiver).
    receiver.plan = lambda envelope, attempt: Reply(204, headers={"set-cookie": "session=abc"})
    await subscribe(db, receiver)
    async with running(webhook_relay(db, fast_policy(concurrency=1))):
        sent = await append_course_events(db, ["course-a"], 3)
        await poll_until(lambda: receiver.accepted_ids() == {e["id"] for e in sent})
    assert [r.headers.get("cookie") for r in receiver.receipts] == [None, None, None]
