"""The recompute queue: coalescing, leases, generations, backoff — on real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.queue import WorkerLiveness, claim_due, finish, request_recompute, retry_later

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)


async def pending(db: AsyncEngine) -> dict[str, datetime]:
    async with db.connect() as conn:
        rows = await conn.execute(text("SELECT course_id, due_at FROM recompute_request"))
        return {row.course_id: row.due_at for row in rows}


async def test_requests_coalesce_and_keep_the_earliest_due_time(db: AsyncEngine) -> None:
    async with db.begin() as conn:
        await request_recompute(conn, ["c1", "c1", "c2"], T0 + timedelta(hours=1))
        await request_recompute(conn, ["c1"], T0)
        await request_recompute(conn, ["c2"], T0 + timedelta(hours=2))
    assert await pending(db) == {"c1": T0, "c2": T0 + timedelta(hours=1)}


async def test_a_claimed_course_is_not_claimed_twice_until_its_lease_ends(db: AsyncEngine) -> None:
    async with db.begin() as conn:
        await request_recompute(conn, ["c1", "c2"], T0)
    alive = WorkerLiveness(db, "a")
    await alive.ensure()
    try:
        async with db.begin() as conn:
            first = await claim_due(conn, worker="a", now=T0, lease=LEASE, limit=10)
        async with db.begin() as conn:
            second = await claim_due(conn, worker="b", now=T0, lease=LEASE, limit=10)
        assert sorted(c.course_id for c in first) == ["c1", "c2"]
        assert second == []
        async with db.begin() as conn:  # "a" is alive but hung: after the lease, "b" takes over
            late = await claim_due(conn, worker="b", now=T0 + LEASE * 2, lease=LEASE, limit=10)
        assert sorted(c.course_id for c in late) == ["c1", "c2"]
    finally:
        await alive.close()


async def test_the_leases_of_a_dead_worker_are_taken_over_at_once(db: AsyncEngine) -> None:
    async with db.begin() as conn:
        await request_recompute(conn, ["c1", "c2"], T0)
    doomed = WorkerLiveness(db, "a")
    await doomed.ensure()
    async with db.begin() as conn:
        assert len(await claim_due(conn, worker="a", now=T0, lease=LEASE, limit=10)) == 2
    async with db.begin() as conn:
        assert await claim_due(conn, worker="b", now=T0, lease=LEASE, limit=10) == []
    await doomed.close()  # its session ends, as when the process is killed
    async with db.begin() as conn:  # well within the lease
        taken_over = await claim_due(conn, worker="b", now=T0, lease=LEASE, limit=10)
    assert sorted(c.course_id for c in taken_over) == ["c1", "c2"]


async def test_only_due_requests_are_claimed(db: AsyncEngine) -> None:
    async with db.begin() as conn:
        await request_recompute(conn, ["now"], T0)
        await request_recompute(conn, ["later"], T0 + timedelta(days=1))
        claims = await claim_due(conn, worker="a", now=T0, lease=LEASE, limit=10)
    assert [c.course_id for c in claims] == ["now"]


async def test_finish_rearms_at_next_transition_or_drops(db: AsyncEngine) -> None:
    async with db.begin() as conn:
        await request_recompute(conn, ["c1", "c2"], T0)
        c1, c2 = sorted(
            await claim_due(conn, worker="a", now=T0, lease=LEASE, limit=10),
            key=lambda c: c.course_id,
        )
        await finish(conn, c1, next_due=T0 + timedelta(days=3), now=T0)
        await finish(conn, c2, next_due=None, now=T0)
    assert await pending(db) == {"c1": T0 + timedelta(days=3)}


async def test_a_request_during_computation_makes_the_course_due_again(db: AsyncEngine) -> None:
    async with db.begin() as conn:
        await request_recompute(conn, ["c1"], T0)
        (claim,) = await claim_due(conn, worker="a", now=T0, lease=LEASE, limit=10)
    async with db.begin() as conn:  # a FHIR write lands while "a" computes
        await request_recompute(conn, ["c1"], T0 + timedelta(seconds=1))
    async with db.begin() as conn:
        await finish(conn, claim, next_due=None, now=T0 + timedelta(seconds=2))
    assert await pending(db) == {"c1": T0 + timedelta(seconds=2)}


async def test_failures_back_off_exponentially(db: AsyncEngine) -> None:
    async with db.begin() as conn:
        await request_recompute(conn, ["bad"], T0)
    now = T0
    delays = []
    for _ in range(3):
        async with db.begin() as conn:
            (claim,) = await claim_due(conn, worker="a", now=now, lease=LEASE, limit=10)
            await retry_later(conn, claim, error="ValueError", now=now)
        due = (await pending(db))["bad"]
        delays.append(due - now)
        now = due
    assert delays == [timedelta(seconds=2), timedelta(seconds=4), timedelta(seconds=8)]
