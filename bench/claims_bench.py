"""Webhook claims behind a backlog: a delivery loop's claim stays flat whatever waits.

One endpoint keeps failing: each of its N one-event queues is held back for its retry, as the
delivery loop leaves them. Then 8 new events are due, for it and for an endpoint that is
fine. A claim (`lock_sendable`, up to 32 queues, as a worker takes them) must find those 16
without reading the backlog, at 1,000,
10,000 and 100,000 held-back queues; run 20 times each after ANALYZE, on a throwaway
embedded PostgreSQL. Before the queue table (migration 0007) a claim walked the backlog:
19 ms at 10,000 and 200 ms at 100,000 (bench/PROFILE.md, "Seventh round").

Run: `python -m bench claims [--sizes 1000,10000,100000]`; results in bench/results/claims.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.embedded_db import migrated_engine
from bench.results_file import write_results
from ipt_core.db.advisory import session_of_its_own
from ipt_core.events import stamp_published
from ipt_core.events.webhooks import lock_sendable, unlock

_DUE = 8  # new events, each due for both endpoints
_CLAIMS = 20
_ENDPOINT = (
    "INSERT INTO webhook_endpoint (id, url, secret, event_types, enabled, consecutive_failures,"
    " created_at) VALUES (:id, 'https://receiver.example/hook', 'whsec_unused', '{}', true, 0,"
    " now())"
)
_EVENTS = (
    "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, created_at) "
    "SELECT :prefix || n, 'Patient', 'Patient/' || :prefix || n, 'fhir.resource.changed', "
    "'{}'::jsonb, now() FROM generate_series(1, :count) AS n RETURNING seq"
)


def main() -> None:
    """Measure a claim at each backlog size; print and write the results."""
    parser = argparse.ArgumentParser(prog="python -m bench claims", description=__doc__)
    parser.add_argument("--sizes", default="1000,10000,100000", help="held-back queues")
    args = parser.parse_args()
    runs = [asyncio.run(_measure(int(size))) for size in args.sizes.split(",")]
    lines = [
        "# Webhook claims behind a failing endpoint's backlog",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {_CLAIMS} claims each, {2 * _DUE} queues due; "
        "target: flat (no claim reads the backlog).",
        "",
        "| held-back queues | claimed | claim p50 ms | claim max ms |",
        "| ---: | ---: | ---: | ---: |",
        *(
            f"| {run['held_back']:,} | {run['claimed']} | {run['p50_ms']:.2f} "
            f"| {run['max_ms']:.2f} |"
            for run in runs
        ),
        "",
    ]
    path = write_results("claims", {"runs": runs}, "\n".join(lines))
    print("\n".join(lines))
    print(f"results: {path}")


async def _measure(held_back: int) -> dict[str, Any]:
    async with migrated_engine("claims", pool_size=2) as engine:
        await _backlog(engine, held_back)
        times: list[float] = []
        async with session_of_its_own(engine) as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            for _ in range(_CLAIMS):
                started = time.perf_counter()
                claimed = await lock_sendable(conn, datetime.now(UTC), queues=32)
                times.append(time.perf_counter() - started)
                await unlock(conn, claimed)
    run = {
        "held_back": held_back,
        "claimed": len(claimed),
        "p50_ms": statistics.median(times) * 1000,
        "max_ms": max(times) * 1000,
    }
    print(f"{held_back:,} held-back queues: claim p50 {run['p50_ms']:.2f} ms", flush=True)
    return run


async def _backlog(engine: AsyncEngine, held_back: int) -> None:
    """`failing`: `held_back` one-event queues waiting for their retries, then 8 new ones due
    for it and for `healthy`, which subscribed after the backlog."""
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(text(_ENDPOINT), {"id": "failing"})
        backlog = list(await conn.scalars(text(_EVENTS), {"prefix": "old-", "count": held_back}))
        for start in range(0, held_back, 1000):
            await stamp_published(conn, backlog[start : start + 1000], now, fan_out=True)
        # Every queue's head failed and waits for its retry, as `hold` leaves each one.
        await conn.execute(
            text("UPDATE webhook_queue SET due_at = :retry"), {"retry": now + timedelta(hours=1)}
        )
        await conn.execute(text(_ENDPOINT), {"id": "healthy"})
        due = list(await conn.scalars(text(_EVENTS), {"prefix": "new-", "count": _DUE}))
        await stamp_published(conn, due, now, fan_out=True)
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE"))
