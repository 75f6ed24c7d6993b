"""PostgreSQL restarted under concurrent reads by id: every read answers 200 or 503 with
Retry-After (never a 500), the outage is logged once, and reads recover when it is back."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.chaos.support import FIGURES, ChaosDatabase, chaos_database, serve_api
from tests.support.waiting import poll_until

pytestmark = pytest.mark.chaos

READERS = 24  # more than a small pool holds: some requests queue for a connection
Read = tuple[float, int, str | None]  # started, status, Retry-After


@pytest.fixture
async def database() -> AsyncIterator[ChaosDatabase]:
    async with chaos_database() as created:
        yield created


async def test_a_restart_under_concurrent_reads_answers_503_then_serves_again(
    database: ChaosDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    reads: list[Read] = []
    caplog.set_level(logging.WARNING, logger="ipt_api")  # the outage log's lines
    with serve_api(database.url) as base:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            created = await http.post(
                "/fhir/Patient",
                json={"resourceType": "Patient"},
                headers={"Content-Type": "application/fhir+json"},
            )
            path = f"/fhir/Patient/{created.json()['id']}"
            stop = asyncio.Event()
            tasks = [asyncio.create_task(_reader(http, path, reads, stop)) for _ in range(READERS)]
            await asyncio.sleep(0.5)
            outage = await database.outage(down_s=1.0)

            def served_after() -> int:
                return sum(1 for s, status, _ in reads if s >= outage.back and status == 200)

            await poll_until(lambda: served_after() >= READERS, within_s=30, what="reads")
            stop.set()
            await asyncio.gather(*tasks)

    statuses = Counter(status for _, status, _ in reads)
    messages = [r.getMessage() for r in caplog.records]
    FIGURES[f"database restart, {READERS} readers"] = {
        "outage": outage.kind,
        "statuses": dict(sorted(statuses.items())),
        "first_good_read_after_back_s": round(
            min(s for s, status, _ in reads if s >= outage.back and status == 200) - outage.back,
            2,
        ),
    }
    assert set(statuses) <= {200, 503}, f"unexpected statuses: {statuses}"
    assert statuses[503] > 0, "the outage was not noticed: nothing was tested"
    assert all(after and after.isdigit() for _, status, after in reads if status == 503)
    assert sum("database unavailable" in m for m in messages) == 1
    assert sum("available again" in m for m in messages) == 1  # recovered() on the read path


async def _reader(
    http: httpx.AsyncClient, path: str, reads: list[Read], stop: asyncio.Event
) -> None:
    while not stop.is_set():
        started = time.monotonic()
        response = await http.get(path)
        reads.append((started, response.status_code, response.headers.get("retry-after")))
        await asyncio.sleep(0.01)
