"""The ordered feed: pages by feed position, long-poll, and Server-Sent Events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx
import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.events import FeedSignal, append_events, cloud_event, next_sequence
from ipt_worker.relay import EventRelay
from tests.integration.events_support import append_course_events, fast_timing, relay_connection
from tests.support.clock import utc_now


async def publish_all(db: AsyncEngine) -> int:
    """Publish what is in the outbox, as the relay leader does (no publishers needed)."""
    relay = EventRelay(db, [], clock=utc_now, timing=fast_timing())
    async with relay_connection(db) as conn:
        return await relay.publish_batch(conn)


async def test_pages_follow_the_feed_with_types_and_limit(
    db: AsyncEngine, client: httpx.AsyncClient
) -> None:
    sent = await append_course_events(db, ["c1", "c2"], 2)
    phases = await append_course_events(db, ["c1"], 1, type_="ipt.course.phase.changed")
    await publish_all(db)
    first = (await client.get("/ipt/v1/events", params={"limit": 3})).json()
    assert [e["id"] for e in first["events"]] == [e["id"] for e in sent[:3]]
    rest = (await client.get("/ipt/v1/events", params={"after": first["next_after"]})).json()
    assert [e["id"] for e in rest["events"]] == [sent[3]["id"], phases[0]["id"]]
    assert (await client.get("/ipt/v1/events", params={"after": rest["next_after"]})).json() == {
        "events": [],
        "next_after": rest["next_after"],
    }
    only = await client.get("/ipt/v1/events", params={"types": "ipt.course.phase.changed"})
    assert [e["id"] for e in only.json()["events"]] == [phases[0]["id"]]


async def test_an_event_committed_late_is_not_skipped(
    db: AsyncEngine, client: httpx.AsyncClient
) -> None:
    # A transaction takes the lower outbox seq but commits after a later one was published.
    async with db.connect() as slow:
        await slow.begin()
        late = cloud_event(
            type_="ipt.course.status.changed", subject="CarePlan/slow", partition_key="slow",
            sequence=await next_sequence(slow, "slow"), time=utc_now(), data={},
        )  # fmt: skip
        await append_events(slow, "CarePlan", [late], utc_now())
        (early,) = await append_course_events(db, ["fast"], 1)
        await publish_all(db)
        page = (await client.get("/ipt/v1/events")).json()
        assert [e["id"] for e in page["events"]] == [early["id"]]
        await slow.commit()
    await publish_all(db)
    rest = (await client.get("/ipt/v1/events", params={"after": page["next_after"]})).json()
    assert [e["id"] for e in rest["events"]] == [late["id"]]


async def test_long_poll_answers_when_an_event_is_published(
    db: AsyncEngine, client: httpx.AsyncClient
) -> None:
    async def publish_later() -> list[str]:
        await asyncio.sleep(0.3)
        sent = await append_course_events(db, ["c1"], 1)
        await publish_all(db)
        return [e["id"] for e in sent]

    started = time.monotonic()
    response, sent_ids = await asyncio.gather(
        client.get("/ipt/v1/events", params={"wait": 5}), publish_later()
    )
    assert [e["id"] for e in response.json()["events"]] == sent_ids
    assert time.monotonic() - started < 2


async def test_the_feed_signal_wakes_on_publication_not_by_polling(db: AsyncEngine) -> None:
    signal = FeedSignal(db, fallback_s=60)  # a wake-up within seconds can only be the NOTIFY
    try:
        assert await signal.wait(signal.current(), 10)  # listening: readers look once more
        assert not await signal.wait(signal.current(), 0.3)  # nothing published, nothing wakes
        wake = signal.current()
        await append_course_events(db, ["c1"], 1)
        started = time.monotonic()
        await publish_all(db)
        assert await signal.wait(wake, 10)
        assert time.monotonic() - started < 2
    finally:
        await signal.close()


async def test_long_poll_gives_up_empty_after_wait(client: httpx.AsyncClient) -> None:
    response = await client.get("/ipt/v1/events", params={"wait": 0.3, "after": 7})
    assert response.json() == {"events": [], "next_after": 7}


async def test_bad_parameters_are_operation_outcomes(client: httpx.AsyncClient) -> None:
    response = await client.get("/ipt/v1/events", params={"limit": 0})
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_the_stream_resumes_after_last_event_id(db: AsyncEngine, live_server: str) -> None:
    sent = await append_course_events(db, ["c1", "c2"], 2)
    await publish_all(db)
    base = live_server.removesuffix("/fhir")
    async with (
        httpx.AsyncClient(base_url=base, timeout=5) as http,
        http.stream("GET", "/ipt/v1/events/stream", headers={"Last-Event-ID": "2"}) as stream,
    ):
        assert stream.headers["content-type"].startswith("text/event-stream")
        messages = await _read_messages(stream, 3, publish=lambda: _more(db))
    assert [m["id"] for m in messages] == ["3", "4", "5"]
    assert [orjson.loads(m["data"])["id"] for m in messages[:2]] == [e["id"] for e in sent[2:]]
    assert messages[0]["event"] == "ipt.course.status.changed"


async def _more(db: AsyncEngine) -> None:
    await append_course_events(db, ["c3"], 1)
    await publish_all(db)


async def _read_messages(
    stream: httpx.Response, count: int, *, publish: Callable[[], Awaitable[None]]
) -> list[dict[str, str]]:
    """Parse SSE messages until `count` arrived; publish one more event after the backlog."""
    messages: list[dict[str, str]] = []
    current: dict[str, str] = {}
    async for line in stream.aiter_lines():
        if line == "":
            if "id" in current:
                messages.append(current)
                if len(messages) == count - 1:
                    await publish()
            if len(messages) == count:
                return messages
            current = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            current[name] = value
    return messages
