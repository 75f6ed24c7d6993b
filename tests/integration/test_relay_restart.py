"""The relay survives a database restart: it reconnects, leads again and goes on publishing.

Restarting the test session's shared server would disturb other tests, so this test starts
its own throwaway embedded PostgreSQL and restarts that one, on the same port.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ipt_core.db import embedded
from ipt_core.db.embedded import EmbeddedPostgres
from ipt_core.db.engine import create_engine
from ipt_core.db.migrate import upgrade
from ipt_core.events import OutboxEvent
from ipt_worker.relay import EventRelay
from tests.integration.events_support import append_course_events, fast_timing, running
from tests.support.waiting import poll_until


class RecordingPublisher:
    """A publisher that keeps what it was given."""

    name = "recording"

    def __init__(self) -> None:
        self.ids: list[str] = []

    async def publish(self, conn: AsyncConnection, events: Sequence[OutboxEvent]) -> None:
        self.ids += [event.id for event in events]

    async def close(self) -> None:
        pass


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(tmp_path / "pg", throwaway=True)
    yield server
    server.stop()


@pytest.fixture
async def own_db(cluster: EmbeddedPostgres) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(cluster.start().url("postgres"), pool_size=4)
    await upgrade(engine)
    yield engine
    await engine.dispose()


async def test_the_relay_resumes_after_a_database_restart(
    own_db: AsyncEngine, cluster: EmbeddedPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    publisher = RecordingPublisher()
    relay = EventRelay(own_db, [publisher], clock=lambda: datetime.now(UTC), timing=fast_timing())
    async with running(relay):
        (before,) = await append_course_events(own_db, ["c1"], 1)
        await poll_until(lambda: relay.published == 1)  # committed, not just handed over
        port = cluster.running_port()
        cluster.stop()
        await poll_until(lambda: not relay.is_leader, what="the relay to notice")
        monkeypatch.setattr(embedded, "_free_port", lambda: port)  # come back where it was
        cluster.start()
        (after,) = await append_course_events(own_db, ["c1"], 1)
        await poll_until(lambda: publisher.ids == [before["id"], after["id"]], within_s=8)
    assert relay.is_leader is False  # stopped
