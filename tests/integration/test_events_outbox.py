"""The outbox: `fhir.resource.changed` per FHIR write, NOTIFY on commit, retention."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.composition import write_listeners
from ipt_core.events import (
    OUTBOX_CHANNEL,
    RELAY_ASLEEP_LOCK,
    OutboxListener,
    any_unpublished,
    cloud_event,
    delete_expired_events,
    next_sequence,
    stamp_published,
    unpublished,
)
from ipt_core.events._outbox import append_sequenced
from ipt_core.events.webhooks import create_endpoint
from ipt_core.fhir.store import ResourceStore
from ipt_core.ipt import Course, course_to_careplan
from ipt_core.ipt.partitions import course_partition_key
from tests.integration.events_support import TEST_KEYRING, append_course_events

NOW = datetime(2026, 3, 4, 12, tzinfo=UTC)
PATIENT = {"resourceType": "Patient", "name": [{"family": "Secretname"}], "gender": "female"}


async def outbox_rows(db: AsyncEngine) -> list[Any]:
    async with db.connect() as conn:
        rows = await conn.execute(
            text("SELECT aggregatetype, aggregateid, type, payload FROM outbox ORDER BY seq")
        )
        return list(rows)


async def test_every_write_emits_resource_changed_without_content(db: AsyncEngine) -> None:
    async with db.begin() as conn:
        store = ResourceStore(conn, listeners=[OutboxListener()], clock=lambda: NOW)
        created = await store.create("Patient", PATIENT)
        patient_id = created.stored.id
        await store.update("Patient", patient_id, {**PATIENT, "id": patient_id, "gender": "male"})
        await store.delete("Patient", patient_id)
    rows = await outbox_rows(db)
    assert [row.payload["data"] for row in rows] == [
        {"type": "Patient", "id": patient_id, "versionId": str(n), "action": action}
        for n, action in ((1, "create"), (2, "update"), (3, "delete"))
    ]
    first = rows[0].payload
    assert first["type"] == "fhir.resource.changed"
    assert first["subject"] == f"Patient/{patient_id}"
    assert first["partitionkey"] == f"Patient/{patient_id}"
    assert [int(row.payload["sequence"]) for row in rows] == [1, 2, 3]
    assert {row.aggregatetype for row in rows} == {"Patient"}
    assert b"Secretname" not in orjson.dumps([row.payload for row in rows])


async def test_an_ipt_careplan_is_partitioned_by_its_course(db: AsyncEngine) -> None:
    course = Course(
        id="c1", patient="Patient/p1", problem_areas=("grief",), start=NOW, status="active"
    )
    careplan = course_to_careplan(course)
    plain = {"resourceType": "CarePlan", "status": "active", "intent": "plan",
             "subject": {"reference": "Patient/p1"}}  # fmt: skip
    async with db.begin() as conn:
        store = ResourceStore(
            conn, listeners=[OutboxListener(course_partition_key)], clock=lambda: NOW
        )
        ipt = await store.create("CarePlan", careplan)
        other = await store.create("CarePlan", plain)
        await store.delete("CarePlan", ipt.stored.id)  # content gone: the old version decides
    keys = [row.aggregateid for row in await outbox_rows(db)]
    assert keys == [ipt.stored.id, f"CarePlan/{other.stored.id}", ipt.stored.id]


async def test_a_rolled_back_write_leaves_no_event(db: AsyncEngine) -> None:
    class Refuse:
        async def resource_written(self, conn: Any, change: Any) -> None:
            raise RuntimeError("refused")

    try:
        async with db.begin() as conn:
            store = ResourceStore(conn, listeners=[OutboxListener(), Refuse()])
            await store.create("Patient", PATIENT)
    except RuntimeError:
        pass
    assert await outbox_rows(db) == []


def test_every_process_registers_the_outbox_after_the_projections() -> None:
    names = [type(listener).__name__ for listener in write_listeners()]
    assert names == ["IptProjections", "EhrPushListener", "OutboxListener"]


@asynccontextmanager
async def _listening(db: AsyncEngine, *, asleep: bool) -> AsyncIterator[asyncio.Queue[str]]:
    """The notifications on the relay's channel, heard as the relay leader would hear them:
    holding `RELAY_ASLEEP_LOCK` (asleep) or not (awake)."""
    received: asyncio.Queue[str] = asyncio.Queue()
    async with db.connect() as listener:
        driver: Any = (await listener.get_raw_connection()).driver_connection
        if asleep:
            await driver.execute(f"SELECT pg_advisory_lock({RELAY_ASLEEP_LOCK})")

        def on_notify(*args: Any) -> None:
            received.put_nowait(args[2])

        await driver.add_listener(OUTBOX_CHANNEL, on_notify)
        try:
            yield received
        finally:
            await driver.remove_listener(OUTBOX_CHANNEL, on_notify)
            if asleep:
                await driver.execute(f"SELECT pg_advisory_unlock({RELAY_ASLEEP_LOCK})")


async def test_a_sleeping_relay_is_notified_on_commit_only(db: AsyncEngine) -> None:
    async with _listening(db, asleep=True) as received:
        async with db.begin() as conn:
            store = ResourceStore(conn, listeners=[OutboxListener()])
            await store.create("Patient", PATIENT)
            await store.create("Patient", PATIENT)
            await asyncio.sleep(0.1)
            assert received.empty()
        await asyncio.wait_for(received.get(), timeout=2)
        await asyncio.sleep(0.1)
        assert received.empty()  # one notification per transaction


async def test_an_awake_relay_is_not_notified(db: AsyncEngine) -> None:
    # It polls again before it sleeps (ipt_worker/relay/_relay.py, `_sleep`): no NOTIFY, and
    # no wake-up, per commit.
    async with _listening(db, asleep=False) as received:
        async with db.begin() as conn:
            await ResourceStore(conn, listeners=[OutboxListener()]).create("Patient", PATIENT)
        await append_course_events(db, ["c-awake"], 2, now=NOW)  # the engine's own path too
        await asyncio.sleep(0.3)
        assert received.empty()


async def test_a_writer_that_did_not_notify_keeps_the_relay_from_sleeping(
    db: AsyncEngine,
) -> None:
    async with db.begin() as conn:
        await ResourceStore(conn, listeners=[OutboxListener()]).create("Patient", PATIENT)
        async with db.connect() as relay:  # the leader, about to sleep
            asleep = await relay.scalar(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": RELAY_ASLEEP_LOCK}
            )
            assert asleep is False  # the writer is in flight: the leader polls again
            await relay.rollback()
    async with db.connect() as relay:  # committed: now it may, and it sees the event
        assert await relay.scalar(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": RELAY_ASLEEP_LOCK}
        )
        assert await any_unpublished(relay)
        await relay.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": RELAY_ASLEEP_LOCK})
        await relay.commit()


async def test_retention_keeps_unpublished_events_and_pending_deliveries(db: AsyncEngine) -> None:
    old, recent = NOW - timedelta(days=40), NOW - timedelta(days=1)
    await append_course_events(db, ["c-old"], 3, now=old)
    await append_course_events(db, ["c-recent"], 1, now=recent)
    async with db.begin() as conn:
        endpoint, _ = await create_endpoint(
            conn, url="http://127.0.0.1:9/", event_types=[], therapist_ref=None,
            organization_ref=None, now=old, keyring=TEST_KEYRING,
        )  # fmt: skip
        events = await unpublished(conn, 100)
        published, waiting = events[:2], events[2:]
        await stamp_published(conn, [published[0].seq], old, fan_out=False)
        await stamp_published(conn, [published[1].seq], old, fan_out=True)  # pending: stays
        await conn.execute(text("UPDATE webhook_endpoint SET enabled = false"))
    async with db.begin() as conn:
        deleted = await delete_expired_events(conn, NOW - timedelta(days=30), chunk=100)
    assert deleted == 1
    async with db.connect() as conn:
        left = set(await conn.scalars(text("SELECT seq FROM outbox")))
        counter = await conn.scalar(
            text("SELECT last FROM event_sequence WHERE aggregateid = 'c-old'")
        )
    assert left == {published[1].seq, *(event.seq for event in waiting)}
    assert counter == 3  # sequences go on increasing after retention
    assert endpoint.enabled


async def test_a_batch_is_numbered_per_key_in_the_order_given(db: AsyncEngine) -> None:
    # One statement numbers a batch (ipt_core/events/_repository.py, `append_numbered`): per
    # key the next numbers in the given order, after what earlier writes took, and `seq`
    # (the relay's order) follows each key's sequence.
    def event(key: str, n: int) -> tuple[str, dict[str, Any]]:
        data = {"n": n}
        return "Test", cloud_event(
            type_="test", subject=key, partition_key=key, sequence=0, time=NOW, data=data
        )

    async with db.begin() as conn:
        assert await next_sequence(conn, "key-a", 2) == 1  # an earlier writer took 1 and 2
    async with db.begin() as conn:
        batch = [event("key-a", 0), event("key-b", 1), event("key-a", 2), event("key-a", 3)]
        await append_sequenced(conn, [*batch, event("key-b", 4)], NOW)
    rows = [row for row in await outbox_rows(db) if row.aggregatetype == "Test"]
    numbered = [
        (row.aggregateid, row.payload["data"]["n"], row.payload["sequence"]) for row in rows
    ]
    assert numbered == [
        ("key-a", 0, "00000000000000000003"),
        ("key-b", 1, "00000000000000000001"),
        ("key-a", 2, "00000000000000000004"),
        ("key-a", 3, "00000000000000000005"),
        ("key-b", 4, "00000000000000000002"),
    ]
