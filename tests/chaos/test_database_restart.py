"""PostgreSQL restarted under concurrent writes: clients get 503 + Retry-After, never a 500,
and every write the API acknowledged is there afterwards. /readyz follows the outage."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from tests.chaos.support import FIGURES, ChaosDatabase, chaos_database, serve_api
from tests.support.waiting import poll_until

pytestmark = pytest.mark.chaos

WRITERS = 8
FHIR = {"Content-Type": "application/fhir+json"}


@dataclass(frozen=True)
class Write:
    """One attempted create, as the client saw it."""

    started: float
    status: int
    id: str | None
    identifier: str
    retry_after: str | None
    issue_code: str | None
    may_have_committed: bool


@pytest.fixture
async def database() -> AsyncIterator[ChaosDatabase]:
    async with chaos_database() as created:
        yield created


async def _write(http: httpx.AsyncClient) -> Write:
    identifier = uuid.uuid4().hex
    body = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:ipt:chaos", "value": identifier}],
        "gender": "unknown",
    }
    started = time.monotonic()
    response = await http.post("/fhir/Patient", json=body, headers=FHIR)
    content = response.json()
    issue = (
        content.get("issue", [{}])[0] if content.get("resourceType") == "OperationOutcome" else {}
    )
    return Write(
        started,
        response.status_code,
        content.get("id") if response.is_success else None,
        identifier,
        response.headers.get("retry-after"),
        issue.get("code"),
        "may or may not have been stored" in str(issue.get("diagnostics", "")),
    )


async def _writer(http: httpx.AsyncClient, writes: list[Write], stop: asyncio.Event) -> None:
    while not stop.is_set():
        write = await _write(http)
        writes.append(write)
        if not 200 <= write.status < 300:
            await asyncio.sleep(0.05)  # a real client waits Retry-After; this one measures


async def _probe(http: httpx.AsyncClient, seen: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        seen.append((await http.get("/readyz")).status_code)
        await asyncio.sleep(0.1)


async def test_a_restart_under_concurrent_writes_answers_503_and_loses_no_write(
    database: ChaosDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ipt_api")
    writes: list[Write] = []
    readiness: list[int] = []
    with serve_api(database.url) as base:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            stop = asyncio.Event()
            tasks = [asyncio.create_task(_writer(http, writes, stop)) for _ in range(WRITERS)]
            tasks.append(asyncio.create_task(_probe(http, readiness, stop)))
            await asyncio.sleep(1.0)
            outage = await database.outage(down_s=1.0)

            def after() -> list[Write]:
                return [w for w in writes if w.started >= outage.back and w.status == 201]

            await poll_until(lambda: len(after()) >= WRITERS, within_s=30, what="writes to succeed")
            await poll_until(lambda: readiness[-1] == 200, within_s=10, what="/readyz to recover")
            stop.set()
            await asyncio.gather(*tasks)
            acknowledged = [w for w in writes if w.status == 201]
            missing = [w for w in acknowledged if (await _read(http, w)) != w.identifier]

    statuses = Counter(w.status for w in writes)
    failed = [w for w in writes if w.status != 201]
    first_good = min(w.started for w in after())
    outage_lines = [r for r in caplog.records if "database unavailable" in r.getMessage()]
    FIGURES["database restart, 8 writers"] = {
        "outage": outage.kind,
        "down_s": round(outage.back - outage.started, 2),
        "statuses": dict(sorted(statuses.items())),
        "may_have_committed": sum(w.may_have_committed for w in writes),
        "first_good_write_after_back_s": round(first_good - outage.back, 2),
        "first_good_write_after_start_s": round(first_good - outage.started, 2),
        "readyz": dict(Counter(readiness)),
        "api_outage_log_lines": len(outage_lines),
    }
    assert set(statuses) <= {201, 503}, f"unexpected statuses: {statuses}"
    assert statuses[503] > 0, "the outage was not noticed: nothing was tested"
    assert all(w.retry_after and w.retry_after.isdigit() for w in failed)
    assert all(w.issue_code == "transient" for w in failed)
    assert missing == [], f"{len(missing)} acknowledged writes are lost"
    assert 503 in readiness
    assert len(outage_lines) == 1, "the outage was logged per request"


async def _read(http: httpx.AsyncClient, write: Write) -> str | None:
    response = await http.get(f"/fhir/Patient/{write.id}")
    if response.status_code != 200:
        return None
    return str(response.json()["identifier"][0]["value"])
