"""Resource store write costs: round trips and time per create, update and transaction entry.

Runs the real `ResourceStore` with the listeners every process composes (IPT projections,
EHR push, outbox) against an embedded PostgreSQL, one transaction per write (as a FHIR
request), and a 20-entry course per transaction (as a transaction Bundle), and counts the
statements each write sends (`before_cursor_execute`, BEGIN and COMMIT not included).
Run: `python -m bench store [--writes N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bench.dataset import course_resources
from bench.embedded_db import migrated_engine
from ipt_core.composition import write_listeners
from ipt_core.fhir.model import ResourcePut, VersionedWrite
from ipt_core.fhir.store import ResourceStore

# The Patient `make bench` creates (bench/api/scenarios.py): four index tables' rows.
_PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "gender": "female",
    "birthDate": "1990-02-03",
}
_PATIENT |= {"identifier": [{"system": "urn:bench:created", "value": "1"}]}
_PATIENT |= {"name": [{"family": "Created", "given": ["Bench"]}]}


def main() -> None:
    """Measure and print statements and milliseconds per write."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--writes", type=int, default=400)
    asyncio.run(_main(parser.parse_args().writes))


async def _main(writes: int) -> None:
    async with migrated_engine("pg-store") as engine:
        await _run(engine, writes)


async def _run(engine: AsyncEngine, writes: int) -> None:
    statements = [0]
    event.listen(
        engine.sync_engine,
        "before_cursor_execute",
        lambda *_: statements.__setitem__(0, statements[0] + 1),
    )
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    ids = [str(uuid.uuid4()) for _ in range(writes)]

    async def create(conn: AsyncConnection, n: int) -> int:
        await _store(conn).create("Patient", _PATIENT, new_id=ids[n])
        return 1

    async def update(conn: AsyncConnection, n: int) -> int:
        body = {**_PATIENT, "id": ids[n], "gender": "male"}
        await _store(conn).update("Patient", ids[n], body, if_match=1)
        return 1

    async def update_many(conn: AsyncConnection, n: int) -> int:
        body = {**_PATIENT, "gender": "other"}
        chunk = ids[n * 20 : n * 20 + 20]
        batch = [VersionedWrite("Patient", i, {**body, "id": i}, 2) for i in chunk]
        await _store(conn).update_many(batch)
        return len(batch)

    async def course(conn: AsyncConnection, n: int) -> int:
        store = _store(conn)
        count = 0
        for resource in course_resources(5_000_000 + n, sessions=13, phq9=5):
            await store.update(resource["resourceType"], resource["id"], resource)
            count += 1
        return count

    async def course_set(conn: AsyncConnection, n: int) -> int:
        resources = list(course_resources(6_000_000 + n, sessions=13, phq9=5))
        puts = [ResourcePut(r["resourceType"], r["id"], r) for r in resources]
        await _store(conn).put_many(puts)
        return len(puts)

    await _measure(engine, statements, "create Patient", writes, create)
    await _measure(engine, statements, "update Patient (If-Match)", writes, update)
    await _measure(engine, statements, "update_many, 20 Patients", writes // 20, update_many)
    await _measure(engine, statements, "course of 20 in one transaction", writes // 20, course)
    await _measure(engine, statements, "course of 20, put_many", writes // 20, course_set)


def _store(conn: AsyncConnection) -> ResourceStore:
    return ResourceStore(conn, listeners=write_listeners(), clock=lambda: datetime.now(UTC))


async def _measure(
    engine: AsyncEngine,
    statements: list[int],
    label: str,
    count: int,
    write: Callable[[AsyncConnection, int], Awaitable[Any]],
) -> None:
    statements[0] = 0
    resources = 0
    started = time.perf_counter()
    for n in range(count):
        async with engine.begin() as conn:
            resources += await write(conn, n)
    elapsed = time.perf_counter() - started
    print(
        f"{label:34} {statements[0] / resources:5.1f} statements/resource  "
        f"{elapsed * 1000 / resources:6.2f} ms/resource  ({resources} resources, "
        f"load {os.getloadavg()[0]:.1f})",
        flush=True,
    )


if __name__ == "__main__":
    main()
